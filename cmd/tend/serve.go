package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/tendhq/tend/cmd/tend/config"
	"github.com/tendhq/tend/followup"
	"github.com/tendhq/tend/mail/classify"
	"github.com/tendhq/tend/mail/compose"
	"github.com/tendhq/tend/mail/imappoll"
	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/mail/relay"
	"github.com/tendhq/tend/mail/smtpd"
	"github.com/tendhq/tend/mail/webreply"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/threading"
	"github.com/tendhq/tend/web"
	"github.com/tendhq/tend/web/live"
)

func cmdServe(ctx context.Context, args, env []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (default: the embedded default config)")
	profiling := fs.Bool("pprof", false, "serve Go's profiles at /debug/pprof/ beside /metrics, behind web.metrics_token_file's token (required)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file when serve stops (what `tend bench --cpuprofile` reads)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: serve takes no arguments", errUsage)
	}
	cfg, err := loadConfig(*cfgPath, env)
	if err != nil {
		return err
	}
	if *profiling && cfg.Web.MetricsTokenFile == "" {
		return fmt.Errorf("%w: --pprof needs web.metrics_token_file: profiles are never served without a token", errUsage)
	}
	log := newLogger(cfg.Log, stderr)
	if *cfgPath == "" {
		log.Info("no --config given: running the embedded default", "data_dir", cfg.DataDir, "inbox", cfg.Inboxes[0].Address)
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	return serveWith(ctx, cfg, log, stdout, serveFlags{profiling: *profiling})
}

// startCPUProfile profiles the whole process until the returned function
// runs: the after-work of a benchmark runs behind the last 250, so a
// profile fetched over HTTP for a fixed time would miss or dilute it.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

// serveFlags are serve's command-line switches that are not
// configuration.
type serveFlags struct {
	profiling bool // --pprof
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.Level)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// replicaName identifies this process in leases: the host and pid say
// who it is to a person, and a random part keeps two live replicas apart
// where those collide (containers sharing the host's name, each pid 1).
// A restart is a new owner; on SQLite reclaimLeases frees the old run's
// leases at once, on PostgreSQL they run out within their lease time.
func replicaName() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), rand.Text()[:8])
}

// reclaimLeases takes back, on SQLite, the leases an earlier run left when
// it died (a mailbox's, outgoing mail being sent, work being processed):
// the data directory's lock (lockDirs) proves that no other process holds
// one, so waiting them out would only delay the restarted server. On
// PostgreSQL other replicas may hold them, and they run out instead.
func reclaimLeases(ctx context.Context, st *storage.Store, log *slog.Logger) error {
	if st.Driver() != storage.DriverSQLite {
		return nil
	}
	n, err := st.ReclaimLeases(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		log.Info("took back the leases an earlier run left behind", "leases", n)
	}
	return nil
}

// serve is the composition root: it builds every component from cfg, runs
// them under one errgroup and stops them all when ctx ends or one fails.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger, stdout io.Writer) error {
	return serveWith(ctx, cfg, log, stdout, serveFlags{})
}

// serveWith is serve with the command line's switches.
func serveWith(ctx context.Context, cfg config.Config, log *slog.Logger, stdout io.Writer, flags serveFlags) error {
	// The data directory holds the spool and is watched for free space
	// whatever the database (SQLite would make it anyway).
	if err := checkDataDir(cfg.DataDir); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("data_dir: %w", err)
	}
	// The lock comes before anything touches the data directory: the
	// spool cleaning below would delete another process's mail in flight.
	unlock, err := lockDirs(cfg)
	if err != nil {
		return err
	}
	defer unlock()
	if err := ingest.CleanSpool(ingest.SpoolDir(cfg.DataDir)); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := reclaimLeases(ctx, st, log); err != nil {
		return err
	}
	if err := syncDirectory(ctx, st, cfg); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := web.NewMetrics(reg, st)
	web.RegisterSatisfaction(reg, st)

	owner := replicaName()
	inboxes := inboxAddresses(cfg)
	// accepted adds postmaster@ of every domain we take mail for (RFC
	// 5321 §4.5.1): the inboxes' domains and smtp.hostname.
	accepted := append(append([]string{}, inboxes...), postmasters(cfg)...)
	signer, err := loadSigner(ctx, st, cfg.SecretFile)
	if err != nil {
		return err
	}
	verifier, signer := senderAuth(cfg, signer, nil, storage.SystemClock{})
	engine, templates, err := loadRules(cfg, inboxes)
	if err != nil {
		return err
	}
	dkim, err := dkimConfig(cfg)
	if err != nil {
		return err
	}
	fopts := followupOptions(cfg)
	fopts.Store, fopts.Engine, fopts.Templates, fopts.Signer, fopts.LoopValue, fopts.DKIM, fopts.Logger = st, engine, templates, signer, owner, dkim, log
	if fopts.Inboxes, err = inboxPolicies(cfg); err != nil {
		return err
	}
	fopts.Detector = followup.NewDetector()
	exec, err := followup.New(fopts)
	if err != nil {
		return err
	}
	var sender *followup.Sender
	if cfg.Relay.Addr != "" {
		so := senderOptions(cfg)
		so.Owner, so.Logger = owner, log
		sender = followup.NewSender(st, exec, relay.New(relayConfig(cfg)), so)
	} else {
		log.Warn("no relay configured: outgoing mail stays in the outbox (not sent: no relay configured)")
	}
	lt := leaseTiming(cfg)
	timers := followup.NewTimers(st, exec, owner, lt.Period, lt.Lease, log)
	var committer *storage.Committer
	handle := guardAccess(exec)
	prepare := exec.Prepare
	if cfg.Clusters.Window > 0 {
		cl := ingest.Clusterer{Window: cfg.Clusters.Window, Clock: storage.SystemClock{}}
		handle = cl.Then(handle)
		prepare = func(m *storage.Message) { exec.Prepare(m); cl.Prepare(m) }
	}
	proc := ingest.NewProcessor(st, processorLimits(cfg, ingest.ProcessorOptions{Owner: owner, Lease: lt.Lease, Period: min(2*time.Second, lt.Period), Logger: log, AfterParse: handle, AfterCommit: func() {
		if sender != nil {
			sender.Wake()
		}
	}, Busy: func() bool { return committer.Busy() }, Interrupt: st.IngestWaiting, GiveUp: exec.UnprocessableVia(handle), OnBatch: processorMetrics(reg),
		Prepare: prepare, KeepAttachments: exec.KeepAttachments()}))
	committer = st.NewCommitter(256, func(storage.Delivered) { proc.Wake() })
	tc := threadingConfig(cfg, accepted)
	tc.Signer = signer
	threader := ingest.DecisionThreader{Config: tc}
	pipe, err := ingest.New(ingest.Options{
		Committer: committer, Threader: threader, Inboxes: accepted, Observer: metrics, Logger: log, Own: ownConfig(cfg, accepted),
		Auth: verifier,
	})
	if err != nil {
		return err
	}

	// Two lives: the doors (SMTP, LMTP, web, IMAP) end when the server is
	// told to stop; the workers behind them (the committer above all) end
	// only once the doors have drained, so that a message whose DATA was
	// under way is stored and answered 250 before the process exits.
	// Either ends when a component fails.
	work, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	g, workCtx := errgroup.WithContext(work)
	doorsCtx, stopDoors := context.WithCancel(ctx)
	defer stopDoors()
	context.AfterFunc(workCtx, stopDoors)
	var doors sync.WaitGroup // the doors' drains; the workers stop after them
	door := func(fn func() error) {
		doors.Add(1)
		g.Go(func() error { defer doors.Done(); return fn() })
	}
	g.Go(func() error { return committer.Run(workCtx) })
	g.Go(func() error { return st.RunMaintenance(workCtx) })
	g.Go(func() error { return st.RunHousekeeping(workCtx, housekeeping(cfg)) })
	g.Go(func() error { return proc.Run(workCtx) })
	g.Go(func() error { return timers.Run(workCtx) })
	g.Go(func() error { return st.KeepLeases(workCtx, owner, lt.Lease) })
	if sender != nil {
		g.Go(func() error { return sender.Run(workCtx) })
	}

	rcpts := ingest.Recipients{Pipeline: pipe, Signer: signer, Domain: cfg.SMTP.Hostname, MayReply: mayReply(st)}
	disk := diskGuard(cfg)
	smtpOpts := smtpOptions(cfg, log, metrics.Rejected)
	for _, d := range []struct {
		network, addr string
		lmtp          bool
	}{{"tcp", cfg.SMTP.Listen, false}, {"unix", cfg.SMTP.LMTPSocket, true}} {
		if d.addr == "" {
			continue
		}
		srv := smtpd.New(smtpOpts, pipe, rcpts, d.lmtp)
		l, err := listenDoor(d.network, d.addr, cfg.SMTP)
		if err != nil {
			return err
		}
		runSMTP(doorsCtx, door, log, l, srv, cfg.SMTP.ShutdownGrace)
	}

	pollers, err := imapPollers(cfg, st, pipe, owner, reg, log)
	if err != nil {
		return err
	}
	checks := []web.Check{{Name: "disk " + cfg.DataDir, Fn: func(context.Context) error { return disk.Check(0) }}}
	for _, p := range pollers {
		s := p.Status()
		checks = append(checks, web.Check{Name: "imap " + s.Inbox + "/" + s.Mailbox, Fn: imapReady(p), Degrades: true})
	}
	inboxStatus := func() []web.InboxStatus {
		out := make([]web.InboxStatus, 0, len(pollers))
		for _, p := range pollers {
			s := p.Status()
			detail := s.LastError
			if s.Backfilling {
				detail = fmt.Sprintf("importing %d of %d", s.Synced, s.Total)
			}
			out = append(out, web.InboxStatus{Inbox: s.Inbox + " (IMAP " + s.Mailbox + ")", State: string(s.State), Detail: detail, Stale: s.Stale})
		}
		if sender == nil {
			out = append(out, web.InboxStatus{Inbox: "outgoing mail", State: "not sent", Detail: "not sent: no relay configured"})
		}
		return out
	}
	if len(pollers) > 0 {
		door(func() error { return imappoll.RunAll(doorsCtx, pollers) })
		alerts := newIMAPAlerts(cfg, exec, pollers, log)
		g.Go(func() error { return alerts.run(workCtx, alertPeriod(cfg)) })
	}
	metricsToken, err := readTokenFile(cfg.Web.MetricsTokenFile)
	if err != nil {
		return err
	}
	wopts := webOptions(cfg)
	wopts.Gatherer, wopts.Logger, wopts.Checks, wopts.Actions, wopts.InboxStatus, wopts.Confirm, wopts.Rate = reg, log, checks, exec, inboxStatus, exec.Confirm, exec.Rate
	wopts.RelayConfigured, wopts.MetricsToken, wopts.Links, wopts.Profiling = sender != nil, metricsToken, signer, flags.profiling
	replies, err := webreply.New(webreply.Options{Deliverer: pipe, Domain: cfg.SMTP.Hostname, TagPrefix: cfg.Threading.TagPrefix})
	if err != nil {
		return err
	}
	wopts.Answer = webAnswer(replies)
	// One change feed per process, shared by every open page and stream.
	wopts.Live = live.New(live.Options{})
	web.RegisterLive(reg, wopts.Live)
	g.Go(func() error { return wopts.Live.Run(ctx, st) })
	h, err := web.New(st, wopts)
	if err != nil {
		return err
	}
	var webAddr net.Addr
	if cfg.Web.Listen != "" {
		if webAddr, err = runHTTP(doorsCtx, door, log, "web", cfg.Web.Listen, h); err != nil {
			return err
		}
	}
	if cfg.Web.MetricsListen != "" {
		if _, err := runHTTP(doorsCtx, door, log, "metrics", cfg.Web.MetricsListen, h.MetricsHandler()); err != nil {
			return err
		}
	}
	// The admin login is made, and its password shown, only once every
	// door is listening: a first start that fails (a port taken) must not
	// use up the one printing of the password.
	if pw, err := st.EnsureAdmin(ctx, adminEmail); err != nil {
		return err
	} else if pw != "" {
		fmt.Fprintf(stdout, "\nFirst start: log in at %s as %s with the password %s\n(shown once; create more logins with `tend user add EMAIL --role lead`)\n\n",
			loginURL(cfg, webAddr), adminEmail, pw)
	}
	log.Info("tend is running", "version", version, "database", st.Driver())
	g.Go(func() error {
		<-doorsCtx.Done()
		log.Info("stopping: finishing the mail in flight", "grace", cfg.SMTP.ShutdownGrace)
		doors.Wait()
		stopWork()
		return nil
	})
	err = g.Wait()
	releaseLeases(st, owner, log)
	log.Info("tend stopped")
	return err
}

// releaseLeases gives up, as the last thing a stopping replica does, every
// lease it still holds (work it claimed and did not finish), so that
// another replica takes the work over at once rather than after a lease.
// Every worker has stopped by then: nothing of this process is still doing
// the work it releases.
func releaseLeases(st *storage.Store, owner string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := st.ReleaseLeases(ctx, owner)
	if err != nil {
		log.Warn("releasing leases at shutdown: they run out instead", "err", err)
		return
	}
	log.Info("released this replica's leases", "leases", n)
}

// leasing is how a replica claims work: the lease of every claim, and how
// often each worker looks for due work, which bounds how soon it takes
// over what a dead replica held once that lease has run out.
type leasing struct{ Lease, Period time.Duration }

func leaseTiming(cfg config.Config) leasing {
	return leasing{Lease: cfg.Database.Lease, Period: min(5*time.Second, cfg.Database.Lease/2)}
}

// smtpOptions are the SMTP and LMTP doors' options from cfg.
func smtpOptions(cfg config.Config, log *slog.Logger, onReject func(string)) smtpd.Options {
	return smtpd.Options{
		Hostname: cfg.SMTP.Hostname, MaxMessageBytes: int64(cfg.SMTP.MaxMessageBytes), MaxRecipients: cfg.SMTP.MaxRecipients,
		MaxLineLength: cfg.SMTP.MaxLineLength, MaxConnections: cfg.SMTP.MaxConnections,
		ReadTimeout: cfg.SMTP.ReadTimeout, WriteTimeout: cfg.SMTP.WriteTimeout, Logger: log, OnReject: onReject,
		DataIdleTimeout: cfg.SMTP.DataIdleTimeout, DataTimeout: cfg.SMTP.DataTimeout,
		MaxSessionTime: cfg.SMTP.MaxSessionTime, MaxCommands: cfg.SMTP.MaxCommands,
		SpoolDir: ingest.SpoolDir(cfg.DataDir), Disk: diskGuard(cfg),
	}
}

// diskGuard checks the free space of the data directory's file system
// against min_free_disk.
func diskGuard(cfg config.Config) ingest.DiskGuard {
	return ingest.DiskGuard{Disk: ingest.StatDisk{Path: cfg.DataDir}, MinFree: uint64(cfg.MinFreeDisk)}
}

// loopHeader is the header field every mail tend sends carries, so that
// tend recognises its own mail coming back.
const loopHeader = "X-Tend-Loop"

// adminEmail is the login created on first start.
const adminEmail = "admin@localhost"

func syncDirectory(ctx context.Context, st *storage.Store, cfg config.Config) error {
	specs, agents := directory(cfg)
	if err := st.SyncInboxes(ctx, specs); err != nil {
		return err
	}
	return st.SyncAgents(ctx, agents)
}

// directory is the inboxes (with the postmaster inboxes) and agents of
// cfg, as the database keeps them.
func directory(cfg config.Config) ([]storage.InboxSpec, []storage.AgentSpec) {
	specs := make([]storage.InboxSpec, len(cfg.Inboxes))
	for i, in := range cfg.Inboxes {
		specs[i] = storage.InboxSpec{Address: in.Address, Name: in.Name, ResponseTime: in.ResponseTime}
	}
	for _, pm := range postmasters(cfg) {
		specs = append(specs, storage.InboxSpec{Address: pm, Name: "Postmaster", ResponseTime: 24 * time.Hour})
	}
	agents := make([]storage.AgentSpec, len(cfg.Agents))
	for i, a := range cfg.Agents {
		agents[i] = storage.AgentSpec{Email: a.Email, Name: a.Name, Role: a.Role, Inboxes: a.Inboxes}
	}
	return specs, agents
}

// The builders below turn cfg into each component's options, without side
// effects, so that a test can prove every key reaches its component
// (TestConfigKeysTakeEffect); serve adds the live dependencies.

func relayConfig(cfg config.Config) relay.Config {
	return relay.Config{
		Addr: cfg.Relay.Addr, TLS: cfg.Relay.TLS, InsecureSkipVerify: cfg.Relay.InsecureSkipVerify,
		Username: cfg.Relay.Username, Password: cfg.Relay.Password, Timeout: cfg.Relay.Timeout, HelloName: cfg.SMTP.Hostname,
	}
}

func senderOptions(cfg config.Config) followup.SenderOptions {
	lt := leaseTiming(cfg)
	return followup.SenderOptions{RetryFor: cfg.Relay.RetryFor, Period: lt.Period, Lease: lt.Lease, KeepStaffBodies: cfg.Retention.NotificationBodies > 0}
}

// dkimConfig loads the signing key; nil without one.
func dkimConfig(cfg config.Config) (*compose.DKIM, error) {
	if cfg.DKIM.PrivateKeyFile == "" {
		return nil, nil
	}
	key, err := compose.LoadDKIMKey(cfg.DKIM.PrivateKeyFile)
	if err != nil {
		return nil, err
	}
	return &compose.DKIM{Domain: cfg.DKIM.Domain, Selector: cfg.DKIM.Selector, Key: key}, nil
}

func threadingConfig(cfg config.Config, accepted []string) threading.Config {
	return threading.Config{
		OwnAddresses: accepted, OwnDomains: []string{cfg.SMTP.Hostname}, TagPrefix: cfg.Threading.TagPrefix,
		SubjectWindow: cfg.Threading.SubjectWindow, Clock: storage.SystemClock{},
	}
}

func ownConfig(cfg config.Config, accepted []string) classify.Own {
	return classify.Own{Addresses: accepted, Domains: []string{cfg.SMTP.Hostname}, LoopHeader: loopHeader, AuthServID: cfg.AuthServID}
}

func followupOptions(cfg config.Config) followup.Options {
	ft := cfg.FollowThrough
	o := followup.Options{Domain: cfg.SMTP.Hostname, BaseURL: cfg.Web.BaseURL, TagPrefix: cfg.Threading.TagPrefix,
		FuseMaxMails: ft.FuseMaxMails, FuseWindow: ft.FuseWindow, FuseMaxPerDay: ft.FuseMaxMailsPerDay, NotifyWindow: ft.NotifyWindow}
	o.NotifyMaxText, o.NotifyAttachMax = notifyLimits(cfg)
	return o
}

func webOptions(cfg config.Config) web.Options {
	return web.Options{BaseURL: cfg.Web.BaseURL, TrustedProxies: cfg.Web.TrustedProxies, MetricsSeparate: cfg.Web.MetricsListen != "",
		ClusterWindow: cfg.Clusters.Window, Company: cfg.Web.Company}
}

// webAnswer hands the web's replies and notes to the writer that makes
// them the agent's mail.
func webAnswer(w *webreply.Writer) func(context.Context, web.Answer) error {
	return func(ctx context.Context, a web.Answer) error {
		_, err := w.Write(ctx, webreply.Request{Ticket: a.Ticket, Inbox: a.Inbox, Subject: a.Subject, Agent: a.Agent, Text: a.Text, Note: a.Note, InReplyTo: a.InReplyTo})
		return err
	}
}

// runSMTP serves srv on l under run (the doors' group) until ctx ends,
// then shuts it down within grace: transactions under way finish.
func runSMTP(ctx context.Context, run func(func() error), log *slog.Logger, l net.Listener, srv *smtpd.Server, grace time.Duration) {
	kind := "smtp"
	if l.Addr().Network() == "unix" {
		kind = "lmtp"
	}
	log.Info(kind+" listening", "addr", l.Addr().String())
	run(func() error { return srv.Serve(l) })
	run(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
		defer cancel()
		return srv.Shutdown(sctx)
	})
}

// loginURL is where a person logs in: web.base_url when it was set, else
// the address the web server really listens on (base_url's default names
// the default port, which is wrong once only web.listen was changed).
func loginURL(cfg config.Config, webAddr net.Addr) string {
	if cfg.Web.BaseURL != config.Default().Web.BaseURL || webAddr == nil {
		return cfg.Web.BaseURL
	}
	host, port, err := net.SplitHostPort(webAddr.String())
	if err != nil {
		return cfg.Web.BaseURL
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// runHTTP serves h on addr under run and returns the address it listens on.
func runHTTP(ctx context.Context, run func(func() error), log *slog.Logger, kind, addr string, h http.Handler) (net.Addr, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listen %s: %w", kind, addr, err)
	}
	log.Info(kind+" listening", "addr", l.Addr().String())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute}
	run(func() error {
		if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	run(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	return l.Addr(), nil
}
