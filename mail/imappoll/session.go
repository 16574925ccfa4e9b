package imappoll

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// Errors a caller (or Status) can branch on.
var (
	// ErrAuth means the server or the credential source refused us: the
	// poller backs off longer and reports auth_failed.
	ErrAuth = errors.New("imappoll: authentication failed")
	// ErrTimeout means an IMAP command outlived Options.CommandTimeout and
	// the connection was dropped.
	ErrTimeout = errors.New("imappoll: command timed out")
	// errLeaseLost ends a session when another replica took the lease.
	errLeaseLost = errors.New("imappoll: lease lost")
)

// session is one logged-in connection with the mailbox selected.
type session struct {
	c    *imapclient.Client
	conn net.Conn
	caps imap.CapSet
	// wake receives a token whenever the server announces new messages
	// (an untagged EXISTS, RFC 9051 section 7.4.1), during IDLE or not.
	wake chan struct{}

	// watchdog closes the connection when a command outlives its deadline:
	// go-imap's commands take no context, and closing the socket is the one
	// way to unblock all of them at once.
	watchdog *time.Timer
	timedOut atomic.Bool
	timeout  time.Duration
	stopCtx  func() bool

	// While a FETCH streams, cancellation does not close the socket: the
	// batch drains (it is bounded by BatchSize) and then closes it. go-imap
	// v2.0.0-beta.8 races between its reader and a literal being read when
	// the socket closes mid-literal; a clean stop should not go there.
	mu        sync.Mutex
	streaming bool
	cancelled bool
}

// dial connects, authenticates and returns a session; the connection is
// closed when ctx is done.
func dial(ctx context.Context, o *Options) (*session, error) {
	d := net.Dialer{Timeout: o.CommandTimeout}
	conn, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", o.Addr, err)
	}
	host, _, _ := net.SplitHostPort(o.Addr)
	tcfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.TLSConfig != nil {
		tcfg = o.TLSConfig.Clone()
	}
	if tcfg.ServerName == "" {
		tcfg.ServerName = host
	}
	s := &session{wake: make(chan struct{}, 1), timeout: o.CommandTimeout}
	copts := &imapclient.Options{
		TLSConfig: tcfg,
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(data *imapclient.UnilateralDataMailbox) {
				if data.NumMessages != nil {
					s.notify()
				}
			},
		},
	}
	if o.TLS == TLSImplicit {
		tc := tls.Client(conn, tcfg)
		hctx, cancel := context.WithTimeout(ctx, o.CommandTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("tls handshake: %w", err)
		}
		conn = tc
	}
	s.conn = conn
	s.watchdog = time.AfterFunc(time.Hour, func() {
		s.timedOut.Store(true)
		_ = conn.Close()
	})
	s.watchdog.Stop()
	s.stopCtx = context.AfterFunc(ctx, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.streaming {
			s.cancelled = true
			return
		}
		_ = conn.Close()
	})

	err = s.do(func() error {
		if o.TLS == TLSStartTLS {
			c, err := imapclient.NewStartTLS(conn, copts)
			if err != nil {
				return fmt.Errorf("starttls: %w", err)
			}
			s.c = c
			return nil
		}
		s.c = imapclient.New(conn, copts)
		return s.c.WaitGreeting()
	})
	if err != nil {
		s.close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	if err := s.login(ctx, o); err != nil {
		s.close()
		return nil, err
	}
	if err := s.do(func() error {
		s.caps = s.c.Caps()
		if s.caps == nil {
			return errors.New("no capabilities")
		}
		return nil
	}); err != nil {
		s.close()
		return nil, fmt.Errorf("capability: %w", err)
	}
	return s, nil
}

// notify records that the server announced new mail, without blocking the
// client's reader.
func (s *session) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// do runs one command under the watchdog.
func (s *session) do(f func() error) error {
	s.watchdog.Reset(s.timeout)
	err := f()
	s.watchdog.Stop()
	if err != nil && s.timedOut.Load() {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return err
}

// arm and disarm bracket a long command whose progress re-arms the
// deadline (FETCH: one deadline per message, not per batch).
func (s *session) arm()    { s.watchdog.Reset(s.timeout) }
func (s *session) disarm() { s.watchdog.Stop() }

// beginStream marks a FETCH in flight; it fails when ctx is already done.
func (s *session) beginStream(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	s.streaming = true
	return nil
}

// endStream ends it, closing the socket if ctx ended meanwhile.
func (s *session) endStream() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streaming = false
	if s.cancelled {
		_ = s.conn.Close()
	}
}

// timeoutErr wraps err in ErrTimeout when the watchdog fired.
func (s *session) timeoutErr(err error) error {
	if err != nil && s.timedOut.Load() {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return err
}

// close logs out politely when it can and drops the connection.
func (s *session) close() {
	if s.c != nil && !s.timedOut.Load() {
		s.watchdog.Reset(2 * time.Second)
		_ = s.c.Logout().Wait()
	}
	s.watchdog.Stop()
	s.stopCtx()
	if s.c != nil {
		_ = s.c.Close()
	} else {
		_ = s.conn.Close()
	}
}

// login authenticates with the configured mechanism. Failures of the
// server's answer or of the credential source are ErrAuth.
func (s *session) login(ctx context.Context, o *Options) error {
	var secret string
	var err error
	switch o.Auth {
	case AuthPlain, AuthLogin:
		secret, err = o.Password(ctx)
	default:
		secret, err = o.Token.Token(ctx)
	}
	if err != nil {
		return fmt.Errorf("%w: credentials: %w", ErrAuth, err)
	}
	err = s.do(func() error {
		switch o.Auth {
		case AuthLogin:
			return s.c.Login(o.Username, secret).Wait()
		case AuthPlain:
			return s.c.Authenticate(sasl.NewPlainClient("", o.Username, secret))
		case AuthXOAuth2:
			return s.c.Authenticate(xoauth2Client{user: o.Username, token: secret})
		default:
			host, port, _ := net.SplitHostPort(o.Addr)
			p, _ := strconv.Atoi(port)
			return s.c.Authenticate(sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: o.Username, Token: secret, Host: host, Port: p}))
		}
	})
	if err != nil {
		var ierr *imap.Error
		if errors.As(err, &ierr) {
			return fmt.Errorf("%w: %s: %w", ErrAuth, o.Auth, err)
		}
		return fmt.Errorf("login: %w", err)
	}
	return nil
}

// xoauth2Client is the SASL client for Google's and Microsoft's XOAUTH2.
// go-sasl has OAUTHBEARER (RFC 7628) but not this older, unregistered
// mechanism, and it is one line: "user=U^Aauth=Bearer T^A^A".
type xoauth2Client struct{ user, token string }

func (c xoauth2Client) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

// Next answers the server's error challenge (a JSON status) with an empty
// response, as the mechanism requires, so the server sends its final NO.
func (c xoauth2Client) Next([]byte) ([]byte, error) { return []byte{}, nil }

// selectMailbox selects the watched mailbox; a mailbox that disappeared
// fails here and the session is retried with backoff.
func (s *session) selectMailbox(name string) (*imap.SelectData, error) {
	var data *imap.SelectData
	err := s.do(func() error {
		var err error
		data, err = s.c.Select(name, nil).Wait()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("select %s: %w", name, err)
	}
	return data, nil
}

// ensureFolder creates the move target when it does not exist.
func (s *session) ensureFolder(name string) error {
	return s.do(func() error {
		list, err := s.c.List("", name, nil).Collect()
		if err != nil {
			return fmt.Errorf("list %s: %w", name, err)
		}
		if len(list) > 0 {
			return nil
		}
		if err := s.c.Create(name, nil).Wait(); err != nil {
			var ierr *imap.Error
			if errors.As(err, &ierr) && ierr.Code == imap.ResponseCodeAlreadyExists {
				return nil
			}
			return fmt.Errorf("create %s: %w", name, err)
		}
		return nil
	})
}
