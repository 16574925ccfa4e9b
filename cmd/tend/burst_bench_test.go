package main

import (
	"bufio"
	"context"
	"database/sql"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/cmd/tend/config"
	"github.com/tendhq/tend/internal/smtpload"
	"github.com/tendhq/tend/mail/classify"
	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/mail/smtpd"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/threading"
)

// BenchmarkLargeMailBurst sends 20 messages of 24 MB at once over real
// SMTP (issue 10: "bounded memory, bounded disk"), and small mail one
// after another beside them, and reports:
//
//   - peak_rss_MB: the process's peak resident set (VmHWM, reset before
//     the burst through /proc/self/clear_refs) until the last 250: the
//     whole test process, clients included (they stream their messages
//     from a generator and hold none);
//   - disk_ratio: bytes the data directory (SQLite) or the database
//     (PostgreSQL) grew by, over the bytes received;
//   - small_p99_ms: DATA-to-250 of the small messages during the burst;
//   - refused: messages not answered 250 (451 and the like).
//
// "serve" is the whole server (serve(): the processor parses behind the
// 250s); "door" is the SMTP door, the ingest path and the committer
// alone, without the processor, to tell intake's share from the parse's.
// Run it with -benchtime=1x: one burst is the measurement. With
// TEND_BENCH_WAIT_PROCESSED=1, "serve" also waits until the processor has
// parsed everything and reports processed_peak_rss_MB.
func BenchmarkLargeMailBurst(b *testing.B) {
	const n, size = 20, 24 << 20
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, part := range []string{"door", "serve"} {
			b.Run(backend+"/"+part, func(b *testing.B) {
				for range b.N {
					inst := startBurstTarget(b, backend, part)
					burst(b, inst, n, size)
				}
			})
		}
	}
}

// burstTarget is a running server and where it keeps its bytes.
type burstTarget struct {
	addr    string
	dataDir string
	dsn     string // postgres only
	serve   bool   // the whole server, processor included
}

// waitProcessed waits until no work is left in the server's database;
// false means some was still pending after limit.
func (t burstTarget) waitProcessed(b *testing.B, limit time.Duration) bool {
	opts := storage.Options{Driver: storage.DriverSQLite, DSN: filepath.Join(t.dataDir, "tend.db")}
	if t.dsn != "" {
		opts = storage.Options{Driver: storage.DriverPostgres, DSN: t.dsn}
	}
	st, err := storage.Open(context.Background(), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(limit)
	for {
		c, err := st.Counts(context.Background())
		if err == nil && c.PendingWork == 0 {
			return true
		}
		select {
		case <-tick.C:
		case <-deadline:
			b.Logf("work still pending after %s", limit)
			return false
		}
	}
}

func startBurstTarget(b *testing.B, backend, part string) burstTarget {
	b.Helper()
	t := burstTarget{dataDir: b.TempDir()}
	if backend == "postgres" {
		t.dsn = storagetest.PostgresDSN(b)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	t.addr = l.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	if part == "serve" {
		t.serve = true
		_ = l.Close()
		cfg := config.Default()
		cfg.DataDir, cfg.Database.DSN = t.dataDir, filepath.Join(t.dataDir, "tend.db")
		if backend == "postgres" {
			cfg.Database.Driver, cfg.Database.DSN = "postgres", t.dsn
		}
		cfg.SMTP.Listen, cfg.Web.Listen, cfg.SMTP.Hostname = t.addr, "", "mail.acme.test"
		cfg.Inboxes = []config.Inbox{{Address: "support@acme.test", Name: "Acme Support", ResponseTime: 4 * time.Hour}}
		cfg.Agents = []config.Agent{{Email: "alice@acme.test", Name: "Alice", Role: "agent"}}
		// No live DNS, as in every test (see writeConfig): a lookup that
		// waits for an unreachable resolver is counted in the small
		// messages' DATA-to-250, and measures the network, not tend.
		cfg.SenderAuth.Verify = false
		done := make(chan error, 1)
		go func() { done <- serve(ctx, cfg, slog.New(slog.DiscardHandler), io.Discard) }()
		b.Cleanup(func() { cancel(); <-done })
		waitListening(b, t.addr, done)
		return t
	}
	opts := storage.Options{Driver: backend, DSN: t.dsn, DataDir: t.dataDir}
	st, err := storage.Open(ctx, opts)
	if err != nil {
		b.Fatal(err)
	}
	inboxes := []string{"support@acme.test"}
	if err := st.SyncInboxes(ctx, []storage.InboxSpec{{Address: inboxes[0], Name: "Acme Support", ResponseTime: 4 * time.Hour}}); err != nil {
		b.Fatal(err)
	}
	signer, err := loadSigner(ctx, st, "")
	if err != nil {
		b.Fatal(err)
	}
	committer := st.NewCommitter(256, nil)
	go func() { _ = committer.Run(ctx) }()
	pipe, err := ingest.New(ingest.Options{Committer: committer, Inboxes: inboxes,
		Threader: ingest.DecisionThreader{Config: threading.Config{OwnAddresses: inboxes, OwnDomains: []string{"mail.acme.test"},
			SubjectWindow: 7 * 24 * time.Hour, Signer: signer, Clock: storage.SystemClock{}}},
		Own: classify.Own{Addresses: inboxes, Domains: []string{"mail.acme.test"}}})
	if err != nil {
		b.Fatal(err)
	}
	door := burstDoor(pipe, t.dataDir)
	go func() { _ = door.Serve(l) }()
	b.Cleanup(func() { _ = door.Shutdown(context.Background()); cancel(); _ = st.Close() })
	return t
}

// burstDoor is the SMTP door as serve() builds it, with the default
// limits.
func burstDoor(pipe *ingest.Pipeline, dataDir string) *smtpd.Server {
	cfg := config.Default()
	cfg.DataDir, cfg.SMTP.Hostname = dataDir, "mail.acme.test"
	rcpts := ingest.Recipients{Pipeline: pipe, Domain: "mail.acme.test"}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return smtpd.New(smtpOptions(cfg, log, nil), pipe, rcpts, false)
}

func waitListening(b *testing.B, addr string, done chan error) {
	for range 1000 {
		if c, err := net.Dial("tcp", addr); err == nil {
			_ = c.Close()
			return
		}
		select {
		case err := <-done:
			b.Fatalf("serve: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	b.Fatal("tend did not listen")
}

func burst(b *testing.B, t burstTarget, n, size int) {
	disk0 := t.bytesStored(b)
	resetPeakRSS(b)
	b.ResetTimer()
	res := smtpload.Burst(context.Background(), t.addr, "support@acme.test", n, size)
	peak := peakRSS(b)
	b.StopTimer()
	for _, err := range res.Refused {
		// Reported as a figure, not a failure: the benchmark measures
		// what happens, refusals included (main answered 451 on
		// PostgreSQL).
		b.Log(err)
	}
	b.ReportMetric(float64(len(res.Refused)), "refused")
	if os.Getenv("TEND_BENCH_WAIT_PROCESSED") != "" && t.serve {
		// The processor's share: until every message is parsed.
		t.waitProcessed(b, 15*time.Minute)
		b.ReportMetric(float64(peakRSS(b))/(1<<20), "processed_peak_rss_MB")
	}
	received := float64(n) * float64(size)
	b.ReportMetric(float64(peak)/(1<<20), "peak_rss_MB")
	b.ReportMetric(float64(t.bytesStored(b)-disk0)/received, "disk_ratio")
	if len(res.Small) > 0 {
		b.ReportMetric(float64(res.SmallP99().Microseconds())/1000, "small_p99_ms")
		b.ReportMetric(float64(len(res.Small)), "small_msgs")
	}
}

// bytesStored is what the server keeps: the data directory, plus the
// database on PostgreSQL.
func (t burstTarget) bytesStored(b *testing.B) int64 {
	var total int64
	_ = filepath.WalkDir(t.dataDir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	if t.dsn != "" {
		db, err := sql.Open("pgx", t.dsn)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		var n int64
		if err := db.QueryRow("SELECT pg_database_size(current_database())").Scan(&n); err != nil {
			b.Fatal(err)
		}
		total += n
	}
	return total
}

// resetPeakRSS starts VmHWM again from the current RSS (Linux ≥ 4.0).
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("peak RSS not reset (%v): the figure is since the process started", err)
	}
}

// peakRSS reads VmHWM from /proc/self/status, in bytes.
func peakRSS(b *testing.B) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}
