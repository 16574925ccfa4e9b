package storage_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestLockBatchWaitsForTheSameCustomer: on PostgreSQL a batch that locks
// a ticket of Ann's waits for another batch holding a different ticket of
// Ann's (the flood caps count per customer), and a batch of Bob's does
// not, nor does intake writing Ann's ticket; a batch of Bob's and Ann's
// takes Bob and hands Ann's ticket back as busy, without waiting. Waiting is read off pg_stat_activity, not guessed from time.
// SQLite serialises write transactions, so LockBatch does nothing there
// and there is nothing to show.
func TestLockBatchWaitsForTheSameCustomer(t *testing.T) {
	ctx := context.Background()
	s := storagetest.OpenPostgres(t, storagetest.NewFakeClock(time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)))
	if err := s.SyncInboxes(ctx, []storage.InboxSpec{{Address: "support@acme.test", Name: "Acme Support"}}); err != nil {
		t.Fatal(err)
	}
	c := storagetest.StartCommitter(t, s, 16)
	ticket := func(from, subject string) int64 {
		raw := fmt.Sprintf("From: %s\r\nTo: support@acme.test\r\nSubject: %s\r\n\r\nhello\r\n", from, subject)
		h := sha256.Sum256([]byte(raw))
		d, err := c.Deliver(ctx, &storage.Incoming{Raw: []byte(raw), Hash: hex.EncodeToString(h[:]), MessageID: hex.EncodeToString(h[:8]) + "@example.com",
			From: from, Subject: subject, NormSubject: subject, Class: "human", Role: "customer", Inboxes: []string{"support@acme.test"}, Source: "test"})
		if err != nil || d.Ticket == 0 {
			t.Fatalf("deliver %q: %+v, %v", subject, d, err)
		}
		return d.Ticket
	}
	ann1, ann2, bob := ticket("ann@example.com", "printer"), ticket("ann@example.com", "invoice"), ticket("bob@example.com", "login")

	locked, release, held := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		held <- s.InTx(ctx, func(tx *storage.Tx) error {
			if busy, err := tx.LockBatch(ctx, []int64{ann1}); err != nil || len(busy) > 0 {
				return fmt.Errorf("first batch: busy %v, %v", busy, err)
			}
			close(locked)
			<-release
			return nil
		})
	}()
	<-locked
	lockIn := func(ticket int64) chan error {
		done := make(chan error, 1)
		go func() {
			done <- s.InTx(ctx, func(tx *storage.Tx) error {
				if busy, err := tx.LockBatch(ctx, []int64{ticket}); err != nil || len(busy) > 0 {
					return fmt.Errorf("batch of %d: busy %v, %v", ticket, busy, err)
				}
				return nil
			})
		}()
		return done
	}
	select {
	case err := <-lockIn(bob):
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a batch of Bob's waited for a batch of Ann's")
	}
	// A batch of Ann's and Bob's takes Bob and leaves Ann's ticket to
	// the batch holding her, without waiting.
	mixed := make(chan error, 1)
	go func() {
		mixed <- s.InTx(ctx, func(tx *storage.Tx) error {
			busy, err := tx.LockBatch(ctx, []int64{bob, ann2})
			if err == nil && !slices.Equal(busy, []int64{ann2}) {
				err = fmt.Errorf("busy %v, want Ann's %d", busy, ann2)
			}
			return err
		})
	}()
	select {
	case err := <-mixed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a batch of Bob's and Ann's waited for the batch holding Ann")
	}
	// Intake writes tickets (a reply reopens its ticket): it must not
	// wait for a batch.
	if err := storage.ExecForTest(ctx, s, fmt.Sprintf("UPDATE tickets SET repeat_contacts = repeat_contacts + 1 WHERE id = %d", ann1)); err != nil {
		t.Fatal(err)
	}
	annAgain := lockIn(ann2)
	deadline := time.Now().Add(30 * time.Second)
	poll := time.NewTicker(10 * time.Millisecond) // pg_stat_activity is read, not waited on
	defer poll.Stop()
	for {
		n, err := storage.QueryInt(ctx, s, "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second batch of Ann's never waited for a lock")
		}
		select {
		case err := <-annAgain:
			t.Fatalf("a second batch of Ann's went ahead (%v) while the first held her", err)
		case <-poll.C:
		}
	}
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if err := <-annAgain; err != nil {
		t.Fatal(err)
	}
}
