// Package smtpd is tend's SMTP and LMTP door. Its go-smtp session stays
// thin: it checks recipients, bounds what it reads, and hands the message
// to the ingest path, answering 250 only once that path says the message
// is durably stored.
package smtpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
)

// Deliverer is the ingest path. It takes the message as the door spooled
// it; the spool stays the door's to close.
type Deliverer interface {
	DeliverSpool(ctx context.Context, sp *ingest.Spool, env ingest.Envelope) (storage.Delivered, error)
}

// RecipientChecker decides which RCPT TO addresses are ours: configured
// inboxes and, later, verified signed reply addresses. Anything else gets
// 550: tend is never a relay.
type RecipientChecker interface {
	Accept(ctx context.Context, addr string) (bool, error)
}

// Options configure a Server.
type Options struct {
	Hostname        string
	MaxMessageBytes int64
	MaxRecipients   int
	MaxLineLength   int
	// MaxConnections bounds concurrent connections; one more is told
	// 421 4.3.2 and closed. 0: no limit.
	MaxConnections int
	// ReadTimeout is how long a client may stay silent between commands.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// DataIdleTimeout is how long one read may wait while DATA streams
	// (RFC 5321 §4.5.3.2.5 asks for 3 minutes); DataTimeout bounds the
	// whole DATA. Either cut is answered 451 4.3.0.
	DataIdleTimeout time.Duration
	DataTimeout     time.Duration
	// MaxSessionTime and MaxCommands end a session (421, between
	// commands) that has lived that long, or sent that many command
	// lines since its last accepted message. 0: no limit.
	MaxSessionTime time.Duration
	MaxCommands    int
	// SpoolDir is where DATA is spooled while it streams, on the data
	// directory's file system; "" is the system's temporary directory.
	SpoolDir string
	// Disk refuses mail with 452 4.3.1 when the disk is nearly full, at
	// MAIL, at RCPT and while spooling.
	Disk   ingest.DiskGuard
	Logger *slog.Logger
	// OnReject, when set, is told every refusal (for metrics).
	OnReject func(reason string)
	// DeliverTimeout bounds how long one message may wait for the
	// database before the sender is told to retry (451).
	DeliverTimeout time.Duration
}

// Server is the SMTP (or LMTP) server.
type Server struct {
	mu    sync.Mutex
	lls   []*limitListener // the listeners Serve was given, for Shutdown
	srv   *smtp.Server
	opts  Options
	spool *ingest.Spooler
	deliv Deliverer
	rcpts RecipientChecker
	log   *slog.Logger
}

// New returns a server; lmtp selects RFC 2033 LMTP.
func New(opts Options, d Deliverer, rc RecipientChecker, lmtp bool) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = 25 << 20
	}
	if opts.MaxRecipients <= 0 {
		opts.MaxRecipients = 50
	}
	if opts.MaxLineLength <= 0 {
		opts.MaxLineLength = 65536
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = time.Minute
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = time.Minute
	}
	if opts.OnReject == nil {
		opts.OnReject = func(string) {}
	}
	if opts.DeliverTimeout <= 0 {
		opts.DeliverTimeout = 30 * time.Second
	}
	if opts.DataIdleTimeout <= 0 {
		opts.DataIdleTimeout = 3 * time.Minute
	}
	if opts.DataTimeout <= 0 {
		opts.DataTimeout = 10 * time.Minute
	}
	if opts.SpoolDir == "" {
		opts.SpoolDir = os.TempDir()
	}
	s := &Server{opts: opts, deliv: d, rcpts: rc, log: opts.Logger, spool: ingest.NewSpooler(opts.SpoolDir, opts.Disk)}
	srv := smtp.NewServer(s)
	srv.Domain = opts.Hostname
	srv.LMTP = lmtp
	srv.MaxMessageBytes = opts.MaxMessageBytes
	srv.MaxRecipients = opts.MaxRecipients
	srv.MaxLineLength = opts.MaxLineLength
	srv.ReadTimeout = opts.ReadTimeout
	srv.WriteTimeout = opts.WriteTimeout
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = slogLogger{opts.Logger}
	s.srv = srv
	return s
}

// Serve accepts connections on l until Shutdown. The number of concurrent
// connections is bounded; one more is answered 421 and closed.
func (s *Server) Serve(l net.Listener) error {
	ll := newLimitListener(l, &s.opts)
	s.mu.Lock()
	s.lls = append(s.lls, ll)
	s.mu.Unlock()
	err := s.srv.Serve(ll)
	if errors.Is(err, smtp.ErrServerClosed) || (ll.stopping.Load() && errors.Is(err, net.ErrClosed)) {
		return nil
	}
	return err
}

// Shutdown stops accepting and waits for open sessions to end; when ctx
// ends first, the remaining connections are closed. A message whose DATA
// was cut off is not stored and the sender retries it.
//
// It is graceful: idle sessions are told 421 at once, and a session in a
// mail transaction finishes it (a DATA under way is stored and answered
// 250) before it is told 421, so that the server can stop without cutting
// a message that a sender would then send again.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	lls := s.lls
	s.mu.Unlock()
	// The listeners close first, so that no session starts after the
	// idle ones were told to end.
	for _, ll := range lls {
		ll.stop()
	}
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		s.log.Warn("closing SMTP sessions still open at shutdown")
		// go-smtp's Close does nothing once Shutdown has begun (it
		// returns ErrServerClosed), so the connections are closed here.
		for _, ll := range lls {
			ll.closeAll()
		}
		return nil
	}
	return err
}

// NewSession implements smtp.Backend.
func (s *Server) NewSession(c *smtp.Conn) (smtp.Session, error) {
	ss := &session{s: s, smtpConn: c, remote: c.Conn().RemoteAddr().String(), conn: connOf(c.Conn())}
	if tcp, ok := c.Conn().RemoteAddr().(*net.TCPAddr); ok {
		ss.ip = tcp.IP
	}
	return ss, nil
}

type session struct {
	s        *Server
	smtpConn *smtp.Conn
	remote   string
	ip       net.IP // nil on a unix socket (LMTP): no SPF then
	helo     string
	conn     *limitConn // nil only if a test serves a listener of its own
	from     string
	to       []string
}

// SMTP replies. Client texts are generic; causes go to the log.
var (
	errNoSuchUser = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such recipient here"}
	errTooBig     = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message too big"}
	errTryLater   = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure storing the message, try again later"}
	errLineLong   = &smtp.SMTPError{Code: 500, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Line too long"}
	errNoRoom     = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system storage, try again later"}
	errStopping   = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Shutting down, try again later"}
)

// checkDisk answers 452 while the disk is nearly full (RFC 5321 §4.2.3),
// before any byte of the message is taken.
func (ss *session) checkDisk(need int64) error {
	err := ss.s.opts.Disk.Check(uint64(max(need, 0)))
	if err == nil {
		return nil
	}
	if errors.Is(err, ingest.ErrInsufficientStorage) {
		ss.s.log.Warn("refusing mail: disk nearly full", "remote", ss.remote, "err", err)
		ss.s.opts.OnReject("disk_full")
		return errNoRoom
	}
	ss.s.log.Error("checking free disk space", "err", err)
	return errTryLater
}

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	var size int64
	if opts != nil {
		size = opts.Size // RFC 1870 SIZE: what the client says is coming
	}
	if ss.conn != nil && ss.conn.stopping() {
		return errStopping
	}
	if err := ss.checkDisk(size); err != nil {
		return err
	}
	if ss.conn != nil {
		ss.conn.setTx(true)
	}
	ss.from = strings.ToLower(from)
	ss.helo = ss.smtpConn.Hostname()
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := ss.checkDisk(0); err != nil {
		return err
	}
	addr := strings.ToLower(strings.TrimSpace(to))
	ctx, cancel := context.WithTimeout(context.Background(), ss.s.opts.DeliverTimeout)
	defer cancel()
	ok, err := ss.s.rcpts.Accept(ctx, addr)
	if err != nil {
		ss.s.log.Warn("checking recipient", "rcpt", addr, "err", err)
		return errTryLater
	}
	if !ok {
		ss.s.log.Info("recipient refused", "rcpt", addr, "remote", ss.remote)
		ss.s.opts.OnReject("unknown_recipient")
		return errNoSuchUser
	}
	for _, t := range ss.to {
		if t == addr {
			return nil
		}
	}
	ss.to = append(ss.to, addr)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	sp, err := ss.read(r)
	if err != nil {
		ss.s.opts.OnReject("data")
		return err
	}
	defer sp.Close()
	ctx, cancel := context.WithTimeout(context.Background(), ss.s.opts.DeliverTimeout)
	defer cancel()
	src := "smtp"
	if ss.s.srv.LMTP {
		src = "lmtp"
	}
	_, err = ss.s.deliv.DeliverSpool(ctx, sp, ingest.Envelope{From: ss.from, To: ss.to, Source: src, ClientIP: ss.ip, Helo: ss.helo})
	if err != nil {
		ss.s.log.Error("message not stored: answered 451", "remote", ss.remote, "err", err)
		ss.s.opts.OnReject("not_stored")
		return errTryLater
	}
	if ss.conn != nil {
		ss.conn.delivered()
	}
	return nil
}

// LMTPData answers per recipient (RFC 2033 §4.2). The message is stored
// once for all recipients, so they share one status.
func (ss *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	err := ss.Data(r)
	for _, rcpt := range ss.to {
		status.SetStatus(rcpt, err)
	}
	return nil
}

// read spools DATA under its deadlines, mapping go-smtp's limits to
// their replies. Anything else (a deadline, a spool that cannot be
// written) is a 451 whose text says nothing of the cause: the cause goes
// to the log, and the sender keeps the mail and retries.
func (ss *session) read(r io.Reader) (*ingest.Spool, error) {
	if ss.conn != nil {
		ss.conn.beginData()
		defer ss.conn.endData()
	}
	sp, err := ss.s.spool.Spool(context.Background(), r)
	if err == nil {
		return sp, nil
	}
	switch {
	case errors.Is(err, smtp.ErrDataTooLarge):
		return nil, errTooBig
	case errors.Is(err, smtp.ErrTooLongLine):
		return nil, errLineLong
	case errors.Is(err, ingest.ErrInsufficientStorage):
		ss.s.log.Warn("message refused while spooling: disk nearly full", "remote", ss.remote, "err", err)
		return nil, errNoRoom
	case ss.conn != nil && ss.conn.wasCut():
		ss.s.log.Info("DATA cut off by its deadline: answered 451", "remote", ss.remote, "err", err)
		return nil, errTryLater
	default:
		ss.s.log.Warn("DATA not received: answered 451", "remote", ss.remote, "err", err)
		return nil, errTryLater
	}
}

func (ss *session) Reset() {
	ss.from, ss.to = "", nil
	if ss.conn != nil {
		ss.conn.setTx(false)
	}
}

func (ss *session) Logout() error { return nil }

// slogLogger adapts go-smtp's logger to slog.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Printf(format string, v ...any) { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s slogLogger) Println(v ...any)               { s.l.Warn(fmt.Sprint(v...)) }
