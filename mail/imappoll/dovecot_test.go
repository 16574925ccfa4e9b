package imappoll

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/internal/heappeak"
	"github.com/tendhq/tend/mail/imappoll/dovecottest"
	"github.com/tendhq/tend/storage/storagetest"
)

func dovecotOptions(t *testing.T, srv *dovecottest.Server, clock *storagetest.FakeClock) Options {
	o := testOptions(t, srv.Addr, clock)
	o.Username = srv.User
	pw := srv.Password
	o.Password = func(context.Context) (string, error) { return pw, nil }
	o.Auth = AuthPlain
	o.IdleRestart, o.PollInterval = time.Hour, time.Hour // only IDLE can be fast
	return o
}

// dovecotSeeded starts Dovecot with the testdata messages in mailbox.
func dovecotSeeded(t *testing.T, mailbox string) (*dovecottest.Server, []string, *storagetest.FakeClock, *fakeDeliverer, *fakeStore) {
	t.Helper()
	srv := dovecottest.Start(t)
	raws, ids := testdataMessages(t)
	for _, raw := range raws {
		srv.Append(t, mailbox, raw)
	}
	clock := storagetest.NewFakeClock(t0)
	return srv, ids, clock, newFakeDeliverer(), newFakeStore(clock)
}

func TestDovecotIdleDeliversWithinTwoSeconds(t *testing.T) {
	srv := dovecottest.Start(t)
	clock := storagetest.NewFakeClock(t0)
	d, st := newFakeDeliverer(), newFakeStore(clock)
	p, err := New(dovecotOptions(t, srv, clock), d, st)
	if err != nil {
		t.Fatal(err)
	}
	run(t, p)
	waitFor(t, wait, "idle", func() bool { return p.Status().State == StateIdle })
	raws, ids := testdataMessages(t)
	for i, raw := range raws {
		srv.Append(t, "INBOX", raw)
		waitFor(t, 2*time.Second, "delivery via IDLE", func() bool { return d.storedCount() == i+1 })
	}
	d.checkExactlyOnce(t, ids)
}

func TestDovecotAfterMove(t *testing.T) {
	srv, ids, clock, d, st := dovecotSeeded(t, "INBOX")
	o := dovecotOptions(t, srv, clock)
	o.After = After{Action: AfterMove, Folder: "Processed"}
	start(t, o, d, st)
	waitFor(t, wait, "moved", func() bool {
		return d.storedCount() == len(ids) && srv.Count(t, "INBOX") == 0 && srv.Count(t, "Processed") == len(ids)
	})
	d.checkExactlyOnce(t, ids)
}

func TestDovecotUIDValidityChange(t *testing.T) {
	srv, ids, clock, d, st := dovecotSeeded(t, "Support")
	o := dovecotOptions(t, srv, clock)
	o.Mailbox = "Support"
	// Dovecot keeps an IDLE on a deleted mailbox open without a word; the
	// periodic re-SELECT (every IdleRestart) is what notices it.
	o.IdleRestart = 200 * time.Millisecond
	p := start(t, o, d, st)
	waitFor(t, wait, "first sync", func() bool { return d.storedCount() == len(ids) })
	old := st.state(p.opts.key()).UIDValidity
	srv.RecreateMailbox(t, "Support")
	raw, id := genMessage(1)
	srv.Append(t, "Support", raw)
	ids = append(ids, id)
	waitFor(t, wait, "resync", func() bool {
		s := st.state(p.opts.key())
		return d.storedCount() == len(ids) && s.UIDValidity != old && s.BackfillDone && s.LastUID == uint32(len(ids))
	})
	d.checkExactlyOnce(t, ids)
}

// The SIGKILL test runs the poller in a child process (this test binary,
// re-executed) with a file-backed deliverer and checkpoint, kills it with
// SIGKILL in the middle of a 2,000-message first sync, restarts it, and
// checks that every message was stored exactly once.

// The SIGKILL-mid-sync test runs the real tend binary against Dovecot:
// see TestIMAPKilledDuringFirstSync in cmd/tend.

// BenchmarkFirstSync measures the first sync of 10,000 messages from a
// real Dovecot into a fake Deliverer: messages per second, and the peak
// heap sampled every 10 ms. Run with -benchtime=1x (each iteration is a
// full first sync).
func BenchmarkFirstSync(b *testing.B) {
	const n = 10000
	srv := dovecottest.Start(b)
	c := srv.Client(b)
	for i := range n {
		raw, _ := genMessage(i)
		// A body of realistic size (~4 KiB) rather than one line.
		raw = append(raw, []byte(strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n", 70))...)
		dovecottest.AppendWith(b, c, "INBOX", raw, t0.Add(-time.Hour))
	}
	_ = c.Logout().Wait()
	b.ResetTimer()
	for range b.N {
		clock := storagetest.NewFakeClock(t0)
		d, st := newFakeDeliverer(), newFakeStore(clock)
		o := Options{
			Inbox: "support@acme.example", Addr: srv.Addr, TLS: TLSNone, Insecure: true,
			Username: srv.User, Auth: AuthPlain, Holder: "bench", BackfillRate: 1e9,
			Password: func(context.Context) (string, error) { return srv.Password, nil },
			Clock:    clock, Logger: slogDiscard(),
		}
		p, err := New(o, d, st)
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		peak := heappeak.Start(base.HeapAlloc)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		start := time.Now()
		go func() { _ = p.Run(ctx); close(done) }()
		waitFor(b, 5*time.Minute, "first sync", func() bool { return st.state(p.opts.key()).BackfillDone })
		elapsed := time.Since(start)
		cancel()
		<-done
		maxHeap := peak.Stop()
		if got := d.storedCount(); got != n {
			b.Fatalf("stored %d, want %d", got, n)
		}
		b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
		b.ReportMetric(float64(maxHeap)/(1<<20), "peak-heap-MiB")
		b.Logf("first sync of %d messages: %v (%.0f msgs/s), peak heap %.1f MiB (baseline %.1f MiB)", n, elapsed, float64(n)/elapsed.Seconds(), float64(maxHeap)/(1<<20), float64(base.HeapAlloc)/(1<<20))
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
