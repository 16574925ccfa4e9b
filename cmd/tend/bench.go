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
	profDir := fs.String("cpuprofile", "", "a directory: each round's server writes its CPU profile there (cpu-BACKEND-cC.pprof)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *n < 1 {
		return fmt.Errorf("%w: bench [--dsn DSN] [--messages N] [--concurrency 1,8,32] [--json]", errUsage)
	}
	var cs []int
	for _, f := range strings.Split(*concs, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 1 || c > 1000 {
			return fmt.Errorf("%w: --concurrency %q: want numbers 1..1000", errUsage, *concs)
		}
		cs = append(cs, c)
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
	var runs []benchRun
	for _, c := range cs {
		prof := ""
		if *profDir != "" {
			prof = filepath.Join(*profDir, fmt.Sprintf("cpu-%s-c%d.pprof", backendName(*dsn), c))
		}
		r, err := benchRound(ctx, bin, *dsn, msgs, *n, c, *drainFor, *quiet, prof, stderr)
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
	fmt.Fprintf(tw, "%s\tC\tin msgs/s\tp50 ms\tp99 ms\tdrained msgs/s\tCPU ms/msg\tpeak RSS MiB\tthreading p95 ms\tqueue p95 ms\tticket p95 ms\trelayed\tdeferred\t\n", backendName(*dsn))
	for _, r := range runs {
		fmt.Fprintf(tw, "\t%d\t%.0f\t%.1f\t%.1f\t%.1f\t%.2f\t%.0f\t%.2f\t%.1f\t%.1f\t%d\t%d\t\n", r.Concurrency, r.IngestRate, r.P50MS, r.P99MS,
			r.DrainedRate, r.CPUms, r.PeakRSSMiB, r.ThreadingP95, r.QueueP95MS, r.TicketP95MS, r.Relayed, r.Deferred)
	}
	return tw.Flush()
}

func backendName(dsn string) string {
	if dsn != "" {
		return "postgres"
	}
	return "sqlite"
}

// benchRound runs one concurrency on a fresh database.
func benchRound(ctx context.Context, bin, dsn string, msgs [][]byte, n, conc int, drainFor time.Duration, quiet bool, prof string, stderr io.Writer) (benchRun, error) {
	r := benchRun{Concurrency: conc, Messages: n}
	dir, err := os.MkdirTemp("", "tend-bench-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	database := ""
	if dsn != "" {
		tmp, drop, err := tempPostgres(ctx, dsn)
		if err != nil {
			return r, err
		}
		defer drop()
		database = fmt.Sprintf("database: {driver: postgres, dsn: %q}\n", tmp)
		dsn = tmp
	}
	sink, err := startSink()
	if err != nil {
		return r, err
	}
	defer sink.close()
	cfgPath := filepath.Join(dir, "tend.yaml")
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
`, filepath.Join(dir, "data"), sink.addr) + database
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return r, err
	}
	srv, err := startBenchServer(ctx, bin, cfgPath, prof)
	if err != nil {
		return r, err
	}
	defer srv.stop()

	cpu0 := srv.cpu()
	start := time.Now()
	lat, err := blast(srv.smtp, msgs, n, conc, quiet, stderr)
	if err != nil {
		return r, err
	}
	doorDone := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r.IngestRate = float64(n) / doorDone.Seconds()
	r.P50MS, r.P99MS = ms(pctile(lat, 0.5)), ms(pctile(lat, 0.99))

	opts := storage.Options{Driver: storage.DriverSQLite, DataDir: filepath.Join(dir, "data"), Existing: true}
	if dsn != "" {
		opts = storage.Options{Driver: storage.DriverPostgres, DSN: dsn, Existing: true}
	}
	st, err := storage.Open(ctx, opts)
	if err != nil {
		return r, err
	}
	defer st.Close()
	deadline := time.Now().Add(drainFor)
	var counts storage.Counts
	for {
		if counts, err = st.Counts(ctx); err != nil {
			return r, err
		}
		due := counts.PendingOutbox - counts.DeferredOutbox
		if counts.PendingWork == 0 && due == 0 {
			break
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("not drained after %v: %d work items, %d outgoing mails due", drainFor, counts.PendingWork, due)
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(50 * time.Millisecond): // polling another process's progress
		}
	}
	drained := time.Since(start)
	r.DrainedS, r.DrainedRate = drained.Seconds(), float64(n)/drained.Seconds()
	r.CPUms = float64((srv.cpu() - cpu0).Microseconds()) / 1000 / float64(n)
	r.Relayed, r.Deferred = sink.count.Load(), counts.DeferredOutbox
	if r.Relayed != counts.SentOutbox {
		return r, fmt.Errorf("tend marked %d mails sent, the relay sink received %d", counts.SentOutbox, r.Relayed)
	}
	for _, v := range counts.TicketsByState {
		r.TicketsStored += v
	}
	if r.ThreadingP50, r.ThreadingP95, err = threadingTime(ctx, st, msgs); err != nil {
		return r, err
	}
	if r.QueueP95MS, r.TicketP95MS, err = pageTimes(srv, r.TicketsStored); err != nil {
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

func (s *benchServer) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// cpu is the server's user+system CPU so far (/proc/PID/stat, in the
// kernel's clock ticks of 1/100 s).
func (s *benchServer) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may
	// hold spaces: utime and stime are the 12th and 13th of them.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stt, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+stt) * 10 * time.Millisecond
}

// peakRSS is the server's high-water resident set (VmHWM), in bytes.
func (s *benchServer) peakRSS() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// blast sends n messages over conc SMTP connections, each reused, and
// returns the DATA-to-250 latencies.
func blast(addr string, msgs [][]byte, n, conc int, quiet bool, stderr io.Writer) ([]time.Duration, error) {
	bar := progressbar.DefaultSilent(int64(n))
	if !quiet {
		bar = progressbar.NewOptions(n, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription(fmt.Sprintf("C=%d", conc)),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionShowCount(), progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("msg"), progressbar.OptionSetWidth(30), progressbar.OptionClearOnFinish())
	}
	defer bar.Close()
	var next atomic.Int64
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
				_ = bar.Add(1)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return slices.Concat(lat...), nil
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
		m.InReplyTo, m.References = h.MessageID, []string{h.MessageID}
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
// ticket pages 50 times each.
func pageTimes(s *benchServer, tickets int64) (queueP95, ticketP95 float64, err error) {
	if s.web == "" || s.password == "" || tickets == 0 {
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
		if d, err = get(fmt.Sprintf("/tickets/%d", 1+int64(i*7919)%tickets), "</main>"); err != nil {
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
