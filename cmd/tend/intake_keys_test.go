package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// TestIntakeKeysTakeEffect runs the real binary with each of the intake
// keys set low and watches the SMTP door obey it: a key that is read but
// not wired would leave the default (minutes, gigabytes) and the case
// would fail.
func TestIntakeKeysTakeEffect(t *testing.T) {
	tests := []struct {
		name  string
		env   string
		probe func(t *testing.T, p *tendProc, c *textproto.Conn, conn net.Conn)
	}{
		{"smtp.max_commands", "TEND_SMTP_MAX_COMMANDS=3", func(t *testing.T, _ *tendProc, c *textproto.Conn, _ net.Conn) {
			for range 3 {
				say(t, c, "NOOP", 250)
			}
			say(t, c, "NOOP", 421)
		}},
		{"smtp.max_session_time", "TEND_SMTP_MAX_SESSION_TIME=1s", func(t *testing.T, _ *tendProc, c *textproto.Conn, _ net.Conn) {
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for range 50 {
				<-tick.C
				if say(t, c, "NOOP", 0) == 421 {
					return
				}
			}
			t.Fatal("session outlived max_session_time")
		}},
		{"smtp.data_idle_timeout", "TEND_SMTP_DATA_IDLE_TIMEOUT=300ms", func(t *testing.T, _ *tendProc, c *textproto.Conn, conn net.Conn) {
			envelope(t, c)
			_, _ = io.WriteString(conn, "Subject: stall\r\n\r\nx") // and then silence
			if _, _, err := c.ReadResponse(451); err != nil {
				t.Fatalf("stalled DATA: %v, want 451", err)
			}
		}},
		{"smtp.data_timeout", "TEND_SMTP_DATA_TIMEOUT=1s", func(t *testing.T, _ *tendProc, c *textproto.Conn, conn net.Conn) {
			envelope(t, c)
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			go func() {
				for i := 0; ; i++ {
					if _, err := fmt.Fprintf(conn, "line %d\r\n", i); err != nil {
						return
					}
					<-tick.C
				}
			}()
			if _, _, err := c.ReadResponse(451); err != nil {
				t.Fatalf("endless DATA: %v, want 451", err)
			}
		}},
		{"min_free_disk", "TEND_MIN_FREE_DISK=1000PiB", func(t *testing.T, p *tendProc, c *textproto.Conn, _ net.Conn) {
			say(t, c, "EHLO client.example", 250)
			say(t, c, "MAIL FROM:<ann@example.com>", 452)
			resp, err := http.Get("http://" + p.WebAddr + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "insufficient system storage") {
				t.Errorf("/readyz with a nearly full disk: %d %s", resp.StatusCode, body)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := startTend(t, writeConfig(t, t.TempDir(), "sqlite", ""), tc.env)
			conn, err := net.Dial("tcp", p.SMTPAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
			c := textproto.NewConn(conn)
			if _, _, err := c.ReadResponse(220); err != nil {
				t.Fatal(err)
			}
			tc.probe(t, p, c, conn)
		})
	}
}

// say sends line and checks the reply code (0: any); it returns the code.
func say(t *testing.T, c *textproto.Conn, line string, want int) int {
	t.Helper()
	if err := c.PrintfLine("%s", line); err != nil {
		t.Fatal(err)
	}
	code, msg, err := c.ReadResponse(want)
	if err != nil && (want != 0 || code == 0) {
		t.Fatalf("%s: %d %s, want %d (%v)", line, code, msg, want, err)
	}
	return code
}

func envelope(t *testing.T, c *textproto.Conn) {
	t.Helper()
	say(t, c, "EHLO client.example", 250)
	say(t, c, "MAIL FROM:<ann@example.com>", 250)
	say(t, c, "RCPT TO:<support@acme.test>", 250)
	say(t, c, "DATA", 354)
}
