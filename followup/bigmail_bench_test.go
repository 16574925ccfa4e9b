package followup_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/followup"
	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/rules"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/threading"
)

// BenchBigMailEnv sets the size in MB of each of the 20 mails of
// BenchmarkBigMailProcessing (default 24, the figure).
const BenchBigMailEnv = "TEND_BENCH_BIG_MB"

// bigLogMail is a customer's mail of about size bytes: a text body (a
// pasted log) of half the size and a base64 attachment of the other half.
func bigLogMail(i, size int) []byte {
	// Random attachment bytes and numbered log lines: PostgreSQL
	// compresses what it stores, and a repeated pattern would measure
	// the compressor.
	rng := rand.New(rand.NewPCG(uint64(i), 1))
	chunk := make([]byte, 57)
	var sb strings.Builder
	sb.Grow(size + 4096)
	fmt.Fprintf(&sb, "From: Ann Example <ann%d@example.com>\r\nTo: Acme Support <support@acme.test>\r\nSubject: Crash log %d\r\n"+
		"Message-ID: <biglog%d@example.com>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/mixed; boundary=\"b0undary\"\r\n\r\n--b0undary\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", i, i, i)
	for n := 0; sb.Len() < size/2; n++ {
		fmt.Fprintf(&sb, "2026-03-02T10:%02d:%02d.%06dZ worker[%d]: request %x failed, retrying in 5s\r\n", n/60%60, n%60, n, rng.IntN(64), rng.Uint64())
	}
	sb.WriteString("--b0undary\r\nContent-Type: application/pdf; name=\"dump.pdf\"\r\nContent-Disposition: attachment; filename=\"dump.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for sb.Len() < size {
		for j := range chunk {
			chunk[j] = byte(rng.Uint32())
		}
		sb.WriteString(base64.StdEncoding.EncodeToString(chunk))
		sb.WriteString("\r\n")
	}
	sb.WriteString("--b0undary--\r\n")
	return []byte(sb.String())
}

// procStatus returns a field of /proc/self/status in bytes (VmHWM: peak
// RSS), or 0 where there is none.
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// resetPeakRSS starts VmHWM over from the current RSS (Linux clear_refs).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// BenchmarkBigMailProcessing is issue 10's burst on the work after the
// 250: 20 mails of 24 MB (TEND_BENCH_BIG_MB) are stored through the
// pipeline, then the processor parses them and runs the default rules
// (acknowledgement, notifications to three agents). It reports the time
// until all are processed, the longest RunOnce (which bounds the longest
// processor transaction), the growth of the database and data directory
// over the bytes received, and the peak RSS while processing; on SQLite
// and PostgreSQL. Run with -benchtime=1x.
func BenchmarkBigMailProcessing(b *testing.B) {
	mb := 24
	if v := os.Getenv(BenchBigMailEnv); v != "" {
		mb, _ = strconv.Atoi(v)
	}
	for _, backend := range []string{storage.DriverSQLite, storage.DriverPostgres} {
		b.Run(backend, func(b *testing.B) {
			for range b.N {
				benchBigMail(b, backend, mb<<20)
			}
		})
	}
}

func benchBigMail(b *testing.B, backend string, size int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clock := storage.SystemClock{}
	dir := b.TempDir()
	opts := storage.Options{Driver: backend, DataDir: dir, Clock: clock}
	var pg *sql.DB
	if backend == storage.DriverPostgres {
		opts.DSN = storagetest.PostgresDSN(b)
		var err error
		if pg, err = sql.Open("pgx", opts.DSN); err != nil {
			b.Fatal(err)
		}
		defer pg.Close()
	}
	st, err := storage.Open(ctx, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	go func() { _ = st.RunMaintenance(ctx) }()
	if err := st.SyncInboxes(ctx, []storage.InboxSpec{{Address: inbox, Name: "Acme Support", ResponseTime: 4 * time.Hour}}); err != nil {
		b.Fatal(err)
	}
	if err := st.SyncAgents(ctx, []storage.AgentSpec{{Email: alice, Name: "Alice"}, {Email: lena, Name: "Lena", Role: storage.RoleLead}, {Email: "omar@acme.test", Name: "Omar"}}); err != nil {
		b.Fatal(err)
	}
	signer, err := threading.NewSigner("a", threading.Key{ID: "a", Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		b.Fatal(err)
	}
	tpl, err := rules.LoadTemplates("")
	if err != nil {
		b.Fatal(err)
	}
	ro := rules.DefaultOptions()
	ro.Templates, ro.OwnAddresses = tpl, []string{inbox}
	eng, err := rules.Default(ro)
	if err != nil {
		b.Fatal(err)
	}
	exec, err := followup.New(followup.Options{Store: st, Engine: eng, Templates: tpl, Signer: signer, Domain: domain, BaseURL: "https://support.acme.test", LoopValue: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	committer := st.NewCommitter(16, nil)
	go func() { _ = committer.Run(ctx) }()
	pipe, err := ingest.New(ingest.Options{Committer: committer, Inboxes: []string{inbox},
		Threader: ingest.DecisionThreader{Config: threading.Config{OwnAddresses: []string{inbox}, OwnDomains: []string{domain},
			SubjectWindow: 7 * 24 * time.Hour, Signer: signer, Clock: clock}}})
	if err != nil {
		b.Fatal(err)
	}
	size0 := benchStoredBytes(b, dir, pg)
	var received int64
	for i := range 20 {
		raw := bigLogMail(i, size)
		received += int64(len(raw))
		if _, err := pipe.Deliver(ctx, raw, ingest.Envelope{From: fmt.Sprintf("ann%d@example.com", i), To: []string{inbox}, Source: "smtp"}); err != nil {
			b.Fatal(err)
		}
	}
	resetPeakRSS()
	var longestTx time.Duration
	proc := ingest.NewProcessor(st, ingest.ProcessorOptions{Owner: "bench", AfterParse: exec.HandleMessage,
		OnBatch: func(s ingest.BatchStats) { longestTx = max(longestTx, s.Duration) }})
	start := time.Now()
	var longest time.Duration
	for {
		t0 := time.Now()
		n, err := proc.RunOnce(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			break
		}
		longest = max(longest, time.Since(t0))
	}
	elapsed := time.Since(start)
	peak := procStatus("VmHWM")
	// The checkpoint the maintenance loop runs every second, run here
	// once, so the disk figure does not count a WAL it would truncate.
	if err := st.Checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	stored := benchStoredBytes(b, dir, pg) - size0
	b.ReportMetric(elapsed.Seconds(), "s-to-process")
	b.ReportMetric(longest.Seconds(), "s-longest-runonce")
	b.ReportMetric(float64(stored)/float64(received), "stored/received")
	b.ReportMetric(float64(peak)/(1<<20), "MB-peak-rss")
	b.ReportMetric(longestTx.Seconds(), "s-longest-tx")
	b.Logf("%s: 20 × %d MB processed in %v; longest RunOnce %v, longest transaction %v; stored %d of %d received (%.2f×); peak RSS while processing %d MB",
		st.Driver(), size>>20, elapsed, longest, longestTx, stored, received, float64(stored)/float64(received), peak>>20)
}

// benchStoredBytes is the data directory's size, plus the database's on
// PostgreSQL.
func benchStoredBytes(b *testing.B, dir string, pg *sql.DB) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	if pg != nil {
		var db int64
		if err := pg.QueryRow("SELECT pg_database_size(current_database())").Scan(&db); err != nil {
			b.Fatal(err)
		}
		n += db
	}
	return n
}
