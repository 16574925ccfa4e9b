package ingest_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestProcessorWorkers runs four workers over mail from 32 customers
// and a flood from one: every message is handled exactly once, never two
// of one customer's at the same time (TestLockBatchWaitsForTheSameCustomer
// shows the locks that see to it), and on PostgreSQL two batches do run
// at once (the first message's hook waits until another worker's
// hook has started; on SQLite the one writer serialises batches).
func TestProcessorWorkers(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pi := newProcInstall(t, b)
			deliver := func(from, subject string) {
				raw := fmt.Sprintf("From: %s\r\nTo: support@acme.test\r\nSubject: %s\r\nMessage-ID: <%s@example.com>\r\n\r\nhello\r\n", from, subject, subject)
				h := sha256.Sum256([]byte(raw))
				if _, err := pi.c.Deliver(ctx, &storage.Incoming{Raw: []byte(raw), Hash: hex.EncodeToString(h[:]), MessageID: subject + "@example.com",
					From: from, Subject: subject, NormSubject: subject, Class: "human", Role: "customer", Inboxes: []string{"support@acme.test"}, Source: "test"}); err != nil {
					t.Fatal(err)
				}
			}
			// Claimed in order, 32 to a batch: the first batch is the 32
			// customers', the second and third are the flood's.
			const customers, flood = 32, 48
			for i := range customers {
				deliver(fmt.Sprintf("c%d@example.com", i), fmt.Sprintf("c%d", i))
			}
			for i := range flood {
				deliver("flood@example.com", fmt.Sprintf("flood%d", i))
			}
			var mu sync.Mutex
			handled := map[string]int{}
			inside := map[string]int{}
			started := make(chan struct{}, customers+flood)
			concurrent := b.Name == "postgres"
			p := ingest.NewProcessor(pi.store, ingest.ProcessorOptions{Owner: "test", Clock: pi.clock, Workers: 4,
				AfterParse: func(ctx context.Context, tx *storage.Tx, m storage.Message) error {
					mu.Lock()
					handled[m.Subject]++
					inside[m.FromAddr]++
					if inside[m.FromAddr] > 1 {
						t.Errorf("two messages of %s handled at once", m.FromAddr)
					}
					mu.Unlock()
					started <- struct{}{}
					if concurrent && m.Subject == "c0" {
						// Another worker must get to a hook while this
						// batch is open.
						for n := 0; n < 2; n++ {
							select {
							case <-started:
							case <-time.After(30 * time.Second):
								t.Error("no other worker ran while the first batch was open")
								n = 2
							}
						}
					}
					mu.Lock()
					inside[m.FromAddr]--
					mu.Unlock()
					return nil
				}})
			runUntilDone(ctx, t, cancel, pi, p)
			mu.Lock()
			defer mu.Unlock()
			if len(handled) != customers+flood {
				t.Errorf("%d messages handled, want %d", len(handled), customers+flood)
			}
			for s, n := range handled {
				if n != 1 {
					t.Errorf("%s handled %d times, want once", s, n)
				}
			}
		})
	}
}

// TestProcessorWorkersTakeLargeMailInTurn: workers parse and hold large
// mail one batch at a time (their byte budget, 2 × BatchBytes), so that
// four workers do not hold four bursts' worth of memory. Four customers'
// 3 MiB mails with a 1 MiB BatchBytes: the first one's hook waits to see
// whether a second starts beside it; with the budget none can, as the
// second batch is not even parsed before the first commits.
func TestProcessorWorkersTakeLargeMailInTurn(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pi := newProcInstall(t, b)
			const n = 4
			body := strings.Repeat("a line of a long log, as customers attach them\r\n", 3<<20/50)
			for i := range n {
				subject := fmt.Sprintf("log%d", i)
				raw := fmt.Sprintf("From: c%d@example.com\r\nTo: support@acme.test\r\nSubject: %s\r\nMessage-ID: <%s@example.com>\r\n\r\n%s", i, subject, subject, body)
				h := sha256.Sum256([]byte(raw))
				if _, err := pi.c.Deliver(ctx, &storage.Incoming{Raw: []byte(raw), Hash: hex.EncodeToString(h[:]), MessageID: subject + "@example.com",
					From: fmt.Sprintf("c%d@example.com", i), Subject: subject, NormSubject: subject, Class: "human", Role: "customer", Inboxes: []string{"support@acme.test"}, Source: "test"}); err != nil {
					t.Fatal(err)
				}
			}
			var mu sync.Mutex
			inside, most, handled := 0, 0, 0
			second := make(chan struct{})
			var once sync.Once
			p := ingest.NewProcessor(pi.store, ingest.ProcessorOptions{Owner: "test", Clock: pi.clock, Workers: n, BatchBytes: 1 << 20,
				AfterParse: func(ctx context.Context, tx *storage.Tx, m storage.Message) error {
					mu.Lock()
					inside++
					handled++
					most = max(most, inside)
					first := handled == 1
					if inside > 1 {
						once.Do(func() { close(second) })
					}
					mu.Unlock()
					if first {
						// Not a synchronisation: with the budget this waits
						// its full time and the test passes; without, a
						// second worker's hook starts and ends the wait.
						select {
						case <-second:
						case <-time.After(2 * time.Second):
						}
					}
					mu.Lock()
					inside--
					mu.Unlock()
					return nil
				}})
			runUntilDone(ctx, t, cancel, pi, p)
			mu.Lock()
			defer mu.Unlock()
			if handled != n || most != 1 {
				t.Errorf("%d large mails handled, at most %d at once; want %d, one at a time", handled, most, n)
			}
		})
	}
}

// runUntilDone runs p's workers until no work is pending, then stops them
// (cancel ends ctx).
func runUntilDone(ctx context.Context, t *testing.T, cancel context.CancelFunc, pi *procInstall, p *ingest.Processor) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	p.Wake()
	deadline := time.Now().Add(60 * time.Second)
	poll := time.NewTicker(20 * time.Millisecond) // the counts are read, not waited on
	defer poll.Stop()
	for {
		c, err := pi.store.Counts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c.PendingWork == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d work items still pending", c.PendingWork)
		}
		<-poll.C
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestProcessorHandsBackBusyCustomers: on PostgreSQL a batch whose
// customer another batch holds (a worker, a replica) processes the rest
// and hands that customer's work back, instead of waiting; the next
// batch, once the customer is free, takes it.
func TestProcessorHandsBackBusyCustomers(t *testing.T) {
	ctx := context.Background()
	pi := newProcInstall(t, storagetest.Backend{Name: "postgres", Open: storagetest.OpenPostgres})
	deliver := func(from, subject string) int64 {
		raw := fmt.Sprintf("From: %s\r\nTo: support@acme.test\r\nSubject: %s\r\n\r\nhello\r\n", from, subject)
		h := sha256.Sum256([]byte(raw))
		d, err := pi.c.Deliver(ctx, &storage.Incoming{Raw: []byte(raw), Hash: hex.EncodeToString(h[:]), MessageID: subject + "@example.com",
			From: from, Subject: subject, NormSubject: subject, Class: "human", Role: "customer", Inboxes: []string{"support@acme.test"}, Source: "test"})
		if err != nil {
			t.Fatal(err)
		}
		return d.Ticket
	}
	ann := deliver("ann@example.com", "printer")
	deliver("bob@example.com", "login")
	var handled []string
	p := ingest.NewProcessor(pi.store, ingest.ProcessorOptions{Owner: "test", Clock: pi.clock,
		AfterParse: func(ctx context.Context, tx *storage.Tx, m storage.Message) error {
			handled = append(handled, m.Subject)
			return nil
		}})
	locked, release, held := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		held <- pi.store.InTx(ctx, func(tx *storage.Tx) error {
			if _, err := tx.LockBatch(ctx, []int64{ann}); err != nil {
				return err
			}
			close(locked)
			<-release
			return nil
		})
	}()
	<-locked
	if n, err := p.RunOnce(ctx); err != nil || n != 1 || strings.Join(handled, ",") != "login" {
		t.Fatalf("with Ann held: %d processed (%v), handled %v; want Bob's alone", n, err, handled)
	}
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if n, err := p.RunOnce(ctx); err != nil || n != 1 || strings.Join(handled, ",") != "login,printer" {
		t.Fatalf("with Ann free: %d processed (%v), handled %v; want Ann's next", n, err, handled)
	}
}
