package imappoll

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tendhq/tend/internal/heappeak"
	"github.com/tendhq/tend/mail/imappoll/dovecottest"
	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage/storagetest"
)

// Large messages stream from the server's literal into the spool the SMTP
// door uses: the poller holds none of them whole. The server runs in
// another process (Dovecot, or go-imap's in-memory server in a child of
// this test binary) so that this process's heap is the poller's alone.

// bigMessage is message i of size bytes: a header block and base64 lines.
func bigMessage(i, size int) []byte {
	b := fmt.Appendf(nil, "Message-ID: <big-%d@example.net>\r\nFrom: c%d@example.net\r\nTo: support@acme.example\r\nSubject: Big %d\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n", i, i, i)
	line := []byte(strings.Repeat(string(rune('A'+i%26)), 76) + "\r\n")
	for len(b)+len(line) <= size {
		b = append(b, line...)
	}
	return b
}

// spoolDeliverer spools with ingest's Spooler (temporary files) and
// checks each message's hash, storing nothing.
type spoolDeliverer struct {
	spool *ingest.Spooler
	mu    sync.Mutex
	want  map[string]string // Message-ID (no brackets) -> hex SHA-256
	got   map[string]int
	files int // spools that went to a file
	err   error
}

func (d *spoolDeliverer) Spool(ctx context.Context, r io.Reader, size int64) (Spooled, error) {
	return d.spool.SpoolSized(ctx, r, size)
}

func (d *spoolDeliverer) Deliver(_ context.Context, ms []Spooled, _ []Delivery) ([]DeliveryResult, []error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range ms {
		d.check(m.(*ingest.Spool))
	}
	return make([]DeliveryResult, len(ms)), make([]error, len(ms))
}

// check compares a spooled message with the one appended.
func (d *spoolDeliverer) check(sp *ingest.Spool) {
	if want := d.want[sp.MessageID]; want != sp.Hash {
		d.err = fmt.Errorf("%s: hash %s, want %s", sp.MessageID, sp.Hash, want)
	}
	if sp.Name() != "" {
		d.files++
	}
	d.got[sp.MessageID]++
}

// bigSet is n messages of size bytes and their hashes.
func bigSet(n, size int) (raws func(i int) []byte, want map[string]string) {
	want = map[string]string{}
	for i := range n {
		sum := sha256.Sum256(bigMessage(i, size))
		want[fmt.Sprintf("big-%d@example.net", i)] = hex.EncodeToString(sum[:])
	}
	return func(i int) []byte { return bigMessage(i, size) }, want
}

// memChildEnv makes this test binary a go-imap in-memory server holding
// big messages (see TestMemServerChild).
const memChildEnv = "TEND_IMAPPOLL_MEMSERVER_CHILD"

// TestMemServerChild is not a test: run by startMemChild with memChildEnv
// set to "n,size", it serves that many big messages from go-imap's
// in-memory server, prints its address and serves until stdin closes.
func TestMemServerChild(t *testing.T) {
	spec := os.Getenv(memChildEnv)
	if spec == "" {
		return
	}
	ns, ss, _ := strings.Cut(spec, ",")
	n, _ := strconv.Atoi(ns)
	size, _ := strconv.Atoi(ss)
	srv := startMem(t, fullCaps)
	for i := range n {
		srv.append(t, "INBOX", bigMessage(i, size), t0.Add(-time.Hour))
	}
	fmt.Printf("ADDR %s\n", srv.addr)
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// startMemChild runs TestMemServerChild in a child process and returns
// its address.
func startMemChild(t testing.TB, n, size int) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMemServerChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d,%d", memChildEnv, n, size))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stdin.Close(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
			return addr
		}
	}
	t.Fatalf("the in-memory server child gave no address: %v", sc.Err())
	return ""
}

// syncBig runs a first sync of the n big messages at addr with a spooling
// deliverer and returns the peak heap above the heap before it.
func syncBig(t testing.TB, o Options, n int, want map[string]string) (peak, base uint64) {
	t.Helper()
	d := &spoolDeliverer{spool: ingest.NewSpooler(t.TempDir(), ingest.DiskGuard{}), want: want, got: map[string]int{}}
	clock := storagetest.NewFakeClock(t0)
	st := newFakeStore(clock)
	o.Clock = clock
	p, err := New(o, d, st)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	sample := heappeak.Start(m.HeapAlloc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	waitFor(t, 5*time.Minute, "the big messages", func() bool { return st.state(p.opts.key()).BackfillDone })
	cancel()
	<-done
	peak = sample.Stop()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		t.Fatal(d.err)
	}
	if len(d.got) != n || d.files != n {
		t.Fatalf("%d of %d messages delivered, %d through a spool file", len(d.got), n, d.files)
	}
	return peak - min(peak, m.HeapAlloc), m.HeapAlloc
}

const bigN, bigSize = 4, 24 << 20

// heapBound is what the poller may hold above its idle heap while it
// syncs 24 MB messages: its buffers (64 KiB reads, the header block's
// first MiB) and the garbage the collector has not reclaimed yet, well
// under one message (the buffered FETCH held each whole: 24 MB and more).
const heapBound = 16 << 20

func TestBigMessagesStreamMemServer(t *testing.T) {
	_, want := bigSet(bigN, bigSize)
	addr := startMemChild(t, bigN, bigSize)
	clock := storagetest.NewFakeClock(t0)
	o := testOptions(t, addr, clock)
	o.CommandTimeout = time.Minute
	peak, _ := syncBig(t, o, bigN, want)
	t.Logf("peak heap above idle: %.1f MiB for %d messages of %d MiB", float64(peak)/(1<<20), bigN, bigSize>>20)
	if peak > heapBound {
		t.Errorf("peak heap %.1f MiB above idle while syncing %d MiB messages: a message is held in memory (bound %d MiB)", float64(peak)/(1<<20), bigSize>>20, heapBound>>20)
	}
}

func TestBigMessagesStreamDovecot(t *testing.T) {
	srv := dovecottest.Start(t)
	raws, want := bigSet(bigN, bigSize)
	c := srv.Client(t)
	for i := range bigN {
		dovecottest.AppendWith(t, c, "INBOX", raws(i), t0.Add(-time.Hour))
	}
	_ = c.Logout().Wait()
	clock := storagetest.NewFakeClock(t0)
	o := dovecotOptions(t, srv, clock)
	o.CommandTimeout = time.Minute
	peak, _ := syncBig(t, o, bigN, want)
	t.Logf("peak heap above idle: %.1f MiB for %d messages of %d MiB", float64(peak)/(1<<20), bigN, bigSize>>20)
	if peak > heapBound {
		t.Errorf("peak heap %.1f MiB above idle while syncing %d MiB messages: a message is held in memory (bound %d MiB)", float64(peak)/(1<<20), bigSize>>20, heapBound>>20)
	}
}

// BenchmarkBigMessages is the first sync of 4 messages of 24 MiB from
// go-imap's in-memory server (in a child process) and from Dovecot into
// spool files, reporting the peak heap above idle (sampled every 10 ms)
// and the throughput. Run with -benchtime=1x.
func BenchmarkBigMessages(b *testing.B) {
	_, want := bigSet(bigN, bigSize)
	run := func(b *testing.B, o Options) {
		o.CommandTimeout = time.Minute
		for range b.N {
			start := time.Now()
			peak, base := syncBig(b, o, bigN, want)
			took := time.Since(start)
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(base)/(1<<20), "idle-heap-MiB")
			b.ReportMetric(float64(bigN*bigSize)/(1<<20)/took.Seconds(), "MiB/s")
		}
	}
	b.Run("memserver", func(b *testing.B) {
		addr := startMemChild(b, bigN, bigSize)
		o := benchOptions(addr, testUser, testPass)
		o.Auth = AuthLogin
		run(b, o)
	})
	b.Run("dovecot", func(b *testing.B) {
		srv := dovecottest.Start(b)
		c := srv.Client(b)
		for i := range bigN {
			dovecottest.AppendWith(b, c, "INBOX", bigMessage(i, bigSize), t0.Add(-time.Hour))
		}
		_ = c.Logout().Wait()
		run(b, benchOptions(srv.Addr, srv.User, srv.Password))
	})
}

// benchOptions are options for a benchmark's first sync: a fresh mailbox
// state each run, no throttle, no log.
func benchOptions(addr, user, pass string) Options {
	return Options{
		Inbox: "support@acme.example", Addr: addr, TLS: TLSNone, Insecure: true,
		Username: user, Auth: AuthPlain, Holder: "bench",
		Password: func(context.Context) (string, error) { return pass, nil },
		Logger:   slogDiscard(),
	}
}
