package smtpd_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/mail/smtpd"
)

// client is a raw SMTP client that can pace what it sends.
type client struct {
	t    *testing.T
	conn net.Conn
	text *textproto.Conn
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	_, a, _ := strings.Cut(addr, ":")
	conn, err := net.Dial("tcp", a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := &client{t: t, conn: conn, text: textproto.NewConn(conn)}
	c.expect(220)
	return c
}

// cmd sends a line and returns the reply's code and text.
func (c *client) cmd(line string) (int, string) {
	c.t.Helper()
	if err := c.text.PrintfLine("%s", line); err != nil {
		c.t.Fatalf("send %q: %v", line, err)
	}
	code, msg, err := c.text.ReadResponse(0)
	if err != nil && code == 0 {
		c.t.Fatalf("after %q: %v", line, err)
	}
	return code, msg
}

func (c *client) expect(want int) string {
	c.t.Helper()
	code, msg, err := c.text.ReadResponse(want)
	if err != nil {
		c.t.Fatalf("got %d %s, want %d (%v)", code, msg, want, err)
	}
	return msg
}

// envelope runs EHLO, MAIL and RCPT, all expected to pass.
func (c *client) envelope() {
	c.t.Helper()
	for _, l := range []string{"EHLO slow.example", "MAIL FROM:<ann@example.com>", "RCPT TO:<support@acme.test>"} {
		if code, msg := c.cmd(l); code != 250 {
			c.t.Fatalf("%s: %d %s", l, code, msg)
		}
	}
	if code, msg := c.cmd("DATA"); code != 354 {
		c.t.Fatalf("DATA: %d %s", code, msg)
	}
}

// closed reports whether the server has closed the connection.
func (c *client) closed() bool {
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := c.text.R.ReadByte()
	if err == nil {
		c.t.Logf("read %q after the end", b)
	}
	// A close with the client's bytes in flight may come as a reset.
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// TestDataDeadlines: during DATA each read has its own idle deadline
// (RFC 5321 §4.5.3.2.5) and the whole DATA one more; read_timeout is for
// the silence between commands only. A slow but steady sender is
// accepted although its DATA takes several read timeouts; one that stalls
// longer than the idle timeout, or trickles past the data deadline, gets
// 451 4.3.0 with nothing internal in the text, and the connection is
// closed. Before, DATA had to finish within one read_timeout and the cut
// was a permanent 554 quoting "read tcp 127.0.0.1:…: i/o timeout".
func TestDataDeadlines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		idle, whole time.Duration
		every       time.Duration // between two chunks
		chunks      int
		want        int
	}{
		// 12 chunks 250 ms apart: 3 s of DATA, three times read_timeout.
		{"slow steady sender accepted", time.Second, 30 * time.Second, 250 * time.Millisecond, 12, 250},
		// One byte, then silence longer than the idle timeout.
		{"stalled sender cut", 300 * time.Millisecond, 30 * time.Second, 1500 * time.Millisecond, 3, 451},
		// Steady enough for the idle timeout, but never done.
		{"data deadline", time.Second, 1500 * time.Millisecond, 200 * time.Millisecond, 100, 451},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := &fakeDeliverer{}
			addr := startOpts(t, d, false, smtpd.Options{MaxMessageBytes: 1 << 20, ReadTimeout: time.Second,
				DataIdleTimeout: tc.idle, DataTimeout: tc.whole})
			c := dial(t, addr)
			c.envelope()
			if _, err := io.WriteString(c.conn, "Subject: slow\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			tick := time.NewTicker(tc.every)
			defer tick.Stop()
			for i := range tc.chunks {
				if _, err := fmt.Fprintf(c.conn, "line %d %s\r\n", i, strings.Repeat("x", 100)); err != nil {
					break // the server cut us off
				}
				<-tick.C
			}
			_, _ = io.WriteString(c.conn, ".\r\n")
			msg := c.expect(tc.want)
			d.mu.Lock()
			n := len(d.got)
			d.mu.Unlock()
			if tc.want == 250 {
				if n != 1 {
					t.Fatalf("%d messages delivered, want 1", n)
				}
				if code, _ := c.cmd("QUIT"); code != 221 {
					t.Errorf("QUIT: %d", code)
				}
				return
			}
			if n != 0 {
				t.Errorf("%d messages delivered after a cut DATA", n)
			}
			if strings.Contains(msg, "127.0.0.1") || strings.Contains(msg, "timeout") || !strings.HasPrefix(msg, "4.3.0 ") {
				t.Errorf("reply text %q: want 4.3.0 and no internal detail", msg)
			}
			if !c.closed() {
				t.Error("connection still open after a cut DATA")
			}
		})
	}
}

// TestSessionLimits: a client that only sends NOOP is ended by the
// command cap or the lifetime cap with 421, between commands.
func TestSessionLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		opts  smtpd.Options
		every time.Duration
		max   int // NOOPs after which the session must have ended
	}{
		{"command cap", smtpd.Options{MaxCommands: 5}, 0, 6},
		{"lifetime cap", smtpd.Options{MaxSessionTime: 600 * time.Millisecond}, 100 * time.Millisecond, 30},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.opts.ReadTimeout = 5 * time.Second
			c := dial(t, startOpts(t, &fakeDeliverer{}, false, tc.opts))
			var tick <-chan time.Time
			if tc.every > 0 {
				tk := time.NewTicker(tc.every)
				defer tk.Stop()
				tick = tk.C
			}
			for i := range tc.max {
				if tick != nil {
					<-tick
				}
				code, msg := c.cmd("NOOP")
				if code == 250 {
					continue
				}
				if code != 421 || !strings.HasPrefix(msg, "4.4.2 ") {
					t.Fatalf("NOOP %d: %d %s, want 421 4.4.2", i+1, code, msg)
				}
				if tc.opts.MaxCommands > 0 && i != tc.opts.MaxCommands {
					// No EHLO is sent: the cap counts NOOPs only here.
					t.Errorf("ended after %d NOOPs, want after %d", i, tc.opts.MaxCommands)
				}
				if !c.closed() {
					t.Error("connection still open after 421")
				}
				return
			}
			t.Fatalf("session still alive after %d NOOPs", tc.max)
		})
	}
}

// TestTooManyConnections: over max_connections a new connection is told
// 421 4.3.2 at once and closed (it used to wait in silence); once a slot
// is free, a new one is served again.
func TestTooManyConnections(t *testing.T) {
	t.Parallel()
	addr := startOpts(t, &fakeDeliverer{}, false, smtpd.Options{MaxConnections: 2, ReadTimeout: 10 * time.Second})
	first, _ := dial(t, addr), dial(t, addr)
	_, a, _ := strings.Cut(addr, ":")
	conn, err := net.Dial("tcp", a)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "421 4.3.2 ") {
		t.Fatalf("third connection got %q, %v; want 421 4.3.2", line, err)
	}
	if code, _ := first.cmd("QUIT"); code != 221 {
		t.Fatalf("QUIT: %d", code)
	}
	// The slot is given back when the server has closed its side.
	if !first.closed() {
		t.Fatal("QUIT did not close")
	}
	var last string
	for range 50 {
		c, err := net.Dial("tcp", a)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		last, _ = bufio.NewReader(c).ReadString('\n')
		_ = c.Close()
		if strings.HasPrefix(last, "220 ") {
			return
		}
	}
	t.Fatalf("no slot after one session ended: %q", last)
}

// fakeDisk reports free space from a script: free[i] at the i-th call,
// the last value after that.
type fakeDisk struct {
	mu    sync.Mutex
	free  []uint64
	calls int
}

func (f *fakeDisk) Free() (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := min(f.calls, len(f.free)-1)
	f.calls++
	return f.free[i], nil
}

// TestDiskNearlyFull: below min_free_disk, MAIL (counting its SIZE), RCPT
// and a DATA that fills the disk while it streams get 452 4.3.1, and
// nothing is stored.
func TestDiskNearlyFull(t *testing.T) {
	t.Parallel()
	const minFree = 1 << 20
	tests := []struct {
		name  string
		free  []uint64
		mail  string
		codes []int // MAIL, RCPT, end of DATA (0: not reached)
	}{
		{"room", []uint64{10 * minFree}, "MAIL FROM:<a@example.com>", []int{250, 250, 250}},
		{"full at MAIL", []uint64{minFree / 2}, "MAIL FROM:<a@example.com>", []int{452, 0, 0}},
		{"SIZE does not fit", []uint64{minFree + 5000}, "MAIL FROM:<a@example.com> SIZE=10000", []int{452, 0, 0}},
		{"full at RCPT", []uint64{2 * minFree, minFree / 2}, "MAIL FROM:<a@example.com>", []int{250, 452, 0}},
		{"fills while spooling", []uint64{2 * minFree, 2 * minFree, minFree / 2}, "MAIL FROM:<a@example.com>", []int{250, 250, 452}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := &fakeDeliverer{}
			addr := startOpts(t, d, false, smtpd.Options{MaxMessageBytes: 1 << 20, ReadTimeout: 5 * time.Second,
				Disk: ingest.DiskGuard{Disk: &fakeDisk{free: tc.free}, MinFree: minFree}})
			c := dial(t, addr)
			c.cmd("EHLO c")
			steps := []string{tc.mail, "RCPT TO:<support@acme.test>"}
			for i, l := range steps {
				code, msg := c.cmd(l)
				if code != tc.codes[i] {
					t.Fatalf("%s: %d %s, want %d", l, code, msg, tc.codes[i])
				}
				if code == 452 && !strings.HasPrefix(msg, "4.3.1 ") {
					t.Errorf("%s: %q, want 4.3.1", l, msg)
				}
				if code != 250 {
					return
				}
			}
			if code, _ := c.cmd("DATA"); code != 354 {
				t.Fatalf("DATA: %d", code)
			}
			code, msg := c.cmd("Subject: x\r\n\r\nbody\r\n.")
			if code != tc.codes[2] {
				t.Fatalf("end of DATA: %d %s, want %d", code, msg, tc.codes[2])
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			if want := map[bool]int{true: 1, false: 0}[code == 250]; len(d.got) != want {
				t.Errorf("%d messages delivered, want %d", len(d.got), want)
			}
		})
	}
}

// TestCommandCapCountsFromLastMessage: an MTA reusing one connection for
// many messages is never cut by the command cap, which counts from the
// last accepted message.
func TestCommandCapCountsFromLastMessage(t *testing.T) {
	t.Parallel()
	d := &fakeDeliverer{}
	c := dial(t, startOpts(t, d, false, smtpd.Options{MaxCommands: 5, ReadTimeout: 5 * time.Second}))
	c.cmd("EHLO mta.example")
	for i := range 4 { // 4 × MAIL, RCPT, DATA: 12 command lines
		for _, l := range []string{"MAIL FROM:<a@example.com>", "RCPT TO:<support@acme.test>", "DATA"} {
			if code, msg := c.cmd(l); code != 250 && code != 354 {
				t.Fatalf("message %d, %s: %d %s", i+1, l, code, msg)
			}
		}
		if code, msg := c.cmd(fmt.Sprintf("Subject: %d\r\n\r\nx\r\n.", i)); code != 250 {
			t.Fatalf("message %d: %d %s", i+1, code, msg)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.got) != 4 {
		t.Errorf("%d messages delivered, want 4", len(d.got))
	}
}
