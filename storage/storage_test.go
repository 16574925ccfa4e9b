package storage_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// suite runs fn against every backend.
func suite(t *testing.T, fn func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock)) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			clock := storagetest.NewFakeClock(t0)
			s := b.Open(t, clock)
			ctx := context.Background()
			if err := s.SyncInboxes(ctx, []storage.InboxSpec{
				{Address: "support@acme.test", Name: "Acme Support", ResponseTime: 4 * time.Hour},
				{Address: "billing@acme.test", Name: "Acme Billing", ResponseTime: time.Hour},
			}); err != nil {
				t.Fatal(err)
			}
			fn(t, s, clock)
		})
	}
}

// committer starts a group committer for s until the test ends.
func committer(t *testing.T, s *storage.Store) *storage.Committer {
	return storagetest.StartCommitter(t, s, 64)
}

// openInbox opens a store on backend b with the inbox support@acme.test.
func openInbox(t *testing.T, b storagetest.Backend, clock storage.Clock) *storage.Store {
	t.Helper()
	s := b.Open(t, clock)
	if err := s.SyncInboxes(context.Background(), []storage.InboxSpec{{Address: "support@acme.test"}}); err != nil {
		t.Fatal(err)
	}
	return s
}

// incoming builds a message; parent, when not empty, is threaded onto by
// References.
func incoming(from, msgID, subject, parent string, inboxes ...string) *storage.Incoming {
	raw := fmt.Sprintf("From: %s\r\nMessage-ID: <%s>\r\nSubject: %s\r\n\r\nbody of %s\r\n", from, msgID, subject, msgID)
	h := sha256.Sum256([]byte(raw))
	if len(inboxes) == 0 {
		inboxes = []string{"support@acme.test"}
	}
	in := &storage.Incoming{
		Raw: []byte(raw), Hash: hex.EncodeToString(h[:]), MessageID: msgID, From: from,
		Subject: subject, NormSubject: subject, Class: "human", Role: "customer", Inboxes: inboxes, Source: "test",
	}
	if parent != "" {
		in.InReplyTo = parent
		in.References = []string{parent}
	}
	in.Place = func(ctx context.Context, tx *storage.Tx) (storage.Placement, error) {
		refs, err := tx.TicketsByMessageIDs(ctx, in.References)
		if err != nil {
			return storage.Placement{}, err
		}
		var ticket int64
		for _, r := range refs {
			ticket = r.Ticket
		}
		return storage.Placement{Ticket: ticket, Summary: "test"}, nil
	}
	return in
}

func TestDeliverThreadsAndDeduplicates(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		first, err := c.Deliver(ctx, incoming("ann@example.com", "a1@example.com", "Printer on fire", ""))
		if err != nil {
			t.Fatal(err)
		}
		if !first.NewTicket || first.Ticket == 0 {
			t.Fatalf("first message: %+v, want a new ticket", first)
		}
		clock.Advance(time.Minute)
		reply, err := c.Deliver(ctx, incoming("ann@example.com", "a2@example.com", "Re: Printer on fire", "a1@example.com"))
		if err != nil {
			t.Fatal(err)
		}
		if reply.Ticket != first.Ticket || reply.NewTicket {
			t.Fatalf("reply: %+v, want ticket %d", reply, first.Ticket)
		}
		again, err := c.Deliver(ctx, incoming("ann@example.com", "a2@example.com", "Re: Printer on fire", "a1@example.com", "billing@acme.test"))
		if err != nil {
			t.Fatal(err)
		}
		if !again.Duplicate || again.MessageRowID != reply.MessageRowID {
			t.Fatalf("redelivery: %+v, want duplicate of row %d", again, reply.MessageRowID)
		}
		d, err := s.GetTicket(ctx, first.Ticket)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Messages) != 2 {
			t.Errorf("ticket has %d messages, want 2", len(d.Messages))
		}
		if fmt.Sprint(d.Inboxes) != "[support@acme.test billing@acme.test]" {
			t.Errorf("inboxes = %v: both inboxes must see the ticket", d.Inboxes)
		}
		if d.Customer != "ann@example.com" || d.State != vocab.StateNew {
			t.Errorf("ticket = %+v", d.TicketRow)
		}
		counts, err := s.Counts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if counts.RawMessages != 2 || counts.Messages != 2 || counts.PendingWork != 2 {
			t.Errorf("counts = %+v, want 2 raw, 2 messages, 2 work items", counts)
		}
	})
}

func TestOneMessageTwoInboxes(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, _ *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		d, err := c.Deliver(ctx, incoming("bob@example.com", "b1@example.com", "Invoice", "", "support@acme.test", "billing@acme.test"))
		if err != nil {
			t.Fatal(err)
		}
		for _, inbox := range []string{"support@acme.test", "billing@acme.test"} {
			rows, _, err := s.ListTickets(ctx, storage.TicketFilter{Inbox: inbox})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 1 || rows[0].Number != d.Ticket {
				t.Errorf("inbox %s lists %+v, want ticket %d", inbox, rows, d.Ticket)
			}
		}
	})
}

func TestGroupCommitConcurrent(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, _ *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		const n = 200
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Every message twice, concurrently: each is stored once.
				in := incoming(fmt.Sprintf("c%d@example.com", i/2%7), fmt.Sprintf("m%d@example.com", i/2), "Hello", "")
				if _, err := c.Deliver(ctx, in); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		counts, err := s.Counts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if counts.Messages != n/2 {
			t.Errorf("%d messages stored, want %d", counts.Messages, n/2)
		}
	})
}

func TestFailedPlacementIsNotStored(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, _ *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		bad := incoming("x@example.com", "bad@example.com", "Bad", "")
		boom := errors.New("boom")
		bad.Place = func(context.Context, *storage.Tx) (storage.Placement, error) { return storage.Placement{}, boom }
		if _, err := c.Deliver(ctx, bad); !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
		if _, err := c.Deliver(ctx, incoming("y@example.com", "good@example.com", "Good", "")); err != nil {
			t.Fatal(err)
		}
		counts, err := s.Counts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if counts.Messages != 1 || counts.RawMessages != 1 {
			t.Errorf("counts = %+v: the failed message must leave nothing behind", counts)
		}
	})
}

func TestListTicketsCursor(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, _ *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		for i := range 7 {
			if _, err := c.Deliver(ctx, incoming("p@example.com", fmt.Sprintf("p%d@example.com", i), "Page", "")); err != nil {
				t.Fatal(err)
			}
		}
		var seen []int64
		var cursor int64
		for page := 0; ; page++ {
			rows, next, err := s.ListTickets(ctx, storage.TicketFilter{State: "all", Limit: 3, Before: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				seen = append(seen, r.Number)
			}
			if next == 0 {
				break
			}
			cursor = next
			if page > 5 {
				t.Fatal("cursor does not end")
			}
		}
		if len(seen) != 7 {
			t.Fatalf("paged through %v, want 7 tickets", seen)
		}
		for i := 1; i < len(seen); i++ {
			if seen[i] >= seen[i-1] {
				t.Fatalf("not newest first: %v", seen)
			}
		}
	})
}

func TestTokensAndPasswords(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, _ *storagetest.FakeClock) {
		ctx := context.Background()
		secret, err := s.CreateToken(ctx, "ci", storage.RoleLead)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := s.CheckToken(ctx, secret)
		if err != nil || tok.Role != storage.RoleLead {
			t.Fatalf("CheckToken = %+v, %v", tok, err)
		}
		if _, err := s.CheckToken(ctx, secret+"x"); !errors.Is(err, storage.ErrBadCredentials) {
			t.Fatalf("forged token: err = %v", err)
		}
		pw, err := s.EnsureAdmin(ctx, "admin@localhost")
		if err != nil || pw == "" {
			t.Fatalf("EnsureAdmin = %q, %v", pw, err)
		}
		if again, _ := s.EnsureAdmin(ctx, "admin@localhost"); again != "" {
			t.Fatal("EnsureAdmin made a second password")
		}
		if _, err := s.CheckPassword(ctx, "admin@localhost", pw); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CheckPassword(ctx, "admin@localhost", pw+"x"); !errors.Is(err, storage.ErrBadCredentials) {
			t.Fatalf("wrong password: err = %v", err)
		}
	})
}

func TestSchemaVersion(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, _ *storagetest.FakeClock) {
		v, err := s.SchemaVersion(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if v != storage.LatestSchemaVersion() {
			t.Errorf("schema version %d, want %d", v, storage.LatestSchemaVersion())
		}
	})
}

func TestLeases(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		for _, step := range []struct {
			holder string
			want   bool
		}{{"a", true}, {"b", false}, {"a", true}} {
			got, err := s.AcquireLease(ctx, "imap:x", step.holder, time.Minute)
			if err != nil || got != step.want {
				t.Fatalf("AcquireLease(%s) = %v, %v; want %v", step.holder, got, err, step.want)
			}
		}
		clock.Advance(2 * time.Minute) // a's lease runs out: b takes over
		if got, err := s.AcquireLease(ctx, "imap:x", "b", time.Minute); err != nil || !got {
			t.Fatalf("takeover after expiry = %v, %v", got, err)
		}
		if err := s.ReleaseLease(ctx, "imap:x", "b"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.AcquireLease(ctx, "imap:x", "a", time.Minute); !got {
			t.Fatal("lease not free after release")
		}
	})
}

// TestDeliverAllInOrder: DeliverAll threads messages in their order (a
// chain of replies lands on the first one's ticket, each finding the one
// before it, also across the committer's batch size) and answers index
// for index: a message that cannot be stored fails alone.
func TestDeliverAllInOrder(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, _ *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s) // batches of 64
		const n = 150
		ins := make([]*storage.Incoming, n)
		for i := range n {
			parent := ""
			if i > 0 {
				parent = fmt.Sprintf("chain-%d@example.com", i-1)
			}
			ins[i] = incoming("ann@example.com", fmt.Sprintf("chain-%d@example.com", i), "Chain", parent)
		}
		bad := incoming("ann@example.com", "", "No Message-ID", "")
		ins = append(ins[:100], append([]*storage.Incoming{bad}, ins[100:]...)...)
		ds, errs := c.DeliverAll(ctx, ins)
		if len(ds) != len(ins) || len(errs) != len(ins) {
			t.Fatalf("%d results and %d errors for %d messages", len(ds), len(errs), len(ins))
		}
		for i, err := range errs {
			if (err != nil) != (i == 100) {
				t.Fatalf("message %d: error %v", i, err)
			}
		}
		for i, d := range ds {
			if i == 100 {
				continue
			}
			if d.Ticket != ds[0].Ticket || d.NewTicket != (i == 0) {
				t.Fatalf("message %d: %+v, want ticket %d (first: %+v)", i, d, ds[0].Ticket, ds[0])
			}
		}
	})
}

// TestGroupCommitOneBatch hands the committer one batch of ten messages
// (queued before it runs), and the same with the sixth failing inside the
// transaction, after its raw row was written: the batch is stored whole,
// with each ticket's events in order and a work row per message, or all
// but the failing one, of which nothing is left.
func TestGroupCommitOneBatch(t *testing.T) {
	const n, bad = 10, 5
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail=%v", fail), func(t *testing.T) {
			suite(t, func(t *testing.T, s *storage.Store, _ *storagetest.FakeClock) {
				ctx := context.Background()
				c := s.NewCommitter(64, nil)
				ins := make([]*storage.Incoming, n)
				for i := range ins {
					ins[i] = incoming(fmt.Sprintf("c%d@example.com", i), fmt.Sprintf("batch-%d@example.com", i), fmt.Sprintf("Batch %d", i), "")
				}
				if fail {
					ins[bad].Place = func(context.Context, *storage.Tx) (storage.Placement, error) {
						return storage.Placement{}, errors.New("threading broke")
					}
				}
				type result struct {
					ds   []storage.Delivered
					errs []error
				}
				out := make(chan result, 1)
				go func() {
					ds, errs := c.DeliverAll(ctx, ins)
					out <- result{ds, errs}
				}()
				waitUntil(t, "ten queued deliveries", func() bool { return storage.Queued(c) == n })
				runCtx, cancel := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() { done <- c.Run(runCtx) }()
				defer func() { cancel(); <-done }()
				r := <-out
				stored := 0
				for i, err := range r.errs {
					if (err != nil) != (fail && i == bad) {
						t.Fatalf("message %d: error %v", i, err)
					}
					if err != nil {
						continue
					}
					stored++
					evs, err := storage.RawEvents(ctx, s, r.ds[i].Ticket)
					if err != nil {
						t.Fatal(err)
					}
					var kinds []vocab.EventKind
					for _, ev := range evs {
						kinds = append(kinds, ev.Kind)
					}
					if want := []vocab.EventKind{vocab.EventTicketCreated, vocab.EventMessageReceived}; !slices.Equal(kinds, want) {
						t.Errorf("message %d: ticket %d has events %v, want %v", i, r.ds[i].Ticket, kinds, want)
					}
				}
				cnt, err := s.Counts(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if cnt.RawMessages != int64(stored) || cnt.PendingWork != int64(stored) {
					t.Errorf("%d raw messages and %d work rows stored, want %d of each", cnt.RawMessages, cnt.PendingWork, stored)
				}
			})
		})
	}
}

// waitUntil polls cond every few milliseconds for up to 10 seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("no %s after 10 s", what)
		}
	}
}
