package storage

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// leaseTables are the tables whose rows a replica claims with a lease, and
// the condition that narrows each to the rows a lease can still matter on
// (so that renewing does not scan the outbox's sent history).
var leaseTables = []struct{ table, live string }{
	{"works", "1 = 1"},
	{"outbox_mails", "status = '" + OutboxPending + "'"},
	{"timers", "status = '" + TimerPending + "'"},
}

// RenewLeases extends, to lease from now (leaseNow), every lease owner
// still holds: claimed work items, outgoing mail, timers and named leases
// such as an IMAP mailbox's. A lease that has already run out is left
// alone, since another replica may have taken it over. It returns how
// many it renewed.
//
// Renewal is what lets leases be short: a replica that is alive keeps what
// it is doing however long that takes (a slow relay, a big batch), and one
// that died loses everything within one lease.
func (s *Store) RenewLeases(ctx context.Context, owner string, lease time.Duration) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		now, err := s.leaseNow(tx)
		if err != nil {
			return err
		}
		until := now.Add(lease)
		for _, t := range leaseTables {
			held := tx.Table(t.table).Where(t.live).Where("lease_owner = ? AND lease_until >= ?", owner, now)
			if s.driver == DriverPostgres {
				// Rows another transaction holds are skipped, not waited
				// for: that transaction is this replica's own worker
				// finishing them (a batch completing its work items, the
				// sender recording a delivery). Waiting made a cycle
				// with it, renewal holding the rows it had already
				// passed, and PostgreSQL broke it with 40P01. A row
				// skipped now is renewed on the next round, long before
				// its lease ends.
				held = tx.Table(t.table).Where("id IN (?)", held.Select("id").
					Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate, Options: clause.LockingOptionsSkipLocked}))
			}
			res := held.Update("lease_until", until)
			if res.Error != nil {
				return fmt.Errorf("%s: %w", t.table, res.Error)
			}
			n += res.RowsAffected
		}
		res := tx.Model(&Lease{}).Where("holder = ? AND until >= ?", owner, now).Update("until", until)
		n += res.RowsAffected
		return res.Error
	})
	if err != nil {
		return 0, fmt.Errorf("renew leases of %s: %w", owner, err)
	}
	return n, nil
}

// ReleaseLeases frees every lease owner holds, so that another replica
// takes the work over at once instead of waiting the lease out. A replica
// calls it last when it shuts down, once none of its workers runs: a lease
// released while its work was still under way would let that work be done
// twice. It returns how many it freed.
func (s *Store) ReleaseLeases(ctx context.Context, owner string) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, t := range leaseTables {
			res := tx.Table(t.table).Where(t.live).Where("lease_owner = ?", owner).
				Updates(map[string]any{"lease_owner": "", "lease_until": nil})
			if res.Error != nil {
				return fmt.Errorf("%s: %w", t.table, res.Error)
			}
			n += res.RowsAffected
		}
		res := tx.Where("holder = ?", owner).Delete(&Lease{})
		n += res.RowsAffected
		return res.Error
	})
	if err != nil {
		return 0, fmt.Errorf("release leases of %s: %w", owner, err)
	}
	return n, nil
}

// KeepLeases renews owner's leases every third of lease until ctx ends, so
// that each survives two failed renewals in a row. A renewal that fails is
// logged and tried again at the next tick: the leases then run out, which
// is the point of them when this replica has lost the database.
func (s *Store) KeepLeases(ctx context.Context, owner string, lease time.Duration) error {
	return every(ctx, max(lease/3, time.Millisecond), func() {
		if _, err := s.RenewLeases(ctx, owner, lease); err != nil && ctx.Err() == nil {
			s.log.Error("renewing leases", "err", err)
		}
	})
}

// every runs fn every period until ctx ends: the life of the store's
// background chores. The cadence is scheduling, not business time, so it
// uses the real clock.
func every(ctx context.Context, period time.Duration, fn func()) error {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			fn()
		}
	}
}
