package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/smtp"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/schollz/progressbar/v3"

	"github.com/tendhq/tend/internal/procstat"
	"github.com/tendhq/tend/internal/smtpload"
	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/threading"
)

// benchRun is what one `tend bench` round measured: one concurrency, one
// fresh database, one tend serve process.
type benchRun struct {
	Concurrency int     `json:"concurrency"`
	Messages    int     `json:"messages"`
	IngestRate  float64 `json:"ingest_msgs_per_s"` // first mail in to the last 250
	P50MS       float64 `json:"p50_ms"`            // DATA to 250
	P99MS       float64 `json:"p99_ms"`
	// Drained: first mail in until no work is left and every outgoing
	// mail that is due has reached the relay sink.
	DrainedRate float64 `json:"drained_msgs_per_s"`
	DrainedS    float64 `json:"drained_s"`
	Relayed     int64   `json:"relayed"`  // mails the sink received
	Deferred    int64   `json:"deferred"` // not due yet (coalescing in notify_window, retries)
	// CPUms is the server process's CPU (user+system) per incoming
	// message, over the whole drained run.
	CPUms         float64 `json:"cpu_ms_per_msg"`
	PeakRSSMiB    float64 `json:"peak_rss_mib"`
	ThreadingP50  float64 `json:"threading_decision_p50_ms"`
	ThreadingP95  float64 `json:"threading_decision_p95_ms"`
	QueueP95MS    float64 `json:"queue_page_p95_ms"`
	TicketP95MS   float64 `json:"ticket_page_p95_ms"`
	TicketsStored int64   `json:"tickets"`
	// ReceivedBytes are the bytes of mail sent through the door;
	// DiskBytes what the store grew by meanwhile (SQLite: the data
	// directory, database, WAL and raw segments; PostgreSQL: the
	// database too), measured once drained and checkpointed as the
	// server's maintenance does; DiskRatio the one over the other.
	ReceivedBytes int64              `json:"received_bytes"`
	DiskBytes     int64              `json:"disk_bytes"`
	DiskRatio     float64            `json:"disk_ratio"`
	DiskParts     []storage.DiskPart `json:"disk_parts"` // the files and the largest tables and indexes, after
}

// cmdBench is `tend bench`: the benchmark a user runs on their own
// machine. Each concurrency gets a temporary database (SQLite, or a
// temporary database on the PostgreSQL server --dsn names) and its own
// `tend serve` with a relay to a sink inside this process and two
// agents, so every incoming mail causes the outgoing mail it does in
// production; the figures are the server process's own.
func cmdBench(ctx context.Context, args, env []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dsn := fs.String("dsn", "", "a PostgreSQL DSN (postgres://…): each round runs in a temporary database there; default SQLite in a temporary directory")
	n := fs.Int("messages", 2000, "messages per round")
	concs := fs.String("concurrency", "1,8,32", "SMTP connections, one round each")
	corpus := fs.String("corpus", "", "a directory of .eml files (../shared/bench gencorpus); default generated")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	quiet := fs.Bool("quiet", false, "no progress bar")
	drainFor := fs.Duration("drain-timeout", 10*time.Minute, "how long a round may take to drain")
	blastBin := fs.String("blast", "", "send with this external load generator (../shared/bench blast) instead of the built-in client; needs --corpus")
	burstN := fs.Int("burst", 0, "instead of the rounds: N large messages at once, with small mail sent beside them (issue 10's 20 x 24 MB)")
	burstMiB := fs.Int("burst-mib", 24, "size of each large message of --burst, MiB")
	profDir := fs.String("cpuprofile", "", "a directory: each round's server writes its CPU profile there (cpu-BACKEND-cC.pprof)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *n < 1 || *burstN < 0 || *burstMiB < 1 {
		return fmt.Errorf("%w: bench [--dsn DSN] [--messages N] [--concurrency 1,8,32] [--corpus DIR [--blast PATH]] [--burst N [--burst-mib 24]] [--json]", errUsage)
	}
	if *blastBin != "" && *corpus == "" {
		return fmt.Errorf("%w: --blast sends the .eml files of --corpus DIR", errUsage)
	}
	var cs []int
	for _, f := range strings.Split(*concs, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 1 || c > 1000 {
			return fmt.Errorf("%w: --concurrency %q: want numbers 1..1000", errUsage, *concs)
		}
		cs = append(cs, c)
	}
	if *profDir != "" {
		// Made here: a missing directory failed each round's server at
		// its start, reported as "tend serve exited".
		if err := os.MkdirAll(*profDir, 0o755); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
	}
	msgs := benchMessages(*n)
	if *corpus != "" {
		var err error
		if msgs, err = loadBenchMessages(*corpus); err != nil {
			return err
		}
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	if *burstN > 0 {
		return benchBurstCmd(ctx, bin, *dsn, *burstN, *burstMiB<<20, *drainFor, *asJSON, stdout)
	}
	var runs []benchRun
	for _, c := range cs {
		prof := ""
		if *profDir != "" {
			prof = filepath.Join(*profDir, fmt.Sprintf("cpu-%s-c%d.pprof", backendName(*dsn), c))
		}
		r, err := benchRound(ctx, bin, *dsn, msgs, *n, c, benchClient{blast: *blastBin, corpus: *corpus, quiet: *quiet, stderr: stderr}, *drainFor, prof)
		if err != nil {
			return fmt.Errorf("concurrency %d: %w", c, err)
		}
		runs = append(runs, r)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"backend": backendName(*dsn), "runs": runs})
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tC\tin msgs/s\tp50 ms\tp99 ms\tdrained msgs/s\tCPU ms/msg\tpeak RSS MiB\tthreading p95 ms\tqueue p95 ms\tticket p95 ms\trelayed\tdeferred\tdisk ÷ received\t\n", backendName(*dsn))
	for _, r := range runs {
		fmt.Fprintf(tw, "\t%d\t%.0f\t%.1f\t%.1f\t%.1f\t%.2f\t%.0f\t%.2f\t%.1f\t%.1f\t%d\t%d\t%.2f\t\n", r.Concurrency, r.IngestRate, r.P50MS, r.P99MS,
			r.DrainedRate, r.CPUms, r.PeakRSSMiB, r.ThreadingP95, r.QueueP95MS, r.TicketP95MS, r.Relayed, r.Deferred, r.DiskRatio)
	}
	return tw.Flush()
}

func backendName(dsn string) string {
	if dsn != "" {
		return "postgres"
	}
	return "sqlite"
}

// benchClient is what sends a round's mail: the built-in client, or the
// shared load generator (../shared/bench blast) so that tend and another
// server are blasted by the same program.
type benchClient struct {
	blast, corpus string // blast: its binary; corpus: the directory it sends
	quiet         bool
	stderr        io.Writer
}

// sent is what a client measured: messages answered 250 and their
// DATA-to-250 latency.
type sent struct {
	n        int
	bytes    int64 // of mail answered 250
	p50, p99 time.Duration
}

// send sends n messages over conc connections.
func (c benchClient) send(ctx context.Context, srv *benchServer, msgs [][]byte, n, conc int) (sent, error) {
	if c.blast == "" {
		lat, received, err := blast(srv.smtp, msgs, n, conc, c.quiet, c.stderr)
		slices.Sort(lat)
		return sent{n: len(lat), bytes: received, p50: pctile(lat, 0.5), p99: pctile(lat, 0.99)}, err
	}
	out, err := exec.CommandContext(ctx, c.blast, "-addr", srv.smtp, "-dir", c.corpus, "-c", strconv.Itoa(conc),
		"-n", strconv.Itoa(n), "-target", "tend", "-pid", strconv.Itoa(srv.cmd.Process.Pid)).Output()
	if err != nil {
		return sent{}, fmt.Errorf("%s: %w", c.blast, err)
	}
	var res struct {
		OK         int     `json:"ok"`
		Bytes      int64   `json:"bytes"`
		Errors     int     `json:"errors"`
		FirstError string  `json:"first_error"`
		P50        float64 `json:"data_p50_ms"`
		P99        float64 `json:"data_p99_ms"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return sent{}, fmt.Errorf("%s printed %q: %w", c.blast, out, err)
	}
	if res.Errors > 0 {
		return sent{}, fmt.Errorf("%s: %d errors, the first: %s", c.blast, res.Errors, res.FirstError)
	}
	msec := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	return sent{n: res.OK, bytes: res.Bytes, p50: msec(res.P50), p99: msec(res.P99)}, nil
}

// benchTarget is one round's fresh tend: its data directory or
// temporary PostgreSQL database, its relay sink and its process.
type benchTarget struct {
	dir, dsn string
	sink     *relaySink
	srv      *benchServer
	cleanup  []func()
}

// startBenchTarget starts a `tend serve` on a fresh database, with a relay
// to a sink in this process and two agents.
func startBenchTarget(ctx context.Context, bin, dsn, prof string) (t *benchTarget, err error) {
	t = &benchTarget{}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	if t.dir, err = os.MkdirTemp("", "tend-bench-"); err != nil {
		return t, err
	}
	t.cleanup = append(t.cleanup, func() { _ = os.RemoveAll(t.dir) })
	database := ""
	if dsn != "" {
		tmp, drop, err := tempPostgres(ctx, dsn)
		if err != nil {
			return t, err
		}
		t.cleanup = append(t.cleanup, drop)
		database = fmt.Sprintf("database: {driver: postgres, dsn: %q}\n", tmp)
		t.dsn = tmp
	}
	if t.sink, err = startSink(); err != nil {
		return t, err
	}
	t.cleanup = append(t.cleanup, t.sink.close)
	cfgPath := filepath.Join(t.dir, "tend.yaml")
	cfg := fmt.Sprintf(`data_dir: %s
smtp: {listen: "127.0.0.1:0", hostname: mail.acme.test}
web: {listen: "127.0.0.1:0"}
relay: {addr: %q, tls: none}
inboxes:
  - {address: support@acme.test, name: Acme Support, response_time: 4h}
agents:
  - {email: alice@acme.test, name: Alice, role: agent}
  - {email: lena@acme.test, name: Lena, role: lead}
# no live DNS in a benchmark: sender authentication is not measured
sender_auth: {verify: false}
log: {level: info}
`, t.dataDir(), t.sink.addr) + database
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return t, err
	}
	if t.srv, err = startBenchServer(ctx, bin, cfgPath, prof); err != nil {
		return t, err
	}
	t.cleanup = append(t.cleanup, t.srv.stop)
	return t, nil
}

func (t *benchTarget) dataDir() string { return filepath.Join(t.dir, "data") }

// close stops the server and removes what the round made, last made
// first.
func (t *benchTarget) close() {
	for i := len(t.cleanup) - 1; i >= 0; i-- {
		t.cleanup[i]()
	}
}

// open opens the round's database beside the server.
func (t *benchTarget) open(ctx context.Context) (*storage.Store, error) {
	opts := storage.Options{Driver: storage.DriverSQLite, DataDir: t.dataDir(), Existing: true}
	if t.dsn != "" {
		opts = storage.Options{Driver: storage.DriverPostgres, DSN: t.dsn, Existing: true}
	}
	return storage.Open(ctx, opts)
}

// waitDrained waits until no work is left and every outgoing mail that
// is due has been sent, and checks that the sink received every mail
// tend marked sent.
func (t *benchTarget) waitDrained(ctx context.Context, st *storage.Store, drainFor time.Duration) (storage.Counts, error) {
	deadline := time.Now().Add(drainFor)
	for {
		work, due, err := st.Backlog(ctx)
		if err != nil {
			return storage.Counts{}, err
		}
		if work == 0 && due == 0 {
			break
		}
		if time.Now().After(deadline) {
			return storage.Counts{}, fmt.Errorf("not drained after %v: %d work items, %d outgoing mails due", drainFor, work, due)
		}
		select {
		case <-ctx.Done():
			return storage.Counts{}, ctx.Err()
		case <-time.After(50 * time.Millisecond): // polling another process's progress
		}
	}
	counts, err := st.Counts(ctx)
	if err != nil {
		return counts, err
	}
	if got := t.sink.count.Load(); got != counts.SentOutbox {
		return counts, fmt.Errorf("tend marked %d mails sent, the relay sink received %d", counts.SentOutbox, got)
	}
	return counts, nil
}

// benchRound runs one concurrency on a fresh database.
func benchRound(ctx context.Context, bin, dsn string, msgs [][]byte, n, conc int, client benchClient, drainFor time.Duration, prof string) (benchRun, error) {
	r := benchRun{Concurrency: conc, Messages: n}
	t, err := startBenchTarget(ctx, bin, dsn, prof)
	if err != nil {
		return r, err
	}
	defer t.close()
	srv := t.srv
	disk0, err := t.bytesStored(ctx)
	if err != nil {
		return r, err
	}

	cpu0 := srv.cpu()
	start := time.Now()
	got, err := client.send(ctx, srv, msgs, n, conc)
	if err != nil {
		return r, err
	}
	doorDone := time.Since(start)
	// The external client sends each corpus file once: fewer than n when
	// the corpus is smaller.
	n, r.Messages = got.n, got.n
	r.IngestRate = float64(n) / doorDone.Seconds()
	r.P50MS, r.P99MS = ms(got.p50), ms(got.p99)
	r.ReceivedBytes = got.bytes

	st, err := t.open(ctx)
	if err != nil {
		return r, err
	}
	defer st.Close()
	counts, err := t.waitDrained(ctx, st, drainFor)
	if err != nil {
		return r, err
	}
	drained := time.Since(start)
	r.DrainedS, r.DrainedRate = drained.Seconds(), float64(n)/drained.Seconds()
	r.CPUms = float64((srv.cpu() - cpu0).Microseconds()) / 1000 / float64(n)
	r.Relayed, r.Deferred = t.sink.count.Load(), counts.DeferredOutbox
	disk1, err := t.settle(ctx, st)
	if err != nil {
		return r, err
	}
	usage, err := st.DiskUsage(ctx)
	if err != nil {
		return r, err
	}
	r.DiskBytes = disk1 - disk0
	r.DiskRatio = float64(r.DiskBytes) / float64(max(r.ReceivedBytes, 1))
	r.DiskParts = append(usage.Files, usage.Objects[:min(len(usage.Objects), 12)]...)
	for _, v := range counts.TicketsByState {
		r.TicketsStored += v
	}
	if r.ThreadingP50, r.ThreadingP95, err = threadingTime(ctx, st, msgs); err != nil {
		return r, err
	}
	// The pages fetched are tickets that exist: numbers are not
	// contiguous (a transaction retried on PostgreSQL leaves a gap in the
	// sequence, a merged ticket is not a page of its own).
	rows, _, err := st.Queue(ctx, storage.QueueFilter{State: "all", Limit: 500})
	if err != nil {
		return r, err
	}
	numbers := make([]int64, len(rows))
	for i, row := range rows {
		numbers[i] = row.Number
	}
	if r.QueueP95MS, r.TicketP95MS, err = pageTimes(srv, numbers); err != nil {
		return r, err
	}
	r.PeakRSSMiB = float64(srv.peakRSS()) / (1 << 20)
	return r, nil
}

// benchServer is a `tend serve` child process.
type benchServer struct {
	cmd             *exec.Cmd
	smtp, web       string
	login, password string
	done            chan struct{}
}

var (
	benchListenRE   = regexp.MustCompile(`msg="(smtp|web) listening" addr=(\S+)`)
	benchPasswordRE = regexp.MustCompile(`as (\S+) with the password (\S+)`)
	benchCSRFRE     = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

// startBenchServer starts `tend serve`; with prof it writes its CPU
// profile there when it stops.
func startBenchServer(ctx context.Context, bin, cfgPath, prof string) (*benchServer, error) {
	args := []string{"serve", "--config", cfgPath}
	if prof != "" {
		args = append(args, "--cpuprofile", prof)
	}
	s := &benchServer{cmd: exec.CommandContext(ctx, bin, args...), done: make(chan struct{})}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s.cmd.Stderr = s.cmd.Stdout
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	var logTail []string
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			if m := benchListenRE.FindStringSubmatch(line); m != nil {
				if m[1] == "smtp" {
					s.smtp = m[2]
				} else {
					s.web = m[2]
				}
			}
			if m := benchPasswordRE.FindStringSubmatch(line); m != nil {
				s.login, s.password = m[1], m[2]
			}
			logTail = append(logTail[max(len(logTail)-20, 0):], line)
			mu.Unlock()
			if strings.Contains(line, "tend is running") {
				once.Do(func() { close(ready) })
			}
		}
		_ = s.cmd.Wait()
	}()
	select {
	case <-ready:
		mu.Lock()
		defer mu.Unlock()
		return s, nil
	case <-s.done:
		mu.Lock()
		defer mu.Unlock()
		return nil, fmt.Errorf("tend serve exited:\n%s", strings.Join(logTail, "\n"))
	case <-time.After(60 * time.Second):
		s.stop()
		return nil, errors.New("tend serve did not start within 60s")
	}
}

func (s *benchServer) stop() { procstat.Stop(s.cmd.Process, s.done, 30*time.Second) }

// cpu is the server's user+system CPU so far.
func (s *benchServer) cpu() time.Duration { return procstat.CPU(s.cmd.Process.Pid) }

// peakRSS is the server's high-water resident set (VmHWM), in bytes.
func (s *benchServer) peakRSS() int64 { return procstat.PeakRSS(s.cmd.Process.Pid) }

// blast sends n messages over conc SMTP connections, each reused, and
// returns the DATA-to-250 latencies and the bytes of mail sent.
func blast(addr string, msgs [][]byte, n, conc int, quiet bool, stderr io.Writer) ([]time.Duration, int64, error) {
	bar := progressbar.DefaultSilent(int64(n))
	if !quiet {
		bar = progressbar.NewOptions(n, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription(fmt.Sprintf("C=%d", conc)),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionShowCount(), progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("msg"), progressbar.OptionSetWidth(30), progressbar.OptionClearOnFinish())
	}
	defer bar.Close()
	var next, sent atomic.Int64
	lat := make([][]time.Duration, conc)
	errs := make([]error, conc)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := smtp.Dial(addr)
			if err != nil {
				errs[w] = err
				return
			}
			defer c.Close()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					_ = c.Quit()
					return
				}
				raw := msgs[i%int64(len(msgs))]
				if i >= int64(len(msgs)) { // every message distinct
					raw = append([]byte(fmt.Sprintf("X-Bench-Copy: %d\r\n", i)), raw...)
				}
				took, err := sendOn(c, raw)
				if err != nil {
					errs[w] = fmt.Errorf("message %d: %w", i, err)
					return
				}
				lat[w] = append(lat[w], took)
				sent.Add(int64(len(raw)))
				_ = bar.Add(1)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, 0, err
	}
	return slices.Concat(lat...), sent.Load(), nil
}

// sendOn sends one message on an open session and returns the time from
// the end of DATA to the 250.
func sendOn(c *smtp.Client, raw []byte) (time.Duration, error) {
	if err := c.Mail("sender@example.com"); err != nil {
		return 0, err
	}
	if err := c.Rcpt("support@acme.test"); err != nil {
		return 0, err
	}
	wc, err := c.Data()
	if err != nil {
		return 0, err
	}
	if _, err := wc.Write(raw); err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := wc.Close(); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

func pctile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[int(p*float64(len(d)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// threadingTime times the threading decision for replies to the corpus
// at the database's current size, as the door makes it (a read-only
// transaction: the decision is rolled back).
func threadingTime(ctx context.Context, st *storage.Store, msgs [][]byte) (p50, p95 float64, err error) {
	signer, err := threading.NewSigner("b", threading.Key{ID: "b", Secret: []byte("tend-bench-signing-key-0123456789")})
	if err != nil {
		return 0, 0, err
	}
	th := ingest.DecisionThreader{Config: threading.Config{OwnAddresses: []string{"support@acme.test"}, OwnDomains: []string{"mail.acme.test"},
		SubjectWindow: 7 * 24 * time.Hour, Signer: signer, Clock: storage.SystemClock{}}}
	var took []time.Duration
	errRollback := errors.New("rollback")
	for i := 0; i < len(msgs) && len(took) < 200; i += max(len(msgs)/200, 1) {
		h := ingest.ParseHeaders(msgs[i])
		m := &ingest.Message{Headers: h}
		m.MessageID = fmt.Sprintf("bench-reply-%d@example.com", i)
		m.InReplyTo, m.References = []string{h.MessageID}, []string{h.MessageID}
		t0 := time.Now()
		err := st.InTx(ctx, func(tx *storage.Tx) error {
			if _, err := th.Place(ctx, m, tx); err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			return 0, 0, fmt.Errorf("threading: %w", err)
		}
		took = append(took, time.Since(t0))
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	return ms(pctile(took, 0.5)), ms(pctile(took, 0.95)), nil
}

// pageTimes logs in as the first-start admin and fetches the queue and
// pages of tickets (a spread of them) 50 times each.
func pageTimes(s *benchServer, tickets []int64) (queueP95, ticketP95 float64, err error) {
	if s.web == "" || s.password == "" || len(tickets) == 0 {
		return 0, 0, nil
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	base := "http://" + s.web
	page, err := c.Get(base + "/login")
	if err != nil {
		return 0, 0, err
	}
	form, _ := io.ReadAll(page.Body)
	_ = page.Body.Close()
	csrf := benchCSRFRE.FindSubmatch(form)
	if csrf == nil {
		return 0, 0, errors.New("the login page has no csrf field")
	}
	res, err := c.PostForm(base+"/login", url.Values{"email": {s.login}, "password": {s.password}, "csrf": {string(csrf[1])}})
	if err != nil {
		return 0, 0, err
	}
	_ = res.Body.Close()
	if res.Request.URL.Path != "/" {
		return 0, 0, fmt.Errorf("login as %s failed: ended at %s", s.login, res.Request.URL)
	}
	get := func(path, want string) (time.Duration, error) {
		t0 := time.Now()
		res, err := c.Get(base + path)
		if err != nil {
			return 0, err
		}
		body, err := io.ReadAll(res.Body)
		_ = res.Body.Close()
		took := time.Since(t0)
		if err != nil || res.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			return 0, fmt.Errorf("GET %s: %s %v (no %q)", path, res.Status, err, want)
		}
		return took, nil
	}
	var q, t []time.Duration
	for i := range 50 {
		d, err := get("/", `id="queue"`)
		if err != nil {
			return 0, 0, err
		}
		q = append(q, d)
		if d, err = get(fmt.Sprintf("/tickets/%d", tickets[(i*7919)%len(tickets)]), "</main>"); err != nil {
			return 0, 0, err
		}
		t = append(t, d)
	}
	sort.Slice(q, func(i, j int) bool { return q[i] < q[j] })
	sort.Slice(t, func(i, j int) bool { return t[i] < t[j] })
	return ms(pctile(q, 0.95)), ms(pctile(t, 0.95)), nil
}

// relaySink is the relay tend sends to: it takes every mail and counts
// it, as an MTA would, without keeping it.
type relaySink struct {
	addr  string
	srv   *gosmtp.Server
	count atomic.Int64
}

func startSink() (*relaySink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &relaySink{addr: l.Addr().String()}
	s.srv = gosmtp.NewServer(sinkBackend{s})
	s.srv.Domain, s.srv.AllowInsecureAuth = "sink.bench", true
	go func() { _ = s.srv.Serve(l) }()
	return s, nil
}

func (s *relaySink) close() { _ = s.srv.Close() }

type sinkBackend struct{ s *relaySink }

func (b sinkBackend) NewSession(*gosmtp.Conn) (gosmtp.Session, error) { return sinkSession(b), nil }

type sinkSession sinkBackend

func (sinkSession) Mail(string, *gosmtp.MailOptions) error { return nil }
func (sinkSession) Rcpt(string, *gosmtp.RcptOptions) error { return nil }
func (s sinkSession) Data(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	s.s.count.Add(1)
	return err
}
func (sinkSession) Reset()        {}
func (sinkSession) Logout() error { return nil }

// tempPostgres creates a temporary database on the server dsn names and
// returns its DSN and a function that drops it.
func tempPostgres(ctx context.Context, dsn string) (string, func(), error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", nil, fmt.Errorf("--dsn must be a postgres:// URL")
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return "", nil, err
	}
	name := fmt.Sprintf("tend_bench_%d_%d", os.Getpid(), time.Now().UnixNano())
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		_ = db.Close()
		return "", nil, fmt.Errorf("create a temporary database: %w", err)
	}
	tmp := *u
	tmp.Path = "/" + name
	drop := func() {
		_, _ = db.ExecContext(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		_ = db.Close()
	}
	return tmp.String(), drop, nil
}

// burstRun is what `tend bench --burst` measured (issue 10): N large
// messages at once with small mail beside them.
type burstRun struct {
	Large        int     `json:"large"`
	LargeMiB     int     `json:"large_mib"`
	SmallMsgs    int     `json:"small_msgs"`
	SmallP99MS   float64 `json:"small_p99_ms"` // DATA to 250 of small mail during the burst
	Refused      int     `json:"refused"`      // messages not answered 250
	FirstRefusal string  `json:"first_refusal,omitempty"`
	BurstS       float64 `json:"burst_s"` // until the last large message's 250
	// DoorPeakRSSMiB is the server's peak RSS until the last 250;
	// PeakRSSMiB until drained (the processor parsed everything and the
	// outgoing mail left).
	DoorPeakRSSMiB float64 `json:"door_peak_rss_mib"`
	PeakRSSMiB     float64 `json:"peak_rss_mib"`
	DrainedS       float64 `json:"drained_s"`
	Drained        bool    `json:"drained"` // false: --drain-timeout passed first
	CPUs           float64 `json:"cpu_s"`
	// DiskRatio is what the data directory (and on PostgreSQL the
	// database) grew by, over the bytes received.
	DiskRatio float64 `json:"disk_ratio"`
}

// benchBurstCmd runs one burst round and prints it.
func benchBurstCmd(ctx context.Context, bin, dsn string, n, size int, drainFor time.Duration, asJSON bool, stdout io.Writer) error {
	r, err := benchBurst(ctx, bin, dsn, n, size, drainFor)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"backend": backendName(dsn), "burst": r})
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tburst\tsmall msgs\tsmall p99 ms\trefused\tpeak RSS MiB at last 250\tpeak RSS MiB drained\tdrained s\tCPU s\tdisk ÷ received\t\n", backendName(dsn))
	drained := fmt.Sprintf("%.1f", r.DrainedS)
	if !r.Drained {
		drained = fmt.Sprintf("> %.0f", r.DrainedS)
	}
	fmt.Fprintf(tw, "\t%d × %d MiB\t%d\t%.1f\t%d\t%.0f\t%.0f\t%s\t%.1f\t%.2f\t\n", r.Large, r.LargeMiB, r.SmallMsgs, r.SmallP99MS, r.Refused,
		r.DoorPeakRSSMiB, r.PeakRSSMiB, drained, r.CPUs, r.DiskRatio)
	return tw.Flush()
}

// benchBurst sends n messages of size bytes at once to a fresh tend, and
// small mail beside them, then waits (up to drainFor) until it drained.
func benchBurst(ctx context.Context, bin, dsn string, n, size int, drainFor time.Duration) (burstRun, error) {
	r := burstRun{Large: n, LargeMiB: size >> 20}
	t, err := startBenchTarget(ctx, bin, dsn, "")
	if err != nil {
		return r, err
	}
	defer t.close()
	st, err := t.open(ctx)
	if err != nil {
		return r, err
	}
	defer st.Close()
	disk0, err := t.bytesStored(ctx)
	if err != nil {
		return r, err
	}
	cpu0 := t.srv.cpu()
	start := time.Now()
	res := smtpload.Burst(ctx, t.srv.smtp, "support@acme.test", n, size)
	r.BurstS = res.Took.Seconds()
	r.DoorPeakRSSMiB = float64(t.srv.peakRSS()) / (1 << 20)
	r.SmallMsgs, r.SmallP99MS, r.Refused = len(res.Small), ms(res.SmallP99()), len(res.Refused)
	if len(res.Refused) > 0 {
		r.FirstRefusal = res.Refused[0].Error()
	}
	_, err = t.waitDrained(ctx, st, drainFor)
	r.Drained = err == nil
	if err != nil && ctx.Err() != nil {
		return r, err
	}
	r.DrainedS = time.Since(start).Seconds()
	r.CPUs = (t.srv.cpu() - cpu0).Seconds()
	r.PeakRSSMiB = float64(t.srv.peakRSS()) / (1 << 20)
	disk1, err := t.bytesStored(ctx)
	if err != nil {
		return r, err
	}
	r.DiskRatio = float64(disk1-disk0) / (float64(n) * float64(size))
	return r, nil
}

// settle does what the server's maintenance does over the seconds after
// a round, so that the store is measured as it stays, not at the peak of
// the burst: it checkpoints the WAL and returns the database's free pages
// a step at a time (Reclaim), until a step returns nothing more. A
// round's backlog of outgoing mail leaves tens of MB of free pages, which
// the server returns within seconds: measured before that, the
// generated corpus at C=16 read anything from 1.0 to 2.0× the mail,
// depending on how far the backlog had grown. It returns the bytes
// stored then.
func (t *benchTarget) settle(ctx context.Context, st *storage.Store) (int64, error) {
	last := int64(-1)
	for range 64 { // 64 steps of Reclaim's 16 MiB: more than any round leaves
		if err := st.Checkpoint(ctx); err != nil {
			return 0, err
		}
		n, err := t.bytesStored(ctx)
		if err != nil || (last >= 0 && n >= last) {
			return n, err
		}
		last = n
		if err := st.Reclaim(ctx); err != nil {
			return 0, err
		}
	}
	return last, nil
}

// bytesStored is what the round's server keeps: its data directory, plus
// the database on PostgreSQL.
func (t *benchTarget) bytesStored(ctx context.Context) (int64, error) {
	var total int64
	err := filepath.WalkDir(t.dataDir(), func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a file removed while walking (a WAL checkpoint)
		}
		if fi, err := d.Info(); err == nil && !d.IsDir() {
			total += fi.Size()
		}
		return nil
	})
	if err != nil || t.dsn == "" {
		return total, err
	}
	db, err := sql.Open("pgx", t.dsn)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int64
	if err := db.QueryRowContext(ctx, "SELECT pg_database_size(current_database())").Scan(&n); err != nil {
		return 0, err
	}
	return total + n, nil
}
