package storage_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestHeldAndDeferredMail: on both backends, held rows are never claimed
// and are not counted by the fuse, deferred rows wait for their time, a
// waiting row of a stream can be rewritten until it is claimed, and a
// release makes held rows due.
func TestHeldAndDeferredMail(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		d, err := c.Deliver(ctx, incoming("ann@example.com", "f1@example.com", "Loop", ""))
		if err != nil {
			t.Fatal(err)
		}
		tk := d.Ticket
		queue := func(o storage.OutboxMail) int64 {
			t.Helper()
			o.TicketID, o.EnvTo = &tk, "ann@example.com"
			var id int64
			err := s.InTx(ctx, func(tx *storage.Tx) error {
				var err error
				id, err = tx.QueueMail(ctx, o, storage.Message{TicketID: &tk}, func(id int64) (storage.Composed, error) {
					return storage.Composed{MessageID: fmt.Sprintf("m%d@tend.test", id), EnvFrom: "b@tend.test", Raw: storagetest.Fixed([]byte("Subject: x\r\n\r\nx\r\n"))}, nil
				})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			return id
		}
		now := clock.Now()
		queue(storage.OutboxMail{Kind: storage.OutboxToCustomer})
		held := queue(storage.OutboxMail{Kind: storage.OutboxToCustomer, Status: storage.OutboxHeld})
		later := queue(storage.OutboxMail{Kind: storage.OutboxToStaff, NextAttemptAt: now.Add(time.Hour), Stream: "notify:1", Template: "notify"})
		claim := func() []int64 {
			t.Helper()
			rows, err := s.ClaimOutbox(ctx, "test", 10, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			var ids []int64
			for _, r := range rows {
				ids = append(ids, r.ID)
				if err := s.InTx(ctx, func(tx *storage.Tx) error {
					_, err := tx.FinishOutbox(ctx, r.ID, "test", storage.OutboxResult{Sent: true})
					return err
				}); err != nil {
					t.Fatal(err)
				}
			}
			return ids
		}
		if ids := claim(); len(ids) != 1 {
			t.Fatalf("claimed %v, want only the row due now", ids)
		}
		err = s.InTx(ctx, func(tx *storage.Tx) error {
			if a, b, err := tx.TicketMailCounts(ctx, tk, now.Add(-time.Minute), now.Add(time.Second)); err != nil || a != 2 || b != 0 {
				t.Errorf("TicketMailCounts = %d, %d, %v; want 2 (held mail not counted) and 0 (none since a second on)", a, b, err)
			}
			if a, b, err := tx.TicketMailCounts(ctx, tk, now.Add(time.Second), now.Add(-time.Hour)); err != nil || a != 0 || b != 2 {
				t.Errorf("TicketMailCounts = %d, %d, %v; want 0 and 2", a, b, err)
			}
			// The executor's one statement for flood protection and the
			// fuse: the same fuse counts, and none of the mail is auto.
			mc, err := tx.MailCounts(ctx, "ann@example.com", tk, now.Add(-time.Minute), now.Add(-time.Hour))
			if want := (storage.MailCounts{Burst: 2, Day: 2}); err != nil || mc != want {
				t.Errorf("MailCounts = %+v, %v; want %+v", mc, err, want)
			}
			tm, err := tx.TemplatedMail(ctx, tk)
			if last, ok := tm.Latest["notify:1"]; err != nil || !ok || last.ID != later {
				t.Fatalf("TemplatedMail's latest of the stream = %+v %v %v", last, ok, err)
			}
			if done, err := tx.RequeueMail(ctx, later, storagetest.Fixed([]byte("Subject: y\r\n\r\ny\r\n")), 3); err != nil || !done {
				t.Errorf("RequeueMail of a waiting row = %v, %v", done, err)
			}
			if tripped, err := tx.HoldTicketMail(ctx, tk); err != nil || !tripped {
				t.Errorf("HoldTicketMail = %v, %v; want tripped", tripped, err)
			}
			if tripped, err := tx.HoldTicketMail(ctx, tk); err != nil || tripped {
				t.Errorf("second HoldTicketMail = %v, %v; want already held", tripped, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if v, err := s.GetTicket(ctx, tk); err != nil || v.MailHeldSince == nil {
			t.Fatalf("ticket not flagged: %v", err)
		}
		clock.Advance(2 * time.Hour)
		if ids := claim(); len(ids) != 1 || ids[0] != later {
			t.Fatalf("claimed %v, want the deferred row %d once due", ids, later)
		}
		rows, err := s.Outbox(ctx, tk)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.ID == later && r.Count != 3 {
				t.Errorf("requeued row count %d", r.Count)
			}
		}
		err = s.InTx(ctx, func(tx *storage.Tx) error {
			if done, err := tx.RequeueMail(ctx, later, storagetest.Fixed([]byte("x")), 4); err != nil || done {
				t.Errorf("RequeueMail of a sent row = %v, %v; want refused", done, err)
			}
			n, err := tx.ReleaseHeldMail(ctx, tk)
			if err != nil || n != 1 {
				t.Errorf("ReleaseHeldMail = %d, %v", n, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if ids := claim(); len(ids) != 1 || ids[0] != held {
			t.Fatalf("claimed %v after the release, want the held row %d", ids, held)
		}
		if v, err := s.GetTicket(ctx, tk); err != nil || v.MailHeldSince != nil {
			t.Errorf("ticket still flagged after the release: %v", err)
		}
	})
}
