package storage_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestQueueMails: on both backends, mails queued together each get their
// own new ID, are stored whole (the bytes Build made for that very ID,
// their Message-ID and envelope sender) and have their message row; and
// an ID is never handed out again, not even after the mail holding the
// highest one was erased (a bounce names its row by ID).
func TestQueueMails(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		build := func(id int64) ([]byte, string, string, error) {
			return fmt.Appendf(nil, "Subject: mail %d\r\n\r\nbody %d\r\n", id, id), fmt.Sprintf("m%d@tend.test", id), fmt.Sprintf("b%d@tend.test", id), nil
		}
		queue := func(tk int64, to ...string) []int64 {
			t.Helper()
			var mails []storage.QueuedMail
			for _, addr := range to {
				mails = append(mails, storage.QueuedMail{
					Outbox:  storage.OutboxMail{TicketID: &tk, Kind: storage.OutboxToCustomer, EnvTo: addr},
					Message: storage.Message{TicketID: &tk, ToAddrs: addr, Subject: "mail to " + addr},
					Build:   build,
				})
			}
			var ids []int64
			if err := s.InTx(ctx, func(tx *storage.Tx) error {
				var err error
				ids, err = tx.QueueMails(ctx, mails)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if len(ids) != len(to) {
				t.Fatalf("QueueMails gave %d IDs for %d mails", len(ids), len(to))
			}
			return ids
		}
		keep, err := c.Deliver(ctx, incoming("ann@example.com", "a1@example.com", "Keep", ""))
		if err != nil {
			t.Fatal(err)
		}
		gone, err := c.Deliver(ctx, incoming("bob@example.com", "b1@example.com", "Erase", ""))
		if err != nil {
			t.Fatal(err)
		}
		first := queue(keep.Ticket, "ann@example.com")
		together := queue(gone.Ticket, "bob@example.com", "bob@example.com", "bob@example.com")
		all := append(slices.Clone(first), together...)
		if !slices.IsSorted(all) || len(slices.Compact(slices.Clone(all))) != len(all) {
			t.Fatalf("IDs %v: want distinct and ascending", all)
		}
		d, err := s.GetTicket(ctx, gone.Ticket)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := s.Outbox(ctx, gone.Ticket)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != len(together) {
			t.Fatalf("%d outbox rows on the ticket, want %d", len(rows), len(together))
		}
		for i, id := range together {
			row := rows[i]
			if row.Raw, err = s.OutboxRaw(ctx, id); err != nil {
				t.Fatal(err)
			}
			raw, _, _, _ := build(id)
			if string(row.Raw) != string(raw) || row.MessageID != fmt.Sprintf("m%d@tend.test", id) || row.EnvFrom != fmt.Sprintf("b%d@tend.test", id) || row.Status != storage.OutboxPending {
				t.Errorf("outbox row %d = raw %q, Message-ID %q, from %q, status %q; want what Build made for it, pending", id, row.Raw, row.MessageID, row.EnvFrom, row.Status)
			}
			if row.ID != id || !slices.ContainsFunc(d.Messages, func(m storage.Message) bool {
				return m.OutboxID != nil && *m.OutboxID == id && m.MessageID == row.MessageID && m.Size == int64(len(raw))
			}) {
				t.Errorf("outbox row %d has no message row on its ticket", id)
			}
		}
		if _, err := s.Forget(ctx, "bob@example.com", "test"); err != nil {
			t.Fatal(err)
		}
		if after := queue(keep.Ticket, "ann@example.com"); after[0] <= together[len(together)-1] {
			t.Errorf("after the newest mails were erased, the next mail got ID %d, used before (up to %d)", after[0], together[len(together)-1])
		}
	})
}
