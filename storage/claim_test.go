package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestClaimsReturnWholeRows: a claim hands back the rows it leased whole
// (read from its UPDATE's RETURNING): their times as stored, the lease
// just taken, in the queue's order; a second owner gets none of them.
func TestClaimsReturnWholeRows(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		tk := deliver(t, committer(t, s), incoming("ann@example.com", "c1@example.com", "Claims", "")).Ticket
		now := clock.Now()
		inTx(t, s, func(ctx context.Context, tx *storage.Tx) error {
			if err := tx.Schedule(ctx, tk, "late", now.Add(2*time.Minute)); err != nil {
				return err
			}
			return tx.Schedule(ctx, tk, "early", now.Add(time.Minute))
		})
		clock.Advance(3 * time.Minute)
		timers, err := s.ClaimTimers(ctx, "me", 10, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(timers) != 2 || timers[0].Name != "early" || timers[1].Name != "late" {
			t.Fatalf("claimed %+v, want early then late", timers)
		}
		for i, tm := range timers {
			wantDue := now.Add(time.Duration(i+1) * time.Minute)
			if !tm.DueAt.Equal(wantDue) || tm.TicketID != tk || tm.Status != storage.TimerPending || tm.LeaseOwner != "me" ||
				tm.LeaseUntil == nil || !tm.LeaseUntil.Equal(clock.Now().Add(time.Minute)) || !tm.CreatedAt.Equal(now) {
				t.Errorf("timer %d = %+v (due %v wanted)", i, tm, wantDue)
			}
		}
		if again, err := s.ClaimTimers(ctx, "other", 10, time.Minute); err != nil || len(again) != 0 {
			t.Errorf("a second owner claimed %+v, %v", again, err)
		}
		work, err := s.ClaimWork(ctx, "me", 10, time.Minute)
		if err != nil || len(work) != 1 {
			t.Fatalf("claimed work %+v, %v", work, err)
		}
		if w := work[0]; w.Kind != storage.WorkProcess || w.MessageRowID == 0 || !w.NotBefore.Equal(now) || w.LeaseOwner != "me" {
			t.Errorf("work = %+v", w)
		}
	})
}
