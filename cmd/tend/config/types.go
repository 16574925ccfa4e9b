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
	// DataDir holds the SQLite database, its raw-message segments, the spool and other local state.
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
	// SecretFile, when the file exists, holds the keys that sign reply addresses and links, one "id:base64-secret" a line, the first signing and all verifying (add a line on top to rotate); "" means <data_dir>/secret. tend never creates it: without it the first start keeps a random key in the database, shared by every replica.
	SecretFile string `yaml:"secret_file" tend:"path"`
	// AuthServID is the authserv-id our own MTA stamps in Authentication-Results (RFC 8601 §2.5); the topmost field with it gives the sender verdict (instead of sender_auth's own checks), fields with any other id are ignored; "" trusts none.
	AuthServID string `yaml:"auth_serv_id"`
	// SenderAuth verifies who sent received mail and bounds agents' reply addresses.
	SenderAuth SenderAuth `yaml:"sender_auth"`
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
	// Processing bounds the work after the 250 (full parse, rules), whatever the size or shape of the mail.
	Processing Processing `yaml:"processing"`
	// Notifications bounds what a staff notification carries of the customer's mail.
	Notifications Notifications `yaml:"notifications"`
	// Retention keeps the data directory proportional to the mail received.
	Retention Retention `yaml:"retention"`
	// Clusters groups tickets about the same thing by their content.
	Clusters Clusters `yaml:"clusters"`
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
	// Lease is how long a claim (outgoing mail being sent, an IMAP mailbox, a timer, a message being processed) lasts without renewal. A live process renews its claims every third of it; when a replica dies, its claims run out after one lease (by the database's clock) and the others, looking every half lease, take its work over. Shorter takes over sooner and renews more often.
	Lease time.Duration `yaml:"lease"`
}

// SMTP configures the ingress. The limits bound what one client can make
// the server hold in memory or keep open.
type SMTP struct {
	// Listen is the host:port of the SMTP server; "" disables it.
	Listen string `yaml:"listen"`
	// LMTPSocket is the path of a unix socket for LMTP (RFC 2033) delivery from a local MTA; "" disables it.
	LMTPSocket string `yaml:"lmtp_socket" tend:"path"`
	// LMTPSocketMode is the permission of the LMTP socket, in octal; the local MTA's delivery agent needs write permission to connect (Postfix's lmtp runs as user postfix).
	LMTPSocketMode FileMode `yaml:"lmtp_socket_mode"`
	// LMTPSocketGroup is the group the LMTP socket is given (e.g. postfix); "" keeps tend's own group. tend's user must be a member of it unless it runs as root.
	LMTPSocketGroup string `yaml:"lmtp_socket_group"`
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
	// ShutdownGrace is how long a stopping server (SIGTERM, SIGINT) lets SMTP and LMTP transactions in flight finish: it stops accepting at once, a message whose DATA is under way is stored and answered 250, idle sessions are closed, and whatever is still open after the grace is cut (the sender retries it).
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
}

// Web configures the HTTP server.
type Web struct {
	// Listen is the host:port of the web server.
	Listen string `yaml:"listen"`
	// BaseURL is the absolute http(s) URL users reach tend at; links in mail are built on it.
	BaseURL string `yaml:"base_url"`
	// TrustedProxies are IP addresses or CIDR prefixes whose X-Forwarded-For is believed: the client is the rightmost address in it that is not itself a trusted proxy; from any other peer the header is ignored and the client is the socket's address.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// MetricsListen serves /metrics on its own host:port instead of web.listen (keep it on a private network); "" serves it with the rest.
	MetricsListen string `yaml:"metrics_listen"`
	// MetricsTokenFile holds a bearer token /metrics then requires (Authorization: Bearer <token>); "" leaves /metrics open.
	MetricsTokenFile string `yaml:"metrics_token_file" tend:"path"`
	// Company names the organisation on the pages customers reach from their mail (confirming a solution, rating the answer), above the ticket's number and subject; "" uses the display name of the ticket's inbox (inboxes[].name).
	Company string `yaml:"company"`
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

// SenderAuth configures sender authentication. A sender who is not
// authenticated (an aligned DKIM or SPF pass) cannot add people to a
// ticket on weak evidence, and mail through an agent's reply address is
// held unless it is authenticated as the agent's.
type SenderAuth struct {
	// Verify checks DKIM, SPF and DMARC alignment of received mail through DNS; false leaves only auth_serv_id's Authentication-Results. Behind an MTA, set auth_serv_id (SPF of tend's own SMTP client would judge the MTA).
	Verify bool `yaml:"verify"`
	// Timeout bounds the DNS lookups of one message, within its SMTP transaction; past it the verdict is temperror and the mail is still accepted.
	Timeout time.Duration `yaml:"timeout"`
	// ReplyTokenLifetime is how long an agent's signed reply address is accepted after the notification that carried it was sent (to the day); past it RCPT gets 550.
	ReplyTokenLifetime time.Duration `yaml:"reply_token_lifetime"`
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
	// Nudges are the delays after a proposed resolution at which the customer is reminded, ascending, at least one; after the last the ticket goes to the lead as unconfirmed.
	Nudges []time.Duration `yaml:"nudges"`
	// ReopenWindow is how long after resolution a customer reply reopens the ticket instead of opening a linked one.
	ReopenWindow time.Duration `yaml:"reopen_window"`
	// BounceSuppression is how long an address that hard-bounced gets no automatic mail.
	BounceSuppression time.Duration `yaml:"bounce_suppression"`
	// MaxAutoPerAddressPerHour caps acknowledgements and other mail answering possibly automatic inbound mail, per address per hour (loop protection); notices a person's action caused are not capped by it (the mail fuse bounds them); at least 1.
	MaxAutoPerAddressPerHour int `yaml:"max_auto_per_address_per_hour"`
	// MaxAutoPerTicketPerDay caps acknowledgements and other mail answering possibly automatic inbound mail on one ticket per day (notices a person's action caused are bounded by the mail fuse instead); at least 1.
	MaxAutoPerTicketPerDay int `yaml:"max_auto_per_ticket_per_day"`
	// FuseMaxMails is the per-ticket mail fuse: when tend queued this many mails on one ticket (to the customer and to staff) within fuse_window, all further mail on it is held and the leads get one alert.
	FuseMaxMails int `yaml:"fuse_max_mails"`
	// FuseWindow is the sliding window of the mail fuse.
	FuseWindow time.Duration `yaml:"fuse_window"`
	// FuseMaxMailsPerDay also trips the mail fuse when tend queued this many mails on one ticket within 24 hours: a loop slowed down by coalescing stays under the burst limit, not under this.
	FuseMaxMailsPerDay int `yaml:"fuse_max_mails_per_day"`
	// NotifyWindow coalesces agent notifications: at most one of each kind per agent per ticket in this window; later ones wait and are sent as one ("3 new messages").
	NotifyWindow time.Duration `yaml:"notify_window"`
}

// Processing bounds the work that follows a commit.
type Processing struct {
	// MaxAttempts is how many times one message's after-work is tried; after the last it is marked "could not be processed" on its ticket, acknowledged from its header block, and the agents are told.
	MaxAttempts int `yaml:"max_attempts"`
	// RetryBackoff is the wait after the first failed attempt, doubled after each further one (at most an hour).
	RetryBackoff time.Duration `yaml:"retry_backoff"`
	// BatchBytes cuts a processing batch once its messages add up to this size, so one transaction never holds the database for long; a bigger message is a batch of its own.
	BatchBytes Size `yaml:"batch_bytes"`
	// MaxBodyText is the most of a body's text (and HTML) kept in the database; beyond it the text is cut with a pointer to the raw message, which is always kept whole.
	MaxBodyText Size `yaml:"max_body_text"`
	// Workers is how many processing batches run at once; 0 chooses by database: 4 on PostgreSQL, where a batch mostly waits for the server's round trips, 1 on SQLite, whose one writer takes batches one at a time anyway. Each batch first locks its tickets' customers, so workers never decide about one customer's tickets, or count their automatic mail, together.
	Workers int `yaml:"workers"`
}

// Notifications bounds staff notifications.
type Notifications struct {
	// MaxText is the most of the customer's text one notification carries; the rest is on the ticket page.
	MaxText Size `yaml:"max_text"`
	// AttachMax forwards the customer's attachments with a notification only when together they are at most this size; larger ones are listed with their sizes and a link to the ticket page. 0 never forwards.
	AttachMax Size `yaml:"attach_max"`
}

// Retention prunes what need not be kept forever, in the background.
type Retention struct {
	// OutboxBodies is how long the composed bytes of sent (or failed) outgoing mail to customers are kept; after it only their metadata (recipient, status, times) stays.
	OutboxBodies time.Duration `yaml:"outbox_bodies"`
	// NotificationBodies is how long the composed bytes of sent mail to staff (notifications, alerts) are kept; 0 drops them as soon as the relay has taken the mail, as they copy what the ticket already holds (its messages and attachments stay there).
	NotificationBodies time.Duration `yaml:"notification_bodies"`
	// CompactEvery is how often raw-message segment files (SQLite) are compacted: bytes of duplicates, aborted writes and erased messages are reclaimed; on PostgreSQL, raw chunks no message points at are deleted.
	CompactEvery time.Duration `yaml:"compact_every"`
}

// Clusters configures the grouping of tickets by content (the queue's
// "similar complaints", /api/clusters).
type Clusters struct {
	// Window is how far back a new ticket looks for tickets like it, and how long a closed ticket still counts in its cluster; 0 turns clustering off.
	Window time.Duration `yaml:"window"`
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
	// Language is what customers are written to in when their own language is not detected or not shipped: en, de, fr, es, pt or nl.
	Language string `yaml:"language"`
	// TimeZone is the IANA zone (Europe/Berlin) business hours, holidays, follow-up dates and promised times are read in.
	TimeZone string `yaml:"time_zone"`
	// BusinessHours are the working hours, e.g. "Mon-Fri 09:00-17:00" or "Mon-Thu 09:00-17:00, Fri 09:00-13:00"; when set, response_time counts business time only and acknowledgements promise a local time ("by Monday 10:00 CET"); empty means around the clock.
	BusinessHours string `yaml:"business_hours"`
	// Holidays are dates (2026-12-25) on which no business time passes.
	Holidays []string `yaml:"holidays"`
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
	// StaleAfter reports the mailbox unhealthy after this long without a successful poll, and mails the admins and leads once; greater than poll_interval.
	StaleAfter time.Duration `yaml:"stale_after"`
	// BackfillRate limits the first sync of mail older than the first connection to this many messages per second, to spare a provider's bandwidth limits; 0 means as fast as the server and the database go. Mail arriving later, and backfill: live, are never throttled.
	BackfillRate int `yaml:"backfill_rate"`
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
	// Inboxes restricts an agent (role agent) to the tickets of these inbox addresses: the web view, the API, notifications and reply addresses; empty means every inbox. Leads and admins see every inbox.
	Inboxes []string `yaml:"inboxes"`
}

// Size is a number of bytes, written in YAML as a plain integer or with a
// unit (25MB = 25,000,000; 25MiB = 26,214,400).
type Size int64

// FileMode is a Unix permission, written in octal ("0660"): YAML would read
// an unquoted 0660 as decimal 660, so it is always parsed as octal text.
type FileMode uint32

// String renders the mode as it is written: four octal digits.
func (m FileMode) String() string { return fmt.Sprintf("%04o", uint32(m)) }

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

// Default returns the embedded default configuration of docs/design.md: SQLite
// under ./tend-data, SMTP on 127.0.0.1:2525, web on 127.0.0.1:8080, inbox
// support@localhost, no relay. Paths are as written (not yet resolved) and
// derived values (sqlite dsn, secret_file) are still empty: Load and Parse
// fill them in.
func Default() Config {
	return Config{
		DataDir:     "./tend-data",
		MinFreeDisk: 1 << 30,
		Database:    Database{Driver: "sqlite", Lease: 30 * time.Second},
		SMTP: SMTP{
			Listen:          "127.0.0.1:2525",
			Hostname:        "localhost",
			LMTPSocketMode:  0o660,
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
			ShutdownGrace:   30 * time.Second,
		},
		Web: Web{Listen: "127.0.0.1:8080", BaseURL: "http://127.0.0.1:8080"},
		Relay: Relay{
			TLS:      "none",
			Timeout:  30 * time.Second,
			RetryFor: 48 * time.Hour,
		},
		SenderAuth: SenderAuth{Verify: true, Timeout: 5 * time.Second, ReplyTokenLifetime: 90 * 24 * time.Hour},
		Threading:  Threading{SubjectWindow: 7 * 24 * time.Hour},
		FollowThrough: FollowThrough{
			Acknowledge:              true,
			RepeatContactsToLead:     2,
			Nudges:                   []time.Duration{48 * time.Hour, 120 * time.Hour},
			ReopenWindow:             14 * 24 * time.Hour,
			BounceSuppression:        30 * 24 * time.Hour,
			MaxAutoPerAddressPerHour: 3,
			MaxAutoPerTicketPerDay:   10,
			FuseMaxMails:             20,
			FuseWindow:               10 * time.Minute,
			FuseMaxMailsPerDay:       100,
			NotifyWindow:             2 * time.Minute,
		},
		Log: Log{Level: "info", Format: "text"},
		Processing: Processing{
			MaxAttempts:  5,
			RetryBackoff: 30 * time.Second,
			BatchBytes:   4 << 20,
			MaxBodyText:  1 << 20,
		},
		Notifications: Notifications{MaxText: 64 << 10, AttachMax: 1 << 20},
		Retention:     Retention{OutboxBodies: 30 * 24 * time.Hour, CompactEvery: time.Hour},
		Clusters:      Clusters{Window: 7 * 24 * time.Hour},
		Inboxes: []Inbox{{
			Address:      "support@localhost",
			Name:         "Support",
			ResponseTime: 24 * time.Hour,
			Backfill:     "quiet",
			Language:     "en",
		}},
	}
}

// defaulter is implemented by list elements and optional blocks, so that a
// new inbox, IMAP block or agent in the file starts from its defaults.
type defaulter interface {
	applyDefaults()
}

func (i *Inbox) applyDefaults() {
	*i = Inbox{ResponseTime: 24 * time.Hour, Backfill: "quiet", Language: "en"}
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
