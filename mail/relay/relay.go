// Package relay delivers one outgoing message through the configured
// smarthost with go-smtp's client, and classifies every failure as
// temporary (retry later) or permanent (give up, tell the agent) so the
// outbox can decide without parsing error strings.
package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// TLS modes accepted in Config.TLS.
const (
	TLSNone     = "none"     // plain TCP; AUTH only to a loopback relay
	TLSStartTLS = "starttls" // RFC 3207; refuse to continue if not offered
	TLSImplicit = "tls"      // RFC 8314 implicit TLS (port 465)
)

// DefaultTimeout bounds each step when Config.Timeout is zero.
const DefaultTimeout = time.Minute

// Sentinel errors for configuration problems. They come wrapped in a
// temporary *SendError: the message is fine and must not be dropped, the
// relay setup needs fixing, so the outbox keeps retrying and alerts.
var (
	ErrBadConfig     = errors.New("relay: bad configuration")
	ErrInsecureAuth  = errors.New("relay: refusing to send credentials without tls to a non-loopback relay")
	ErrNoAuthMech    = errors.New("relay: server offers neither auth plain nor login")
	ErrAuthFailed    = errors.New("relay: authentication failed")
	ErrNoRecipients  = errors.New("relay: no recipients")
	ErrNoneDelivered = errors.New("relay: every recipient was rejected")
)

// Config describes the smarthost.
type Config struct {
	Addr               string // host:port
	TLS                string // none, starttls or tls; empty means starttls
	InsecureSkipVerify bool
	Username, Password string
	// Timeout bounds each step: dial, TLS handshake, each command, and
	// the server's answer after the final dot of DATA.
	Timeout   time.Duration
	HelloName string // EHLO name; "localhost" if empty
	// TLSConfig overrides the TLS settings (tests use it to trust a
	// self-signed certificate). ServerName defaults to Addr's host.
	TLSConfig *tls.Config
}

// Client sends mail through one smarthost. It holds no connection between
// calls: Send opens a session per message, and a Session carries several
// messages one after another only for as long as its caller keeps it (the
// outbox: one batch), so no connection is left to go stale between
// batches.
type Client struct {
	cfg Config
	// dialContext opens the TCP connection; nil is a net.Dialer. Tests
	// hand over one end of a net.Pipe.
	dialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// New returns a Client for cfg. It does not connect; configuration errors
// are reported by Send so that they reach the outbox like any failure.
func New(cfg Config) *Client {
	if cfg.TLS == "" {
		cfg.TLS = TLSStartTLS
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.HelloName == "" {
		cfg.HelloName = "localhost"
	}
	return &Client{cfg: cfg}
}

// RecipientError is one RCPT TO that the server refused.
type RecipientError struct {
	Rcpt      string
	Temporary bool
	// Protocol marks a refusal of how we spoke, not of the address
	// (see SendError.Protocol).
	Protocol bool
	Code     int
	Enhanced string // e.g. "5.1.1"
	Msg      string
}

// SendError is every failure Send returns. Temporary means trying again
// later may succeed (4xx replies, timeouts, refused connections, TLS
// handshake failures, configuration errors); otherwise the server gave a
// permanent 5xx answer.
//
// When some recipients were refused, Rejected lists them and Delivered
// lists the ones the message was accepted for: never send to those again.
// Temporary is then true if any rejected recipient may be retried.
type SendError struct {
	Temporary bool
	// Protocol is set when the server refused the way the message was
	// sent rather than the address: enhanced status 5.5.x (protocol) or
	// 5.6.x (content, such as 5.6.7 "Must declare SMTPUTF8", RFC 6531),
	// or a message that needs SMTPUTF8 from a server without it. Such a
	// failure is permanent for this message but says nothing about the
	// mailbox, so it must never count as the address's hard bounce.
	Protocol  bool
	Code      int
	Enhanced  string
	Msg       string
	Err       error
	Rejected  []RecipientError
	Delivered []string
}

func (e *SendError) Error() string {
	var b strings.Builder
	b.WriteString("relay: ")
	if e.Code != 0 {
		fmt.Fprintf(&b, "%d ", e.Code)
		if e.Enhanced != "" {
			b.WriteString(e.Enhanced + " ")
		}
		b.WriteString(e.Msg)
	} else if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	for _, r := range e.Rejected {
		fmt.Fprintf(&b, "; <%s>: %d %s %s", r.Rcpt, r.Code, r.Enhanced, r.Msg)
	}
	if e.Temporary {
		b.WriteString(" (temporary)")
	}
	return b.String()
}

// HardBounce reports whether the failure is the recipient address's own
// permanent refusal (5.1.x unknown user and the like): the outbox may then
// pause automatic mail to that address. Temporary failures and protocol
// refusals are not.
func (e *SendError) HardBounce() bool {
	if e.Temporary || e.Protocol {
		return false
	}
	for _, r := range e.Rejected {
		if !r.Temporary && !r.Protocol {
			return true
		}
	}
	return len(e.Rejected) == 0
}

// protocolStatus reports the enhanced status classes that refuse the
// transaction's form, not its recipient (RFC 3463 sections 3.6 and 3.7).
func protocolStatus(enhanced string) bool {
	return strings.HasPrefix(enhanced, "5.5.") || strings.HasPrefix(enhanced, "5.6.")
}

// Unwrap exposes the cause for errors.Is (context.Canceled, the sentinels
// above, *smtp.SMTPError, net errors).
func (e *SendError) Unwrap() error { return e.Err }

// Send delivers raw to the given envelope recipients with from as the
// envelope sender (RFC 5321 MAIL FROM; the VERP return path), in a
// session of its own. ctx cancellation and Config.Timeout interrupt every
// step. It returns nil only when the server accepted the message for
// every recipient; otherwise a *SendError.
func (c *Client) Send(ctx context.Context, from string, to []string, raw []byte) error {
	s := c.Session(ctx)
	defer s.Close()
	return s.Send(from, to, raw)
}

// Session is one SMTP session with the smarthost over which several
// messages go one after another (RFC 5321 section 3.3: a session holds
// any number of mail transactions), instead of a connection, greeting,
// EHLO, TLS handshake and AUTH per message. It connects on its first
// Send, and again after a failure: a failed message ends its session (as
// Send's own would), so the next one starts afresh. A reused session may
// find that the relay has closed it: a message that fails so before its
// MAIL FROM was accepted goes once more on a new connection, as it would
// have with a session of its own. Close ends it. It is not safe for
// concurrent use.
type Session struct {
	c   *Client
	ctx context.Context
	raw net.Conn // the TCP connection, closed to interrupt go-smtp
	sc  *smtp.Client
	// stop ends the context.AfterFunc that closes raw when ctx ends.
	stop func() bool
}

// Session returns a session for one caller's run of messages; ctx bounds
// all of it: its end closes the connection, which interrupts every step.
func (c *Client) Session(ctx context.Context) *Session { return &Session{c: c, ctx: ctx} }

// Send delivers raw as Client.Send does, over the session's connection.
func (s *Session) Send(from string, to []string, raw []byte) error {
	if len(to) == 0 {
		return &SendError{Err: ErrNoRecipients}
	}
	host, err := s.c.checkConfig()
	if err != nil {
		return err
	}
	reused := s.sc != nil
	if !reused {
		if err := s.open(host); err != nil {
			return err
		}
	}
	started, err := s.c.transaction(s.sc, from, to, raw)
	if err != nil && reused && !started && s.ctx.Err() == nil && stale(err) {
		// The relay dropped the idle session (or said 421 to it): nothing
		// of this message reached it, so it goes on a fresh connection.
		s.end(false)
		if err := s.open(host); err != nil {
			return err
		}
		_, err = s.c.transaction(s.sc, from, to, raw)
	}
	if err != nil {
		// While the server is still talking to us, end the session
		// properly (RFC 5321 section 4.1.1.10) instead of dropping the
		// connection. Best effort: the outcome is already known.
		s.end(s.ctx.Err() == nil && (answered(err) || partial(err)))
		return classify(s.ctx, err)
	}
	return nil
}

// Close ends the session with QUIT. QUIT is a courtesy: the messages are
// accepted, and a failure here must not make the outbox send them again.
func (s *Session) Close() { s.end(true) }

// end closes the session's connection, after a QUIT when quit is set.
func (s *Session) end(quit bool) {
	if s.sc == nil {
		return
	}
	if quit {
		_ = s.sc.Quit()
	}
	s.stop()
	s.raw.Close()
	s.sc, s.raw, s.stop = nil, nil, nil
}

// checkConfig refuses what no message could be sent with, and returns
// the relay's host.
func (c *Client) checkConfig() (string, error) {
	host, _, err := net.SplitHostPort(c.cfg.Addr)
	if err != nil {
		return "", &SendError{Temporary: true, Err: fmt.Errorf("%w: addr %q: %w", ErrBadConfig, c.cfg.Addr, err)}
	}
	switch c.cfg.TLS {
	case TLSNone, TLSStartTLS, TLSImplicit:
	default:
		return "", &SendError{Temporary: true, Err: fmt.Errorf("%w: tls mode %q", ErrBadConfig, c.cfg.TLS)}
	}
	if c.cfg.Username != "" && c.cfg.TLS == TLSNone && !isLoopback(host) {
		return "", &SendError{Temporary: true, Err: ErrInsecureAuth}
	}
	return host, nil
}

// open connects and runs the greeting, STARTTLS, EHLO and AUTH.
func (s *Session) open(host string) error {
	c := s.c
	raw0, conn, err := c.dial(s.ctx, host)
	if err != nil {
		return classify(s.ctx, fmt.Errorf("dial %s: %w", c.cfg.Addr, err))
	}
	// go-smtp has no context support: closing the TCP connection is what
	// interrupts a blocked read or write when ctx is cancelled.
	stop := context.AfterFunc(s.ctx, func() { raw0.Close() })
	fail := func(err error) error {
		stop()
		raw0.Close()
		return classify(s.ctx, err)
	}
	var sc *smtp.Client
	if c.cfg.TLS == TLSStartTLS {
		// go-smtp only offers STARTTLS at construction; its first EHLO
		// therefore says "localhost", the one after TLS our HelloName.
		sc, err = smtp.NewClientStartTLS(conn, c.tlsConfig(host))
		if err != nil {
			return fail(fmt.Errorf("starttls: %w", &tlsError{err}))
		}
	} else {
		sc = smtp.NewClient(conn)
	}
	sc.CommandTimeout = c.cfg.Timeout
	sc.SubmissionTimeout = c.cfg.Timeout
	if err := c.hello(sc); err != nil {
		if s.ctx.Err() == nil && answered(err) {
			_ = sc.Quit()
		}
		return fail(err)
	}
	s.raw, s.sc, s.stop = raw0, sc, stop
	return nil
}

// stale reports whether a reused session failed as a connection the
// relay has closed does: on the network, or with 421 (RFC 5321 section
// 3.8: the server is closing the channel).
func stale(err error) bool {
	var smtpErr *smtp.SMTPError
	if errors.As(err, &smtpErr) {
		return smtpErr.Code == 421
	}
	var se *SendError
	return !errors.As(err, &se) && !errors.Is(err, ErrNeedsSMTPUTF8)
}

// answered reports whether a session failed on an answer from the server
// or on a check of ours, with the connection still in order, as opposed
// to a network or TLS failure where QUIT would only wait for a timeout.
func answered(err error) bool {
	var smtpErr *smtp.SMTPError
	return errors.As(err, &smtpErr) || errors.Is(err, ErrNeedsSMTPUTF8) || errors.Is(err, ErrNoAuthMech) || errors.Is(err, ErrNoneDelivered)
}

// partial reports whether the message was accepted for some recipients
// only: the transaction ended in order.
func partial(err error) bool {
	var se *SendError
	return errors.As(err, &se) && len(se.Delivered) > 0
}

// dial opens the TCP (and for implicit TLS, the TLS) connection and
// returns both the raw TCP connection, for cancellation, and the one to
// speak SMTP on. Reads and writes go through a timeoutConn, so every step
// is bounded by Config.Timeout, including the body of DATA, which go-smtp
// writes without a deadline, and the greeting and STARTTLS exchange, which
// it runs before its own timeouts can be set.
func (c *Client) dial(ctx context.Context, host string) (net.Conn, net.Conn, error) {
	dial := c.dialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: c.cfg.Timeout}).DialContext
	}
	raw, err := dial(ctx, "tcp", c.cfg.Addr)
	if err != nil {
		return nil, nil, err
	}
	conn := net.Conn(&timeoutConn{Conn: raw, timeout: c.cfg.Timeout})
	if c.cfg.TLS != TLSImplicit {
		return raw, conn, nil
	}
	tc := tls.Client(conn, c.tlsConfig(host))
	hctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, nil, &tlsError{err}
	}
	return raw, tc, nil
}

func (c *Client) tlsConfig(host string) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.cfg.TLSConfig != nil {
		cfg = c.cfg.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if c.cfg.InsecureSkipVerify {
		cfg.InsecureSkipVerify = true
	}
	return cfg
}

// hello runs EHLO (after STARTTLS, where that was asked for) and AUTH.
func (c *Client) hello(sc *smtp.Client) error {
	if err := sc.Hello(c.cfg.HelloName); err != nil {
		var se *smtp.SMTPError
		if c.cfg.TLS == TLSStartTLS && !errors.As(err, &se) {
			// go-smtp handshakes lazily: after STARTTLS, the first
			// exchange is where a certificate problem shows.
			err = &tlsError{err}
		}
		return fmt.Errorf("ehlo: %w", err)
	}
	if c.cfg.Username != "" {
		return c.auth(sc)
	}
	return nil
}

// transaction runs MAIL, RCPT and DATA for one message; started reports
// whether the server accepted its MAIL FROM.
func (c *Client) transaction(sc *smtp.Client, from string, to []string, raw []byte) (started bool, err error) {
	// SMTPUTF8 (RFC 6531) is declared only when an address or the header
	// needs it; a server without it gets the message downgraded, or a
	// clear refusal when it cannot be (a non-ASCII local part).
	utf8 := needsSMTPUTF8(from, to, raw)
	if ok, _ := sc.Extension("SMTPUTF8"); utf8 && !ok {
		var err error
		if from, to, raw, err = downgrade(from, to, raw); err != nil {
			return false, &SendError{Protocol: true, Err: err}
		}
		utf8 = false
	}
	if err := sc.Mail(from, &smtp.MailOptions{UTF8: utf8}); err != nil {
		return false, fmt.Errorf("mail from: %w", err)
	}
	var accepted []string
	var rejected []RecipientError
	for _, rcpt := range to {
		err := sc.Rcpt(rcpt, nil)
		var se *smtp.SMTPError
		switch {
		case err == nil:
			accepted = append(accepted, rcpt)
		case errors.As(err, &se):
			rejected = append(rejected, RecipientError{
				Rcpt: rcpt, Temporary: se.Temporary(), Code: se.Code,
				Enhanced: enhanced(se), Msg: se.Message, Protocol: protocolStatus(enhanced(se)),
			})
		default:
			return true, fmt.Errorf("rcpt to: %w", err)
		}
	}
	if len(accepted) == 0 {
		return true, &SendError{Temporary: anyTemporary(rejected), Err: ErrNoneDelivered, Rejected: rejected,
			Code: rejected[0].Code, Enhanced: rejected[0].Enhanced, Msg: rejected[0].Msg, Protocol: allProtocol(rejected)}
	}
	w, err := sc.Data()
	if err != nil {
		return true, fmt.Errorf("data: %w", err)
	}
	if _, err := w.Write(raw); err != nil {
		return true, fmt.Errorf("data body: %w", err)
	}
	if !bytes.HasSuffix(raw, []byte("\n")) {
		// The dot writer needs the body to end in a line break before
		// the terminating dot line (RFC 5321 section 4.1.1.4).
		if _, err := w.Write([]byte("\r\n")); err != nil {
			return true, fmt.Errorf("data body: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return true, fmt.Errorf("data end: %w", err)
	}
	if len(rejected) > 0 {
		r := rejected[0]
		return true, &SendError{Temporary: anyTemporary(rejected), Code: r.Code, Enhanced: r.Enhanced, Msg: r.Msg,
			Rejected: rejected, Delivered: accepted, Protocol: allProtocol(rejected)}
	}
	return true, nil
}

// auth picks PLAIN (RFC 4616) or LOGIN by what the server offers; PLAIN
// first because it is the standard one.
func (c *Client) auth(sc *smtp.Client) error {
	var mech sasl.Client
	switch {
	case sc.SupportsAuth(sasl.Plain):
		mech = sasl.NewPlainClient("", c.cfg.Username, c.cfg.Password)
	case sc.SupportsAuth(sasl.Login):
		mech = sasl.NewLoginClient(c.cfg.Username, c.cfg.Password)
	default:
		return ErrNoAuthMech
	}
	if err := sc.Auth(mech); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			// Bad credentials say nothing about the message: keep it
			// and retry once the configuration is fixed.
			return &SendError{Temporary: true, Code: se.Code, Enhanced: enhanced(se), Msg: se.Message,
				Err: fmt.Errorf("%w: %w", ErrAuthFailed, err)}
		}
		return fmt.Errorf("auth: %w", err)
	}
	return nil
}

// tlsError marks a handshake failure so that classify treats it as
// temporary (a certificate renewed late, a relay restarting).
type tlsError struct{ err error }

func (e *tlsError) Error() string { return "tls: " + e.err.Error() }
func (e *tlsError) Unwrap() error { return e.err }

// classify turns any error from a session into a *SendError.
func classify(ctx context.Context, err error) error {
	var se *SendError
	if errors.As(err, &se) {
		return se
	}
	if ctx.Err() != nil {
		// The closed connection is our doing; report why.
		return &SendError{Temporary: true, Err: fmt.Errorf("%w: %w", ctx.Err(), err)}
	}
	var smtpErr *smtp.SMTPError
	if errors.As(err, &smtpErr) {
		return &SendError{Temporary: smtpErr.Temporary() || smtpErr.Code < 500, Code: smtpErr.Code,
			Enhanced: enhanced(smtpErr), Msg: smtpErr.Message, Err: err, Protocol: protocolStatus(enhanced(smtpErr))}
	}
	// Everything else is the network or TLS: refused, reset, timeout,
	// closed mid-DATA, handshake failure, or a missing extension. None of
	// it says the message is undeliverable.
	return &SendError{Temporary: true, Err: err}
}

func enhanced(e *smtp.SMTPError) string {
	c := e.EnhancedCode
	if c == smtp.NoEnhancedCode || c == smtp.EnhancedCodeNotSet || c[0] <= 0 {
		return ""
	}
	return fmt.Sprintf("%d.%d.%d", c[0], c[1], c[2])
}

func anyTemporary(rs []RecipientError) bool {
	for _, r := range rs {
		if r.Temporary {
			return true
		}
	}
	return false
}

func allProtocol(rs []RecipientError) bool {
	for _, r := range rs {
		if !r.Protocol {
			return false
		}
	}
	return len(rs) > 0
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// timeoutConn gives every read and write its own deadline, so a server
// that stops answering or stops reading is noticed after Timeout.
type timeoutConn struct {
	net.Conn
	timeout time.Duration
}

func (c *timeoutConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

func (c *timeoutConn) Read(b []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}
