package smtpd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// limitListener hands out at most max connections at once (0: no limit).
// One more is not left waiting in silence (netutil.LimitListener's way,
// which a sending MTA sees as a dead server until its own timeout): it is
// told 421 at once and closed, and the sender retries later (RFC 5321
// §3.8).
type limitListener struct {
	net.Listener
	sem  chan struct{} // nil: no limit
	opts *Options
}

func newLimitListener(l net.Listener, opts *Options) *limitListener {
	ll := &limitListener{Listener: l, opts: opts}
	if opts.MaxConnections > 0 {
		ll.sem = make(chan struct{}, opts.MaxConnections)
	}
	return ll
}

// refuseWrite bounds the 421 written to a connection over the limit: it
// is a few bytes into an empty socket buffer, so only a broken peer makes
// it wait.
const refuseWrite = time.Second

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		release := func() {}
		if l.sem != nil {
			select {
			case l.sem <- struct{}{}:
				release = func() { <-l.sem }
			default:
				l.opts.OnReject("too_many_connections")
				_ = c.SetWriteDeadline(time.Now().Add(refuseWrite))
				_, _ = fmt.Fprintf(c, "421 4.3.2 %s Too many connections, try again later\r\n", l.opts.Hostname)
				_ = c.Close()
				continue
			}
		}
		return &limitConn{Conn: c, opts: l.opts, born: time.Now(), release: release}, nil
	}
}

// limitConn is one SMTP connection with the deadlines of RFC 5321
// §4.5.3.2 and a bounded life.
//
// go-smtp sets a read deadline before it reads each command and none
// while DATA streams, so DATA would have to arrive whole within one
// read_timeout: a sender slower than size/read_timeout could never
// deliver a large mail. While the session reads DATA (beginData to the
// next command), every read instead gets its own idle deadline
// (DataIdleTimeout, the "data block" timeout of §4.5.3.2.5), capped by a
// deadline for the whole DATA (DataTimeout). A DATA cut by either is
// answered 451 and the connection is closed: what the client sends next
// is the rest of a message, not a command.
//
// Between commands, a session that has lived MaxSessionTime, or sent
// MaxCommands lines since its last accepted message, is told 421 and
// closed, so that a client sending NOOP forever does not hold a
// connection slot forever, while an MTA that reuses one connection for
// many messages is not cut.
type limitConn struct {
	net.Conn
	opts    *Options
	born    time.Time
	release func()
	once    sync.Once

	mu      sync.Mutex
	data    bool      // the session is reading DATA (or BDAT chunks)
	drain   bool      // DATA is over; go-smtp drains it before the next command
	dataEnd time.Time // deadline of the whole DATA
	cut     bool      // a DATA deadline passed: nothing more is read
	lines   int       // command lines received since the last accepted message
	ended   bool      // the session's life is over: 421 sent
}

// beginData starts the DATA deadlines.
func (c *limitConn) beginData() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.data, c.drain = true, false
	c.dataEnd = time.Now().Add(c.opts.DataTimeout)
}

// endData hands the deadlines back to go-smtp once it asks for the next
// command; until then it drains what is left of DATA under the same
// deadlines.
func (c *limitConn) endData() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.data, c.drain = false, true
}

// SetReadDeadline is how go-smtp times out an idle client between
// commands; while DATA streams the deadlines are this conn's own.
func (c *limitConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.data {
		return nil
	}
	c.drain = false
	return c.Conn.SetReadDeadline(t)
}

// errCut is what reads return once a DATA deadline has passed or the
// session's life is over; io.EOF, so that go-smtp closes the connection
// without a reply of its own.
var errCut = io.EOF

func (c *limitConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if c.cut || c.ended {
		c.mu.Unlock()
		return 0, errCut
	}
	inData := c.data || c.drain
	if inData {
		d := time.Now().Add(c.opts.DataIdleTimeout)
		if d.After(c.dataEnd) {
			d = c.dataEnd
		}
		if err := c.Conn.SetReadDeadline(d); err != nil {
			c.mu.Unlock()
			return 0, err
		}
	}
	reason := ""
	if !inData {
		reason = c.overLimit()
	}
	c.mu.Unlock()
	n, err := c.Conn.Read(p)
	if reason != "" && n > 0 {
		// The next command is read first and answered 421: closing with
		// it unread would reset the connection, and a reset can discard
		// the 421 before the client reads it.
		c.mu.Lock()
		c.ended = true
		c.mu.Unlock()
		c.opts.OnReject(reason)
		_ = c.Conn.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
		_, _ = fmt.Fprintf(c.Conn, "421 4.4.2 %s Session limit reached, closing connection\r\n", c.opts.Hostname)
		return 0, errCut
	}
	c.mu.Lock()
	if inData {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.cut = true
		}
	} else {
		c.lines += bytes.Count(p[:n], []byte("\n"))
	}
	c.mu.Unlock()
	return n, err
}

// overLimit says why the session must end now, or "".
func (c *limitConn) overLimit() string {
	switch {
	case c.opts.MaxSessionTime > 0 && time.Since(c.born) > c.opts.MaxSessionTime:
		return "session_time"
	case c.opts.MaxCommands > 0 && c.lines >= c.opts.MaxCommands:
		return "session_commands"
	}
	return ""
}

// delivered starts the command count again: the session made progress.
func (c *limitConn) delivered() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = 0
}

// wasCut reports whether a DATA deadline cut the stream.
func (c *limitConn) wasCut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cut
}

func (c *limitConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// connOf finds the limitConn under a go-smtp connection (under TLS when
// STARTTLS wrapped it).
func connOf(c net.Conn) *limitConn {
	for c != nil {
		switch v := c.(type) {
		case *limitConn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}
