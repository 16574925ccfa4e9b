package imappoll

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tendhq/tend/storage"
)

// AfterAction is what happens to a message in the mailbox once Deliver has
// committed it.
type AfterAction int

const (
	// AfterSeen sets \Seen and leaves the message in place: the default,
	// because tend never deletes by default.
	AfterSeen AfterAction = iota
	// AfterMove moves the message to After.Folder (MOVE, RFC 6851, where
	// offered; else COPY + STORE \Deleted + EXPUNGE).
	AfterMove
	// AfterDelete deletes the message (STORE \Deleted + EXPUNGE).
	AfterDelete
)

// After is the configured after-action.
type After struct {
	Action AfterAction
	// Folder is the target of AfterMove; it is created if missing.
	Folder string
}

// Transport security modes for Options.TLS.
const (
	TLSImplicit = "tls"      // TLS from the first byte (port 993)
	TLSStartTLS = "starttls" // STARTTLS upgrade (RFC 9051 section 6.2.1)
	TLSNone     = "none"     // plain text: only with Insecure
)

// Authentication mechanisms for Options.Auth.
const (
	AuthPlain       = "plain"       // SASL PLAIN (RFC 4616)
	AuthLogin       = "login"       // the IMAP LOGIN command
	AuthXOAuth2     = "xoauth2"     // Google/Microsoft XOAUTH2
	AuthOAuthBearer = "oauthbearer" // SASL OAUTHBEARER (RFC 7628)
)

// Options configures one Poller: one mailbox feeding one inbox.
type Options struct {
	// Inbox is the inbox address this mailbox feeds.
	Inbox string
	// Addr is host:port of the IMAP server.
	Addr string
	// TLS is TLSImplicit (default), TLSStartTLS or TLSNone.
	TLS string
	// Insecure must be true for TLSNone: plain text is never implicit.
	Insecure bool
	// Username logs in.
	Username string
	// Password yields the password for AuthPlain and AuthLogin; it is asked
	// at every login so a rotated password file is picked up.
	Password func(ctx context.Context) (string, error)
	// Auth is the mechanism; default AuthPlain.
	Auth string
	// Token yields the access token for AuthXOAuth2 and AuthOAuthBearer.
	Token TokenSource
	// Mailbox is the mailbox to watch; default INBOX.
	Mailbox string
	// After is what to do with a committed message; default AfterSeen.
	After After
	// PollInterval is how often to look for mail when the server has no
	// IDLE; default 1 minute.
	PollInterval time.Duration
	// DisableIdle polls even where IDLE is offered, for servers whose IDLE
	// is known to be broken.
	DisableIdle bool
	// IdleRestart re-issues IDLE before servers drop it (RFC 2177 asks
	// clients to restart it at least every 29 minutes); default 25 minutes.
	IdleRestart time.Duration
	// StaleAfter flags the mailbox when no fetch succeeded for this long;
	// default 10 minutes.
	StaleAfter time.Duration
	// BackfillLive delivers mail older than the first connection as live
	// mail (automatic replies on); default quiet.
	BackfillLive bool
	// BatchSize is how many UIDs one FETCH covers; default 100. One FETCH
	// streams while the messages of the one before are committed, so about
	// twice as many messages are in flight.
	BatchSize int
	// BackfillRate limits backfill to this many messages per second; 0
	// (the default) does not limit it. Live mail, and backfill delivered
	// live (BackfillLive), are never throttled.
	BackfillRate float64
	// Holder names this replica for the lease.
	Holder string
	// LeaseTTL is how long the mailbox lease lasts without renewal;
	// default 1 minute. It is renewed every third of it.
	LeaseTTL time.Duration
	// CommandTimeout bounds every IMAP command (and each message of a
	// FETCH); default 1 minute.
	CommandTimeout time.Duration
	// MinBackoff and MaxBackoff bound the reconnect delay after a failure;
	// defaults 1 second and 5 minutes. AuthBackoff is the first delay after
	// an authentication failure; default 5 minutes (doubling up to
	// 4*MaxBackoff), so bad credentials do not hammer the provider.
	MinBackoff, MaxBackoff, AuthBackoff time.Duration
	// RetryInterval is how soon a message that failed to deliver is tried
	// again while the connection is idle; default PollInterval.
	RetryInterval time.Duration
	// Clock tells the time for timestamps, leases and staleness; default
	// storage.SystemClock.
	Clock storage.Clock
	// Logger receives progress and errors; default slog.Default.
	Logger *slog.Logger
	// Registerer receives the poller's metrics; nil means none.
	Registerer prometheus.Registerer
	// TLSConfig overrides the TLS configuration (tests).
	TLSConfig *tls.Config
}

// ErrConfig reports invalid Options.
var ErrConfig = errors.New("imappoll: invalid options")

// withDefaults validates o and fills in defaults.
func (o Options) withDefaults() (Options, error) {
	bad := func(format string, args ...any) (Options, error) {
		return o, fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if o.Inbox == "" {
		return bad("inbox is required")
	}
	if o.Addr == "" {
		return bad("addr is required")
	}
	o.TLS = strings.ToLower(o.TLS)
	switch o.TLS {
	case "":
		o.TLS = TLSImplicit
	case TLSImplicit, TLSStartTLS:
	case TLSNone:
		if !o.Insecure {
			return bad("tls: none needs insecure: true")
		}
	default:
		return bad("tls: unknown mode %q", o.TLS)
	}
	o.Auth = strings.ToLower(o.Auth)
	switch o.Auth {
	case "":
		o.Auth = AuthPlain
		fallthrough
	case AuthPlain, AuthLogin:
		if o.Password == nil {
			return bad("auth %s needs a password", o.Auth)
		}
	case AuthXOAuth2, AuthOAuthBearer:
		if o.Token == nil {
			return bad("auth %s needs a token source", o.Auth)
		}
	default:
		return bad("auth: unknown mechanism %q", o.Auth)
	}
	if o.Username == "" {
		return bad("username is required")
	}
	if o.Mailbox == "" {
		o.Mailbox = "INBOX"
	}
	switch o.After.Action {
	case AfterSeen, AfterDelete:
	case AfterMove:
		if o.After.Folder == "" {
			return bad("after: move needs a folder")
		}
		if o.After.Folder == o.Mailbox {
			return bad("after: move folder is the watched mailbox")
		}
	default:
		return bad("after: unknown action %d", o.After.Action)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.PollInterval, time.Minute)
	def(&o.IdleRestart, 25*time.Minute)
	def(&o.StaleAfter, 10*time.Minute)
	def(&o.LeaseTTL, time.Minute)
	def(&o.CommandTimeout, time.Minute)
	def(&o.MinBackoff, time.Second)
	def(&o.MaxBackoff, 5*time.Minute)
	def(&o.AuthBackoff, 5*time.Minute)
	def(&o.RetryInterval, o.PollInterval)
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 100
	}
	if o.BackfillRate < 0 {
		return bad("backfill rate %v is negative", o.BackfillRate)
	}
	if o.Holder == "" {
		return bad("holder is required (replica id for the lease)")
	}
	if o.Clock == nil {
		o.Clock = storage.SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o, nil
}

// key is the StateStore key of the mailbox.
func (o *Options) key() string { return o.Inbox + "/" + o.Mailbox }
