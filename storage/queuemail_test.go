package storage_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
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
		build := func(id int64) (storage.Composed, error) {
			return storage.Composed{MessageID: fmt.Sprintf("m%d@tend.test", id), EnvFrom: fmt.Sprintf("b%d@tend.test", id), Raw: storagetest.Fixed(fmt.Appendf(nil, "Subject: mail %d\r\n\r\nbody %d\r\n", id, id))}, nil
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
			c, _ := build(id)
			raw, _ := c.Raw()
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

// TestQueueMailsOneTransaction: within one transaction (a processing
// batch queues mail for many messages, each in its own savepoint) every
// QueueMails gets new IDs, and the mails kept are exactly those not
// rolled back. On SQLite the transaction looks the highest ID up once
// and counts on from it, so the IDs a rolled-back savepoint took are not
// handed out again in it (a gap, as the table allows); looked up anew
// each time, they were.
func TestQueueMailsOneTransaction(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		d, err := committer(t, s).Deliver(ctx, incoming("ann@example.com", "a1@example.com", "Batch", ""))
		if err != nil {
			t.Fatal(err)
		}
		tk := d.Ticket
		mails := func(n int) []storage.QueuedMail {
			out := make([]storage.QueuedMail, n)
			for i := range out {
				out[i] = storage.QueuedMail{
					Outbox:  storage.OutboxMail{TicketID: &tk, Kind: storage.OutboxToCustomer, EnvTo: "ann@example.com"},
					Message: storage.Message{TicketID: &tk, ToAddrs: "ann@example.com", Subject: "batch"},
					Build: func(id int64) (storage.Composed, error) {
						return storage.Composed{MessageID: fmt.Sprintf("q%d@tend.test", id), EnvFrom: "b@tend.test", Raw: storagetest.Fixed(fmt.Appendf(nil, "Subject: %d\r\n\r\nx\r\n", id))}, nil
					},
				}
			}
			return out
		}
		var kept, dropped, all []int64
		if err := s.InTx(ctx, func(tx *storage.Tx) error {
			ids, err := tx.QueueMails(ctx, mails(2))
			if err != nil {
				return err
			}
			kept = append(kept, ids...)
			if err := tx.Savepoint("m2"); err != nil {
				return err
			}
			if dropped, err = tx.QueueMails(ctx, mails(1)); err != nil {
				return err
			}
			if err := tx.RollbackTo("m2"); err != nil {
				return err
			}
			if err := tx.Release("m2"); err != nil {
				return err
			}
			ids, err = tx.QueueMails(ctx, mails(3))
			kept = append(kept, ids...)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		all = append(append(slices.Clone(kept[:2]), dropped...), kept[2:]...)
		if !slices.IsSorted(all) || len(slices.Compact(slices.Clone(all))) != len(all) {
			t.Fatalf("IDs %v (kept %v, rolled back %v): want distinct and ascending", all, kept, dropped)
		}
		rows, err := s.Outbox(ctx, tk)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, r := range rows {
			got = append(got, r.ID)
		}
		if !slices.Equal(got, kept) {
			t.Errorf("outbox rows %v, want the mails not rolled back %v", got, kept)
		}
	})
}

// TestAgentsInOneTransaction: a transaction reads the agents once and
// answers later calls from what it read, each caller with its own copy.
func TestAgentsInOneTransaction(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		if err := s.SyncAgents(ctx, []storage.AgentSpec{{Email: "alice@acme.test", Role: storage.RoleAgent}, {Email: "lena@acme.test", Role: storage.RoleLead}}); err != nil {
			t.Fatal(err)
		}
		if err := s.InTx(ctx, func(tx *storage.Tx) error {
			first, err := tx.Agents(ctx)
			if err != nil {
				return err
			}
			first[0].Email = "changed by a caller"
			again, err := tx.Agents(ctx)
			if err != nil {
				return err
			}
			if len(again) != 2 || again[0].Email != "alice@acme.test" || again[1].Email != "lena@acme.test" {
				t.Errorf("the second call gave %+v, want alice and lena as stored", again)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestQueueMailsComposedBeside: the bytes of queued mail are made beside
// the transaction (Composed.Raw runs while the transaction goes on, not
// inside QueueMails) and stored before it commits; a mail queued again
// in the same transaction keeps its last bytes and their size; what a
// savepoint rolled back is not stored; a mail whose bytes cannot be made
// (an error, a panic) is marked failed, on the ticket's timeline, and
// the rest of the transaction commits.
func TestQueueMailsComposedBeside(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		d, err := committer(t, s).Deliver(ctx, incoming("ann@example.com", "a1@example.com", "Beside", ""))
		if err != nil {
			t.Fatal(err)
		}
		tk := d.Ticket
		mail := func(raw func() ([]byte, error)) storage.QueuedMail {
			return storage.QueuedMail{
				Outbox:  storage.OutboxMail{TicketID: &tk, Kind: storage.OutboxToCustomer, EnvTo: "ann@example.com"},
				Message: storage.Message{TicketID: &tk, ToAddrs: "ann@example.com", Subject: "beside"},
				Build: func(id int64) (storage.Composed, error) {
					return storage.Composed{MessageID: fmt.Sprintf("c%d@tend.test", id), EnvFrom: "b@tend.test", Raw: raw}, nil
				},
			}
		}
		queued := make(chan struct{})
		waited := func() ([]byte, error) {
			select {
			case <-queued:
				return []byte("Subject: first\r\n\r\nfirst\r\n"), nil
			case <-time.After(30 * time.Second):
				return nil, errors.New("Raw ran inside QueueMails, not beside the transaction")
			}
		}
		again := []byte("Subject: again\r\n\r\nthe coalesced text, longer than the first\r\n")
		var first, broken, panicked, undone int64
		if err := s.InTx(ctx, func(tx *storage.Tx) error {
			ids, err := tx.QueueMails(ctx, []storage.QueuedMail{
				mail(waited),
				mail(func() ([]byte, error) { return nil, errors.New("no bytes today") }),
				mail(func() ([]byte, error) { panic("template data") }),
			})
			if err != nil {
				return err
			}
			close(queued)
			first, broken, panicked = ids[0], ids[1], ids[2]
			if done, err := tx.RequeueMail(ctx, first, storagetest.Fixed(again), 2); err != nil || !done {
				return fmt.Errorf("requeue = %v, %w", done, err)
			}
			if err := tx.Savepoint("undo"); err != nil {
				return err
			}
			ids, err = tx.QueueMails(ctx, []storage.QueuedMail{mail(storagetest.Fixed([]byte("Subject: undone\r\n\r\nx\r\n")))})
			if err != nil {
				return err
			}
			undone = ids[0]
			return tx.RollbackTo("undo")
		}); err != nil {
			t.Fatal(err)
		}
		if raw, err := s.OutboxRaw(ctx, first); err != nil || string(raw) != string(again) {
			t.Errorf("mail queued again: bytes %q, %v; want its last ones %q", raw, err, again)
		}
		rows, err := s.Outbox(ctx, tk)
		if err != nil {
			t.Fatal(err)
		}
		status := map[int64]storage.OutboxMail{}
		for _, r := range rows {
			status[r.ID] = r
		}
		if _, ok := status[undone]; ok {
			t.Errorf("the rolled-back mail %d is in the outbox", undone)
		}
		if raw, _ := s.OutboxRaw(ctx, undone); raw != nil {
			t.Errorf("the rolled-back mail has bytes %q", raw)
		}
		for _, id := range []int64{broken, panicked} {
			if r := status[id]; r.Status != storage.OutboxFailed || !strings.Contains(r.LastError, "compose") {
				t.Errorf("mail %d whose bytes could not be made: status %q, error %q; want failed, saying why", id, r.Status, r.LastError)
			}
		}
		if r := status[first]; r.Status != storage.OutboxPending {
			t.Errorf("the good mail is %q, want pending", r.Status)
		}
		det, err := s.GetTicket(ctx, tk)
		if err != nil {
			t.Fatal(err)
		}
		failures := 0
		for _, e := range det.Events {
			if e.Kind == vocab.EventOutboxFailed && strings.Contains(e.Detail, "could not be composed") {
				failures++
			}
		}
		if failures != 2 {
			t.Errorf("%d composition failures on the timeline, want 2: %+v", failures, det.Events)
		}
		if !slices.ContainsFunc(det.Messages, func(m storage.Message) bool {
			return m.OutboxID != nil && *m.OutboxID == first && m.Size == int64(len(again))
		}) {
			t.Errorf("the message row of mail %d does not have the size of its last bytes (%d)", first, len(again))
		}
	})
}

// TestMessagesOpeningTheirTickets: MessagesByID tells the message that
// opened its ticket (a new subject, or a reply to mail never seen) from
// one that joined a ticket opened before it.
func TestMessagesOpeningTheirTickets(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		var rows []int64
		for _, in := range []*storage.Incoming{
			incoming("ann@example.com", "o1@example.com", "Opens", ""),
			incoming("ann@example.com", "o2@example.com", "Re: Opens", "o1@example.com"),
			incoming("bob@example.com", "o3@example.com", "Re: elsewhere", "never-seen@example.com"),
		} {
			d, err := c.Deliver(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, d.MessageRowID)
		}
		msgs, err := s.MessagesByID(ctx, rows)
		if err != nil {
			t.Fatal(err)
		}
		if *msgs[rows[0]].TicketID != *msgs[rows[1]].TicketID {
			t.Fatalf("the reply was not threaded onto the first ticket: %+v", msgs)
		}
		for i, want := range []bool{true, false, true} {
			if got := msgs[rows[i]].OpensTicket; got != want {
				t.Errorf("message %d opens its ticket = %v, want %v", i+1, got, want)
			}
		}
	})
}
