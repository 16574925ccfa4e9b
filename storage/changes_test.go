package storage_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

// watch runs WatchChanges on s until the test ends and returns its
// batches' changes one by one.
func watch(t *testing.T, s *storage.Store) <-chan storage.Change {
	t.Helper()
	out := make(chan storage.Change, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- s.WatchChanges(ctx, func(cs []storage.Change) {
			for _, c := range cs {
				if c.Reset && ready != nil {
					// The feed's first word: it is listening.
					close(ready)
					ready = nil
					continue
				}
				out <- c
			}
		})
	}()
	// A bound on a failure, not a wait for one: CI's parallel packages
	// once kept a second store's first statements past 10 s.
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("the change feed did not start")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("WatchChanges: %v", err)
		}
	})
	return out
}

// awaitChange waits for a change of ticket whose kinds include kind,
// skipping others; it fails after a generous bound (a live view must
// update within 2 s; the bound only stops a broken test).
func awaitChange(t *testing.T, ch <-chan storage.Change, ticket int64, kind string) storage.Change {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case c := <-ch:
			if c.Ticket == ticket && slices.Contains(c.Kinds, kind) {
				return c
			}
		case <-deadline:
			t.Fatalf("no %q change of ticket %d", kind, ticket)
			return storage.Change{}
		}
	}
}

// TestWatchChanges: every kind of write a lead's view shows is reported,
// with the inboxes that see the ticket, whichever code path made it.
func TestWatchChanges(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		// A first ticket before the feed starts: its changes are history,
		// not news.
		old := deliver(t, c, incoming("old@example.com", "old@example.com", "Old", "", "billing@acme.test"))
		feed := watch(t, s)
		d := deliver(t, c, incoming("ann@example.com", "a1@example.com", "Printer", "", "support@acme.test"))
		got := awaitChange(t, feed, d.Ticket, storage.ChangeMessage)
		if got.Kind() != storage.ChangeMessage || !slices.Equal(got.Inboxes, []string{"support@acme.test"}) {
			t.Fatalf("new mail: %+v", got)
		}
		cases := []struct {
			name  string
			kind  string
			write func(ctx context.Context, tx *storage.Tx) error
		}{
			{"state", storage.ChangeState, func(ctx context.Context, tx *storage.Tx) error {
				st := vocab.StateWaiting
				return tx.UpdateTicket(ctx, d.Ticket, storage.TicketUpdate{State: &st})
			}},
			{"priority", storage.ChangeTicket, func(ctx context.Context, tx *storage.Tx) error {
				p := "high"
				return tx.UpdateTicket(ctx, d.Ticket, storage.TicketUpdate{Priority: &p})
			}},
			{"note", storage.ChangeEvent, func(ctx context.Context, tx *storage.Tx) error {
				return tx.AddEvent(ctx, d.Ticket, "note", "lena@acme.test", "check the toner", nil)
			}},
			{"parsed", storage.ChangeMessage, func(ctx context.Context, tx *storage.Tx) error {
				return tx.SaveParsed(ctx, d.MessageRowID, storage.Parsed{Text: "body"})
			}},
		}
		for _, tc := range cases {
			inTx(t, s, tc.write)
			got := awaitChange(t, feed, d.Ticket, tc.kind)
			if tc.kind == storage.ChangeState && got.Kind() != storage.ChangeState {
				t.Errorf("%s: most telling kind %q, want state (%v)", tc.name, got.Kind(), got.Kinds)
			}
		}
		// An outgoing mail's delivery.
		id := queueReply(t, s, d.Ticket, "r1@acme.test")
		inTx(t, s, func(ctx context.Context, tx *storage.Tx) error {
			_, _, err := tx.FailOutbox(ctx, id, "550 no such user")
			return err
		})
		awaitChange(t, feed, d.Ticket, storage.ChangeDelivery)
		// A rolled-back transaction announces nothing; the next commit
		// is what comes.
		_ = s.InTx(ctx, func(tx *storage.Tx) error {
			if err := tx.AddEvent(ctx, old.Ticket, "note", "x", "never", nil); err != nil {
				return err
			}
			return context.Canceled
		})
		inTx(t, s, func(ctx context.Context, tx *storage.Tx) error {
			return tx.AddEvent(ctx, d.Ticket, "note", "lena@acme.test", "after the rollback", nil)
		})
		for c := range feed {
			if c.Ticket == old.Ticket {
				t.Fatalf("rolled-back change reported: %+v", c)
			}
			if c.Ticket == d.Ticket && slices.Contains(c.Kinds, storage.ChangeEvent) {
				break
			}
		}
	})
}

// TestWatchChangesBatches: a burst of changes on one ticket is one
// Change per batch, not one per row.
func TestWatchChangesBatches(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, _ *storagetest.FakeClock) {
		c := committer(t, s)
		feed := watch(t, s)
		d := deliver(t, c, incoming("ann@example.com", "b1@example.com", "Burst", ""))
		awaitChange(t, feed, d.Ticket, storage.ChangeMessage)
		inTx(t, s, func(ctx context.Context, tx *storage.Tx) error {
			for range 50 {
				if err := tx.AddEvent(ctx, d.Ticket, "note", "lena@acme.test", "again", nil); err != nil {
					return err
				}
			}
			return nil
		})
		sentinel := deliver(t, c, incoming("bob@example.com", "b2@example.com", "After", ""))
		n := 0
		for c := range feed {
			if c.Ticket == sentinel.Ticket {
				break
			}
			if c.Ticket == d.Ticket {
				n++
				if !slices.Equal(c.Kinds, []string{storage.ChangeEvent}) {
					t.Errorf("kinds %v", c.Kinds)
				}
			}
		}
		// One transaction is read in one batch, or at most cut in two
		// by a poll: never one change per row.
		if n < 1 || n > 2 {
			t.Fatalf("50 events in one transaction reported as %d changes", n)
		}
	})
}

// TestWatchChangesAcrossProcesses: a change written through one Store (a
// replica on PostgreSQL; `tend import` beside the server on SQLite) is
// heard by the feed of another Store on the same database.
func TestWatchChangesAcrossProcesses(t *testing.T) {
	clock := storagetest.NewFakeClock(t0)
	for _, tc := range []struct {
		name string
		open func(t *testing.T) (a, b *storage.Store)
	}{
		{"sqlite", func(t *testing.T) (*storage.Store, *storage.Store) {
			dir := t.TempDir()
			return openAt(t, storage.Options{Driver: storage.DriverSQLite, DataDir: dir, Clock: clock}),
				openAt(t, storage.Options{Driver: storage.DriverSQLite, DataDir: dir, Clock: clock})
		}},
		{"postgres", func(t *testing.T) (*storage.Store, *storage.Store) {
			dsn := storagetest.PostgresDSN(t)
			return openAt(t, storage.Options{Driver: storage.DriverPostgres, DSN: dsn, Clock: clock}),
				openAt(t, storage.Options{Driver: storage.DriverPostgres, DSN: dsn, Clock: clock})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := tc.open(t)
			if err := a.SyncInboxes(context.Background(), []storage.InboxSpec{{Address: "support@acme.test"}}); err != nil {
				t.Fatal(err)
			}
			feed := watch(t, b)
			d := deliver(t, committer(t, a), incoming("ann@example.com", "x1@example.com", "Elsewhere", ""))
			if got := awaitChange(t, feed, d.Ticket, storage.ChangeMessage); !slices.Equal(got.Inboxes, []string{"support@acme.test"}) {
				t.Fatalf("change %+v", got)
			}
		})
	}
}

func openAt(t *testing.T, o storage.Options) *storage.Store {
	t.Helper()
	s, err := storage.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestWatchChangesReconnects: when PostgreSQL drops the feed's LISTEN
// connection, the feed says "reset" (what was notified meanwhile is
// lost) once it is back, and hears changes again.
func TestWatchChangesReconnects(t *testing.T) {
	s := storagetest.OpenPostgres(t, storagetest.NewFakeClock(t0))
	ctx := context.Background()
	if err := s.SyncInboxes(ctx, []storage.InboxSpec{{Address: "support@acme.test"}}); err != nil {
		t.Fatal(err)
	}
	out := make(chan storage.Change, 100)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- s.WatchChanges(wctx, func(cs []storage.Change) {
			for _, c := range cs {
				out <- c
			}
		})
	}()
	defer func() { cancel(); <-done }()
	waitReset := func() {
		t.Helper()
		select {
		case c := <-out:
			if !c.Reset {
				t.Fatalf("want a reset, got %+v", c)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("no reset")
		}
	}
	waitReset()
	if err := storage.ExecForTest(ctx, s, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND datname = current_database()"); err != nil {
		t.Fatal(err)
	}
	waitReset()
	d := deliver(t, committer(t, s), incoming("ann@example.com", "rc1@example.com", "After the drop", ""))
	awaitChange(t, out, d.Ticket, storage.ChangeMessage)
}

// TestChangeLogPruned: SQLite's change log keeps only its newest rows,
// also of what piled up while no feed read it.
func TestChangeLogPruned(t *testing.T) {
	s := storagetest.OpenSQLite(t, storagetest.NewFakeClock(t0))
	ctx := context.Background()
	if err := storage.ExecForTest(ctx, s, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 5000)
		INSERT INTO ticket_changes (ticket_id, kind) SELECT i, 'event' FROM n`); err != nil {
		t.Fatal(err)
	}
	watch(t, s) // started: the pile is pruned
	n, err := storage.CountForTest(ctx, s, "SELECT COUNT(*) FROM ticket_changes")
	if err != nil {
		t.Fatal(err)
	}
	if n != 1000 {
		t.Fatalf("%d rows left of 5000, want the newest 1000", n)
	}
}
