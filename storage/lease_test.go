package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestLeasesUseDatabaseClock runs two replicas on one PostgreSQL database:
// an honest one and one whose clock runs ten minutes ahead. With the
// database's clock the skewed replica must not take the honest one's live
// leases (a work item, a mailbox); with each replica's own clock it does,
// which is the bug the option exists for.
func TestLeasesUseDatabaseClock(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	ctx := context.Background()
	open := func(clock storage.Clock, dbClock bool) *storage.Store {
		t.Helper()
		s, err := storage.Open(ctx, storage.Options{Driver: storage.DriverPostgres, DSN: dsn, Clock: clock, DatabaseClock: dbClock})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	// The honest replica's fake clock is pinned to the real time: the
	// database's clock is the only one a test cannot fake.
	honestClock := storagetest.NewFakeClock(time.Now())
	honest := open(honestClock, true)
	if err := honest.SyncInboxes(ctx, []storage.InboxSpec{{Address: "support@acme.test", Name: "Acme Support", ResponseTime: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	c := committer(t, honest)
	for i, id := range []string{"skew1@example.com", "skew2@example.com"} {
		if _, err := c.Deliver(ctx, incoming("ann@example.com", id, "Skew", "")); err != nil {
			t.Fatalf("deliver %d: %v", i, err)
		}
	}
	const lease = 5 * time.Minute
	got, err := honest.ClaimWork(ctx, "honest", 1, lease)
	if err != nil || len(got) != 1 {
		t.Fatalf("honest claim: %d items, %v", len(got), err)
	}
	held := got[0].ID
	if ok, err := honest.AcquireLease(ctx, "imap:skew", "honest", lease); err != nil || !ok {
		t.Fatalf("honest mailbox lease: %v %v", ok, err)
	}

	for _, tc := range []struct {
		name    string
		dbClock bool
		steals  bool
	}{
		{"own clock", false, true},
		{"database clock", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			skewed := open(storagetest.NewFakeClock(time.Now().Add(10*time.Minute)), tc.dbClock)
			ws, err := skewed.ClaimWork(ctx, "skewed-"+tc.name, 10, lease)
			if err != nil {
				t.Fatal(err)
			}
			stole := false
			for _, w := range ws {
				stole = stole || w.ID == held
			}
			// The free item is claimable either way; give it back.
			var ids []int64
			for _, w := range ws {
				ids = append(ids, w.ID)
			}
			if err := skewed.ReleaseWork(ctx, ids); err != nil {
				t.Fatal(err)
			}
			if stole != tc.steals {
				t.Errorf("skewed replica took the live work lease: %v, want %v", stole, tc.steals)
			}
			ok, err := skewed.AcquireLease(ctx, "imap:skew", "skewed-"+tc.name, lease)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.steals {
				t.Errorf("skewed replica took the live mailbox lease: %v, want %v", ok, tc.steals)
			}
			if ok { // hand the mailbox back for the next case
				if err := skewed.ReleaseLease(ctx, "imap:skew", "skewed-"+tc.name); err != nil {
					t.Fatal(err)
				}
				if ok, err := honest.AcquireLease(ctx, "imap:skew", "honest", lease); err != nil || !ok {
					t.Fatalf("honest mailbox lease again: %v %v", ok, err)
				}
			}
			if tc.steals { // and the work item
				if err := skewed.ReleaseWork(ctx, []int64{held}); err != nil {
					t.Fatal(err)
				}
				if got, err := honest.ClaimWork(ctx, "honest", 1, lease); err != nil || len(got) != 1 || got[0].ID != held {
					t.Fatalf("honest claim again: %v %v", got, err)
				}
			}
		})
	}

	// A lease that has run out by the database's clock is taken over at
	// once, even by a replica whose clock runs ten minutes behind and so
	// would believe it live: expiry is the database's to judge.
	behind := open(storagetest.NewFakeClock(time.Now().Add(-10*time.Minute)), true)
	if ok, err := honest.AcquireLease(ctx, "imap:expired", "honest", -time.Second); err != nil || !ok {
		t.Fatalf("expired lease: %v %v", ok, err)
	}
	if ok, err := behind.AcquireLease(ctx, "imap:expired", "behind", lease); err != nil || !ok {
		t.Errorf("a replica behind in time did not take over an expired lease: %v %v", ok, err)
	}
}

// TestReclaimLeases is what a restarted single process does on SQLite: it
// holds the data directory's lock, so every lease in the database is one a
// dead earlier run of itself left behind, and it takes them all back at
// once instead of waiting them out. On PostgreSQL, where other replicas
// may be alive, it refuses.
func TestReclaimLeases(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		if _, err := c.Deliver(ctx, incoming("ann@example.com", "reclaim@example.com", "Reclaim", "")); err != nil {
			t.Fatal(err)
		}
		const lease = time.Hour
		if ws, err := s.ClaimWork(ctx, "old/1", 10, lease); err != nil || len(ws) != 1 {
			t.Fatalf("claim: %v %v", ws, err)
		}
		if ok, err := s.AcquireLease(ctx, "imap:x", "old/1", lease); err != nil || !ok {
			t.Fatalf("lease: %v %v", ok, err)
		}
		n, err := s.ReclaimLeases(ctx)
		if s.Driver() == storage.DriverPostgres {
			if err == nil {
				t.Fatal("ReclaimLeases on PostgreSQL took other replicas' leases")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Errorf("reclaimed %d leases, want 2", n)
		}
		// The clock has not moved: without the reclaim both would wait an hour.
		if ws, err := s.ClaimWork(ctx, "new/2", 10, lease); err != nil || len(ws) != 1 {
			t.Errorf("work after reclaim: %v %v", ws, err)
		}
		if ok, err := s.AcquireLease(ctx, "imap:x", "new/2", lease); err != nil || !ok {
			t.Errorf("mailbox lease after reclaim: %v %v", ok, err)
		}
	})
}

// TestRenewAndReleaseLeases: a live replica renews what it holds, so a
// short lease outlasts long work; a lease that ran out is not renewed (it
// may have been taken over); and a replica that stops releases everything
// it holds, so another takes it over without waiting.
func TestRenewAndReleaseLeases(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		for _, id := range []string{"renew1@example.com", "renew2@example.com"} {
			if _, err := c.Deliver(ctx, incoming("ann@example.com", id, "Renew", "")); err != nil {
				t.Fatal(err)
			}
		}
		const lease = time.Minute
		if ws, err := s.ClaimWork(ctx, "a", 1, lease); err != nil || len(ws) != 1 {
			t.Fatalf("claim: %v %v", ws, err)
		}
		if ok, err := s.AcquireLease(ctx, "imap:x", "a", lease); err != nil || !ok {
			t.Fatalf("lease: %v %v", ok, err)
		}
		clock.Advance(50 * time.Second)
		if n, err := s.RenewLeases(ctx, "a", lease); err != nil || n != 2 {
			t.Fatalf("renewed %d leases (%v), want 2", n, err)
		}
		// Past the first lease's end, within the renewed one: b gets only
		// the work item a never claimed, and not the mailbox.
		clock.Advance(30 * time.Second)
		ws, err := s.ClaimWork(ctx, "b", 10, lease)
		if err != nil || len(ws) != 1 {
			t.Fatalf("b claimed %d items (%v), want only the free one", len(ws), err)
		}
		if ok, err := s.AcquireLease(ctx, "imap:x", "b", lease); err != nil || ok {
			t.Fatalf("b took a's renewed mailbox lease: %v %v", ok, err)
		}
		if err := s.ReleaseWork(ctx, []int64{ws[0].ID}); err != nil {
			t.Fatal(err)
		}
		// a stops: everything it held is free at once.
		if n, err := s.ReleaseLeases(ctx, "a"); err != nil || n != 2 {
			t.Fatalf("released %d leases (%v), want 2", n, err)
		}
		if ws, err := s.ClaimWork(ctx, "b", 10, lease); err != nil || len(ws) != 2 {
			t.Errorf("b after a's release: %d items (%v), want 2", len(ws), err)
		}
		if ok, err := s.AcquireLease(ctx, "imap:x", "b", lease); err != nil || !ok {
			t.Errorf("b after a's release: mailbox lease %v %v", ok, err)
		}
		// b's leases run out; renewing them then is too late.
		clock.Advance(2 * lease)
		if n, err := s.RenewLeases(ctx, "b", lease); err != nil || n != 0 {
			t.Errorf("renewed %d expired leases (%v), want 0", n, err)
		}
	})
}

// TestRenewLeasesDoesNotWaitForWorkers: on PostgreSQL, renewing a
// replica's leases while its processor completes the same work items in
// a batch transaction must not wait for that transaction. It did: renewal
// held the row it had passed and waited for the one the batch held, the
// batch then wanted the first, and PostgreSQL aborted one of them with
// "deadlock detected" (40P01), seen under load as batches retried.
func TestRenewLeasesDoesNotWaitForWorkers(t *testing.T) {
	ctx := context.Background()
	clock := storagetest.NewFakeClock(t0)
	s := openPostgresStore(t, clock)
	c := committer(t, s)
	for _, id := range []string{"cycle1@example.com", "cycle2@example.com"} {
		if _, err := c.Deliver(ctx, incoming("ann@example.com", id, "Cycle", "")); err != nil {
			t.Fatal(err)
		}
	}
	ws, err := s.ClaimWork(ctx, "a", 10, time.Minute)
	if err != nil || len(ws) != 2 {
		t.Fatalf("claim: %v %v", ws, err)
	}
	renewed := make(chan error, 1)
	err = s.InTx(ctx, func(tx *storage.Tx) error {
		// The batch completes the later item first, as a renewal scan
		// reaches it last.
		if err := tx.CompleteWork(ctx, ws[1].ID); err != nil {
			return err
		}
		go func() {
			_, err := s.RenewLeases(ctx, "a", time.Minute)
			renewed <- err
		}()
		select {
		case err := <-renewed:
			if err != nil {
				t.Errorf("renew: %v", err)
			}
		case <-time.After(30 * time.Second): // a deadline, not a wait: renewal returns at once or hangs
			t.Error("renewal waited for the batch transaction")
		}
		return tx.CompleteWork(ctx, ws[0].ID)
	})
	if err != nil {
		t.Fatalf("batch: %v", err)
	}
}
