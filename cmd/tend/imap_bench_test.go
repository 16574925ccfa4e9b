package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/tendhq/tend/cmd/tend/config"
	"github.com/tendhq/tend/internal/heappeak"
	"github.com/tendhq/tend/mail/imappoll/dovecottest"
	"github.com/tendhq/tend/storage"
)

// BenchmarkIMAPFirstSync is the first sync of a mailbox into tickets,
// through the whole server (serve(): poller, spool, ingest, group commit,
// threading; the processor runs behind it), on SQLite, from a real
// Dovecot and from go-imap's in-memory server (in a child process, so
// that neither its CPU nor its memory is counted as tend's). The mailbox
// holds TEND_BENCH_IMAP_N messages (default 10,000) of the shared load
// generator's corpus when TEND_BENCH_CORPUS names its directory (go run
// ./cmd/gencorpus -dir DIR -n 10000 in ../shared/bench), else of
// benchCorpus's generated set. It reports:
//
//   - msgs/s: messages stored with their tickets per second, from the
//     server's start until the mailbox's backfill is checkpointed done;
//   - cpu_ms/msg: this process's CPU over that time (tend and the
//     benchmark's own polling; the IMAP server is another process);
//   - peak_heap_MB: the Go heap's peak (sampled every 20 ms) and
//     peak_rss_MB the process's peak resident set (VmHWM, reset first).
//
// With TEND_BENCH_WAIT_PROCESSED=1 it also waits (up to
// TEND_BENCH_DRAIN_LIMIT, default 10m) until the processor has done the
// after-work of everything (it steps aside during the sync) and reports
// drained_msgs/s and drained_cpu_ms/msg over the whole run.
// TEND_BENCH_CPUPROFILE=FILE writes a CPU profile of the sync alone
// (FILE.dovecot, FILE.memserver).
//
// Run it with -benchtime=1x: one first sync is the measurement. Seeding
// the mailbox is not timed.
func BenchmarkIMAPFirstSync(b *testing.B) {
	n := benchIMAPN(b)
	b.Run("dovecot", func(b *testing.B) {
		d := dovecottest.Start(b)
		seedDovecot(b, d, benchCorpus(b), n)
		benchIMAPSync(b, n, d.Addr, d.User, d.Password)
	})
	b.Run("memserver", func(b *testing.B) {
		addr := startMemIMAPChild(b, n)
		benchIMAPSync(b, n, addr, memChildUser, memChildPass)
	})
}

// benchIMAPN is TEND_BENCH_IMAP_N, default 10,000.
func benchIMAPN(b *testing.B) int {
	v := os.Getenv("TEND_BENCH_IMAP_N")
	if v == "" {
		return 10000
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		b.Fatalf("TEND_BENCH_IMAP_N: %v", err)
	}
	return n
}

// benchIMAPSync runs b.N first syncs of the n messages at addr.
func benchIMAPSync(b *testing.B, n int, addr, user, pass string) {
	// The corpus is not kept: the peak RSS is the server's.
	runtime.GC()
	debug.FreeOSMemory()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		cfg := config.Default()
		cfg.DataDir = b.TempDir()
		cfg.Database.DSN = filepath.Join(cfg.DataDir, "tend.db")
		cfg.SMTP.Listen, cfg.Web.Listen, cfg.SMTP.Hostname = "127.0.0.1:0", "", "mail.acme.test"
		cfg.SenderAuth.Verify = false // no live DNS in tests (see writeConfig)
		in := config.Inbox{Address: "support@acme.test", Name: "Acme Support", ResponseTime: 4 * time.Hour, Backfill: "quiet", Language: "en"}
		in.IMAP = &config.IMAP{Addr: addr, TLS: "none", Insecure: true, Username: user, Password: pass, Auth: "plain",
			Mailbox: "INBOX", After: config.After{Action: config.AfterSeen}, PollInterval: time.Minute, StaleAfter: 10 * time.Minute}
		cfg.Inboxes = []config.Inbox{in}
		cfg.Agents = []config.Agent{{Email: "alice@acme.test", Name: "Alice", Role: "agent"}}
		unseeAll(b, addr, user, pass)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		stopProfile := benchCPUProfile(b)
		runtime.GC()
		heap := heappeak.Start(0)
		resetPeakRSS(b)
		cpu0 := cpuTime()
		start := time.Now()
		b.StartTimer()
		polling := make(chan struct{})
		go func() { done <- serve(ctx, cfg, slog.New(&onFirstLog{prefix: "imap", seen: polling}), io.Discard) }()
		select {
		case <-polling:
		case err := <-done:
			b.Fatalf("serve ended before the poller started: %v", err)
		}
		waitBackfill(b, cfg, done)
		took := time.Since(start)
		b.StopTimer()
		cpu := cpuTime() - cpu0
		stopProfile()
		peakHeap := heap.Stop()
		rss := peakRSS(b)
		if os.Getenv("TEND_BENCH_WAIT_PROCESSED") != "" {
			limit := 10 * time.Minute
			if v := os.Getenv("TEND_BENCH_DRAIN_LIMIT"); v != "" {
				var err error
				if limit, err = time.ParseDuration(v); err != nil {
					b.Fatalf("TEND_BENCH_DRAIN_LIMIT: %v", err)
				}
			}
			if (burstTarget{dataDir: cfg.DataDir}).waitProcessed(b, limit) {
				all, allCPU := time.Since(start), cpuTime()-cpu0
				b.ReportMetric(float64(n)/all.Seconds(), "drained_msgs/s")
				b.ReportMetric(float64(allCPU.Microseconds())/1000/float64(n), "drained_cpu_ms/msg")
				b.Logf("after-work drained %v after the start, %.2f ms CPU/msg in all", all, float64(allCPU.Microseconds())/1000/float64(n))
			}
		}
		cancel()
		if err := <-done; err != nil {
			b.Fatalf("serve: %v", err)
		}
		st, err := storage.Open(context.Background(), storage.Options{Driver: storage.DriverSQLite, DSN: cfg.Database.DSN, DataDir: cfg.DataDir})
		if err != nil {
			b.Fatal(err)
		}
		c, err := st.Counts(context.Background())
		_ = st.Close()
		if err != nil {
			b.Fatal(err)
		}
		if c.RawMessages != int64(n) {
			b.Fatalf("%d raw messages stored, want %d", c.RawMessages, n)
		}
		b.ReportMetric(float64(n)/took.Seconds(), "msgs/s")
		b.ReportMetric(float64(cpu.Microseconds())/1000/float64(n), "cpu_ms/msg")
		b.ReportMetric(float64(peakHeap)/(1<<20), "peak_heap_MB")
		b.ReportMetric(float64(rss)/(1<<20), "peak_rss_MB")
		b.Logf("first sync of %d messages in %v: %.0f msgs/s, %.2f ms CPU/msg, peak heap %.0f MB, peak RSS %.0f MB", n, took, float64(n)/took.Seconds(), float64(cpu.Microseconds())/1000/float64(n), float64(peakHeap)/(1<<20), float64(rss)/(1<<20))
	}
}

// benchCPUProfile starts a CPU profile of the sync into
// TEND_BENCH_CPUPROFILE plus the sub-benchmark's name, if set, and
// returns what stops it.
func benchCPUProfile(b *testing.B) func() {
	path := os.Getenv("TEND_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	_, sub, _ := strings.Cut(b.Name(), "/")
	f, err := os.Create(path + "." + sub)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		})
	}
	b.Cleanup(stop) // a failed run does not leave the profiler running
	return stop
}

// onFirstLog discards every record and closes seen at the first one whose
// message starts with prefix. The poller logs only once serve has opened
// (and migrated) the database, which the benchmark may then open too: two
// migrations at once would fail one of them.
type onFirstLog struct {
	prefix string
	seen   chan struct{}
	once   sync.Once
}

func (h *onFirstLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *onFirstLog) Handle(_ context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, h.prefix) {
		h.once.Do(func() { close(h.seen) })
	}
	return nil
}

func (h *onFirstLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *onFirstLog) WithGroup(string) slog.Handler      { return h }

// benchCopy returns message i of n taken from msgs: cycled, each copy
// made distinct by a header.
func benchCopy(msgs [][]byte, i int) []byte {
	raw := msgs[i%len(msgs)]
	if i >= len(msgs) {
		raw = append([]byte("X-Bench-Copy: "+strconv.Itoa(i)+"\r\n"), raw...)
	}
	return raw
}

// seedDovecot appends n messages of msgs (benchCopy) to INBOX over four
// connections, dated a day ago: backfill.
func seedDovecot(b *testing.B, d *dovecottest.Server, msgs [][]byte, n int) {
	const conns = 4
	var wg sync.WaitGroup
	date := time.Now().Add(-24 * time.Hour)
	for w := range conns {
		c := d.Client(b)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += conns {
				dovecottest.AppendWith(b, c, "INBOX", benchCopy(msgs, i), date)
			}
		}()
	}
	wg.Wait()
	if got := d.Count(b, "INBOX"); got != n {
		b.Fatalf("INBOX holds %d, want %d", got, n)
	}
}

// The in-memory server child's account.
const (
	memChildUser = "support@acme.test"
	memChildPass = "bench"
	memChildEnv  = "TEND_BENCH_IMAP_MEMSERVER_CHILD"
)

// TestIMAPMemServerChild is not a test: run by startMemIMAPChild with
// memChildEnv set to a count n, it serves n messages of benchCorpus
// (benchCopy, dated a day ago) from go-imap's in-memory server, prints
// its address and serves until stdin closes.
func TestIMAPMemServerChild(t *testing.T) {
	spec := os.Getenv(memChildEnv)
	if spec == "" {
		return
	}
	n, err := strconv.Atoi(spec)
	if err != nil {
		t.Fatal(err)
	}
	addr, u := memIMAP(t, memChildUser, memChildPass)
	msgs := benchCorpus(t)
	date := time.Now().Add(-24 * time.Hour)
	for i := range n {
		if _, err := u.Append("INBOX", memLiteral{strings.NewReader(string(benchCopy(msgs, i)))}, &imap.AppendOptions{Time: date}); err != nil {
			t.Fatal(err)
		}
	}
	msgs = nil
	fmt.Printf("ADDR %s\n", addr)
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// memLiteral is an APPEND literal for the in-memory server.
type memLiteral struct{ *strings.Reader }

// startMemIMAPChild runs TestIMAPMemServerChild in a child process and
// returns its address.
func startMemIMAPChild(b *testing.B, n int) string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestIMAPMemServerChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), memChildEnv+"="+strconv.Itoa(n))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = stdin.Close(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			go func() { _, _ = io.Copy(io.Discard, stdout) }()
			return addr
		}
	}
	b.Fatalf("the in-memory server child gave no address: %v", sc.Err())
	return ""
}

// unseeAll clears \Seen on every message, so that each iteration finds
// the mailbox as the first one did.
func unseeAll(b *testing.B, addr, user, pass string) {
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		b.Fatal(err)
	}
	if err := unseeCmd(c); err != nil {
		b.Fatal(err)
	}
}

// waitBackfill waits until the mailbox's checkpoint says the backfill is
// done, reading the database the server writes.
func waitBackfill(b *testing.B, cfg config.Config, done chan error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Minute)
	var st *storage.Store
	defer func() {
		if st != nil {
			_ = st.Close()
		}
	}()
	for {
		select {
		case err := <-done:
			b.Fatalf("serve ended during the sync: %v", err)
		case <-deadline:
			b.Fatal("first sync not done after 10 minutes")
		case <-tick.C:
		}
		if st == nil {
			if _, err := os.Stat(cfg.Database.DSN); err != nil {
				continue
			}
			s, err := storage.Open(context.Background(), storage.Options{Driver: storage.DriverSQLite, DSN: cfg.Database.DSN, DataDir: cfg.DataDir})
			if err != nil {
				continue
			}
			st = s
		}
		m, ok, err := st.GetMailboxState(context.Background(), "support@acme.test/INBOX")
		if err == nil && ok && m.BackfillDone {
			return
		}
	}
}

func unseeCmd(c *imapclient.Client) error {
	store := &imap.StoreFlags{Op: imap.StoreFlagsDel, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}
	return c.Store(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, store, nil).Close()
}
