package ingest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

// faultRig is a processor over a fault-injecting work store. Its
// AfterParse records a timeline entry per message inside the batch's
// transaction, so that what was committed can be counted: a message
// handled twice, or a rolled-back batch whose work was lost, shows.
type faultRig struct {
	*procInstall
	fs   *faultyWorkStore
	p    *ingest.Processor
	mu   sync.Mutex
	runs map[string]int // AfterParse calls per subject, committed or not
	// failing are subjects whose AfterParse fails with the error given.
	failing map[string]error
	gaveUp  []string
	logs    *lockedWriter
}

const handledKind = "test.handled"

func newFaultRig(t *testing.T, pi *procInstall, tune func(*faultRig, *ingest.ProcessorOptions)) *faultRig {
	t.Helper()
	r := &faultRig{procInstall: pi, fs: newFaultyWorkStore(pi.store), runs: map[string]int{}, failing: map[string]error{}, logs: &lockedWriter{w: &bytes.Buffer{}}}
	o := ingest.ProcessorOptions{
		Owner: "test", Clock: pi.clock, MaxAttempts: 3, RetryBackoff: time.Minute,
		Logger: slog.New(slog.NewTextHandler(r.logs, nil)),
		AfterParse: func(ctx context.Context, tx *storage.Tx, m storage.Message) error {
			r.mu.Lock()
			r.runs[m.Subject]++
			err := r.failing[m.Subject]
			r.mu.Unlock()
			if err != nil {
				return err
			}
			return tx.AddEvent(ctx, *m.TicketID, handledKind, "", m.Subject, &m.ID)
		},
		GiveUp: func(ctx context.Context, tx *storage.Tx, m storage.Message, cause error) error {
			r.mu.Lock()
			r.gaveUp = append(r.gaveUp, m.Subject)
			r.mu.Unlock()
			return tx.AddEvent(ctx, *m.TicketID, "message.unprocessable", "", cause.Error(), &m.ID)
		},
	}
	if tune != nil {
		tune(r, &o)
	}
	r.p = ingest.NewProcessor(r.fs, o)
	return r
}

// lockedWriter serialises writes to a buffer a background worker logs to.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

// committed counts the entries of kind on ticket d.
func (r *faultRig) committed(t *testing.T, d storage.Delivered, kind vocab.EventKind) int {
	t.Helper()
	td, err := r.store.GetTicket(context.Background(), d.Ticket)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range td.Events {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

// once runs one batch and returns what RunOnce did.
func (r *faultRig) once(t *testing.T) (int, error) {
	t.Helper()
	return r.p.RunOnce(context.Background())
}

// pending is the number of work items not yet done.
func (r *faultRig) pending(t *testing.T) int64 {
	t.Helper()
	c, err := r.store.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c.PendingWork
}

// TestProcessorFaults runs the processor's failure branches on each
// backend, one store per backend (every case leaves no work pending).
func TestProcessorFaults(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			pi := newProcInstall(t, b)
			t.Run("batch", func(t *testing.T) { batchFaults(t, pi) })
			t.Run("backoff", func(t *testing.T) { retriesWithBackoffThenGivesUp(t, pi) })
			t.Run("retry fails", func(t *testing.T) { retryWorkFails(t, pi) })
			t.Run("give up", func(t *testing.T) { giveUpPaths(t, pi) })
			t.Run("cut batches hold their rest", func(t *testing.T) { cutBatchesHoldTheirRest(t, pi) })
		})
	}
}

// batchFaults injects one failure into each store call a
// batch makes before its commit, and a failed commit (the transaction
// rolled back after the rules ran). Each surfaces as RunOnce's error,
// leaves nothing of the batch committed, and releases the claimed work,
// so that the very next run (the worker loop's next period, not the end
// of a five-minute lease) does the whole batch, each message exactly
// once.
func batchFaults(t *testing.T, pi *procInstall) {
	// Raw fails one message, not the batch: giveUpPaths. A batch that is
	// not cut gives nothing back (ReleaseWork): cutBatchesHoldTheirRest.
	ops := []string{opClaim, opMessages, opInTx}
	r := newFaultRig(t, pi, nil)
	for _, op := range ops {
		t.Run(op, func(t *testing.T) {
			var ds []storage.Delivered
			for i := range 3 {
				s := fmt.Sprintf("%s %d", op, i)
				ds = append(ds, pi.deliver(t, s, plainMail(s, "hello")))
			}
			r.fs.fail(op, 1, injected(op))
			n, err := r.once(t)
			if !errors.Is(err, errInjected) || n != 0 {
				t.Fatalf("RunOnce with %s failing = %d, %v; want 0 and the injected error", op, n, err)
			}
			for _, d := range ds {
				if c := r.committed(t, d, handledKind); c != 0 {
					t.Errorf("%d entries committed by a failed batch", c)
				}
			}
			n, err = r.once(t)
			if err != nil || n != 3 {
				t.Fatalf("the run after the failure did %d items, %v; want the whole batch of 3 at once", n, err)
			}
			for _, d := range ds {
				if c := r.committed(t, d, handledKind); c != 1 {
					t.Errorf("message %d handled %d times, want once", d.MessageRowID, c)
				}
				m, err := pi.store.GetMessage(context.Background(), d.MessageRowID)
				if err != nil || !m.Parsed || m.ParseError != "" {
					t.Errorf("message %d: parsed %v, error %q, %v", d.MessageRowID, m.Parsed, m.ParseError, err)
				}
			}
			if n := r.pending(t); n != 0 {
				t.Errorf("%d work items left", n)
			}
		})
	}
}

// retriesWithBackoffThenGivesUp: a message whose rules
// always fail is retried after RetryBackoff, then twice that, and is not
// claimed a moment before each retry is due; after MaxAttempts tries it
// is given up, marked "could not be processed" with the cause, GiveUp
// runs once, and its work is gone. The mail behind it is done in the
// first run.
func retriesWithBackoffThenGivesUp(t *testing.T, pi *procInstall) {
	boom := errors.New("rules exploded")
	r := newFaultRig(t, pi, func(r *faultRig, o *ingest.ProcessorOptions) { o.MaxAttempts = 3 })
	r.failing["poison"] = boom
	poison := pi.deliver(t, "poison", plainMail("poison", "always fails"))
	behind := pi.deliver(t, "behind", plainMail("behind", "behind the poison"))
	if n, err := r.once(t); err != nil || n != 2 {
		t.Fatalf("first run: %d, %v", n, err)
	}
	if c := r.committed(t, behind, handledKind); c != 1 {
		t.Errorf("the mail behind the poison handled %d times in the first run", c)
	}
	for i, wait := range []time.Duration{time.Minute, 2 * time.Minute} {
		rs := r.fs.retries
		if len(rs) != i+1 {
			t.Fatalf("after try %d: %d retries scheduled", i+1, len(rs))
		}
		if got := rs[i].retryAt.Sub(pi.clock.Now()); got != wait || !errors.Is(rs[i].cause, boom) {
			t.Errorf("retry %d scheduled in %v for %v; want %v for the rules' error", i+1, got, rs[i].cause, wait)
		}
		pi.clock.Advance(wait - time.Second)
		if n, err := r.once(t); err != nil || n != 0 {
			t.Errorf("a second before retry %d is due, the run did %d items, %v", i+1, n, err)
		}
		pi.clock.Advance(time.Second)
		if n, err := r.once(t); err != nil || n != 1 {
			t.Fatalf("retry %d when due: %d, %v", i+1, n, err)
		}
	}
	if r.runs["poison"] != 3 || len(r.gaveUp) != 1 || len(r.fs.retries) != 2 {
		t.Errorf("poison tried %d times, %d retries, given up %v; want 3 tries, 2 retries, one give-up", r.runs["poison"], len(r.fs.retries), r.gaveUp)
	}
	m, err := pi.store.GetMessage(context.Background(), poison.MessageRowID)
	if err != nil || !m.Parsed || !strings.Contains(m.ParseError, "could not be processed: after parse: rules exploded") {
		t.Errorf("poison: parsed %v, error %q, %v", m.Parsed, m.ParseError, err)
	}
	if c := r.committed(t, poison, "message.unprocessable"); c != 1 {
		t.Errorf("%d unprocessable entries, want 1", c)
	}
	if n := r.pending(t); n != 0 {
		t.Errorf("%d work items left", n)
	}
	if !strings.Contains(r.logs.String(), "could not be processed") {
		t.Errorf("the give-up is not logged:\n%s", r.logs)
	}
}

// retryWorkFails: the batch committed, but scheduling the
// retry of its failed message fails. RunOnce reports it; the committed
// messages stay done (none redone), and the failed one is tried again at
// the next run, not lost and not counted as an attempt it did not have.
func retryWorkFails(t *testing.T, pi *procInstall) {
	r := newFaultRig(t, pi, nil)
	r.failing["flaky"] = errors.New("flaky once")
	ok := pi.deliver(t, "ok", plainMail("ok", "fine"))
	flaky := pi.deliver(t, "flaky", plainMail("flaky", "fails once"))
	r.fs.fail(opRetry, 1, injected(opRetry))
	if n, err := r.once(t); !errors.Is(err, errInjected) || n != 0 {
		t.Fatalf("RunOnce with RetryWork failing = %d, %v", n, err)
	}
	if c := r.committed(t, ok, handledKind); c != 1 {
		t.Errorf("the committed message handled %d times", c)
	}
	r.mu.Lock()
	delete(r.failing, "flaky")
	r.mu.Unlock()
	if n, err := r.once(t); err != nil || n != 1 {
		t.Fatalf("the run after: %d, %v; want the flaky message alone", n, err)
	}
	if c, d := r.committed(t, ok, handledKind), r.committed(t, flaky, handledKind); c != 1 || d != 1 {
		t.Errorf("handled %d and %d times, want once each", c, d)
	}
	if n := r.pending(t); n != 0 {
		t.Errorf("%d work items left", n)
	}
}

// giveUpPaths: the give-up completes the work whatever else
// fails: a GiveUp hook that fails has its writes rolled back and the
// message is still marked; a message that vanished between the claim and
// the read (split and deleted) is completed without running the rules; a
// message whose raw bytes cannot be read (a damaged segment file) fails
// as itself, retried and given up like a message whose rules fail, while
// the mail in its batch is done at once.
func giveUpPaths(t *testing.T, pi *procInstall) {
	hookFails := errors.New("cannot tell anyone")
	r := newFaultRig(t, pi, func(r *faultRig, o *ingest.ProcessorOptions) {
		o.MaxAttempts = 2
		o.GiveUp = func(ctx context.Context, tx *storage.Tx, m storage.Message, cause error) error {
			r.mu.Lock()
			r.gaveUp = append(r.gaveUp, m.Subject)
			r.mu.Unlock()
			if err := tx.AddEvent(ctx, *m.TicketID, "message.unprocessable", "", cause.Error(), &m.ID); err != nil {
				return err
			}
			if m.Subject == "hook fails" {
				return hookFails
			}
			return nil
		}
	})
	r.failing["hook fails"] = errors.New("rules exploded")
	hook := pi.deliver(t, "hook fails", plainMail("hook fails", "x"))
	gone := pi.deliver(t, "vanished", plainMail("vanished", "x"))
	r.fs.vanish(gone.MessageRowID)
	damagedMail := plainMail("damaged", "x")
	damaged := pi.deliver(t, "damaged", damagedMail)
	m, err := pi.store.GetMessage(context.Background(), damaged.MessageRowID)
	if err != nil {
		t.Fatal(err)
	}
	r.fs.failRaw(m.RawHash, injected(opRaw))
	fine := pi.deliver(t, "fine", plainMail("fine", "x"))

	if n, err := r.once(t); err != nil || n != 4 {
		t.Fatalf("first run: %d, %v; want all 4 items", n, err)
	}
	if c := r.committed(t, fine, handledKind); c != 1 {
		t.Errorf("the fine mail handled %d times in the first run", c)
	}
	if r.runs["vanished"] != 0 {
		t.Error("the rules ran for a vanished message")
	}
	pi.clock.Advance(time.Minute)
	if n, err := r.once(t); err != nil || n != 2 {
		t.Fatalf("second run: %d, %v; want the two failing messages", n, err)
	}
	if n := r.pending(t); n != 0 {
		t.Errorf("%d work items left", n)
	}
	if len(r.gaveUp) != 2 {
		t.Errorf("given up %v, want the hook's and the damaged message", r.gaveUp)
	}
	for _, c := range []struct {
		d       storage.Delivered
		entries int
		want    string
	}{
		{hook, 0, "could not be processed: after parse: rules exploded"},
		{damaged, 1, "could not be processed: read raw message: Raw: injected fault"},
	} {
		m, err := pi.store.GetMessage(context.Background(), c.d.MessageRowID)
		if err != nil || !m.Parsed || !strings.Contains(m.ParseError, c.want) {
			t.Errorf("message %d: parsed %v, error %q, %v; want %q", c.d.MessageRowID, m.Parsed, m.ParseError, err, c.want)
		}
		if n := r.committed(t, c.d, "message.unprocessable"); n != c.entries {
			t.Errorf("message %d: %d unprocessable entries kept, want %d", c.d.MessageRowID, n, c.entries)
		}
	}
	if !strings.Contains(r.logs.String(), "could not report an unprocessable message") {
		t.Errorf("the hook's failure is not logged:\n%s", r.logs)
	}
}

// TestProcessorRunSurvivesFaults: the worker loop logs a failed batch
// and goes on; woken again, it does the work. Nothing sleeps: the fake
// tells the test of each store call.
func TestProcessorRunSurvivesFaults(t *testing.T) {
	pi := newProcInstall(t, storagetest.Backend{Name: "sqlite", Open: storagetest.OpenSQLite})
	handled := make(chan string, 16) // told of each committed batch
	r := newFaultRig(t, pi, func(r *faultRig, o *ingest.ProcessorOptions) {
		o.Period = time.Hour // only wake-ups drive the loop
		o.AfterCommit = func() { handled <- "batch" }
	})
	calls := make(chan string, 1024)
	r.fs.faults.mu.Lock()
	r.fs.faults.ch = calls
	r.fs.faults.mu.Unlock()
	d := pi.deliver(t, "queued", plainMail("queued", "x"))
	r.fs.fail(opClaim, 2, injected(opClaim))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.p.Run(ctx) }()
	waitFor := func(op string) {
		t.Helper()
		for got := range calls {
			if got == op {
				return
			}
		}
	}
	waitFor(opClaim) // the first batch fails
	r.p.Wake()
	waitFor(opClaim) // the second too
	r.p.Wake()
	<-handled
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	if c := r.committed(t, d, handledKind); c != 1 {
		t.Errorf("handled %d times", c)
	}
	if n := strings.Count(r.logs.String(), "injected fault"); n != 2 {
		t.Errorf("%d failures logged, want 2:\n%s", n, r.logs)
	}
}

// cutBatchesHoldTheirRest: a batch cut short (here after every message)
// keeps the rest of what it claimed leased for the next batch, giving
// nothing back and claiming nothing twice; a failed batch gives back
// what it held too, so that the next run does it at once; and a
// processor that stops gives back what it held, so that another owner
// claims it without waiting out the lease.
func cutBatchesHoldTheirRest(t *testing.T, pi *procInstall) {
	ctx := context.Background()
	r := newFaultRig(t, pi, func(_ *faultRig, o *ingest.ProcessorOptions) { o.Interrupt = func() bool { return true } })
	var ds []storage.Delivered
	for i := range 5 {
		s := fmt.Sprintf("held %d", i)
		ds = append(ds, pi.deliver(t, s, plainMail(s, "hello")))
	}
	calls := func(op string) int {
		r.fs.mu.Lock()
		defer r.fs.mu.Unlock()
		return r.fs.calls[op]
	}
	releases := calls(opRelease)
	for i := range 2 {
		if n, err := r.once(t); err != nil || n != 1 {
			t.Fatalf("run %d: %d items, %v; want one (cut after each)", i+1, n, err)
		}
	}
	if got := calls(opRelease) - releases; got != 0 {
		t.Errorf("cut batches gave back work %d times, want none (held)", got)
	}
	// Another owner finds the held items leased.
	if ws, err := pi.store.ClaimWork(ctx, "other", 10, time.Minute); err != nil || len(ws) != 0 {
		t.Fatalf("another owner claimed %d held items, %v", len(ws), err)
	}
	// Held past half their lease (the processor's default, 5 minutes),
	// however often held again, they are given back and claimed anew:
	// their lease is never outlived.
	pi.clock.Advance(3 * time.Minute)
	claims := calls(opClaim)
	if n, err := r.once(t); err != nil || n != 1 {
		t.Fatalf("run after half the lease: %d items, %v", n, err)
	}
	if got := calls(opRelease) - releases; got != 1 || calls(opClaim) != claims+1 {
		t.Errorf("after half the lease: %d releases, %d claims; want the old items given back once and claimed again", got, calls(opClaim)-claims)
	}
	// A failed batch gives back its items and the held one.
	r.fs.fail(opInTx, 1, injected(opInTx))
	if _, err := r.once(t); !errors.Is(err, errInjected) {
		t.Fatalf("the failing run: %v", err)
	}
	if n := r.pending(t); n != 2 {
		t.Fatalf("%d work items left, want 2", n)
	}
	// One more run holds the last item; stopping gives it back.
	if n, err := r.once(t); err != nil || n != 1 {
		t.Fatalf("run after the failure: %d, %v", n, err)
	}
	stopped, stop := context.WithCancel(ctx)
	stop()
	if err := r.p.Run(stopped); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	ws, err := pi.store.ClaimWork(ctx, "other", 10, time.Minute)
	if err != nil || len(ws) != 1 {
		t.Fatalf("after the stop another owner claimed %d items, %v; want the one held", len(ws), err)
	}
	if err := pi.store.ReleaseWork(ctx, []int64{ws[0].ID}); err != nil {
		t.Fatal(err)
	}
	if n, err := r.once(t); err != nil || n != 1 || r.pending(t) != 0 {
		t.Fatalf("the last run: %d, %v; %d left", n, err, r.pending(t))
	}
	for _, d := range ds {
		if c := r.committed(t, d, handledKind); c != 1 {
			t.Errorf("message %d handled %d times, want once", d.MessageRowID, c)
		}
	}
}
