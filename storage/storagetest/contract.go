package storagetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
)

// WorkQueueContract is storage.WorkQueue's contract, as Inbucket's store
// suite is its stores': a list of cases any implementation must pass. It
// opens one store of backend b (the cases share it, each leaving no work
// behind, so that a PostgreSQL database is created once), delivers mail
// through a real group committer, and runs every case against wrap(the
// store); wrap nil tests the store itself.
func WorkQueueContract(t *testing.T, b Backend, wrap func(*storage.Store) storage.WorkQueue) {
	clock := NewFakeClock(time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC))
	s := b.Open(t, clock)
	ctx := context.Background()
	if err := s.SyncInboxes(ctx, []storage.InboxSpec{{Address: "support@acme.test", Name: "Acme Support"}}); err != nil {
		t.Fatal(err)
	}
	c := StartCommitter(t, s, 16)
	var q storage.WorkQueue = s
	if wrap != nil {
		q = wrap(s)
	}
	n := 0
	f := &queueFixture{q: q, s: s, clock: clock, deliver: func(t *testing.T) (storage.Delivered, string) {
		t.Helper()
		n++
		raw := fmt.Sprintf("From: ann@example.com\r\nTo: support@acme.test\r\nSubject: work %d\r\nMessage-ID: <work%d@example.com>\r\n\r\nbody %d\r\n", n, n, n)
		h := sha256.Sum256([]byte(raw))
		d, err := c.Deliver(ctx, &storage.Incoming{
			Raw: []byte(raw), Hash: hex.EncodeToString(h[:]), MessageID: fmt.Sprintf("work%d@example.com", n),
			From: "ann@example.com", Subject: fmt.Sprintf("work %d", n), NormSubject: fmt.Sprintf("work %d", n),
			Class: "human", Role: "customer", Inboxes: []string{"support@acme.test"}, Source: "test",
		})
		if err != nil {
			t.Fatal(err)
		}
		return d, raw
	}}
	for _, tc := range workQueueCases {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, f)
			// Every case leaves the queue empty for the next.
			if ws, err := f.q.ClaimWork(ctx, "sweeper", 100, time.Minute); err != nil || len(ws) != 0 {
				t.Errorf("case left %d work items (%v)", len(ws), err)
			}
		})
	}
}

// queueFixture is what a case of the contract works with.
type queueFixture struct {
	q       storage.WorkQueue
	s       *storage.Store
	clock   *FakeClock
	deliver func(t *testing.T) (storage.Delivered, string) // a new message and its raw bytes; it adds one work item
}

// complete finishes work items in one transaction of the queue.
func (f *queueFixture) complete(t *testing.T, ws ...storage.Work) {
	t.Helper()
	ctx := context.Background()
	err := f.q.InTx(ctx, func(tx *storage.Tx) error {
		for _, w := range ws {
			if err := tx.CompleteWork(ctx, w.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// claim claims for owner and fails the test on an error.
func (f *queueFixture) claim(t *testing.T, owner string, limit int) []storage.Work {
	t.Helper()
	ws, err := f.q.ClaimWork(context.Background(), owner, limit, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

var workQueueCases = []struct {
	name string
	run  func(t *testing.T, f *queueFixture)
}{
	{"claim is a lease, oldest first", func(t *testing.T, f *queueFixture) {
		d1, _ := f.deliver(t)
		d2, _ := f.deliver(t)
		d3, _ := f.deliver(t)
		a := f.claim(t, "a", 2)
		if len(a) != 2 || a[0].MessageRowID != d1.MessageRowID || a[1].MessageRowID != d2.MessageRowID {
			t.Fatalf("a claimed %+v, want the two oldest", a)
		}
		b := f.claim(t, "b", 10)
		if len(b) != 1 || b[0].MessageRowID != d3.MessageRowID {
			t.Fatalf("b claimed %+v while a holds its lease, want only the third", b)
		}
		f.clock.Advance(time.Minute + time.Second) // the leases run out: a crashed owner's work is taken over
		b2 := f.claim(t, "b", 10)
		if len(b2) != 3 || b2[0].ID != a[0].ID || b2[1].ID != a[1].ID {
			t.Fatalf("after the leases b claimed %+v, want all three, a's first", b2)
		}
		f.complete(t, b2...)
	}},
	{"release makes work claimable at once, no attempt counted", func(t *testing.T, f *queueFixture) {
		f.deliver(t)
		a := f.claim(t, "a", 10)
		if err := f.q.ReleaseWork(context.Background(), []int64{a[0].ID}); err != nil {
			t.Fatal(err)
		}
		if err := f.q.ReleaseWork(context.Background(), nil); err != nil {
			t.Errorf("releasing nothing: %v", err)
		}
		b := f.claim(t, "b", 10)
		if len(b) != 1 || b[0].Attempts != 0 {
			t.Fatalf("after release b claimed %+v, want the item with 0 attempts", b)
		}
		f.complete(t, b...)
	}},
	{"retry waits for its time and counts the attempt", func(t *testing.T, f *queueFixture) {
		f.deliver(t)
		a := f.claim(t, "a", 10)
		cause := errors.New("rules exploded")
		if err := f.q.RetryWork(context.Background(), a[0].ID, cause, f.clock.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Minute - time.Second)
		if ws := f.claim(t, "a", 10); len(ws) != 0 {
			t.Fatalf("claimed %d items before their retry was due", len(ws))
		}
		f.clock.Advance(time.Second)
		ws := f.claim(t, "b", 10)
		if len(ws) != 1 || ws[0].Attempts != 1 || ws[0].LastError != cause.Error() {
			t.Fatalf("when due claimed %+v, want one item with 1 attempt and the cause", ws)
		}
		f.complete(t, ws...)
	}},
	{"completion is transactional", func(t *testing.T, f *queueFixture) {
		f.deliver(t)
		a := f.claim(t, "a", 10)
		ctx := context.Background()
		rollback := errors.New("roll back")
		err := f.q.InTx(ctx, func(tx *storage.Tx) error {
			if err := tx.CompleteWork(ctx, a[0].ID); err != nil {
				return err
			}
			return rollback
		})
		if !errors.Is(err, rollback) {
			t.Fatalf("InTx = %v, want fn's error", err)
		}
		if err := f.q.ReleaseWork(ctx, []int64{a[0].ID}); err != nil {
			t.Fatal(err)
		}
		if ws := f.claim(t, "a", 10); len(ws) != 1 {
			t.Fatalf("work completed in a rolled-back transaction: %d claimable", len(ws))
		} else {
			// A savepoint undoes what follows it and keeps what precedes it.
			err := f.q.InTx(ctx, func(tx *storage.Tx) error {
				if err := tx.Savepoint("s"); err != nil {
					return err
				}
				if err := tx.CompleteWork(ctx, ws[0].ID); err != nil {
					return err
				}
				return tx.RollbackTo("s")
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := f.q.ReleaseWork(ctx, []int64{ws[0].ID}); err != nil {
				t.Fatal(err)
			}
			if again := f.claim(t, "a", 10); len(again) != 1 {
				t.Fatalf("work completed after a savepoint that was rolled back to: %d claimable", len(again))
			} else {
				f.complete(t, again...)
			}
		}
		if ws := f.claim(t, "a", 10); len(ws) != 0 {
			t.Fatalf("completed work still claimable: %d", len(ws))
		}
	}},
	{"a released savepoint keeps its work", func(t *testing.T, f *queueFixture) {
		// The processor's batch: each item in a savepoint, released
		// whether the item's work was kept or rolled back.
		f.deliver(t)
		f.deliver(t)
		ws := f.claim(t, "a", 10)
		if len(ws) != 2 {
			t.Fatalf("claimed %d, want 2", len(ws))
		}
		ctx := context.Background()
		err := f.q.InTx(ctx, func(tx *storage.Tx) error {
			if err := tx.Savepoint("kept"); err != nil {
				return err
			}
			if err := tx.CompleteWork(ctx, ws[0].ID); err != nil {
				return err
			}
			if err := tx.Release("kept"); err != nil {
				return err
			}
			if err := tx.Savepoint("undone"); err != nil {
				return err
			}
			if err := tx.CompleteWork(ctx, ws[1].ID); err != nil {
				return err
			}
			if err := tx.RollbackTo("undone"); err != nil {
				return err
			}
			return tx.Release("undone")
		})
		if err != nil {
			t.Fatal(err)
		}
		// Both leases given back: what is claimable again is what the
		// batch did not complete.
		if err := f.q.ReleaseWork(ctx, []int64{ws[0].ID, ws[1].ID}); err != nil {
			t.Fatal(err)
		}
		left := f.claim(t, "a", 10)
		if len(left) != 1 || left[0].ID != ws[1].ID {
			t.Fatalf("claimable after the batch: %v, want only the rolled-back item %d", left, ws[1].ID)
		}
		f.complete(t, left...)
		// Released, a savepoint is gone: there is nothing to roll back to.
		err = f.q.InTx(ctx, func(tx *storage.Tx) error {
			if err := tx.Savepoint("s"); err != nil {
				return err
			}
			if err := tx.Release("s"); err != nil {
				return err
			}
			return tx.RollbackTo("s")
		})
		if err == nil {
			t.Fatal("rolled back to a released savepoint")
		}
	}},
	{"messages and raw bytes of the claimed work", func(t *testing.T, f *queueFixture) {
		d, raw := f.deliver(t)
		a := f.claim(t, "a", 10)
		ctx := context.Background()
		ms, err := f.q.MessagesByID(ctx, []int64{a[0].MessageRowID, 1 << 40})
		if err != nil {
			t.Fatal(err)
		}
		m, ok := ms[d.MessageRowID]
		if len(ms) != 1 || !ok || m.Parsed {
			t.Fatalf("MessagesByID = %+v, want the one unparsed message (an unknown id is left out)", ms)
		}
		got, err := f.q.Raw(ctx, m.RawHash)
		if err != nil || string(got) != raw {
			t.Fatalf("Raw = %q, %v; want the delivered bytes", got, err)
		}
		if _, err := f.q.Raw(ctx, "0000"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Raw(unknown) = %v, want ErrNotFound", err)
		}
		f.complete(t, a...)
	}},
}

// StartCommitter runs a group committer of up to maxBatch messages on s
// until the test ends.
func StartCommitter(t testing.TB, s *storage.Store, maxBatch int) *storage.Committer {
	t.Helper()
	c := s.NewCommitter(maxBatch, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}
