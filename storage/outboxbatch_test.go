package storage_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestFinishSentOutbox: recording a batch's sent mail in multi-row
// statements leaves each row as FinishOutbox with Sent leaves it (staff
// mail with DropBody loses its body and its text, customer mail keeps
// both), and touches no row that is no longer leased to the owner: one
// another sender holds, one already finished.
func TestFinishSentOutbox(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		queue := outboxQueuer(t, s, "batch@example.com")
		staff1, cust1, staff2, cust2 := queue(storage.OutboxToStaff), queue(storage.OutboxToCustomer), queue(storage.OutboxToStaff), queue(storage.OutboxToCustomer)
		if rows, err := s.ClaimOutbox(ctx, "me", 10, time.Minute); err != nil || len(rows) != 4 {
			t.Fatalf("claimed %d, %v", len(rows), err)
		}
		other := queue(storage.OutboxToCustomer)
		if rows, err := s.ClaimOutbox(ctx, "other", 10, time.Minute); err != nil || len(rows) != 1 {
			t.Fatalf("other claimed %d, %v", len(rows), err)
		}
		clock.Advance(time.Second)
		err := s.InTx(ctx, func(tx *storage.Tx) error {
			for _, id := range []int64{staff1, cust1} {
				if ok, err := tx.FinishOutbox(ctx, id, "me", storage.OutboxResult{Sent: true, DropBody: id == staff1}); err != nil || !ok {
					t.Errorf("finish %d: %v, %v", id, ok, err)
				}
			}
			done, err := tx.FinishSentOutbox(ctx, "me", []int64{cust2, other}, []int64{staff2, staff1})
			if err != nil {
				return err
			}
			want := map[int64]bool{cust2: true, staff2: true}
			if len(done) != len(want) || !done[cust2] || !done[staff2] {
				t.Errorf("finished %v, want %v", done, want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		rows, err := s.Outbox(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		got := map[int64]storage.OutboxMail{}
		for _, o := range rows {
			got[o.ID] = o
		}
		body := func(id int64) (bool, bool) { return outboxBody(t, s, id) }
		// The batch's rows look like the ones finished one by one.
		for _, pair := range [][2]int64{{staff1, staff2}, {cust1, cust2}} {
			a, b := got[pair[0]], got[pair[1]]
			if b.Status != storage.OutboxSent || b.Attempts != a.Attempts || b.LeaseOwner != "" || b.LeaseUntil != nil ||
				b.LastError != a.LastError || b.SentAt == nil || a.SentAt == nil || !b.SentAt.Equal(*a.SentAt) {
				t.Errorf("batched %+v\nunlike one by one %+v", b, a)
			}
			ra, ta := body(pair[0])
			rb, tb := body(pair[1])
			if ra != rb || ta != tb {
				t.Errorf("outbox %d: body %v text %v; one by one %d: body %v text %v", pair[1], rb, tb, pair[0], ra, ta)
			}
		}
		if raw, _ := body(staff2); raw {
			t.Errorf("staff mail %d kept its body", staff2)
		}
		if raw, text := body(cust2); !raw || !text {
			t.Errorf("customer mail %d: body %v, text %v", cust2, raw, text)
		}
		if o := got[staff1]; o.Attempts != 1 {
			t.Errorf("finished mail %d finished again: %d attempts", staff1, o.Attempts)
		}
		if o := got[other]; o.Status != storage.OutboxPending || o.LeaseOwner != "other" || o.Attempts != 0 {
			t.Errorf("another sender's mail was touched: %+v", o)
		}
		if raw, _ := body(other); !raw {
			t.Errorf("another sender's mail %d lost its body", other)
		}
	})
}

// TestDroppedTextPlan: the message rows of a batch of dropped mails are
// found through the dedup index. With more than one Message-ID SQLite
// chose the index on ticket_id for "ticket_id IS NULL" instead, which
// reads every notification ever sent, in each batch. (A SQLite plan:
// PostgreSQL judges by its statistics, and TestQueryPlans watches it.)
func TestDroppedTextPlan(t *testing.T) {
	s := storagetest.OpenSQLite(t, storagetest.NewFakeClock(t0))
	ctx := context.Background()
	for _, n := range []int{1, 3} {
		var ids []int64
		for i := range n {
			ids = append(ids, int64(i+1))
		}
		qs := storage.CaptureSQL(ctx, s, func(ctx context.Context, tx *storage.Tx) error { return tx.DroppedTextRows(ctx, ids) })
		if len(qs) != 1 {
			t.Fatalf("%d queries, want 1", len(qs))
		}
		plan, err := storage.Explain(ctx, s, qs[0])
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.Join(plan, "\n"), "idx_messages_dedup") {
			t.Errorf("%d mails: %s\n\t%s", n, qs[0].SQL, strings.Join(plan, "\n\t"))
		}
	}
}
