// Command sidebyside compares tend with a reference mail server (Mailpit,
// a Go mail catcher storing into SQLite) in one session, rounds
// interleaved, so that the figures of a shared, loaded machine can be
// quoted as ratios (issue 13: "report ratios against a reference run
// interleaved in the same session").
//
//	go run ./cmd/sidebyside -tend BIN -mailpit BIN -blast BIN [-sinkd BIN]
//
// For each concurrency, in each repetition, it runs one round of each
// target on a fresh store, in a rotating order:
//
//   - tend on SQLite and on PostgreSQL: `tend bench --blast` (a relay sink
//     and two agents, drained end to end: every outgoing mail at the
//     sink);
//   - Mailpit, SMTP into its SQLite;
//   - the floors of ../shared/bench when -sinkd is given (go-smtp that
//     discards; that stores one gorm row per message).
//
// Every target is sent the same corpus by the same program (../shared/bench
// blast). Then, unless -burst 0, the large-mail burst of issue 10 (20 ×
// 24 MiB at once, small mail beside them) against each. It prints one
// table: end-to-end msgs/s and its ratio to Mailpit in the same
// repetition, CPU ms per message, peak RSS, p99 DATA→250, and the load
// average around each round.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tendhq/tend/internal/procstat"
	"github.com/tendhq/tend/internal/smtpload"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sidebyside:", err)
		os.Exit(1)
	}
}

// options are the command line's.
type options struct {
	tend, mailpit, blast, sinkd string
	floors                      []string
	corpus, dsn                 string
	n, rounds                   int
	concs                       []int
	burst, burstMiB             int
	drainFor                    time.Duration
	jsonOut                     string
}

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("sidebyside", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.tend, "tend", "", "the tend binary (go build -o /tmp/tend ./cmd/tend)")
	fs.StringVar(&o.mailpit, "mailpit", "", "the Mailpit binary, built from github.com/axllent/mailpit")
	fs.StringVar(&o.blast, "blast", "", "the shared load generator (../shared/bench/blast: go build ./cmd/blast)")
	fs.StringVar(&o.sinkd, "sinkd", "", "optional: the shared floors server (../shared/bench/blast: go build ./cmd/sinkd)")
	floors := fs.String("floors", "discard,store", "sinkd modes to run as floors, with -sinkd")
	fs.StringVar(&o.corpus, "corpus", "/tmp/tend-bench-corpus", "the generated corpus (../shared/bench/blast: go run ./cmd/gencorpus -dir DIR -n 5000)")
	fs.StringVar(&o.dsn, "dsn", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server for tend's PostgreSQL rounds (a temporary database each); empty: SQLite only")
	fs.IntVar(&o.n, "n", 2000, "messages per round (the first N files of the corpus)")
	concs := fs.String("c", "1,4,16", "concurrencies, one round of each target each")
	fs.IntVar(&o.rounds, "rounds", 1, "repetitions of the whole interleaved set")
	fs.IntVar(&o.burst, "burst", 20, "large messages sent at once in the burst case; 0: no burst")
	fs.IntVar(&o.burstMiB, "burst-mib", 24, "size of each large message, MiB")
	fs.DurationVar(&o.drainFor, "drain-timeout", 5*time.Minute, "how long a tend round may take to drain")
	fs.StringVar(&o.jsonOut, "json", "", "also write every round as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.tend == "" || o.mailpit == "" || o.blast == "" || fs.NArg() != 0 || o.n < 1 || o.rounds < 1 {
		return o, errors.New("usage: sidebyside -tend BIN -mailpit BIN -blast BIN [-sinkd BIN] [-corpus DIR] [-n 2000] [-c 1,4,16] [-rounds 1] [-dsn DSN] [-burst 20]")
	}
	for _, f := range strings.Split(*concs, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 1 {
			return o, fmt.Errorf("-c %q: want numbers ≥ 1", *concs)
		}
		o.concs = append(o.concs, c)
	}
	if o.sinkd != "" && *floors != "" {
		o.floors = strings.Split(*floors, ",")
	}
	return o, nil
}

// round is one target's figures at one concurrency.
type round struct {
	Rep      int     `json:"rep"`
	Target   string  `json:"target"`
	C        int     `json:"c"`
	Messages int     `json:"messages"`
	E2ERate  float64 `json:"e2e_msgs_per_s"`  // first mail in to drained (Mailpit, floors: the last 250)
	DoorRate float64 `json:"door_msgs_per_s"` // first mail in to the last 250
	Ratio    float64 `json:"e2e_ratio_to_mailpit"`
	P99MS    float64 `json:"p99_ms"` // DATA to 250
	CPUms    float64 `json:"cpu_ms_per_msg"`
	PeakRSS  float64 `json:"peak_rss_mib"`
	Relayed  int64   `json:"relayed,omitempty"`
	outcome
}

// outcome is what every round records besides its figures: the load
// around it, and why it failed.
type outcome struct {
	LoadStart float64 `json:"load1_start"`
	LoadEnd   float64 `json:"load1_end"`
	Err       string  `json:"error,omitempty"`
}

// line is one round's progress line: its name and figures, or its error.
func (o outcome) line(name, figures string) string {
	if o.Err != "" {
		return name + ": " + o.Err
	}
	return fmt.Sprintf("%s: %s, load %.1f→%.1f", name, figures, o.LoadStart, o.LoadEnd)
}

func (r round) String() string {
	return r.line(fmt.Sprintf("rep %d C=%d %s", r.Rep, r.C, r.Target), fmt.Sprintf(
		"%.0f msgs/s end to end, door %.0f, p99 %.1f ms, %.2f CPU ms/msg, peak RSS %.0f MiB",
		r.E2ERate, r.DoorRate, r.P99MS, r.CPUms, r.PeakRSS))
}

// burstRound is one target's figures for the large-mail burst.
type burstRound struct {
	Target     string  `json:"target"`
	Large      int     `json:"large"`
	LargeMiB   int     `json:"large_mib"`
	SmallMsgs  int     `json:"small_msgs"`
	SmallP99MS float64 `json:"small_p99_ms"`
	Refused    int     `json:"refused"`
	DoorRSS    float64 `json:"door_peak_rss_mib"`
	PeakRSS    float64 `json:"peak_rss_mib"`
	DrainedS   float64 `json:"drained_s"`
	Drained    bool    `json:"drained"`
	CPUs       float64 `json:"cpu_s"`
	outcome
}

func (b burstRound) String() string {
	return b.line("burst "+b.Target, fmt.Sprintf(
		"%d small msgs, p99 %.1f ms, %d refused, peak RSS %.0f MiB at the last 250, %.0f MiB after %.0f s (drained: %v)",
		b.SmallMsgs, b.SmallP99MS, b.Refused, b.DoorRSS, b.PeakRSS, b.DrainedS, b.Drained))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	targets := []string{"mailpit", "tend-sqlite"}
	if o.dsn != "" {
		targets = append(targets, "tend-postgres")
	}
	for _, f := range o.floors {
		targets = append(targets, "sinkd-"+f)
	}
	began := time.Now()
	fmt.Fprintf(stderr, "load at start: %s\n", uptime())
	var rounds []round
	k := 0
	for rep := 1; rep <= o.rounds; rep++ {
		for _, c := range o.concs {
			// The order rotates so that no target always runs first
			// (or last, after the others warmed the page cache).
			for i := range targets {
				t := targets[(i+k)%len(targets)]
				if ctx.Err() != nil {
					break
				}
				r, err := o.round(ctx, t, c)
				r.Rep = rep
				if err != nil {
					// One round that fails (a drain timeout on a loaded
					// machine) is reported; the others still run.
					r.Err = err.Error()
				}
				fmt.Fprintf(stderr, "%s\n", r)
				rounds = append(rounds, r)
			}
			k++
		}
	}
	ratios(rounds)
	var bursts []burstRound
	for _, t := range targets {
		if o.burst == 0 || ctx.Err() != nil || strings.HasPrefix(t, "sinkd-") {
			continue
		}
		b, err := o.burstRound(ctx, t)
		if err != nil {
			b.Err = err.Error()
		}
		fmt.Fprintf(stderr, "%s\n", b)
		bursts = append(bursts, b)
	}
	fmt.Fprintf(stderr, "load at end: %s (%s in all)\n", uptime(), time.Since(began).Round(time.Second))
	printTable(stdout, o, rounds, bursts)
	if o.jsonOut != "" {
		b, err := json.MarshalIndent(map[string]any{"rounds": rounds, "bursts": bursts}, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(o.jsonOut, b, 0o644)
	}
	return nil
}

// ratios fills each round's end-to-end rate over Mailpit's at the same
// concurrency in the same repetition.
func ratios(rounds []round) {
	ref := map[[2]int]float64{}
	for _, r := range rounds {
		if r.Target == "mailpit" {
			ref[[2]int{r.Rep, r.C}] = r.E2ERate
		}
	}
	for i, r := range rounds {
		if m := ref[[2]int{r.Rep, r.C}]; m > 0 {
			rounds[i].Ratio = r.E2ERate / m
		}
	}
}

func printTable(w io.Writer, o options, rounds []round, bursts []burstRound) {
	fmt.Fprintf(w, "corpus %s, %d messages per round; tend: relay sink, two agents, drained end to end\n\n", o.corpus, o.n)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rep\ttarget\tC\te2e msgs/s\t÷ Mailpit\tdoor msgs/s\tp99 DATA→250 ms\tCPU ms/msg\tpeak RSS MiB\tload 1m start→end\t")
	for _, r := range rounds {
		if r.Err != "" {
			fmt.Fprintf(tw, "%d\t%s\t%d\tfailed: %s\t\n", r.Rep, r.Target, r.C, firstLine(r.Err))
			continue
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%.0f\t%.2f\t%.0f\t%.1f\t%.2f\t%.0f\t%.1f→%.1f\t\n", r.Rep, r.Target, r.C, r.E2ERate, r.Ratio,
			r.DoorRate, r.P99MS, r.CPUms, r.PeakRSS, r.LoadStart, r.LoadEnd)
	}
	_ = tw.Flush()
	if len(bursts) == 0 {
		return
	}
	fmt.Fprintf(w, "\nburst: %d × %d MiB at once, small mail one at a time beside them\n\n", o.burst, o.burstMiB)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tsmall msgs\tsmall p99 ms\trefused\tpeak RSS MiB at last 250\tpeak RSS MiB drained\tdrained s\tCPU s\tload 1m start→end\t")
	for _, b := range bursts {
		if b.Err != "" {
			fmt.Fprintf(tw, "%s\tfailed: %s\t\n", b.Target, firstLine(b.Err))
			continue
		}
		drained := fmt.Sprintf("%.1f", b.DrainedS)
		if !b.Drained {
			drained = fmt.Sprintf("> %.0f", b.DrainedS)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%d\t%.0f\t%.0f\t%s\t%.1f\t%.1f→%.1f\t\n", b.Target, b.SmallMsgs, b.SmallP99MS, b.Refused,
			b.DoorRSS, b.PeakRSS, drained, b.CPUs, b.LoadStart, b.LoadEnd)
	}
	_ = tw.Flush()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// round runs one target at concurrency c on a fresh store.
func (o options) round(ctx context.Context, target string, c int) (round, error) {
	r := round{Target: target, C: c, outcome: outcome{LoadStart: load1()}}
	var err error
	if dsn, ok := o.tendBackend(target); ok {
		r, err = o.tendRound(ctx, dsn, c, r)
	} else {
		r, err = o.serverRound(ctx, target, c, r)
	}
	r.LoadEnd = load1()
	return r, err
}

// tendBackend says whether target is tend and on which database ("" is
// SQLite).
func (o options) tendBackend(target string) (string, bool) {
	switch target {
	case "tend-sqlite":
		return "", true
	case "tend-postgres":
		return o.dsn, true
	}
	return "", false
}

// tendRound is `tend bench` with the shared load generator: it starts
// tend on a temporary database with a relay sink and two agents, and
// waits until every outgoing mail reached the sink.
func (o options) tendRound(ctx context.Context, dsn string, c int, r round) (round, error) {
	args := []string{"bench", "--json", "--quiet", "--blast", o.blast, "--corpus", o.corpus, "--messages", strconv.Itoa(o.n),
		"--concurrency", strconv.Itoa(c), "--drain-timeout", o.drainFor.String()}
	if dsn != "" {
		args = append(args, "--dsn", dsn)
	}
	var rep struct {
		Runs []struct {
			Messages    int     `json:"messages"`
			IngestRate  float64 `json:"ingest_msgs_per_s"`
			P99MS       float64 `json:"p99_ms"`
			DrainedRate float64 `json:"drained_msgs_per_s"`
			Relayed     int64   `json:"relayed"`
			CPUms       float64 `json:"cpu_ms_per_msg"`
			PeakRSSMiB  float64 `json:"peak_rss_mib"`
		} `json:"runs"`
	}
	if err := runJSON(ctx, &rep, o.tend, args...); err != nil {
		return r, err
	}
	if len(rep.Runs) != 1 {
		return r, fmt.Errorf("tend bench reported %d rounds", len(rep.Runs))
	}
	b := rep.Runs[0]
	r.Messages, r.DoorRate, r.E2ERate, r.P99MS, r.CPUms, r.PeakRSS, r.Relayed = b.Messages, b.IngestRate, b.DrainedRate, b.P99MS,
		b.CPUms, b.PeakRSSMiB, b.Relayed
	return r, nil
}

// serverRound blasts Mailpit or a sinkd floor, started fresh. Both answer
// 250 once the message is stored (or discarded): the end-to-end rate is
// the door's. CPU is counted until the server has been idle for a moment,
// so work it does after the 250 is not left out.
func (o options) serverRound(ctx context.Context, target string, c int, r round) (round, error) {
	srv, err := o.startServer(ctx, target)
	if err != nil {
		return r, err
	}
	defer srv.stop()
	cpu0 := srv.cpu()
	var res struct {
		OK         int     `json:"ok"`
		Errors     int     `json:"errors"`
		FirstError string  `json:"first_error"`
		Seconds    float64 `json:"seconds"`
		Rate       float64 `json:"msgs_per_s"`
		P99        float64 `json:"data_p99_ms"`
	}
	if err := runJSON(ctx, &res, o.blast, "-addr", srv.addr, "-dir", o.corpus, "-c", strconv.Itoa(c), "-n", strconv.Itoa(o.n),
		"-target", target); err != nil {
		return r, err
	}
	if res.Errors > 0 {
		return r, fmt.Errorf("blast: %d errors, the first: %s", res.Errors, res.FirstError)
	}
	srv.settle(ctx)
	r.Messages, r.DoorRate, r.E2ERate, r.P99MS = res.OK, res.Rate, res.Rate, res.P99
	r.CPUms = float64((srv.cpu() - cpu0).Microseconds()) / 1000 / float64(res.OK)
	r.PeakRSS = float64(srv.peakRSS()) / (1 << 20)
	return r, nil
}

// burstRound sends the large-mail burst to target.
func (o options) burstRound(ctx context.Context, target string) (burstRound, error) {
	b := burstRound{Target: target, Large: o.burst, LargeMiB: o.burstMiB, outcome: outcome{LoadStart: load1()}}
	if dsn, ok := o.tendBackend(target); ok {
		args := []string{"bench", "--json", "--burst", strconv.Itoa(o.burst), "--burst-mib", strconv.Itoa(o.burstMiB),
			"--drain-timeout", o.drainFor.String()}
		if dsn != "" {
			args = append(args, "--dsn", dsn)
		}
		var rep struct {
			Burst struct {
				SmallMsgs      int     `json:"small_msgs"`
				SmallP99MS     float64 `json:"small_p99_ms"`
				Refused        int     `json:"refused"`
				DoorPeakRSSMiB float64 `json:"door_peak_rss_mib"`
				PeakRSSMiB     float64 `json:"peak_rss_mib"`
				DrainedS       float64 `json:"drained_s"`
				Drained        bool    `json:"drained"`
				CPUs           float64 `json:"cpu_s"`
			} `json:"burst"`
		}
		if err := runJSON(ctx, &rep, o.tend, args...); err != nil {
			return b, err
		}
		t := rep.Burst
		b.SmallMsgs, b.SmallP99MS, b.Refused, b.DoorRSS, b.PeakRSS, b.DrainedS, b.Drained, b.CPUs = t.SmallMsgs, t.SmallP99MS,
			t.Refused, t.DoorPeakRSSMiB, t.PeakRSSMiB, t.DrainedS, t.Drained, t.CPUs
		b.LoadEnd = load1()
		return b, nil
	}
	srv, err := o.startServer(ctx, target)
	if err != nil {
		return b, err
	}
	defer srv.stop()
	cpu0 := srv.cpu()
	res := smtpload.Burst(ctx, srv.addr, "support@acme.test", o.burst, o.burstMiB<<20)
	b.DoorRSS = float64(srv.peakRSS()) / (1 << 20)
	srv.settle(ctx)
	b.SmallMsgs, b.SmallP99MS, b.Refused = len(res.Small), float64(res.SmallP99().Microseconds())/1000, len(res.Refused)
	b.PeakRSS, b.DrainedS, b.Drained = float64(srv.peakRSS())/(1<<20), res.Took.Seconds(), true
	b.CPUs = (srv.cpu() - cpu0).Seconds()
	b.LoadEnd = load1()
	return b, nil
}

// runJSON runs a program and decodes the JSON it prints into v.
func runJSON(ctx context.Context, v any, bin string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	// Interrupted, `tend bench` stops its server and drops its temporary
	// database; killed, it would leave both behind.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = time.Minute
	var errOut strings.Builder
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", bin, strings.Join(args, " "), err, errOut.String())
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("%s printed %q: %w", bin, out, err)
	}
	return nil
}

// server is a reference server's process: Mailpit or sinkd.
type server struct {
	cmd  *exec.Cmd
	addr string
	dir  string
	done chan struct{}
}

func (o options) startServer(ctx context.Context, target string) (*server, error) {
	dir, err := os.MkdirTemp("", "sidebyside-")
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	var cmd *exec.Cmd
	switch {
	case target == "mailpit":
		web, err := freeAddr()
		if err != nil {
			return nil, err
		}
		// --max 0 keeps every message (the default prunes beyond 500);
		// no reverse DNS, as tend's rounds do no DNS either.
		cmd = exec.CommandContext(ctx, o.mailpit, "--smtp", addr, "--listen", web, "--database", filepath.Join(dir, "mailpit.db"),
			"--max", "0", "--smtp-disable-rdns", "--disable-version-check", "--quiet")
	case strings.HasPrefix(target, "sinkd-"):
		cmd = exec.CommandContext(ctx, o.sinkd, "-addr", addr, "-mode", strings.TrimPrefix(target, "sinkd-"), "-db", filepath.Join(dir, "sinkd.db"))
	default:
		return nil, fmt.Errorf("unknown target %q", target)
	}
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, addr: addr, dir: dir, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			_ = c.Close()
			return s, nil
		}
		select {
		case <-s.done:
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("%s exited: %s", target, logs.String())
		case <-deadline:
			s.stop()
			return nil, fmt.Errorf("%s did not listen on %s within 60s", target, addr)
		case <-tick.C:
		}
	}
}

func (s *server) stop() {
	procstat.Stop(s.cmd.Process, s.done, 20*time.Second)
	_ = os.RemoveAll(s.dir)
}

// settle waits until the server used no CPU for 500 ms (at most 30 s).
func (s *server) settle(ctx context.Context) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(30 * time.Second)
	last, still := s.cpu(), 0
	for still < 5 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if now := s.cpu(); now == last {
			still++
		} else {
			last, still = now, 0
		}
	}
}

func (s *server) cpu() time.Duration { return procstat.CPU(s.cmd.Process.Pid) }
func (s *server) peakRSS() int64     { return procstat.PeakRSS(s.cmd.Process.Pid) }

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// load1 is the one-minute load average (/proc/loadavg).
func load1() float64 {
	f := strings.Fields(uptime())
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// uptime is /proc/loadavg's three load averages.
func uptime() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}
