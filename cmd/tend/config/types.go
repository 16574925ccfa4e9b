// Package config is tend's configuration: a typed struct, YAML loading that
// reports every problem with its key path and line, a default for every key,
// TEND_* environment overrides and validation.
//
// Only cmd/tend imports this package; every other package takes its own
// options struct, filled in by the wiring from a Config.
//
// The order of precedence is: built-in defaults (Default), then the YAML file,
// then TEND_* environment variables. Relative paths in the file (and defaults
// such as ./tend-data when a file is given) resolve against the file's
// directory; relative paths given in the environment are left as they are,
// that is relative to the working directory, like any path typed in a shell.
//
// Every TEND_* variable whose name starts like a section (TEND_SMTP_,
// TEND_RELAY_, TEND_INBOXES_, ...) must name a key, or it is an error: a
// typo there would otherwise be silently ignored. Other TEND_* variables
// (TEND_CI, TEND_TEST_POSTGRES_DSN) are not configuration and are ignored.
// The inboxes and agents lists can only be set in the file.
//
// Field tags: `yaml` names the key; `tend:"path"` marks a filesystem path that
// is resolved against the config file's directory; `tend:"secret"` marks a
// value that Redacted blanks. The environment variables, the resolution of
// paths, redaction and REFERENCE.md are all derived from these tags, so a new
// key gets all of them without a hand-written list.
package config

import (
	"fmt"
	"time"
)

// Config is the whole configuration of one tend installation.
type Config struct {
	// DataDir holds the SQLite database, the secret and other local state.
	DataDir string `yaml:"data_dir" tend:"path"`
	// Database selects and reaches the database.
	Database Database `yaml:"database"`
	// SMTP configures the SMTP and LMTP ingress.
	SMTP SMTP `yaml:"smtp"`
	// Web configures the HTTP server (queue, JSON API, metrics).
	Web Web `yaml:"web"`
	// Relay is the smarthost outgoing mail goes through.
	Relay Relay `yaml:"relay"`
	// DKIM signs outgoing mail when configured.
	DKIM DKIM `yaml:"dkim"`
	// MinFreeDisk is the free space the data directory's file system must keep: below it /readyz reports not ready and new mail is answered 452 4.3.1 (the sender retries) before the disk is full; bytes, or with a unit: 1GiB, 500MB; 0 disables the check.
	MinFreeDisk Size `yaml:"min_free_disk"`
	// SecretFile holds the key that signs reply addresses and links; "" means <data_dir>/secret, created on first start by the server (not by config).
	SecretFile string `yaml:"secret_file" tend:"path"`
	// AuthServID is the authserv-id our own MTA stamps in Authentication-Results (RFC 8601 §2.5); results from any other id are ignored; "" trusts none.
	AuthServID string `yaml:"auth_serv_id"`
	// Threading tunes how messages are matched to tickets.
	Threading Threading `yaml:"threading"`
	// FollowThrough tunes acknowledgements, nudges and automatic mail limits.
	FollowThrough FollowThrough `yaml:"follow_through"`
	// RulesFile replaces the embedded default rules; "" uses the embedded rules.
	RulesFile string `yaml:"rules_file" tend:"path"`
	// TemplatesDir holds per-inbox template overrides in <templates_dir>/<inbox address>/NAME; "" uses the embedded templates only.
	TemplatesDir string `yaml:"templates_dir" tend:"path"`
	// Log sets the log level and format.
	Log Log `yaml:"log"`
	// Inboxes are the support addresses tend accepts mail for; a list in the file replaces the default list.
	Inboxes []Inbox `yaml:"inboxes"`
	// Agents are the people who answer tickets; first start also creates an admin login.
	Agents []Agent `yaml:"agents"`
}

// Database selects the storage backend.
type Database struct {
	// Driver is the backend: sqlite (a file under data_dir, pure Go, WAL) or postgres.
	Driver string `yaml:"driver"`
	// DSN reaches the database: for sqlite "" means <data_dir>/tend.db; for postgres it is required (postgres://user:pass@host/db or key=value form).
	DSN string `yaml:"dsn" tend:"secret"`
}

// SMTP configures the ingress. The limits bound what one client can make
// the server hold in memory or keep open.
type SMTP struct {
	// Listen is the host:port of the SMTP server; "" disables it.
	Listen string `yaml:"listen"`
	// LMTPSocket is the path of a unix socket for LMTP (RFC 2033) delivery from a local MTA; "" disables it.
	LMTPSocket string `yaml:"lmtp_socket" tend:"path"`
	// Hostname is our host name: the EHLO greeting and the default domain of Message-IDs we generate.
	Hostname string `yaml:"hostname"`
	// MaxMessageBytes is the largest message accepted (answered 552 beyond it); bytes, or with a unit: 25MB, 25MiB.
	MaxMessageBytes Size `yaml:"max_message_bytes"`
	// MaxRecipients is the most RCPT TO commands accepted per message.
	MaxRecipients int `yaml:"max_recipients"`
	// MaxConnections is the most concurrent SMTP connections.
	MaxConnections int `yaml:"max_connections"`
	// MaxLineLength is the longest line accepted, in bytes; at least 1000 (RFC 5321 §4.5.3.1.6). Real mail breaks the 998 limit (HTML on one line), so the default is generous: refusing such a line would bounce a customer's mail.
	MaxLineLength int `yaml:"max_line_length"`
	// ReadTimeout closes a connection idle this long between commands.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// DataIdleTimeout is how long one read may wait while a message (DATA) streams, RFC 5321 §4.5.3.2.5; a cut is answered 451 4.3.0 and the sender retries.
	DataIdleTimeout time.Duration `yaml:"data_idle_timeout"`
	// DataTimeout bounds the whole DATA of one message, however steadily it trickles in: at least max_message_bytes at the slowest rate you accept (10m takes 25 MiB at 45 KB/s).
	DataTimeout time.Duration `yaml:"data_timeout"`
	// MaxSessionTime ends a session (421, between commands) that has lasted this long; 0 means no limit.
	MaxSessionTime time.Duration `yaml:"max_session_time"`
	// MaxCommands ends a session (421) after this many command lines without an accepted message, so that a client sending NOOP for ever frees its slot while an MTA sending many messages over one connection is not cut; 0 means no limit.
	MaxCommands int `yaml:"max_commands"`
	// WriteTimeout closes a connection that cannot be written to for this long.
	WriteTimeout time.Duration `yaml:"write_timeout"`
}

// Web configures the HTTP server.
type Web struct {
	// Listen is the host:port of the web server.
	Listen string `yaml:"listen"`
	// BaseURL is the absolute http(s) URL users reach tend at; links in mail are built on it.
	BaseURL string `yaml:"base_url"`
	// TrustedProxies are IP addresses or CIDR prefixes whose X-Forwarded-For is believed.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// Relay is the outgoing SMTP smarthost. Without an address outgoing mail
// stays in the outbox and the web view says so.
type Relay struct {
	// Addr is the relay's host:port; "" keeps outgoing mail in the outbox.
	Addr string `yaml:"addr"`
	// TLS is none, starttls (RFC 3207) or tls (implicit TLS, RFC 8314).
	TLS string `yaml:"tls"`
	// InsecureSkipVerify accepts any certificate from the relay; for tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// Username is the name for SMTP AUTH; "" sends without authentication.
	Username string `yaml:"username"`
	// Password is the secret for SMTP AUTH; after loading it also holds the content of password_file.
	Password string `yaml:"password" tend:"secret"`
	// PasswordFile is read at load time instead of password (the two are exclusive).
	PasswordFile string `yaml:"password_file" tend:"path"`
	// Timeout bounds one delivery attempt.
	Timeout time.Duration `yaml:"timeout"`
	// RetryFor gives up on temporary failures after this long since the first attempt.
	RetryFor time.Duration `yaml:"retry_for"`
}

// DKIM signs outgoing mail (RFC 6376). All three keys or none.
type DKIM struct {
	// Domain is the signing domain (d=).
	Domain string `yaml:"domain"`
	// Selector is the DNS selector (s=).
	Selector string `yaml:"selector"`
	// PrivateKeyFile is a PEM private key (RSA or Ed25519).
	PrivateKeyFile string `yaml:"private_key_file" tend:"path"`
}

// Threading tunes ticket matching.
type Threading struct {
	// TagPrefix goes before the ticket number in subject tags, [<prefix>#123]; "" gives [#123].
	TagPrefix string `yaml:"tag_prefix"`
	// SubjectWindow is how far back the weakest rule (same sender, same normalized subject, open ticket) looks.
	SubjectWindow time.Duration `yaml:"subject_window"`
}

// FollowThrough tunes the follow-through state machine and the limits on
// automatic mail.
type FollowThrough struct {
	// Acknowledge sends an acknowledgement with the ticket reference to each new ticket's customer.
	Acknowledge bool `yaml:"acknowledge"`
	// RepeatContactsToLead flags a ticket to the lead after this many customer messages without an answer.
	RepeatContactsToLead int `yaml:"repeat_contacts_to_lead"`
	// Nudges are the delays after a proposed resolution at which the customer is reminded, ascending; after the last the ticket goes to the lead as unconfirmed.
	Nudges []time.Duration `yaml:"nudges"`
	// ReopenWindow is how long after resolution a customer reply reopens the ticket instead of opening a linked one.
	ReopenWindow time.Duration `yaml:"reopen_window"`
	// BounceSuppression is how long an address that hard-bounced gets no automatic mail.
	BounceSuppression time.Duration `yaml:"bounce_suppression"`
	// MaxAutoPerAddressPerHour caps automatic mail to one address per hour (loop protection); 0 sends none.
	MaxAutoPerAddressPerHour int `yaml:"max_auto_per_address_per_hour"`
	// MaxAutoPerTicketPerDay caps automatic mail on one ticket per day; 0 sends none.
	MaxAutoPerTicketPerDay int `yaml:"max_auto_per_ticket_per_day"`
}

// Log configures log/slog.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

// Inbox is one support address.
type Inbox struct {
	// Address is the support address (a bare addr-spec, unique, stored lowercase).
	Address string `yaml:"address"`
	// Name is the display name on mail sent from this inbox.
	Name string `yaml:"name"`
	// ResponseTime is the promised time to a first human answer, quoted in acknowledgements and measured as SLA.
	ResponseTime time.Duration `yaml:"response_time"`
	// Backfill is quiet (mail imported from IMAP that predates the first poll sends no automatic mail) or live.
	Backfill string `yaml:"backfill"`
	// IMAP polls a mailbox for this inbox; absent means mail arrives by SMTP/LMTP only.
	IMAP *IMAP `yaml:"imap"`
}

// IMAP is a mailbox tend polls (IDLE where offered).
type IMAP struct {
	// Addr is the server's host:port; required.
	Addr string `yaml:"addr"`
	// TLS is tls (implicit, port 993), starttls or none (none requires insecure: true).
	TLS string `yaml:"tls"`
	// Insecure allows tls: none and skips certificate verification.
	Insecure bool `yaml:"insecure"`
	// Username is the name to log in with.
	Username string `yaml:"username"`
	// Password is the secret for plain or login; after loading it also holds the content of password_file.
	Password string `yaml:"password" tend:"secret"`
	// PasswordFile is read at load time instead of password (exactly one of the two for plain or login).
	PasswordFile string `yaml:"password_file" tend:"path"`
	// Auth is plain, login, xoauth2 or oauthbearer (RFC 7628).
	Auth string `yaml:"auth"`
	// TokenFile holds an OAuth access token, read at each login since tokens rotate (oauth: this or token_command).
	TokenFile string `yaml:"token_file" tend:"path"`
	// TokenCommand prints an OAuth access token on stdout, run at each login (oauth: this or token_file).
	TokenCommand string `yaml:"token_command" tend:"secret"`
	// OAuth lets tend refresh the access token itself (Gmail, Microsoft 365); a rotated refresh token is kept in the database.
	OAuth *OAuth `yaml:"oauth"`
	// Mailbox is the folder to watch.
	Mailbox string `yaml:"mailbox"`
	// After says what happens to a message once it is stored: seen, delete, or {move: FOLDER}.
	After After `yaml:"after"`
	// PollInterval is how often to poll when the server lacks IDLE.
	PollInterval time.Duration `yaml:"poll_interval"`
	// StaleAfter reports the mailbox unhealthy after this long without a successful poll; greater than poll_interval.
	StaleAfter time.Duration `yaml:"stale_after"`
}

// OAuth is an OAuth 2.0 client that refreshes IMAP access tokens (RFC 6749 §6).
type OAuth struct {
	// TokenURL is the provider's token endpoint.
	TokenURL string `yaml:"token_url"`
	// ClientID identifies tend to the provider.
	ClientID string `yaml:"client_id"`
	// ClientSecret authenticates tend to the provider.
	ClientSecret string `yaml:"client_secret" tend:"secret"`
	// RefreshToken is the first refresh token; rotated ones replace it in the database.
	RefreshToken string `yaml:"refresh_token" tend:"secret"`
}

// Agent is a person who answers tickets.
type Agent struct {
	// Email is the agent's address (a bare addr-spec, unique, stored lowercase).
	Email string `yaml:"email"`
	// Name is shown to customers and on the timeline.
	Name string `yaml:"name"`
	// Role is agent, lead or admin.
	Role string `yaml:"role"`
}

// Size is a number of bytes, written in YAML as a plain integer or with a
// unit (25MB = 25,000,000; 25MiB = 26,214,400).
type Size int64

// After is what the IMAP poller does with a message once it is stored:
// Action is seen, delete or move (then Folder names the target). In YAML it
// is written `seen`, `delete` or `{move: FOLDER}`.
type After struct {
	// Action is AfterSeen, AfterDelete or AfterMove.
	Action string
	// Folder is the target mailbox of AfterMove; empty otherwise.
	Folder string
}

// String renders After the way it is written in YAML.
func (a After) String() string {
	if a.Action == AfterMove {
		return fmt.Sprintf("{move: %s}", a.Folder)
	}
	return a.Action
}

// Values of After.Action.
const (
	AfterSeen   = "seen"
	AfterDelete = "delete"
	AfterMove   = "move"
)

// Default returns the embedded default configuration of DESIGN.md: SQLite
// under ./tend-data, SMTP on 127.0.0.1:2525, web on 127.0.0.1:8080, inbox
// support@localhost, no relay. Paths are as written (not yet resolved) and
// derived values (sqlite dsn, secret_file) are still empty: Load and Parse
// fill them in.
func Default() Config {
	return Config{
		DataDir:     "./tend-data",
		MinFreeDisk: 1 << 30,
		Database:    Database{Driver: "sqlite"},
		SMTP: SMTP{
			Listen:          "127.0.0.1:2525",
			Hostname:        "localhost",
			MaxMessageBytes: 25 << 20,
			MaxRecipients:   50,
			MaxConnections:  200,
			MaxLineLength:   65536,
			ReadTimeout:     60 * time.Second,
			WriteTimeout:    60 * time.Second,
			DataIdleTimeout: 3 * time.Minute,
			DataTimeout:     10 * time.Minute,
			MaxSessionTime:  30 * time.Minute,
			MaxCommands:     100,
		},
		Web: Web{Listen: "127.0.0.1:8080", BaseURL: "http://127.0.0.1:8080"},
		Relay: Relay{
			TLS:      "none",
			Timeout:  30 * time.Second,
			RetryFor: 48 * time.Hour,
		},
		Threading: Threading{SubjectWindow: 7 * 24 * time.Hour},
		FollowThrough: FollowThrough{
			Acknowledge:              true,
			RepeatContactsToLead:     2,
			Nudges:                   []time.Duration{48 * time.Hour, 120 * time.Hour},
			ReopenWindow:             14 * 24 * time.Hour,
			BounceSuppression:        30 * 24 * time.Hour,
			MaxAutoPerAddressPerHour: 3,
			MaxAutoPerTicketPerDay:   10,
		},
		Log: Log{Level: "info", Format: "text"},
		Inboxes: []Inbox{{
			Address:      "support@localhost",
			Name:         "Support",
			ResponseTime: 24 * time.Hour,
			Backfill:     "quiet",
		}},
	}
}

// defaulter is implemented by list elements and optional blocks, so that a
// new inbox, IMAP block or agent in the file starts from its defaults.
type defaulter interface {
	applyDefaults()
}

func (i *Inbox) applyDefaults() {
	*i = Inbox{ResponseTime: 24 * time.Hour, Backfill: "quiet"}
}

func (m *IMAP) applyDefaults() {
	*m = IMAP{
		TLS:          "tls",
		Auth:         "plain",
		Mailbox:      "INBOX",
		After:        After{Action: AfterSeen},
		PollInterval: time.Minute,
		StaleAfter:   10 * time.Minute,
	}
}

// applyDefaults: an oauth block has no defaults; every key is the
// provider's.
func (o *OAuth) applyDefaults() {}

func (a *Agent) applyDefaults() {
	*a = Agent{Role: "agent"}
}
