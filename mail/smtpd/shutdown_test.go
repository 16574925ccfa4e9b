package smtpd_test

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/mail/smtpd"
)

// startServer starts a server on TCP and returns it with its address
// (network:address, as dial wants it).
func startServer(t *testing.T, d smtpd.Deliverer) (*smtpd.Server, string) {
	t.Helper()
	opts := smtpd.Options{Hostname: "mail.acme.test", MaxLineLength: 1000, SpoolDir: t.TempDir(), ReadTimeout: 30 * time.Second,
		Logger: slog.New(slog.NewTextHandler(tWriter{t}, nil))}
	srv := smtpd.New(opts, d, inboxes{"support@acme.test": true}, false)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return srv, "tcp:" + l.Addr().String()
}

// TestShutdownFinishesTransactions: a shutdown stops accepting, tells an
// idle session 421 at once, and lets the transactions under way finish:
// a DATA in progress is stored and answered 250, a session between MAIL
// and DATA may go on; each is told 421 after its transaction, and
// Shutdown returns once they are done, before its deadline.
func TestShutdownFinishesTransactions(t *testing.T) {
	d := &fakeDeliverer{}
	srv, addr := startServer(t, d)
	inData := dial(t, addr)
	inData.envelope()
	if err := inData.text.PrintfLine("Subject: slow\r\n\r\nfirst half"); err != nil {
		t.Fatal(err)
	}
	idle := dial(t, addr)
	if code, _ := idle.cmd("EHLO idle.example"); code != 250 {
		t.Fatalf("EHLO: %d", code)
	}
	inMail := dial(t, addr)
	for _, l := range []string{"EHLO mail.example", "MAIL FROM:<bob@example.com>"} {
		if code, msg := inMail.cmd(l); code != 250 {
			t.Fatalf("%s: %d %s", l, code, msg)
		}
	}

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	// The idle session is told 421 and closed without being asked
	// anything: the shutdown has begun.
	if msg := idle.expect(421); msg == "" {
		t.Error("421 without a text")
	}
	if !idle.closed() {
		t.Error("idle session not closed at shutdown")
	}
	if c, err := net.Dial("tcp", strings.TrimPrefix(addr, "tcp:")); err == nil {
		_ = c.Close()
		t.Error("a new connection was accepted during the shutdown")
	}

	// The DATA under way finishes: stored, then 250.
	if err := inData.text.PrintfLine("second half\r\n."); err != nil {
		t.Fatal(err)
	}
	inData.expect(250)
	d.mu.Lock()
	stored := len(d.got)
	d.mu.Unlock()
	if stored != 1 {
		t.Fatalf("%d messages stored, want the one whose DATA was under way", stored)
	}
	inData.expect(421)
	if !inData.closed() {
		t.Error("session not closed after its transaction")
	}
	// The session between MAIL and DATA may go on; RSET ends its
	// transaction and then it too is told 421.
	if code, _ := inMail.cmd("RCPT TO:<support@acme.test>"); code != 250 {
		t.Errorf("RCPT during the shutdown: %d, want 250", code)
	}
	if code, _ := inMail.cmd("RSET"); code != 250 {
		t.Errorf("RSET: %d", code)
	}
	inMail.expect(421)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown did not return once every session had ended")
	}
}

// TestShutdownGraceCuts: a DATA that does not finish within the grace
// (Shutdown's context) is cut, not stored and never answered 250: the
// sender keeps the mail and retries.
func TestShutdownGraceCuts(t *testing.T) {
	d := &fakeDeliverer{}
	srv, addr := startServer(t, d)
	c := dial(t, addr)
	c.envelope()
	if err := c.text.PrintfLine("Subject: stalled\r\n\r\nnever ends"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = srv.Shutdown(ctx)
	if !c.closed() {
		t.Error("a DATA past the grace was not cut")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.got) != 0 {
		t.Errorf("%d messages stored from a cut DATA", len(d.got))
	}
}
