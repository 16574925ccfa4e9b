package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tendhq/tend/cmd/tend/config"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// historyMail is message i of a generated history: threads of three, the
// first a customer's question, the next two replies to the one before,
// as a mail client writes them (References, In-Reply-To, "Re:"). A reply
// comes lag messages after the one it answers, as other customers write
// in between: lag questions, then their first replies, then their second.
func historyMail(i, lag int) []byte {
	block, k := i/(3*lag), i%(3*lag)
	thread, pos := block*lag+k%lag, k/lag
	var b bytes.Buffer
	fmt.Fprintf(&b, "Return-Path: <c%d@example.com>\nFrom: Customer %d <c%d@example.com>\nTo: support@acme.test\n", thread, thread, thread)
	subj := fmt.Sprintf("Order %d has not arrived", thread)
	if pos > 0 {
		subj = "Re: " + subj
		var refs []string
		for p := range pos {
			refs = append(refs, fmt.Sprintf("<hist-%d-%d@example.com>", thread, p))
		}
		fmt.Fprintf(&b, "In-Reply-To: %s\nReferences: %s\n", refs[len(refs)-1], strings.Join(refs, " "))
	}
	fmt.Fprintf(&b, "Subject: %s\nMessage-ID: <hist-%d-%d@example.com>\nDate: Mon, 2 Mar 2026 09:%02d:%02d +0000\n", subj, thread, pos, (i/60)%60, i%60)
	b.WriteString("MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n")
	fmt.Fprintf(&b, "Hello,\n\nmessage %d of thread %d.\n", pos, thread)
	// A line an mbox writer must quote.
	b.WriteString("From the warehouse they said it left on Monday.\n")
	b.WriteString(strings.Repeat("Some more words about the order and the parcel. ", 20) + "\n\nThanks,\nCustomer\n")
	return b.Bytes()
}

// historyLag is the lag of a history of n messages: up to 100, and n a
// multiple of three lags, so that it holds n/3 whole threads.
func historyLag(t testing.TB, n int) int {
	lag := min(100, n/3)
	if n%(3*lag) != 0 {
		t.Fatalf("a history of %d messages does not hold whole threads", n)
	}
	return lag
}

// writeHistory writes n generated messages as an mboxrd file.
func writeHistory(t testing.TB, path string, n int) {
	t.Helper()
	writeHistoryLag(t, path, n, historyLag(t, n))
}

func writeHistoryLag(t testing.TB, path string, n, lag int) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := range n {
		if err := mboxQuote(w, "c@example.com Mon Mar  2 09:00:00 2026", historyMail(i, lag)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// createDatabase makes the database of cfgPath, as tend serve's first
// start does: import opens only an existing one.
func createDatabase(t testing.TB, cfgPath string) {
	t.Helper()
	cfg, err := config.Load(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := storage.Open(context.Background(), storeOptions(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// runImport runs `tend import` in-process and returns what it printed.
func runImport(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(context.Background(), append([]string{"import"}, args...), nil, &out, &errb); code != 0 {
		t.Fatalf("tend import %v: exit %d\n%s%s", args, code, out.String(), errb.String())
	}
	return out.String()
}

func ticketTotal(c storage.Counts) int64 {
	var n int64
	for _, v := range c.TicketsByState {
		n += v
	}
	return n
}

// TestImportMbox imports a history into both backends: every message is
// stored once, replies are threaded onto their question's ticket (one
// ticket per thread, although the pool commits many at once), and a second
// run starts at the end and stores nothing.
func TestImportMbox(t *testing.T) {
	const n = 300
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			cfg := writeConfig(t, dir, backend, "")
			createDatabase(t, cfg)
			mbox := filepath.Join(dir, "history.mbox")
			writeHistory(t, mbox, n)
			out := runImport(t, "mbox", mbox, "--config", cfg, "--quiet")
			if !strings.Contains(out, fmt.Sprintf(": %d messages (%d new tickets, 0 already stored", n, n/3)) {
				t.Errorf("summary: %q", out)
			}
			counts, outbox := storeCounts(t, cfg)
			if counts.Messages != n || counts.RawMessages != n {
				t.Errorf("%d messages, %d raw, want %d", counts.Messages, counts.RawMessages, n)
			}
			if got := ticketTotal(counts); got != n/3 {
				t.Errorf("%d tickets for %d threads", got, n/3)
			}
			if len(outbox) != 0 {
				t.Errorf("the import itself queued %d mails", len(outbox))
			}
			out = runImport(t, "mbox", mbox, "--config", cfg, "--quiet")
			if !strings.Contains(out, ": 0 messages") || !strings.Contains(out, "resumed at byte") {
				t.Errorf("second run: %q", out)
			}
			if c, _ := storeCounts(t, cfg); c.Messages != n {
				t.Errorf("after a second run: %d messages", c.Messages)
			}
		})
	}
}

// TestImportSeveralFiles: one command, several mbox files, each with its
// own position.
func TestImportSeveralFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "sqlite", "")
	createDatabase(t, cfg)
	a, b := filepath.Join(dir, "a.mbox"), filepath.Join(dir, "b.mbox")
	writeHistory(t, a, 30)
	f, err := os.Create(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if err := mboxQuote(f, "x", historyMail(999+i, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	out := runImport(t, "mbox", a, b, "--config", cfg, "--quiet")
	if strings.Count(out, "imported ") != 2 || !strings.Contains(out, "a.mbox: 30 messages") || !strings.Contains(out, "b.mbox: 6 messages") {
		t.Errorf("summary: %q", out)
	}
	if c, _ := storeCounts(t, cfg); c.Messages != 36 || ticketTotal(c) != 12 {
		t.Errorf("%d messages on %d tickets, want 36 on 12", c.Messages, ticketTotal(c))
	}
}

// TestImportMboxQuotedLines: the stored bytes are the message as it was
// before the mbox writer quoted its "From " lines.
func TestImportMboxQuotedLines(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "sqlite", "")
	createDatabase(t, cfg)
	mbox := filepath.Join(dir, "one.mbox")
	writeHistoryLag(t, mbox, 1, 1)
	runImport(t, "mbox", mbox, "--config", cfg, "--quiet")
	c, err := config.Load(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := storage.Open(context.Background(), storeOptions(c))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := st.GetMessage(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := st.Raw(context.Background(), m.RawHash)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, historyMail(0, 1)) {
		t.Errorf("stored bytes differ from the message:\n%s", raw)
	}
	if !m.Imported || !strings.HasPrefix(m.Source, "import:") {
		t.Errorf("message not marked imported: imported=%v source=%q", m.Imported, m.Source)
	}
}

// TestImportMaildir reads cur/ and new/, flags and all, and a re-run
// skips what is stored.
func TestImportMaildir(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "sqlite", "")
	createDatabase(t, cfg)
	md := filepath.Join(dir, "Maildir")
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(md, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	const n = 30
	lag := historyLag(t, n)
	for i := range n {
		name := fmt.Sprintf("17726%05d.M%dP100.host", i, i)
		sub := "new"
		if i%2 == 0 {
			sub, name = "cur", name+":2,S"
		}
		if err := os.WriteFile(filepath.Join(md, sub, name), historyMail(i, lag), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Half-delivered mail in tmp/ is not mail yet.
	if err := os.WriteFile(filepath.Join(md, "tmp", "partial"), []byte("Subject: half"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := runImport(t, "maildir", md, "--config", cfg, "--quiet")
	if !strings.Contains(out, fmt.Sprintf(": %d messages (%d new tickets", n, n/3)) {
		t.Errorf("summary: %q", out)
	}
	out = runImport(t, "maildir", md, "--config", cfg, "--quiet")
	if !strings.Contains(out, ": 0 messages") {
		t.Errorf("second run: %q", out)
	}
	if c, _ := storeCounts(t, cfg); c.Messages != n || ticketTotal(c) != n/3 {
		t.Errorf("%d messages on %d tickets, want %d on %d", c.Messages, ticketTotal(c), n, n/3)
	}
}

// TestImportUsage: the command refuses what it cannot do before it
// touches anything.
func TestImportUsage(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "sqlite", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"import"}, "usage"},
		{[]string{"import", "pst", "x"}, "usage"},
		{[]string{"import", "mbox", "--config", cfg}, "at least one PATH"},
		{[]string{"import", "mbox", filepath.Join(dir, "x.mbox"), "--config", cfg}, "no database"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), tc.args, nil, &out, &errb); code == 0 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, %q; want an error saying %q", tc.args, code, errb.String(), tc.want)
		}
	}
	createDatabase(t, cfg)
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"import", "mbox", cfg, "--config", cfg, "--inbox", "nobody@acme.test"}, nil, &out, &errb); code == 0 ||
		!strings.Contains(errb.String(), "not a configured inbox") {
		t.Errorf("unknown inbox: exit %d, %q", code, errb.String())
	}
	errb.Reset()
	if code := run(context.Background(), []string{"import", "mbox", cfg, "--config", cfg}, nil, &out, &errb); code == 0 || !strings.Contains(errb.String(), "not at the start of an mbox message") {
		t.Errorf("a YAML file as an mbox: exit %d, %q", code, errb.String())
	}
}

// TestImportRefusesARunningSQLiteServer: with the data directory's lock
// held (as tend serve holds it), import on SQLite stops before it writes,
// since two processes appending to the segment files would corrupt them.
func TestImportRefusesARunningSQLiteServer(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "sqlite", "")
	createDatabase(t, cfg)
	mbox := filepath.Join(dir, "history.mbox")
	writeHistory(t, mbox, 30)
	f, err := os.OpenFile(filepath.Join(dir, "data", lockName), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"import", "mbox", mbox, "--config", cfg, "--quiet"}, nil, &out, &errb); code == 0 ||
		!strings.Contains(errb.String(), "stop it first") {
		t.Errorf("beside a server: exit %d, %q", code, errb.String())
	}
	if c, _ := storeCounts(t, cfg); c.Messages != 0 {
		t.Errorf("%d messages stored beside the server", c.Messages)
	}
	if err := f.Close(); err != nil { // the server stops
		t.Fatal(err)
	}
	if out := runImport(t, "mbox", mbox, "--config", cfg, "--quiet"); !strings.Contains(out, ": 30 messages") {
		t.Errorf("after the server stopped: %q", out)
	}
}

// TestImportSendsNoMail: imported mail is parsed and run through the rules
// by tend serve like any mail, and nothing is sent for it: after the
// server has worked through it, the outbox holds only what one live mail,
// sent afterwards, caused.
func TestImportSendsNoMail(t *testing.T) {
	const n = 60
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "sqlite", "")
	createDatabase(t, cfg)
	mbox := filepath.Join(dir, "history.mbox")
	writeHistory(t, mbox, n)
	runImport(t, "mbox", mbox, "--config", cfg, "--quiet")

	p := startTend(t, cfg)
	if err := sendMail(p.SMTPAddr, "live@example.com", []string{"support@acme.test"},
		mailText("Live <live@example.com>", "support@acme.test", "A new question", "live-1@example.com", "", "Hello.")); err != nil {
		t.Fatal(err)
	}
	tok := p.token("lead")
	// Work is processed in the order it was stored: once the live mail's
	// acknowledgement is queued, the history before it has been through
	// the rules too.
	waitFor(t, "the live mail's acknowledgement", 30*time.Second, func() bool {
		var l ticketList
		p.getJSON(tok, "/api/tickets?state=all", &l)
		for _, tk := range l.Tickets {
			var dt ticketDetail
			p.getJSON(tok, fmt.Sprintf("/api/tickets/%d", tk.Number), &dt)
			for _, m := range dt.Messages {
				if m.Direction == "out" {
					return true
				}
			}
		}
		return false
	})
	p.Stop()
	counts, outbox := storeCounts(t, cfg)
	if counts.PendingWork != 0 {
		t.Fatalf("%d messages still to process: the check would prove nothing", counts.PendingWork)
	}
	if counts.Messages < n+1 {
		t.Fatalf("%d messages stored, want at least %d", counts.Messages, n+1)
	}
	liveTicket := liveTicketOf(t, cfg, n+1)
	live := 0
	for _, o := range outbox {
		if o.TicketID == nil || *o.TicketID != liveTicket {
			t.Errorf("mail queued for imported history: %s to %s (ticket %v)", o.Kind, o.EnvTo, o.TicketID)
			continue
		}
		live++
	}
	if live == 0 {
		t.Errorf("the live mail queued nothing: the check cannot see mail")
	}
}

// liveTicketOf is the ticket of message row id in cfgPath's database.
func liveTicketOf(t *testing.T, cfgPath string, id int64) int64 {
	t.Helper()
	c, err := config.Load(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := storage.Open(context.Background(), storeOptions(c))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := st.GetMessage(context.Background(), id)
	if err != nil || m.TicketID == nil || m.Imported {
		t.Fatalf("message %d: %+v, %v: not the live mail", id, m, err)
	}
	return *m.TicketID
}

var checkpointRE = regexp.MustCompile(`msg="import checkpoint".* messages=(\d+)`)

// TestImportResumesAfterKill kills the real binary (SIGKILL, no shutdown
// code) in the middle of an import and runs it again: it resumes at the
// saved position, and every message is stored exactly once.
func TestImportResumesAfterKill(t *testing.T) {
	const n = 6000
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "sqlite", "")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, bytes.Replace(b, []byte("log: {level: info}"), []byte("log: {level: debug}"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	createDatabase(t, cfg)
	mbox := filepath.Join(dir, "history.mbox")
	writeHistory(t, mbox, n)

	cmd := exec.Command(tendBinary(t), "import", "mbox", mbox, "--config", cfg, "--quiet")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	killedAt := 0
	for sc.Scan() {
		if m := checkpointRE.FindStringSubmatch(sc.Text()); m != nil {
			if k, _ := strconv.Atoi(m[1]); k >= 500 {
				killedAt = k
				break
			}
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if killedAt == 0 || strings.Contains(stdout.String(), "imported") {
		t.Fatalf("the import ended before the kill (checkpoint at %d): nothing was tested\n%s", killedAt, stdout.String())
	}
	before, _ := storeCounts(t, cfg)
	if before.Messages >= n {
		t.Fatalf("all %d stored before the kill: nothing was tested", before.Messages)
	}

	out, err := exec.Command(tendBinary(t), "import", "mbox", mbox, "--config", cfg, "--quiet").CombinedOutput()
	if err != nil {
		t.Fatalf("re-run: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "resumed at byte") {
		t.Errorf("the re-run did not resume: %s", out)
	}
	counts, _ := storeCounts(t, cfg)
	if counts.Messages != n || counts.RawMessages != n || ticketTotal(counts) != n/3 {
		t.Errorf("killed with %d stored; after the re-run %d messages, %d raw, %d tickets; want %d, %d, %d",
			before.Messages, counts.Messages, counts.RawMessages, ticketTotal(counts), n, n, n/3)
	}
	t.Logf("killed at checkpoint %d (%d stored); re-run: %s", killedAt, before.Messages, bytes.TrimSpace(out))
}

// BenchmarkImport imports a generated mbox of 10,200 messages (threads
// of three, ~1.5 KB each) and reports messages per second: with replies
// 100 messages after what they answer, and with every reply right after
// it (the worst case: each waits for its parent's commit).
func BenchmarkImport(b *testing.B) {
	const n = 10200
	for _, c := range []struct {
		backend string
		lag     int
	}{{"sqlite", 100}, {"sqlite", 1}, {"postgres", 100}, {"postgres", 1}} {
		backend := c.backend
		b.Run(fmt.Sprintf("%s/lag=%d", backend, c.lag), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				dir := b.TempDir()
				db := ""
				if backend == "postgres" {
					db = fmt.Sprintf("database: {driver: postgres, dsn: %q}\n", storagetest.PostgresDSN(b))
				}
				cfg := filepath.Join(dir, "tend.yaml")
				if err := os.WriteFile(cfg, []byte("data_dir: "+filepath.Join(dir, "data")+"\ninboxes: [{address: support@acme.test, name: Support}]\n"+db), 0o600); err != nil {
					b.Fatal(err)
				}
				createDatabase(b, cfg)
				mbox := filepath.Join(dir, "history.mbox")
				writeHistoryLag(b, mbox, n, c.lag)
				b.StartTimer()
				start, cpu := time.Now(), cpuTime()
				var out, errb bytes.Buffer
				if code := run(context.Background(), []string{"import", "mbox", mbox, "--config", cfg, "--quiet"}, nil, &out, &errb); code != 0 {
					b.Fatalf("import: %s", errb.String())
				}
				b.ReportMetric(n/time.Since(start).Seconds(), "msgs/s")
				b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1000/n, "cpu_ms/msg")
			}
		})
	}
}
