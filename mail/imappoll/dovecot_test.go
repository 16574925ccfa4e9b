package imappoll

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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
const childEnv = "TEND_IMAPPOLL_CHILD"

func TestDovecotSIGKILLMidSync(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("child process")
	}
	srv := dovecottest.Start(t)
	const n = 2000
	c := srv.Client(t)
	var ids []string
	for i := range n {
		raw, id := genMessage(i)
		dovecottest.AppendWith(t, c, "INBOX", raw, t0.Add(-time.Hour))
		ids = append(ids, id)
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "delivered.log")
	child := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDovecotChild$", "-test.v")
		cmd.Env = append(os.Environ(), childEnv+"="+dir, "CHILD_ADDR="+srv.Addr, "CHILD_USER="+srv.User, "CHILD_PASS="+srv.Password)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	first := child()
	waitFor(t, 60*time.Second, "first child mid-sync", func() bool { return len(readLines(log)) >= 700 })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	atKill := len(readLines(log))
	if atKill >= n {
		t.Fatalf("child finished before the kill (%d stored)", atKill)
	}
	second := child()
	waitFor(t, 60*time.Second, "second child finishes", func() bool { return len(readLines(log)) >= n && srv.Count(t, "INBOX") == n })
	_ = second.Process.Signal(syscall.SIGKILL)
	_ = second.Wait()
	got := map[string]int{}
	for _, id := range readLines(log) {
		got[id]++
	}
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("%s stored %d times", id, got[id])
		}
	}
	if len(got) != n {
		t.Errorf("stored %d distinct messages, want %d", len(got), n)
	}
	t.Logf("killed at %d of %d stored; after restart every message stored once", atKill, n)
}

// TestDovecotChild is the child half of TestDovecotSIGKILLMidSync.
func TestDovecotChild(t *testing.T) {
	dir := os.Getenv(childEnv)
	if dir == "" {
		t.Skip("only runs as the child of TestDovecotSIGKILLMidSync")
	}
	d := &fileDeliverer{path: filepath.Join(dir, "delivered.log"), seen: map[string]bool{}}
	for _, id := range readLines(d.path) {
		d.seen[id] = true
	}
	st := &fileState{path: filepath.Join(dir, "state.json")}
	o := Options{
		Inbox: "support@acme.example", Addr: os.Getenv("CHILD_ADDR"), TLS: TLSNone, Insecure: true,
		Username: os.Getenv("CHILD_USER"), Auth: AuthPlain, Holder: "child", BatchSize: 100, BackfillRate: 1e6,
		Password:   func(context.Context) (string, error) { return os.Getenv("CHILD_PASS"), nil },
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Logger: testLogger(t),
	}
	p, err := New(o, d, st)
	if err != nil {
		t.Fatal(err)
	}
	_ = p.Run(context.Background()) // until SIGKILL
}

func readLines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// fileDeliverer commits a message by appending its Message-ID to a file
// and syncing it: a SIGKILL after the sync cannot undo it.
type fileDeliverer struct {
	mu   sync.Mutex
	path string
	seen map[string]bool
}

func (f *fileDeliverer) Deliver(_ context.Context, raw []byte, _ Delivery) (DeliveryResult, error) {
	id := messageID(raw)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen[id] {
		return DeliveryResult{Duplicate: true}, nil
	}
	fh, err := os.OpenFile(f.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return DeliveryResult{}, err
	}
	defer fh.Close()
	if _, err := fh.WriteString(id + "\n"); err != nil {
		return DeliveryResult{}, err
	}
	if err := fh.Sync(); err != nil {
		return DeliveryResult{}, err
	}
	f.seen[id] = true
	return DeliveryResult{}, nil
}

// fileState keeps the checkpoint in a JSON file replaced atomically.
type fileState struct {
	fakeStore
	path string
}

func (s *fileState) MailboxState(context.Context, string) (MailboxState, bool, error) {
	b, err := os.ReadFile(s.path)
	if os.IsNotExist(err) {
		return MailboxState{}, false, nil
	}
	if err != nil {
		return MailboxState{}, false, err
	}
	var st MailboxState
	return st, true, json.Unmarshal(b, &st)
}

func (s *fileState) SaveMailboxState(_ context.Context, _ string, st MailboxState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, s.path)
}

func (s *fileState) AcquireLease(context.Context, string, string, time.Duration) (bool, error) {
	return true, nil
}

func (s *fileState) ReleaseLease(context.Context, string, string) error { return nil }

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
		peak := sampler(base.HeapAlloc)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		start := time.Now()
		go func() { _ = p.Run(ctx); close(done) }()
		waitFor(b, 5*time.Minute, "first sync", func() bool { return st.state(p.opts.key()).BackfillDone })
		elapsed := time.Since(start)
		cancel()
		<-done
		maxHeap := peak()
		if got := d.storedCount(); got != n {
			b.Fatalf("stored %d, want %d", got, n)
		}
		b.ReportMetric(float64(n)/elapsed.Seconds(), "msgs/s")
		b.ReportMetric(float64(maxHeap)/(1<<20), "peak-heap-MiB")
		b.Logf("first sync of %d messages: %v (%.0f msgs/s), peak heap %.1f MiB (baseline %.1f MiB)", n, elapsed, float64(n)/elapsed.Seconds(), float64(maxHeap)/(1<<20), float64(base.HeapAlloc)/(1<<20))
	}
}

// sampler samples HeapAlloc every 10 ms until the returned function is
// called, which returns the peak seen.
func sampler(initial uint64) func() uint64 {
	stop := make(chan struct{})
	res := make(chan uint64)
	go func() {
		peak := initial
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
			select {
			case <-stop:
				res <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 { close(stop); return <-res }
}

func slogDiscard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
