package main

import (
	"net"
	"net/textproto"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dialSMTP connects to addr and reads the greeting.
func dialSMTP(t *testing.T, addr string) (*textproto.Conn, net.Conn) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	c := textproto.NewConn(conn)
	if _, _, err := c.ReadResponse(220); err != nil {
		t.Fatal(err)
	}
	return c, conn
}

// TestGracefulShutdown signals the real binary while a message's DATA is
// half sent: tend stops accepting (an idle session is told 421, a new
// connection is refused), the DATA is finished, stored and answered 250,
// and the process then exits, its leases released. On both backends.
func TestGracefulShutdown(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			cfg := writeConfig(t, t.TempDir(), backend, "")
			p := startTend(t, cfg, "TEND_SMTP_SHUTDOWN_GRACE=2m")
			slow, _ := dialSMTP(t, p.SMTPAddr)
			envelope(t, slow)
			if err := slow.PrintfLine("From: Ann <ann@example.com>\r\nTo: support@acme.test\r\nSubject: Sent during a shutdown\r\nMessage-ID: <graceful@example.com>\r\n\r\nThe first half"); err != nil {
				t.Fatal(err)
			}
			idle, _ := dialSMTP(t, p.SMTPAddr)
			say(t, idle, "EHLO idle.example", 250)

			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			// The idle session is told 421 without asking: the shutdown
			// has begun, and the listener is closed.
			if code, msg, err := idle.ReadResponse(421); err != nil {
				t.Fatalf("idle session at shutdown: %d %s (%v), want 421", code, msg, err)
			}
			if c, err := net.Dial("tcp", p.SMTPAddr); err == nil {
				_ = c.Close()
				t.Error("a new connection was accepted during the shutdown")
			}
			select {
			case <-p.exited:
				t.Fatal("tend exited with a DATA under way")
			default:
			}
			if err := slow.PrintfLine("and the second half.\r\n."); err != nil {
				t.Fatal(err)
			}
			if code, msg, err := slow.ReadResponse(250); err != nil {
				t.Fatalf("DATA finished during the shutdown: %d %s (%v), want 250", code, msg, err)
			}
			waitExit(t, p, "tend to exit", 60*time.Second)
			if !strings.Contains(p.Log(), "released this replica's leases") {
				t.Errorf("no lease release logged:\n%s", p.Log())
			}
			counts, _ := storeCounts(t, cfg)
			if counts.Messages != 1 {
				t.Errorf("%d messages stored, want the one sent during the shutdown", counts.Messages)
			}
		})
	}
}

// TestShutdownGrace proves smtp.shutdown_grace: a DATA that never finishes
// is cut once the grace (1s here) is over, the process exits well before
// the default grace (30s) would let it, and nothing half-received is
// stored or answered 250.
func TestShutdownGrace(t *testing.T) {
	cfg := writeConfig(t, t.TempDir(), "sqlite", "")
	p := startTend(t, cfg, "TEND_SMTP_SHUTDOWN_GRACE=1s")
	stalled, conn := dialSMTP(t, p.SMTPAddr)
	envelope(t, stalled)
	if err := stalled.PrintfLine("Subject: never finished\r\n\r\nhalf"); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExit(t, p, "tend to exit after its 1s grace (the default is 30s)", 20*time.Second)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if code, msg, err := stalled.ReadResponse(250); err == nil {
		t.Errorf("a DATA cut by the grace was answered %d %s", code, msg)
	}
	if counts, _ := storeCounts(t, cfg); counts.Messages != 0 {
		t.Errorf("%d messages stored from a cut DATA", counts.Messages)
	}
}

// waitExit waits for p to exit by itself.
func waitExit(t *testing.T, p *tendProc, what string, deadline time.Duration) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(deadline):
		t.Fatalf("timed out after %v waiting for %s", deadline, what)
	}
}
