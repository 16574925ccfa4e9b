package followup_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/smtp"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/jhillyerd/enmime/v2"

	"github.com/tendhq/tend/followup"
	"github.com/tendhq/tend/mail/classify"
	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/mail/relay"
	"github.com/tendhq/tend/mail/smtpd"
	"github.com/tendhq/tend/rules"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/threading"
)

const (
	domain   = "mail.acme.test"
	inbox    = "support@acme.test"
	customer = "ann@example.com"
	alice    = "alice@acme.test"
	lena     = "lena@acme.test"
	// loopHeader is the field cmd/tend puts on everything tend sends.
	loopHeader = "X-Tend-Loop"
)

// world is tend assembled in-process around a fake clock: the real SMTP
// door, ingest path, SQLite store, rules, outbox and relay client, sending
// to a capture SMTP server. Nothing runs in the background except the
// servers: the test moves the clock and calls settle.
type world struct {
	t       testing.TB
	clock   *storagetest.FakeClock
	store   *storage.Store
	signer  *threading.Signer
	exec    *followup.Executor
	proc    *ingest.Processor
	timers  *followup.Timers
	sender  *followup.Sender
	smtp    string // the SMTP door's address
	capture *capture
	dataDir string // the SQLite database and its segment files, when newWorldWith opened them
	pipe    *ingest.Pipeline
}

// newWorld assembles the world; opts change the executor's options (an
// inbox's language and calendar).
func newWorld(t testing.TB, with ...func(*followup.Options)) *world {
	t.Helper()
	return newWorldOn(t, storagetest.OpenSQLite, with...)
}

// newWorldTuned is newWorld with the executor's options adjusted by tune.
func newWorldTuned(t testing.TB, tune func(*followup.Options)) *world {
	t.Helper()
	return newWorldWith(t, storagetest.OpenSQLite, &worldTweaks{exec: tune})
}

// newWorldOn is newWorld on the store that open makes (storagetest.Backends).
func newWorldOn(t testing.TB, open func(testing.TB, storage.Clock) *storage.Store, with ...func(*followup.Options)) *world {
	t.Helper()
	return newWorldWith(t, open, &worldTweaks{exec: func(o *followup.Options) {
		for _, f := range with {
			f(o)
		}
	}})
}

// newWorldAuth is newWorld with a sender verifier on the ingest path.
func newWorldAuth(t testing.TB, auth ingest.Authenticator) *world {
	t.Helper()
	return newWorldWith(t, storagetest.OpenSQLite, &worldTweaks{auth: auth})
}

// worldTweaks change the options of a world's executor and processor.
type worldTweaks struct {
	exec func(*followup.Options)
	proc func(w *world, o *ingest.ProcessorOptions)
	// auth (nil: none) verifies senders on the ingest path.
	auth   ingest.Authenticator
	sender func(*followup.SenderOptions)
}

// newWorldWith is newWorldOn with the options tweak changes.
func newWorldWith(t testing.TB, open func(testing.TB, storage.Clock) *storage.Store, tweak *worldTweaks) *world {
	t.Helper()
	if tweak == nil {
		tweak = &worldTweaks{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &world{t: t, clock: storagetest.NewFakeClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))}
	var err error
	if open != nil {
		w.store = open(t, w.clock)
	} else {
		// A SQLite store whose data directory the test can measure.
		w.dataDir = t.TempDir()
		if w.store, err = storage.Open(ctx, storage.Options{Driver: storage.DriverSQLite, DataDir: w.dataDir, Clock: w.clock}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = w.store.Close() })
	}
	if err := w.store.SyncInboxes(ctx, []storage.InboxSpec{{Address: inbox, Name: "Acme Support", ResponseTime: 4 * time.Hour}}); err != nil {
		t.Fatal(err)
	}
	if err := w.store.SyncAgents(ctx, []storage.AgentSpec{{Email: alice, Name: "Alice Smith", Role: storage.RoleAgent}, {Email: lena, Name: "Lena", Role: storage.RoleLead}}); err != nil {
		t.Fatal(err)
	}
	w.signer, err = threading.NewSigner("a", threading.Key{ID: "a", Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	w.signer = w.signer.WithReplyLifetime(0, w.clock)
	tpl, err := rules.LoadTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	opts := rules.DefaultOptions()
	opts.Templates, opts.OwnAddresses = tpl, []string{inbox}
	eng, err := rules.Default(opts)
	if err != nil {
		t.Fatal(err)
	}
	eo := followup.Options{
		Store: w.store, Engine: eng, Templates: tpl, Signer: w.signer, Domain: domain,
		BaseURL: "https://support.acme.test", LoopValue: "test", Clock: w.clock,
	}
	if tweak.exec != nil {
		tweak.exec(&eo)
	}
	w.exec, err = followup.New(eo)
	if err != nil {
		t.Fatal(err)
	}
	committer := w.store.NewCommitter(16, nil)
	done := make(chan struct{})
	go func() { _ = committer.Run(ctx); close(done) }()
	pipe, err := ingest.New(ingest.Options{Committer: committer, Inboxes: []string{inbox}, Auth: tweak.auth,
		// As cmd/tend configures it: our loop header and Message-ID domain
		// mark our own mail coming back.
		Own: classify.Own{Addresses: []string{inbox}, Domains: []string{domain}, LoopHeader: loopHeader},
		Threader: ingest.DecisionThreader{Config: threading.Config{OwnAddresses: []string{inbox}, OwnDomains: []string{domain},
			SubjectWindow: 7 * 24 * time.Hour, Signer: w.signer, Clock: w.clock}}})
	if err != nil {
		t.Fatal(err)
	}
	w.pipe = pipe
	// As cmd/tend configures it: language and attachments prepared
	// before the batch's transaction.
	po := ingest.ProcessorOptions{Owner: "test", Clock: w.clock, AfterParse: w.exec.HandleMessage,
		Prepare: w.exec.Prepare, KeepAttachments: w.exec.KeepAttachments()}
	if tweak.proc != nil {
		tweak.proc(w, &po)
	}
	w.proc = ingest.NewProcessor(w.store, po)
	w.timers = followup.NewTimers(w.store, w.exec, "test", time.Hour, 0, nil)
	w.capture = startCapture(t)
	so := followup.SenderOptions{Owner: "test", Clock: w.clock, RetryFor: 48 * time.Hour}
	if tweak.sender != nil {
		tweak.sender(&so)
	}
	w.sender = followup.NewSender(w.store, w.exec, relay.New(relay.Config{Addr: w.capture.addr, TLS: "none", Timeout: 5 * time.Second}), so)
	door := smtpd.New(smtpd.Options{Hostname: domain}, pipe, ingest.Recipients{Pipeline: pipe, Signer: w.signer, Domain: domain}, false)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.smtp = l.Addr().String()
	go func() { _ = door.Serve(l) }()
	t.Cleanup(func() {
		_ = door.Shutdown(context.Background())
		cancel()
		<-done
	})
	return w
}

// send delivers a message through the SMTP door and returns its error.
func (w *world) send(from string, rcpt []string, raw string) error {
	return smtp.SendMail(w.smtp, nil, from, rcpt, []byte(raw))
}

// mustSend is send that must succeed, followed by settle.
func (w *world) mustSend(from string, rcpt []string, raw string) {
	w.t.Helper()
	if err := w.send(from, rcpt, raw); err != nil {
		w.t.Fatalf("send: %v", err)
	}
	w.settle()
}

// settle runs the workers until none has anything left to do now.
func (w *world) settle() {
	w.t.Helper()
	ctx := context.Background()
	for range 50 {
		a, err := w.proc.RunOnce(ctx)
		if err != nil {
			w.t.Fatal(err)
		}
		b, err := w.timers.RunOnce(ctx)
		if err != nil {
			w.t.Fatal(err)
		}
		c, err := w.sender.RunOnce(ctx)
		if err != nil {
			w.t.Fatal(err)
		}
		if a+b+c == 0 {
			return
		}
	}
	w.t.Fatal("workers did not settle")
}

// advance moves the clock and lets due work run.
func (w *world) advance(d time.Duration) {
	w.t.Helper()
	w.clock.Advance(d)
	w.settle()
}

// ticket returns the ticket's detail.
func (w *world) ticket(n int64) storage.TicketDetail {
	w.t.Helper()
	d, err := w.store.GetTicket(context.Background(), n)
	if err != nil {
		w.t.Fatal(err)
	}
	return d
}

// captured is one message the capture server received.
type captured struct {
	From string
	To   []string
	Raw  []byte
	Env  *enmime.Envelope
}

// capture is a go-smtp server that records what the relay delivers. Its
// replies can be scripted per recipient: codes are answered to DATA in
// turn, then 250.
type capture struct {
	addr  string
	mu    sync.Mutex
	msgs  []captured
	codes map[string][]int
	// errs are scripted refusals answered to DATA before any codes.
	errs map[string][]*gosmtp.SMTPError
}

func startCapture(t testing.TB) *capture {
	c := &capture{codes: map[string][]int{}, errs: map[string][]*gosmtp.SMTPError{}}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) { return &capSession{c: c}, nil }))
	srv.Domain = "capture.test"
	srv.AllowInsecureAuth = true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.addr = l.Addr().String()
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return c
}

// script makes the next DATA commands for mail to rcpt answer codes.
func (c *capture) script(rcpt string, codes ...int) {
	c.mu.Lock()
	c.codes[rcpt] = append(c.codes[rcpt], codes...)
	c.mu.Unlock()
}

// scriptErr makes the next DATA commands for mail to rcpt answer errs.
func (c *capture) scriptErr(rcpt string, errs ...*gosmtp.SMTPError) {
	c.mu.Lock()
	c.errs[rcpt] = append(c.errs[rcpt], errs...)
	c.mu.Unlock()
}

// take returns and forgets what was received so far.
func (c *capture) take() []captured {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.msgs
	c.msgs = nil
	return out
}

type capSession struct {
	c    *capture
	from string
	to   []string
}

func (s *capSession) Mail(from string, _ *gosmtp.MailOptions) error { s.from = from; return nil }
func (s *capSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *capSession) Reset()        { s.from, s.to = "", nil }
func (s *capSession) Logout() error { return nil }
func (s *capSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if errs := s.c.errs[s.to[0]]; len(errs) > 0 {
		s.c.errs[s.to[0]] = errs[1:]
		return errs[0]
	}
	if codes := s.c.codes[s.to[0]]; len(codes) > 0 {
		code := codes[0]
		s.c.codes[s.to[0]] = codes[1:]
		if code != 250 {
			return &gosmtp.SMTPError{Code: code, EnhancedCode: gosmtp.EnhancedCode{code / 100, 0, 0}, Message: "scripted"}
		}
	}
	env, err := enmime.ReadEnvelope(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	s.c.msgs = append(s.c.msgs, captured{From: s.from, To: s.to, Raw: raw, Env: env})
	return nil
}

// to returns the captured messages addressed to addr.
func to(msgs []captured, addr string) []captured {
	var out []captured
	for _, m := range msgs {
		for _, r := range m.To {
			if strings.EqualFold(r, addr) {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

// onBackends runs a scenario on SQLite and on PostgreSQL.
func onBackends(t *testing.T, f func(t *testing.T, b storagetest.Backend)) {
	t.Helper()
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) { f(t, b) })
	}
}
