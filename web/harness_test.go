package web

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite", for the test's seeding handle

	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/mail/webreply"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/threading"
	"github.com/tendhq/tend/vocab"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

const (
	support = "support@acme.test"
	billing = "billing@acme.test"
	// postmaster is the postmaster inbox the wiring adds for every
	// domain we accept: its tickets are for admins only.
	postmaster = "postmaster@acme.test"
	leadPW     = "lead-password-1"
	agentPW    = "agent-password-1"
	adminPW    = "admin-password-1"
)

// env is a web server over a real store, fed through the real ingest
// path (mail/ingest) so that messages, parses and attachments are what
// production stores.
type env struct {
	t       testing.TB
	ctx     context.Context
	clock   *storagetest.FakeClock
	store   *storage.Store
	db      *sql.DB // a second handle, to play the rules executor's part
	pipe    *ingest.Pipeline
	proc    *ingest.Processor
	srv     *Server
	actions *fakeActions
	// writer writes web answers as agent mail (withRules sets it).
	writer *webreply.Writer
}

// newEnv opens a store of the named backend ("sqlite" or "postgres"),
// syncs two inboxes and three logins, and builds the web server.
func newEnv(t testing.TB, backend string, opt func(*Options)) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, ctx: ctx, clock: storagetest.NewFakeClock(t0)}
	var err error
	switch backend {
	case "sqlite":
		dir := t.TempDir()
		e.store, err = storage.Open(ctx, storage.Options{Driver: storage.DriverSQLite, DataDir: dir, Clock: e.clock})
		if err == nil {
			e.db, err = sql.Open("sqlite", "file:"+filepath.Join(dir, "tend.db")+"?_pragma=busy_timeout(15000)")
		}
	case "postgres":
		dsn := storagetest.PostgresDSN(t)
		e.store, err = storage.Open(ctx, storage.Options{Driver: storage.DriverPostgres, DSN: dsn, Clock: e.clock})
		if err == nil {
			e.db, err = sql.Open("pgx", dsn)
		}
	default:
		t.Fatalf("unknown backend %q", backend)
	}
	if err != nil {
		t.Fatalf("open %s: %v", backend, err)
	}
	t.Cleanup(func() { _ = e.db.Close(); _ = e.store.Close() })
	if err := e.store.SyncInboxes(ctx, []storage.InboxSpec{
		{Address: support, Name: "Acme Support", ResponseTime: 4 * time.Hour},
		{Address: billing, Name: "Acme Billing", ResponseTime: time.Hour},
		{Address: postmaster, Name: "Postmaster", ResponseTime: 24 * time.Hour},
	}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []struct{ email, name, role, pw string }{
		{"lena@acme.test", "Lena Lead", storage.RoleLead, leadPW},
		{"alice@acme.test", "Alice Agent", storage.RoleAgent, agentPW},
		{"root@acme.test", "Ada Admin", storage.RoleAdmin, adminPW},
	} {
		if err := e.store.SetPassword(ctx, a.email, a.name, a.role, a.pw); err != nil {
			t.Fatal(err)
		}
	}
	c := e.store.NewCommitter(16, nil)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(cctx) }()
	t.Cleanup(func() { cancel(); <-done })
	signer, err := threading.NewSigner("a", threading.Key{ID: "a", Secret: []byte("web-test-secret-0123456789")})
	if err != nil {
		t.Fatal(err)
	}
	threader := ingest.DecisionThreader{Config: threading.Config{OwnAddresses: []string{support, billing, postmaster}, OwnDomains: []string{"mail.acme.test"},
		SubjectWindow: 7 * 24 * time.Hour, Signer: signer, Clock: e.clock}}
	e.pipe, err = ingest.New(ingest.Options{Committer: c, Threader: threader, Inboxes: []string{support, billing, postmaster}})
	if err != nil {
		t.Fatal(err)
	}
	// Tickets are clustered by content as in production (the queue's
	// side panel, /api/clusters).
	cluster := ingest.Clusterer{Window: 7 * 24 * time.Hour, Clock: e.clock}.Then(func(context.Context, *storage.Tx, storage.Message) error { return nil })
	e.proc = ingest.NewProcessor(e.store, ingest.ProcessorOptions{Owner: "test", Clock: e.clock, AfterParse: cluster})
	e.actions = &fakeActions{e: e}
	opts := Options{BaseURL: "http://127.0.0.1", Clock: e.clock, Actions: e.actions,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if opt != nil {
		opt(&opts)
	}
	e.srv, err = New(e.store, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// testWriter sends the server's log to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// deliver stores raw through the ingest path, runs the full parse, and
// returns the outcome.
func (e *env) deliver(raw string, inboxes ...string) storage.Delivered {
	e.t.Helper()
	if len(inboxes) == 0 {
		inboxes = []string{support}
	}
	raw = strings.ReplaceAll(strings.ReplaceAll(raw, "\r\n", "\n"), "\n", "\r\n")
	d, err := e.pipe.Deliver(e.ctx, []byte(raw), ingest.Envelope{From: "sender@example.net", To: inboxes, Source: "test"})
	if err != nil {
		e.t.Fatalf("deliver: %v", err)
	}
	for {
		n, err := e.proc.RunOnce(e.ctx)
		if err != nil {
			e.t.Fatalf("process: %v", err)
		}
		if n == 0 {
			break
		}
	}
	return d
}

// deliverFile delivers testdata/name.
func (e *env) deliverFile(name string, inboxes ...string) storage.Delivered {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		e.t.Fatal(err)
	}
	return e.deliver(string(b), inboxes...)
}

// mail builds a small plain message.
func mail(from, msgID, subject, body string) string {
	return fmt.Sprintf("From: %s\nTo: %s\nSubject: %s\nMessage-ID: <%s>\nDate: Mon, 2 Mar 2026 09:00:00 +0000\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n%s\n",
		from, support, subject, msgID, body)
}

// exec changes rows directly, as the rules executor will: breaches, repeat
// contacts and states are its to set, and storage has no writer for them
// that the web may call.
func (e *env) exec(query string) {
	e.t.Helper()
	if _, err := e.db.ExecContext(e.ctx, query); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
}

func (e *env) setTicket(n int64, set string) {
	e.t.Helper()
	e.exec(fmt.Sprintf("UPDATE tickets SET %s WHERE id = %d", set, n))
}

// fakeActions records what the web asked for and, like the executor,
// changes the ticket's state.
type fakeActions struct {
	e     *env
	mu    sync.Mutex
	calls []string
	err   error // returned instead of acting, when set
}

func (f *fakeActions) record(call string, ticket int64, state vocab.State) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.calls = append(f.calls, call)
	if state != "" {
		f.e.setTicket(ticket, "state = '"+string(state)+"'")
	}
	return nil
}

func (f *fakeActions) Resolve(_ context.Context, ticket int64, by string) error {
	return f.record(fmt.Sprintf("resolve %d by %s", ticket, by), ticket, vocab.StateProposed)
}

func (f *fakeActions) Reopen(_ context.Context, ticket int64, by string) error {
	return f.record(fmt.Sprintf("reopen %d by %s", ticket, by), ticket, vocab.StateOpen)
}

func (f *fakeActions) Close(_ context.Context, ticket int64, reason, by string) error {
	return f.record(fmt.Sprintf("close %d (%s) by %s", ticket, reason, by), ticket, vocab.StateClosed)
}

func (f *fakeActions) Assign(_ context.Context, ticket int64, agent, by string) error {
	return f.record(fmt.Sprintf("assign %d to %s by %s", ticket, agent, by), ticket, "")
}

func (f *fakeActions) Merge(_ context.Context, ticket, into int64, by string) error {
	return f.record(fmt.Sprintf("merge %d into %d by %s", ticket, into, by), ticket, vocab.StateClosed)
}

func (f *fakeActions) Split(_ context.Context, msg int64, by string) (int64, error) {
	return 99, f.record(fmt.Sprintf("split message %d by %s", msg, by), 0, "")
}

func (f *fakeActions) ReleaseMail(_ context.Context, ticket int64, by string) (int, error) {
	if err := f.record(fmt.Sprintf("release mail of %d by %s", ticket, by), ticket, ""); err != nil {
		return 0, err
	}
	f.e.setTicket(ticket, "mail_held_since = NULL")
	return 1, nil
}

// fail makes every action return err (nil: act again).
func (f *fakeActions) fail(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fakeActions) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so tests see every 303.
type browser struct {
	t    testing.TB
	base string
	c    *http.Client
	csrf string
}

func (e *env) serve() *httptest.Server {
	ts := httptest.NewServer(e.srv)
	e.t.Cleanup(ts.Close)
	return ts
}

func newBrowser(t testing.TB, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// do sends a request and returns the status, the body and the response.
func (b *browser) do(method, path string, form url.Values) (int, string, *http.Response) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	if m := csrfField.FindStringSubmatch(string(out)); m != nil {
		b.csrf = m[1]
	}
	return res.StatusCode, string(out), res
}

func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	code, body, _ := b.do(http.MethodGet, path, nil)
	return code, body
}

// post sends form with the page's CSRF token added.
func (b *browser) post(path string, form url.Values) (int, string, *http.Response) {
	b.t.Helper()
	if form.Get("csrf") == "" && !form.Has("csrf") {
		form.Set("csrf", b.csrf)
	}
	return b.do(http.MethodPost, path, form)
}

// login signs in through the form and fails the test if it does not
// work.
func (b *browser) login(email, pw string) {
	b.t.Helper()
	b.get("/login")
	code, _, res := b.post("/login", url.Values{"email": {email}, "password": {pw}})
	if code != http.StatusSeeOther || res.Header.Get("Location") != "/" {
		b.t.Fatalf("login %s: %d -> %q", email, code, res.Header.Get("Location"))
	}
	if code, _ := b.get("/"); code != http.StatusOK {
		b.t.Fatalf("queue after login: %d", code)
	}
}
