package storage_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestTwoReplicasStoreOneCopy: two replicas on one PostgreSQL database
// receive two hop copies of one message (same Message-ID and content,
// other trace fields) at the same instant. The first replica's
// transaction has stored its copy and not committed yet when the second
// looks: the second must wait for it and answer "already have it" (a
// duplicate of the same row), not store the message twice.
func TestTwoReplicasStoreOneCopy(t *testing.T) {
	ctx := context.Background()
	dsn := storagetest.PostgresDSN(t)
	open := func() *storage.Store {
		s, err := storage.Open(ctx, storage.Options{Driver: storage.DriverPostgres, DSN: dsn, Clock: storagetest.NewFakeClock(t0)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		if err := s.SyncInboxes(ctx, []storage.InboxSpec{{Address: "support@acme.test"}}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := open(), open()
	applied, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	storage.SetFaults(a, func(phase string) error {
		if phase == storage.FaultDeliver {
			once.Do(func() { close(applied) })
			<-release
		}
		return nil
	})
	body := "From: ann@example.com\r\nMessage-ID: <race@example.com>\r\nSubject: Race\r\n\r\nonce\r\n"
	type result struct {
		d   storage.Delivered
		err error
	}
	deliver := func(s *storage.Store, raw string) chan result {
		out := make(chan result, 1)
		go func() {
			d, err := committer(t, s).Deliver(ctx, streamed("race@example.com", "content-of-race", raw))
			out <- result{d, err}
		}()
		return out
	}
	first := deliver(a, "Received: by mx1.acme.test\r\n"+body)
	<-applied
	second := deliver(b, "Received: by mx2.acme.test\r\n"+body)

	// Let the first commit once the second is waiting on a lock, or has
	// finished (as it does without the index: nothing makes it wait).
	mon, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	var secondRes *result
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
wait:
	for {
		select {
		case r := <-second:
			secondRes = &r
			break wait
		case <-tick.C:
			var waiting int
			if err := mon.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'").Scan(&waiting); err != nil {
				t.Fatal(err)
			}
			if waiting > 0 {
				break wait
			}
		case <-deadline:
			t.Fatal("the second replica neither waited nor finished")
		}
	}
	close(release)
	r1 := <-first
	if secondRes == nil {
		r := <-second
		secondRes = &r
	}
	r2 := *secondRes
	if r1.err != nil || r2.err != nil {
		t.Fatalf("deliveries: %v; %v", r1.err, r2.err)
	}
	var n int64
	if err := mon.QueryRow("SELECT count(*) FROM messages WHERE message_id = 'race@example.com'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 || r1.d.Duplicate || !r2.d.Duplicate || r2.d.MessageRowID != r1.d.MessageRowID {
		t.Errorf("%d messages stored; first %+v, second %+v; want one message, the second a duplicate of it", n, r1.d, r2.d)
	}
}
