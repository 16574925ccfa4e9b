package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// serveOnce runs `tend serve` expecting it to refuse to start, and returns
// its output and exit error.
func serveOnce(t *testing.T, cfgPath string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, tendBinary(t), "serve", "--config", cfgPath).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the second tend serve did not exit: it runs beside the first\n%s", out)
	}
	return string(out), err
}

// TestSecondServeRefused: a second `tend serve` on the same data directory
// refuses to start and names the process that holds it; once that one is
// killed with SIGKILL (no shutdown code runs), the next start works,
// because the kernel dropped the lock with the process. On PostgreSQL the
// data directory (the spool) is locked the same way.
func TestSecondServeRefused(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			cfg := writeConfig(t, t.TempDir(), backend, "")
			first := startTend(t, cfg)
			out, err := serveOnce(t, cfg)
			if err == nil {
				t.Fatalf("a second tend serve on one data directory started:\n%s", out)
			}
			want := fmt.Sprintf("in use by another tend serve (pid %d on ", first.cmd.Process.Pid)
			if !strings.Contains(out, want) {
				t.Errorf("refusal does not name the first process (%q):\n%s", want, out)
			}
			if strings.Contains(out, "smtp listening") {
				t.Errorf("the second process opened its doors before refusing:\n%s", out)
			}
			first.Kill()
			again := startTend(t, cfg)
			if again.SMTPAddr == "" {
				t.Fatalf("restart after SIGKILL did not listen:\n%s", again.Log())
			}
		})
	}
}

// stallFirst is a listener whose first connection is held open without a
// word (tend's relay client waits for the greeting, holding the outbox
// lease); every later connection is served.
type stallFirst struct {
	net.Listener
	once    sync.Once
	stalled chan net.Conn
}

func (l *stallFirst) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		first := false
		l.once.Do(func() { first = true })
		if !first {
			return c, nil
		}
		l.stalled <- c
	}
}

// TestRestartReclaimsLeases: tend is killed with SIGKILL while it holds the
// lease of outgoing mail (its relay connection hangs), and is started
// again. On SQLite the restarted process holds the data directory's lock,
// so it takes the dead run's leases back at once: the acknowledgement
// reaches the relay well within the outbox lease (10 minutes) it would
// otherwise wait out.
func TestRestartReclaimsLeases(t *testing.T) {
	c := &relayCapture{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.addr = l.Addr().String()
	sl := &stallFirst{Listener: l, stalled: make(chan net.Conn, 1)}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) { return &captureSession{c: c}, nil }))
	srv.Domain = "relay.test"
	go func() { _ = srv.Serve(sl) }()
	t.Cleanup(func() { _ = srv.Close() })

	cfg := writeConfig(t, t.TempDir(), "sqlite", fmt.Sprintf("relay: {addr: %q}\n", c.addr))
	p := startTend(t, cfg)
	if err := sendMail(p.SMTPAddr, "ann@example.com", []string{"support@acme.test"},
		mailText("ann@example.com", "support@acme.test", "Printer on fire", "fire@example.com", "", "It smokes.")); err != nil {
		t.Fatal(err)
	}
	var hung net.Conn
	select {
	case hung = <-sl.stalled: // the sender has claimed the outbox and is sending
	case <-time.After(60 * time.Second):
		t.Fatalf("tend never connected to the relay:\n%s", p.Log())
	}
	defer hung.Close()
	p.Kill()
	if got := c.to("ann@example.com", 0); len(got) != 0 {
		t.Fatalf("mail reached the relay before the restart: %v", got)
	}

	again := startTend(t, cfg)
	// One minute is a tenth of the outbox lease: without the reclaim the
	// mail would stay leased to the dead process for ten.
	waitFor(t, "the acknowledgement after the restart", time.Minute, func() bool {
		return len(c.to("ann@example.com", 0)) > 0
	})
	if !strings.Contains(again.Log(), "took back the leases an earlier run left behind") {
		t.Errorf("the restart did not say it took the leases back:\n%s", again.Log())
	}
}

// TestServeUsesDatabaseClock: serve's store judges leases by the
// database's clock (on PostgreSQL; storage's TestLeasesUseDatabaseClock
// shows what that prevents), and every start is a distinct lease owner.
func TestServeUsesDatabaseClock(t *testing.T) {
	cfg, err := loadConfig("", os.Environ())
	if err != nil {
		t.Fatal(err)
	}
	if !storeOptions(cfg).DatabaseClock {
		t.Error("serve's store judges leases by each replica's own clock")
	}
	if a, b := replicaName(), replicaName(); a == b {
		t.Errorf("two processes with one host and pid (containers) would share the lease owner %q", a)
	}
}
