package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestBacklog counts what is left to do: a delivered message's work, the
// outgoing mail due now but not the mail deferred to later, and nothing
// once the mail is sent.
func TestBacklog(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			clock := storagetest.NewFakeClock(t0)
			s := openInbox(t, b, clock)
			backlog := func(what string, work, due int64) {
				t.Helper()
				w, d, err := s.Backlog(ctx)
				if err != nil || w != work || d != due {
					t.Errorf("%s: backlog %d work, %d due, %v; want %d, %d", what, w, d, err, work, due)
				}
			}
			backlog("empty", 0, 0)
			tk := deliver(t, committer(t, s), incoming("ann@example.com", "backlog@example.com", "Backlog", "")).Ticket
			backlog("delivered", 1, 0)
			for _, later := range []time.Duration{0, time.Hour} {
				if err := s.InTx(ctx, func(tx *storage.Tx) error {
					_, err := tx.QueueMail(ctx, storage.OutboxMail{TicketID: &tk, Kind: storage.OutboxToCustomer, EnvTo: "ann@example.com", NextAttemptAt: clock.Now().Add(later)},
						storage.Message{Role: "system"}, func(id int64) (storage.Composed, error) {
							return storage.Composed{MessageID: "b" + itoa(id) + "@acme.test", EnvFrom: "bounce@acme.test", Raw: storagetest.Fixed([]byte("Subject: x\r\n\r\nx\r\n"))}, nil
						})
					return err
				}); err != nil {
					t.Fatal(err)
				}
			}
			backlog("one mail due, one later", 1, 1)
			rows, err := s.ClaimOutbox(ctx, "me", 10, time.Minute)
			if err != nil || len(rows) != 1 {
				t.Fatalf("claimed %d mails, %v", len(rows), err)
			}
			if err := s.InTx(ctx, func(tx *storage.Tx) error {
				_, err := tx.FinishOutbox(ctx, rows[0].ID, "me", storage.OutboxResult{Sent: true})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			backlog("sent", 1, 0)
			clock.Advance(2 * time.Hour)
			backlog("the later one due", 1, 1)
		})
	}
}
