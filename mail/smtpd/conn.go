package smtpd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
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

	// stopping is set when the server shuts down: sessions finish the
	// transaction under way and are then told 421; idle ones at once.
	stopping  atomic.Bool
	closeOnce sync.Once
	mu        sync.Mutex
	conns     map[*limitConn]struct{} // open connections, for stop
}

func newLimitListener(l net.Listener, opts *Options) *limitListener {
	ll := &limitListener{Listener: l, opts: opts, conns: map[*limitConn]struct{}{}}
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
		lc := &limitConn{Conn: c, opts: l.opts, born: time.Now(), l: l}
		l.mu.Lock()
		l.conns[lc] = struct{}{}
		l.mu.Unlock()
		lc.release = func() {
			release()
			l.mu.Lock()
			delete(l.conns, lc)
			l.mu.Unlock()
		}
		return lc, nil
	}
}

// Close closes the listener; closing it again (go-smtp's Shutdown does,
// after Server.Shutdown) is no error.
func (l *limitListener) Close() error {
	var err error
	l.closeOnce.Do(func() { err = l.Listener.Close() })
	return err
}

// closeAll closes every open connection: the shutdown's grace is over.
func (l *limitListener) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		_ = c.Conn.Close()
	}
}

// stop begins the shutdown: the listener closes (first, so that no session
// starts after the idle ones were told to end), no new transaction
// starts, and every session
// not in a transaction is woken from its wait for a command (its read
// deadline set to now) to be told 421 and closed. A session in a
// transaction goes on; it is told 421 when it asks for its next command
// after the transaction, so a DATA under way is stored and answered.
func (l *limitListener) stop() {
	l.stopping.Store(true)
	_ = l.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.mu.Lock()
		if !c.tx && !c.data && !c.drain {
			_ = c.Conn.SetReadDeadline(time.Now())
		}
		c.mu.Unlock()
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
	l       *limitListener

	mu      sync.Mutex
	data    bool      // the session is reading DATA (or BDAT chunks)
	drain   bool      // DATA is over; go-smtp drains it before the next command
	dataEnd time.Time // deadline of the whole DATA
	cut     bool      // a DATA deadline passed: nothing more is read
	lines   int       // command lines received since the last accepted message
	ended   bool      // the session's life is over: 421 sent
	tx      bool      // a mail transaction is under way (MAIL to its end)
}

// setTx records whether a mail transaction is under way (MAIL given, not
// yet ended by DATA's reply or RSET): a shutdown lets it finish.
func (c *limitConn) setTx(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tx = on
}

// stopping reports whether the server is shutting down.
func (c *limitConn) stopping() bool { return c.l != nil && c.l.stopping.Load() }

// endForShutdown tells the client 421 and ends the session: the server is
// shutting down and no transaction is under way. Called with c.mu held.
func (c *limitConn) endForShutdown() error {
	c.ended = true
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
	_, _ = fmt.Fprintf(c.Conn, "421 4.3.2 %s Shutting down, try again later\r\n", c.opts.Hostname)
	return errCut
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
	if !inData && !c.tx && c.stopping() {
		defer c.mu.Unlock()
		return 0, c.endForShutdown()
	}
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
	if err != nil && !inData && !c.tx && c.stopping() {
		// Woken by stop from the wait for a command.
		defer c.mu.Unlock()
		return 0, c.endForShutdown()
	}
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
