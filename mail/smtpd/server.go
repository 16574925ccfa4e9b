// Package smtpd is tend's SMTP and LMTP door. Its go-smtp session stays
// thin: it checks recipients, bounds what it reads, and hands the message
// to the ingest path, answering 250 only once that path says the message
// is durably stored.
package smtpd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/net/netutil"

	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
)

// Deliverer is the ingest path.
type Deliverer interface {
	Deliver(ctx context.Context, raw []byte, env ingest.Envelope) (storage.Delivered, error)
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
	MaxConnections  int
	ReadTimeout     time.Duration
	WriteTimeout    time.Duration
	Logger          *slog.Logger
	// OnReject, when set, is told every refusal (for metrics).
	OnReject func(reason string)
	// DeliverTimeout bounds how long one message may wait for the
	// database before the sender is told to retry (451).
	DeliverTimeout time.Duration
}

// Server is the SMTP (or LMTP) server.
type Server struct {
	srv   *smtp.Server
	opts  Options
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
	s := &Server{opts: opts, deliv: d, rcpts: rc, log: opts.Logger}
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
// connections is bounded; excess connections wait in the kernel's backlog.
func (s *Server) Serve(l net.Listener) error {
	if s.opts.MaxConnections > 0 {
		l = netutil.LimitListener(l, s.opts.MaxConnections)
	}
	err := s.srv.Serve(l)
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting and waits for open sessions to end; when ctx
// ends first, the remaining connections are closed. A message whose DATA
// was cut off is not stored and the sender retries it.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		s.log.Warn("closing SMTP sessions still open at shutdown")
		return s.srv.Close()
	}
	return err
}

// NewSession implements smtp.Backend.
func (s *Server) NewSession(c *smtp.Conn) (smtp.Session, error) {
	ss := &session{s: s, conn: c, remote: c.Conn().RemoteAddr().String()}
	if tcp, ok := c.Conn().RemoteAddr().(*net.TCPAddr); ok {
		ss.ip = tcp.IP
	}
	return ss, nil
}

type session struct {
	s      *Server
	conn   *smtp.Conn
	remote string
	ip     net.IP // nil on a unix socket (LMTP): no SPF then
	helo   string
	from   string
	to     []string
}

// SMTP replies. Client texts are generic; causes go to the log.
var (
	errNoSuchUser = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such recipient here"}
	errTooBig     = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message too big"}
	errTryLater   = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure storing the message, try again later"}
	errLineLong   = &smtp.SMTPError{Code: 500, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Line too long"}
)

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = strings.ToLower(from)
	ss.helo = ss.conn.Hostname()
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
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
	raw, err := ss.read(r)
	if err != nil {
		ss.s.opts.OnReject("data")
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), ss.s.opts.DeliverTimeout)
	defer cancel()
	src := "smtp"
	if ss.s.srv.LMTP {
		src = "lmtp"
	}
	_, err = ss.s.deliv.Deliver(ctx, raw, ingest.Envelope{From: ss.from, To: ss.to, Source: src, ClientIP: ss.ip, Helo: ss.helo})
	if err != nil {
		ss.s.log.Error("message not stored: answered 451", "remote", ss.remote, "err", err)
		ss.s.opts.OnReject("not_stored")
		return errTryLater
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

// read reads the whole DATA, mapping go-smtp's limits to their replies.
func (ss *session) read(r io.Reader) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		switch {
		case errors.Is(err, smtp.ErrDataTooLarge):
			return nil, errTooBig
		case errors.Is(err, smtp.ErrTooLongLine):
			return nil, errLineLong
		default:
			return nil, fmt.Errorf("read data: %w", err)
		}
	}
	return buf.Bytes(), nil
}

func (ss *session) Reset() { ss.from, ss.to = "", nil }

func (ss *session) Logout() error { return nil }

// slogLogger adapts go-smtp's logger to slog.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Printf(format string, v ...any) { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s slogLogger) Println(v ...any)               { s.l.Warn(fmt.Sprint(v...)) }
