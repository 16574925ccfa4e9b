package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/tendhq/tend/cmd/tend/config"
	"github.com/tendhq/tend/mail/imappoll/dovecottest"
	"github.com/tendhq/tend/storage"
)

// BenchmarkIMAPFirstSync is the first sync of a mailbox from a real
// Dovecot into tickets, through the whole server (serve(): poller,
// ingest, group commit, threading; the processor runs behind it), on
// SQLite. The mailbox holds TEND_BENCH_IMAP_N messages (default 10,000)
// of the shared load generator's corpus when TEND_BENCH_CORPUS names its
// directory (go run ./cmd/gencorpus -dir DIR -n 10000 in ../shared/bench),
// else of benchCorpus's generated set. It reports:
//
//   - msgs/s: messages stored with their tickets per second, from the
//     server's start until the mailbox's backfill is checkpointed done;
//   - cpu_ms/msg: this process's CPU over that time (tend and the
//     benchmark's own polling; Dovecot is another process);
//   - peak_rss_MB: the process's peak resident set (VmHWM, reset first).
//
// With TEND_BENCH_WAIT_PROCESSED=1 it also waits until the processor has
// parsed everything (the after-work steps aside during the sync) and
// reports drained_msgs/s and drained_cpu_ms/msg over the whole run.
//
// Run it with -benchtime=1x: one first sync is the measurement. Seeding
// Dovecot (APPEND over four connections) is not timed.
func BenchmarkIMAPFirstSync(b *testing.B) {
	n := 10000
	if v := os.Getenv("TEND_BENCH_IMAP_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("TEND_BENCH_IMAP_N: %v", err)
		}
	}
	d := dovecottest.Start(b)
	seedDovecot(b, d, benchCorpus(b), n)
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
		in.IMAP = &config.IMAP{Addr: d.Addr, TLS: "none", Insecure: true, Username: d.User, Password: d.Password, Auth: "plain",
			Mailbox: "INBOX", After: config.After{Action: config.AfterSeen}, PollInterval: time.Minute, StaleAfter: 10 * time.Minute}
		cfg.Inboxes = []config.Inbox{in}
		cfg.Agents = []config.Agent{{Email: "alice@acme.test", Name: "Alice", Role: "agent"}}
		unseeAll(b, d)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		resetPeakRSS(b)
		cpu0 := cpuTime()
		start := time.Now()
		b.StartTimer()
		go func() { done <- serve(ctx, cfg, slog.New(slog.DiscardHandler), io.Discard) }()
		waitBackfill(b, cfg, done)
		took := time.Since(start)
		b.StopTimer()
		cpu := cpuTime() - cpu0
		rss := peakRSS(b)
		if os.Getenv("TEND_BENCH_WAIT_PROCESSED") != "" {
			burstTarget{dataDir: cfg.DataDir}.waitProcessed(b, 10*time.Minute)
			all, allCPU := time.Since(start), cpuTime()-cpu0
			b.ReportMetric(float64(n)/all.Seconds(), "drained_msgs/s")
			b.ReportMetric(float64(allCPU.Microseconds())/1000/float64(n), "drained_cpu_ms/msg")
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
		b.ReportMetric(float64(rss)/(1<<20), "peak_rss_MB")
		b.Logf("first sync of %d messages in %v: %.0f msgs/s, %.2f ms CPU/msg, peak RSS %.0f MB", n, took, float64(n)/took.Seconds(), float64(cpu.Microseconds())/1000/float64(n), float64(rss)/(1<<20))
	}
}

// seedDovecot appends n messages of msgs (cycled, each made distinct by a
// header) to INBOX over four connections, dated a day ago: backfill.
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
				raw := msgs[i%len(msgs)]
				if i >= len(msgs) {
					raw = append([]byte("X-Bench-Copy: "+strconv.Itoa(i)+"\r\n"), raw...)
				}
				dovecottest.AppendWith(b, c, "INBOX", raw, date)
			}
		}()
	}
	wg.Wait()
	if got := d.Count(b, "INBOX"); got != n {
		b.Fatalf("INBOX holds %d, want %d", got, n)
	}
}

// unseeAll clears \Seen on every message, so that each iteration finds
// the mailbox as the first one did.
func unseeAll(b *testing.B, d *dovecottest.Server) {
	c := d.Client(b)
	defer c.Close()
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
