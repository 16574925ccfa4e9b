package storage

import (
	"cmp"
	"context"
	"fmt"
	"time"
)

// Timer statuses.
const (
	TimerPending   = "pending"
	TimerFired     = "fired"
	TimerCancelled = "cancelled"
)

// TimerFollowUp is the timer of an agent's follow-up (#waiting until,
// #remind, #snooze): when it fires the ticket comes back to the queue.
const TimerFollowUp = "follow_up"

// Schedule arms timer name on ticket at due, replacing a pending one of
// the same name.
func (t *Tx) Schedule(ctx context.Context, ticket int64, name string, due time.Time) error {
	if err := t.Cancel(ctx, ticket, name); err != nil {
		return err
	}
	// Stored in UTC: SQLite compares times as text, so a due time in the
	// inbox's zone would sort wrong against the clock's UTC.
	tm := Timer{TicketID: ticket, Name: name, DueAt: due.UTC(), Status: TimerPending, CreatedAt: t.s.now()}
	if err := insertRows(ctx, t.s, t.db, []Timer{tm}, false); err != nil {
		return fmt.Errorf("schedule %s on %d: %w", name, ticket, err)
	}
	return nil
}

// Cancel disarms pending timer name on ticket; no-op when none is.
func (t *Tx) Cancel(ctx context.Context, ticket int64, name string) error {
	now := t.s.now()
	err := t.db.WithContext(ctx).Model(&Timer{}).Where("ticket_id = ? AND name = ? AND status = ?", ticket, name, TimerPending).
		Updates(map[string]any{"status": TimerCancelled, "completed_at": now}).Error
	if err != nil {
		return fmt.Errorf("cancel %s on %d: %w", name, ticket, err)
	}
	return nil
}

// ClaimTimers leases up to limit due timers to owner.
func (s *Store) ClaimTimers(ctx context.Context, owner string, limit int, lease time.Duration) ([]Timer, error) {
	return claim(ctx, s, timerClaim, s.now(), owner, lease, limit, func(a, b Timer) int {
		return cmp.Or(a.DueAt.Compare(b.DueAt), cmp.Compare(a.ID, b.ID))
	})
}

// FireTimer marks a claimed timer fired inside tx. It returns false when
// the timer is no longer pending or no longer leased to owner (cancelled
// meanwhile, or taken over after a lease expiry): the caller must then do
// nothing, so a timer fires once.
func (t *Tx) FireTimer(ctx context.Context, id int64, owner string) (bool, error) {
	res := t.db.WithContext(ctx).Model(&Timer{}).Where("id = ? AND status = ? AND lease_owner = ?", id, TimerPending, owner).
		Updates(map[string]any{"status": TimerFired, "completed_at": t.s.now()})
	if res.Error != nil {
		return false, fmt.Errorf("fire timer %d: %w", id, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// PendingTimers lists a ticket's pending timers (for tests and the web).
func (s *Store) PendingTimers(ctx context.Context, ticket int64) ([]Timer, error) {
	var ts []Timer
	err := s.db.WithContext(ctx).Where("ticket_id = ? AND status = ?", ticket, TimerPending).Order("due_at").Find(&ts).Error
	if err != nil {
		return nil, fmt.Errorf("timers of %d: %w", ticket, err)
	}
	return ts, nil
}
