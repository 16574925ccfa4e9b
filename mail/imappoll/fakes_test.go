package imappoll

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/tendhq/tend/storage/storagetest"
)

// fakeDeliverer dedups like the real ingest path (Message-ID plus a hash
// of the bytes) and counts what it stored.
type fakeDeliverer struct {
	mu       sync.Mutex
	seen     map[string]bool
	stored   map[string]int // Message-ID -> fresh (non-duplicate) stores
	calls    map[string]int // Message-ID -> Deliver calls
	imported map[string]bool
	sources  map[string]string
	// fail, when set, decides an error for a Message-ID (database down).
	fail func(msgID string) error
	// after runs after each successful delivery (to cancel mid-sync).
	after func(total int)
	total int
	open  int      // spools not closed
	order []string // Sources of fresh stores, in delivery order
}

func newFakeDeliverer() *fakeDeliverer {
	return &fakeDeliverer{seen: map[string]bool{}, stored: map[string]int{}, calls: map[string]int{}, imported: map[string]bool{}, sources: map[string]string{}}
}

func messageID(raw []byte) string {
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err == nil {
		if id := m.Header.Get("Message-Id"); id != "" {
			return id
		}
	}
	return fmt.Sprintf("<%x@hash>", sha256.Sum256(raw))
}

// fakeSpool is a message the fake spooled, in memory.
type fakeSpool struct {
	raw    []byte
	f      *fakeDeliverer
	closed bool
}

func (s *fakeSpool) Close() error {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.f.open--
	}
	return nil
}

func (f *fakeDeliverer) Spool(ctx context.Context, r io.Reader, size int64) (Spooled, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if size >= 0 && int64(len(raw)) != size {
		return nil, fmt.Errorf("literal of %d bytes announced as %d", len(raw), size)
	}
	f.mu.Lock()
	f.open++
	f.mu.Unlock()
	return &fakeSpool{raw: raw, f: f}, nil
}

func (f *fakeDeliverer) Deliver(ctx context.Context, ms []Spooled, ds []Delivery) ([]DeliveryResult, []error) {
	res, errs := make([]DeliveryResult, len(ms)), make([]error, len(ms))
	for i, m := range ms {
		res[i], errs[i] = f.deliverOne(ctx, m.(*fakeSpool).raw, ds[i])
	}
	return res, errs
}

func (f *fakeDeliverer) deliverOne(ctx context.Context, raw []byte, d Delivery) (DeliveryResult, error) {
	id := messageID(raw)
	f.mu.Lock()
	f.calls[id]++
	fail := f.fail
	f.mu.Unlock()
	if fail != nil {
		if err := fail(id); err != nil {
			return DeliveryResult{}, err
		}
	}
	if err := ctx.Err(); err != nil {
		return DeliveryResult{}, err
	}
	key := fmt.Sprintf("%s/%x", id, sha256.Sum256(raw))
	f.mu.Lock()
	dup := f.seen[key]
	if !dup {
		f.seen[key] = true
		f.stored[id]++
		f.imported[id] = d.Imported
		f.sources[id] = d.Source
		f.order = append(f.order, d.Source)
		f.total++
	}
	total, after := f.total, f.after
	f.mu.Unlock()
	if after != nil {
		after(total)
	}
	return DeliveryResult{Duplicate: dup}, nil
}

func (f *fakeDeliverer) setFail(fn func(string) error) {
	f.mu.Lock()
	f.fail = fn
	f.mu.Unlock()
}

func (f *fakeDeliverer) storedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.stored)
}

// checkExactlyOnce fails unless every id was stored exactly once.
func (f *fakeDeliverer) checkExactlyOnce(t *testing.T, ids []string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ids {
		if n := f.stored[id]; n != 1 {
			t.Errorf("%s stored %d times, want 1", id, n)
		}
	}
	if len(f.stored) != len(ids) {
		t.Errorf("stored %d distinct messages, want %d", len(f.stored), len(ids))
	}
}

// fakeStore is an in-memory StateStore whose leases expire by the clock.
type fakeStore struct {
	mu      sync.Mutex
	clock   *storagetest.FakeClock
	states  map[string]MailboxState
	leases  map[string]lease
	secrets map[string]string
	saves   int
}

type lease struct {
	holder string
	until  time.Time
}

func newFakeStore(clock *storagetest.FakeClock) *fakeStore {
	return &fakeStore{clock: clock, states: map[string]MailboxState{}, leases: map[string]lease{}, secrets: map[string]string{}}
}

func (s *fakeStore) MailboxState(_ context.Context, key string) (MailboxState, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.states[key]
	return st, ok, nil
}

func (s *fakeStore) SaveMailboxState(_ context.Context, key string, st MailboxState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states[key] = st
	s.saves++
	return nil
}

func (s *fakeStore) state(key string) MailboxState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.states[key]
}

func (s *fakeStore) AcquireLease(_ context.Context, name, holder string, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	if l, ok := s.leases[name]; ok && l.holder != holder && now.Before(l.until) {
		return false, nil
	}
	s.leases[name] = lease{holder: holder, until: now.Add(ttl)}
	return true, nil
}

func (s *fakeStore) ReleaseLease(_ context.Context, name, holder string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.leases[name]; ok && l.holder == holder {
		delete(s.leases, name)
	}
	return nil
}

func (s *fakeStore) Secret(_ context.Context, name string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.secrets[name]
	return v, ok, nil
}

func (s *fakeStore) SaveSecret(_ context.Context, name, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets[name] = value
	return nil
}

// memServer is go-imap's in-memory server on 127.0.0.1:0.
type memServer struct {
	addr string
	user *imapmemserver.User
	caps imap.CapSet
	srv  *imapserver.Server
	// flagsFirst makes the next FETCH of a body section answer first with
	// FETCH responses holding only UID and FLAGS: what a server sends
	// when another session (a replica that was killed, a mail client)
	// changed the flags while our FETCH runs.
	flagsFirst atomic.Bool
}

const testUser, testPass = "support@acme.example", "hunter2"

// fullCaps offers IMAP4rev2 (which implies MOVE and UIDPLUS); oldCaps is
// a bare IMAP4rev1 server without them, for the COPY fallback. imapserver
// always offers IDLE: polling is tested with Options.DisableIdle.
var (
	fullCaps = imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}}
	oldCaps  = imap.CapSet{imap.CapIMAP4rev1: {}}
)

func startMem(t testing.TB, caps imap.CapSet) *memServer {
	t.Helper()
	m := &memServer{user: imapmemserver.NewUser(testUser, testPass), caps: caps}
	if err := m.user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	m.serve(t, "127.0.0.1:0")
	t.Cleanup(func() { _ = m.srv.Close() })
	return m
}

// serve listens on addr with a new protocol server over the same
// mailboxes: a restart keeps the mail, as a real server's would.
func (m *memServer) serve(t testing.TB, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	m.addr = ln.Addr().String()
	m.srv = imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &idleFlushSession{user: m.user, srv: m}, nil, nil
		},
		Caps:         m.caps,
		InsecureAuth: true,
		Logger:       log.New(io.Discard, "", 0),
	})
	go func() { _ = m.srv.Serve(ln) }()
}

// idleFlushSession is the in-memory server's session with one change: IDLE
// first reports what changed since the last command, as Dovecot and other
// RFC 2177 servers do. go-imap's tracker only reports changes made after
// IDLE began, so mail delivered between a sync and the IDLE would wait for
// the next poll on that server alone.
type idleFlushSession struct {
	*imapmemserver.UserSession // nil until Login
	user                       *imapmemserver.User
	srv                        *memServer
}

func (s *idleFlushSession) Login(username, password string) error {
	if err := s.user.Login(username, password); err != nil {
		return err
	}
	s.UserSession = imapmemserver.NewUserSession(s.user)
	return nil
}

func (s *idleFlushSession) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if err := s.UserSession.Poll(w, true); err != nil {
		return err
	}
	return s.UserSession.Idle(w, stop)
}

func (s *idleFlushSession) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	if len(options.BodySection) > 0 && s.srv.flagsFirst.CompareAndSwap(true, false) {
		if err := s.UserSession.Fetch(w, numSet, &imap.FetchOptions{UID: true, Flags: true}); err != nil {
			return err
		}
	}
	return s.UserSession.Fetch(w, numSet, options)
}

// restart closes every connection and serves again on the same port.
func (m *memServer) restart(t *testing.T) {
	t.Helper()
	_ = m.srv.Close()
	m.serve(t, m.addr)
}

type literal struct{ *bytes.Reader }

func (m *memServer) append(t testing.TB, mailbox string, raw []byte, date time.Time) {
	t.Helper()
	if _, err := m.user.Append(mailbox, literal{bytes.NewReader(raw)}, &imap.AppendOptions{Time: date}); err != nil {
		t.Fatalf("append: %v", err)
	}
}

func (m *memServer) status(t *testing.T, mailbox string) (n, unseen int) {
	t.Helper()
	st, err := m.user.Status(mailbox, &imap.StatusOptions{NumMessages: true, NumUnseen: true})
	if err != nil {
		t.Fatalf("status %s: %v", mailbox, err)
	}
	return int(*st.NumMessages), int(*st.NumUnseen)
}

// genMessage writes a small message in the shape Thunderbird sends.
func genMessage(i int) ([]byte, string) {
	id := fmt.Sprintf("<gen-%05d@example.net>", i)
	return []byte(fmt.Sprintf("Message-ID: %s\r\nDate: Mon, 4 Mar 2024 10:00:00 +0100\r\nMIME-Version: 1.0\r\nUser-Agent: Mozilla Thunderbird\r\nTo: support@acme.example\r\nFrom: Customer %d <c%d@example.net>\r\nSubject: Question %d\r\nContent-Type: text/plain; charset=UTF-8; format=flowed\r\nContent-Transfer-Encoding: 7bit\r\n\r\nHello, this is question number %d.\r\n", id, i, i, i, i)), id
}

// testdataMessages loads the .eml files written for these tests.
func testdataMessages(t testing.TB) (raws [][]byte, ids []string) {
	t.Helper()
	files, err := filepath.Glob("testdata/*.eml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, b)
		ids = append(ids, messageID(b))
	}
	return raws, ids
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testOptions are fast options: tiny backoffs and intervals so that no
// test waits long, and a fake clock for timestamps and leases.
func testOptions(t testing.TB, addr string, clock *storagetest.FakeClock) Options {
	return Options{
		Inbox: "support@acme.example", Addr: addr, TLS: TLSNone, Insecure: true,
		Username: testUser, Password: func(context.Context) (string, error) { return testPass, nil },
		Auth: AuthLogin, Holder: "replica-1",
		PollInterval: 50 * time.Millisecond, IdleRestart: 5 * time.Second, RetryInterval: 30 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, AuthBackoff: 20 * time.Millisecond,
		LeaseTTL: time.Minute, CommandTimeout: 5 * time.Second, BackfillRate: 1e6,
		Clock: clock, Logger: testLogger(t),
	}
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(b, "\n")))
	return len(b), nil
}

func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("TEND_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level}))
}

// run starts p and returns a stop function that cancels it and waits for
// Run to return; the test's cleanup stops it too.
func run(t *testing.T, p *Poller) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		<-tick.C
	}
}

var errDatabaseDown = errors.New("database is down")

// seed appends the testdata messages to mailbox and returns their
// Message-IDs.
func (m *memServer) seed(t *testing.T, mailbox string) (raws [][]byte, ids []string) {
	t.Helper()
	raws, ids = testdataMessages(t)
	for _, r := range raws {
		m.append(t, mailbox, r, time.Time{})
	}
	return raws, ids
}

// start builds a Poller and runs it until the test ends.
func start(t *testing.T, o Options, d Deliverer, st StateStore) *Poller {
	t.Helper()
	p, err := New(o, d, st)
	if err != nil {
		t.Fatal(err)
	}
	run(t, p)
	return p
}
