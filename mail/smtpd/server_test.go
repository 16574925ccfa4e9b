package smtpd_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/mail/smtpd"
	"github.com/tendhq/tend/storage"
)

// fakeDeliverer records deliveries and can be told to fail, like a
// database that is down.
type fakeDeliverer struct {
	mu   sync.Mutex
	got  []ingest.Envelope
	raws [][]byte
	err  error
}

func (f *fakeDeliverer) DeliverSpool(_ context.Context, sp *ingest.Spool, env ingest.Envelope) (storage.Delivered, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return storage.Delivered{}, f.err
	}
	raw, err := io.ReadAll(io.NewSectionReader(sp, 0, sp.Size()))
	if err != nil {
		return storage.Delivered{}, err
	}
	f.got = append(f.got, env)
	f.raws = append(f.raws, raw)
	return storage.Delivered{MessageRowID: int64(len(f.got))}, nil
}

type inboxes map[string]bool

func (i inboxes) Accept(_ context.Context, addr string) (bool, error) { return i[addr], nil }

func start(t testing.TB, d smtpd.Deliverer, lmtp bool) string {
	return startWith(t, d, lmtp, 5*time.Second)
}

func startWith(t testing.TB, d smtpd.Deliverer, lmtp bool, readTimeout time.Duration) string {
	t.Helper()
	return startOpts(t, d, lmtp, smtpd.Options{MaxMessageBytes: 2000, ReadTimeout: readTimeout})
}

// startOpts starts a server with opts (host name, line length and spool
// directory filled in) and returns network:address.
func startOpts(t testing.TB, d smtpd.Deliverer, lmtp bool, opts smtpd.Options) string {
	t.Helper()
	opts.Hostname, opts.MaxLineLength, opts.SpoolDir = "mail.acme.test", 1000, t.TempDir()
	opts.Logger = slog.New(slog.NewTextHandler(tWriter{t}, nil))
	if _, fuzz := t.(*testing.F); fuzz {
		// F's methods must not be called while the fuzz target runs.
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	srv := smtpd.New(opts, d, inboxes{"support@acme.test": true, "billing@acme.test": true}, lmtp)
	network, addr := "tcp", "127.0.0.1:0"
	if lmtp {
		network, addr = "unix", filepath.Join(t.TempDir(), "lmtp.sock")
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return network + ":" + l.Addr().String()
}

// step sends a line (or nothing) and expects a reply code.
type step struct {
	send string
	code int
}

func converse(t *testing.T, addr string, steps []step) {
	t.Helper()
	network, a, _ := strings.Cut(addr, ":")
	conn, err := net.Dial(network, a)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := textproto.NewConn(conn)
	if _, _, err := c.ReadResponse(220); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	for _, s := range steps {
		if s.send != "" {
			if err := c.PrintfLine("%s", s.send); err != nil {
				t.Fatal(err)
			}
		}
		if s.code == 0 {
			continue
		}
		code, msg, err := c.ReadResponse(s.code)
		if err != nil {
			t.Fatalf("after %q: got %d %s, want %d", s.send, code, msg, s.code)
		}
	}
}

func TestSessions(t *testing.T) {
	long := strings.Repeat("x", 1200)
	tests := []struct {
		name      string
		steps     []step
		delivered int
	}{
		{"accepted", []step{{"EHLO client.example", 250}, {"MAIL FROM:<ann@example.com>", 250}, {"RCPT TO:<support@acme.test>", 250},
			{"DATA", 354}, {"Subject: hi\r\n\r\nhello\r\n.", 250}, {"QUIT", 221}}, 1},
		{"unknown recipient is never relayed", []step{{"EHLO c", 250}, {"MAIL FROM:<a@example.com>", 250},
			{"RCPT TO:<someone@elsewhere.example>", 550}, {"RCPT TO:<nobody@acme.test>", 550}, {"QUIT", 221}}, 0},
		{"two inboxes, one message", []step{{"EHLO c", 250}, {"MAIL FROM:<a@example.com>", 250}, {"RCPT TO:<support@acme.test>", 250},
			{"RCPT TO:<Billing@Acme.Test>", 250}, {"DATA", 354}, {"Subject: x\r\n\r\nx\r\n.", 250}}, 1},
		{"too big", []step{{"EHLO c", 250}, {"MAIL FROM:<a@example.com>", 250}, {"RCPT TO:<support@acme.test>", 250},
			{"DATA", 354}, {"Subject: x\r\n\r\n" + strings.Repeat("0123456789\r\n", 300) + ".", 552}}, 0},
		{"line too long", []step{{"EHLO c", 250}, {"MAIL FROM:<a@example.com>", 250}, {"RCPT TO:<support@acme.test>", 250},
			{"DATA", 354}, {"Subject: " + long, 500}}, 0},
		{"malformed command", []step{{"EHLO c", 250}, {"MAIL FROM:not-an-address", 501}, {"RCPT TO:<support@acme.test>", 502}, {"QUIT", 221}}, 0},
		{"data before recipients", []step{{"EHLO c", 250}, {"MAIL FROM:<a@example.com>", 250}, {"DATA", 502}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &fakeDeliverer{}
			converse(t, start(t, d, false), tc.steps)
			d.mu.Lock()
			defer d.mu.Unlock()
			if len(d.got) != tc.delivered {
				t.Errorf("%d messages delivered, want %d", len(d.got), tc.delivered)
			}
			if tc.name == "two inboxes, one message" && fmt.Sprint(d.got[0].To) != "[support@acme.test billing@acme.test]" {
				t.Errorf("recipients = %v", d.got[0].To)
			}
		})
	}
}

// TestNotStoredIs451: when the database cannot take a message the sender
// is told to retry; a 250 is never given for mail not stored.
func TestNotStoredIs451(t *testing.T) {
	d := &fakeDeliverer{err: fmt.Errorf("insert: %w", storage.ErrUnavailable)}
	converse(t, start(t, d, false), []step{{"EHLO c", 250}, {"MAIL FROM:<a@example.com>", 250},
		{"RCPT TO:<support@acme.test>", 250}, {"DATA", 354}, {"Subject: x\r\n\r\nx\r\n.", 451}})
}

func TestLMTP(t *testing.T) {
	d := &fakeDeliverer{}
	addr := start(t, d, true)
	_, path, _ := strings.Cut(addr, ":")
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c := gosmtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("mta.acme.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("ann@example.com", nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"support@acme.test", "billing@acme.test"} {
		if err := c.Rcpt(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("Subject: lmtp\r\n\r\nvia lmtp\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := w.CloseWithLMTPResponse()
	if err != nil || len(resp) != 2 {
		t.Errorf("per-recipient responses = %v, %v; want both accepted", resp, err)
	}
	if len(d.got) != 1 || d.got[0].Source != "lmtp" {
		t.Errorf("deliveries = %+v, want one from lmtp", d.got)
	}
}

// oneConn is a net.Listener that hands out one connection, then blocks
// until it is closed: FuzzSession's server serves exactly one session.
type oneConn struct {
	c      chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newOneConn(c net.Conn) *oneConn {
	l := &oneConn{c: make(chan net.Conn, 1), closed: make(chan struct{})}
	l.c <- c
	return l
}

func (l *oneConn) Accept() (net.Conn, error) {
	select {
	case c := <-l.c:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *oneConn) Close() error   { l.once.Do(func() { close(l.closed) }); return nil }
func (l *oneConn) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// queuedReply is go-smtp's answer to a stored DATA or BDAT LAST
// (dataErrorToStatus in go-smtp v0.25): the only 250 that says a message
// was taken.
const queuedReply = "250 2.0.0 OK: queued"

// session runs one SMTP session over net.Pipe against a fresh server:
// input, then "\r\n.\r\nQUIT\r\n" (which ends a DATA the input left
// open), and returns every reply line the server wrote until it closed
// the connection, with what the deliverer stored. A session that does
// not end within the deadline is a failure: a hang.
func session(t *testing.T, input string, spoolDir string) (replies []string, d *fakeDeliverer) {
	t.Helper()
	d = &fakeDeliverer{}
	// Short read timeouts: an input that leaves the server waiting for
	// bytes never sent (BDAT 100 with fewer) ends by them, quickly; the
	// pipe itself never makes a sent byte wait.
	srv := smtpd.New(smtpd.Options{Hostname: "mail.acme.test", MaxMessageBytes: 2000, MaxLineLength: 1000, SpoolDir: spoolDir,
		ReadTimeout: 300 * time.Millisecond, DataIdleTimeout: 300 * time.Millisecond}, d, inboxes{"support@acme.test": true, "billing@acme.test": true}, false)
	client, server := net.Pipe()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(newOneConn(server)) }()
	defer func() {
		_ = srv.Shutdown(context.Background())
		<-served
	}()
	_ = client.SetDeadline(time.Now().Add(5 * time.Second))
	// net.Pipe is unbuffered: write while the replies are read, and stop
	// writing when the server hangs up (it may well, before the input
	// ends: a 421, a line too long).
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		_, _ = client.Write([]byte(input + "\r\n.\r\nQUIT\r\n"))
	}()
	all, err := io.ReadAll(client)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("session did not end within its deadline; replies so far:\n%s", all)
	}
	_ = client.Close()
	<-wrote
	for _, line := range strings.Split(string(all), "\r\n") {
		if line != "" {
			replies = append(replies, line)
		}
	}
	return replies, d
}

// FuzzSession throws arbitrary command lines at a fresh server, one
// session per input over net.Pipe. The session must end (QUIT is always
// sent after the input), and the server's "250 … queued" answers must
// match what the deliverer stored one for one: never a 250 for a message
// not stored, never a stored message the sender was not told about.
func FuzzSession(f *testing.F) {
	for _, s := range []string{"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<support@acme.test>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n",
		"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<support@acme.test>\r\nDATA\r\nSubject: open DATA",
		"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<support@acme.test>\r\nDATA\r\nx\r\n.\r\nMAIL FROM:<c@d>\r\nRCPT TO:<billing@acme.test>\r\nDATA\r\ny\r\n.\r\n",
		"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<support@acme.test>\r\nBDAT 5\r\nhelloBDAT 0 LAST\r\n",
		"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<support@acme.test>\r\nBDAT 3 LAST\r\nabc",
		"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<nobody@acme.test>\r\nDATA\r\nx\r\n.\r\n",
		"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<support@acme.test>\r\nRSET\r\nDATA\r\n",
		"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<support@acme.test>\r\nDATA\r\n" + strings.Repeat("0123456789\r\n", 300),
		"EHLO a\r\nMAIL FROM:<a@b> SMTPUTF8 BODY=8BITMIME\r\nRCPT TO:<Support@Acme.Test>\r\nDATA\r\n..dot\r\n",
		"HELO\r\nRCPT TO:\r\nBDAT 10 LAST\r\n", "MAIL FROM:<@@@>\r\n", "\x00\xff\r\n", "STARTTLS\r\nAUTH PLAIN AAAA\r\n"} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, input string) {
		replies, d := session(t, input, dir)
		queued := 0
		for _, r := range replies {
			if strings.HasPrefix(r, queuedReply) {
				queued++
			}
		}
		d.mu.Lock()
		stored := len(d.got)
		d.mu.Unlock()
		if queued != stored {
			t.Fatalf("%d %q answers, %d messages stored; replies:\n%s", queued, queuedReply, stored, strings.Join(replies, "\n"))
		}
		if len(replies) == 0 || !strings.HasPrefix(replies[0], "220 ") {
			t.Fatalf("no greeting: %q", replies)
		}
	})
}

// TestSessionCounts checks FuzzSession's harness on sessions whose
// outcome is known, so that the fuzzer's invariant is not vacuous.
func TestSessionCounts(t *testing.T) {
	tests := []struct {
		name   string
		input  string
		stored int
	}{
		{"one", "EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<support@acme.test>\r\nDATA\r\nSubject: x\r\n\r\nx", 1},
		{"two", "EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<support@acme.test>\r\nDATA\r\nx\r\n.\r\nMAIL FROM:<a@b>\r\nRCPT TO:<support@acme.test>\r\nDATA\r\ny", 2},
		{"bdat", "EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<support@acme.test>\r\nBDAT 5 LAST\r\nhello", 1},
		{"refused", "EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@elsewhere.example>\r\nDATA\r\nx", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			replies, d := session(t, tc.input, t.TempDir())
			queued := 0
			for _, r := range replies {
				if strings.HasPrefix(r, queuedReply) {
					queued++
				}
			}
			if len(d.got) != tc.stored || queued != tc.stored {
				t.Errorf("stored %d, %d queued answers; want %d; replies %q", len(d.got), queued, tc.stored, replies)
			}
			if last := replies[len(replies)-1]; !strings.HasPrefix(last, "221 ") {
				t.Errorf("last reply %q, want 221 to QUIT", last)
			}
		})
	}
}

// TestEnvelopeForSPF: the client's address and HELO name reach the ingest
// path (SPF needs both; a message without them cannot be checked), and a
// second transaction on the same connection keeps them.
func TestEnvelopeForSPF(t *testing.T) {
	d := &fakeDeliverer{}
	msg := []step{{"MAIL FROM:<Ann@Example.com>", 250}, {"RCPT TO:<support@acme.test>", 250}, {"DATA", 354}, {"Subject: hi\r\n\r\nhello\r\n.", 250}}
	converse(t, start(t, d, false), append(append([]step{{"EHLO mx.Example.com", 250}}, msg...), msg...))
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.got) != 2 {
		t.Fatalf("%d deliveries", len(d.got))
	}
	for _, env := range d.got {
		if !env.ClientIP.Equal(net.ParseIP("127.0.0.1")) || env.Helo != "mx.Example.com" || env.From != "ann@example.com" {
			t.Errorf("envelope %+v: want client 127.0.0.1, HELO mx.Example.com", env)
		}
	}
}

// tWriter sends the server's log to the test's.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
