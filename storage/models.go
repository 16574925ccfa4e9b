package storage

import (
	"time"

	"github.com/tendhq/tend/vocab"
)

// Message directions.
const (
	DirectionIn  = "in"
	DirectionOut = "out"
)

// Inbox is a support address that mail is accepted for.
type Inbox struct {
	ID           int64  `gorm:"primaryKey"`
	Address      string `gorm:"size:320;not null;uniqueIndex"`
	Name         string `gorm:"type:text;not null;default:''"`
	ResponseTime int64  `gorm:"not null;default:0"` // seconds promised for a first answer
	CreatedAt    time.Time
}

// Contact is a person who writes to us: a customer or a CC.
type Contact struct {
	ID    int64  `gorm:"primaryKey"`
	Email string `gorm:"size:320;not null;uniqueIndex"`
	Name  string `gorm:"type:text;not null;default:''"`
	// SuppressedUntil stops automatic mail to the address after a hard
	// bounce; SuppressReason says why, for the agent.
	SuppressedUntil *time.Time
	SuppressReason  string `gorm:"type:text;not null;default:''"`
	CreatedAt       time.Time
}

// Agent is a member of the support team. Role is agent, lead or admin.
type Agent struct {
	ID           int64  `gorm:"primaryKey"`
	Email        string `gorm:"size:320;not null;uniqueIndex"`
	Name         string `gorm:"type:text;not null;default:''"`
	Role         string `gorm:"size:20;not null;default:'agent'"`
	PasswordHash string `gorm:"size:200;not null;default:''"`
	// Inboxes restricts an agent (role agent) to the tickets of these
	// inbox addresses, space-separated; "" means every inbox. Leads and
	// admins see every inbox whatever it says (see SeesInbox).
	Inboxes   string `gorm:"type:text;not null;default:''"`
	CreatedAt time.Time
}

// Ticket is one conversation with a customer. Its ID is the public ticket
// number: it comes from the database (a sequence on PostgreSQL, the rowid
// on SQLite), never from a counter in memory.
type Ticket struct {
	ID              int64       `gorm:"primaryKey"`
	Subject         string      `gorm:"type:text;not null;default:''"`
	NormSubject     string      `gorm:"size:1000;not null;default:'';index:idx_tickets_customer_subject,priority:2"` // SubjectKey
	State           vocab.State `gorm:"size:20;not null;index:idx_tickets_state_updated,priority:1"`
	Priority        string      `gorm:"size:20;not null;default:'normal'"`
	CustomerID      int64       `gorm:"not null;index:idx_tickets_customer_subject,priority:1"`
	AssigneeID      *int64
	InboxID         int64 `gorm:"not null"`
	MergedInto      *int64
	Breached        bool      `gorm:"not null;default:false"`
	RepeatContacts  int       `gorm:"not null;default:0"`
	Tags            string    `gorm:"type:text;not null;default:''"` // space-separated
	CloseReason     string    `gorm:"type:text;not null;default:''"`
	LinkedTo        *int64    // the older ticket a reply after the reopen window came from
	CreatedAt       time.Time `gorm:"index:idx_tickets_created"` // the stats' date range
	UpdatedAt       time.Time `gorm:"index:idx_tickets_state_updated,priority:2"`
	FirstResponseAt *time.Time
	LastCustomerAt  *time.Time
	LastAgentAt     *time.Time
	ResolvedAt      *time.Time
	// MailHeldSince is set when the ticket's mail fuse tripped (too much
	// mail in a short window, a loop): its outgoing mail is held until a
	// lead releases it.
	MailHeldSince *time.Time
	// WaitingSince is the oldest customer message with no answer after
	// it: how long the customer has really waited (nil once answered).
	WaitingSince *time.Time
	// SnoozedUntil keeps the ticket out of the queue until then (#waiting
	// until, #remind, #snooze); a customer reply clears it at once.
	SnoozedUntil *time.Time
	// Language is the customer's language (ISO 639-1), detected from the
	// first message; the customer's mail is written in it.
	Language string `gorm:"size:8;not null;default:''"`
	// Satisfaction: asked once, after a confirmed resolution only; the
	// score is 1..5 (0: none yet).
	SatisfactionAskedAt *time.Time
	SatisfactionScore   int    `gorm:"not null;default:0"`
	SatisfactionComment string `gorm:"type:text;not null;default:''"`
	SatisfactionAt      *time.Time
	// ClusterID is the ticket that started the group of tickets about the
	// same thing this one belongs to (its own number when it is alone):
	// set once, from the subject and the first customer message.
	ClusterID *int64 `gorm:"index"`
	// Stems are the first message's word stems (package similar), space
	// separated, kept while the ticket can still gather look-alikes.
	Stems string `gorm:"type:text;not null;default:''"`
	// Attention and QueueSince are the queue's order (attentionSQL,
	// queueSinceSQL): columns the database generates from the row, so
	// no writer can leave them stale. Read only; migration step 6 makes
	// them and their indexes.
	Attention  int       `gorm:"->;-:migration"`
	QueueSince time.Time `gorm:"->;-:migration"`

	Customer *Contact `gorm:"foreignKey:CustomerID"`
	Assignee *Agent   `gorm:"foreignKey:AssigneeID"`
	Inbox    *Inbox   `gorm:"foreignKey:InboxID"`
}

// TicketBand is one LSH band key of a ticket's content signature: a new
// ticket finds its look-alikes among the tickets sharing a band. Rows of
// tickets older than the cluster window are pruned.
type TicketBand struct {
	Band     int64 `gorm:"primaryKey;autoIncrement:false"`
	TicketID int64 `gorm:"primaryKey;autoIncrement:false;index"`
}

// TicketInbox records that an inbox sees a ticket: one message addressed to
// two inboxes is one ticket that both inboxes see.
type TicketInbox struct {
	TicketID int64 `gorm:"primaryKey;autoIncrement:false"`
	InboxID  int64 `gorm:"primaryKey;autoIncrement:false;index"`
}

// Participant is an address that takes part in a ticket: the customer, the
// CCs of a reply-all, the agents who answered. Threading by subject tag is
// honoured only for participants.
type Participant struct {
	TicketID  int64  `gorm:"primaryKey;autoIncrement:false"`
	Email     string `gorm:"primaryKey;size:320"`
	Role      string `gorm:"size:20;not null"` // customer, cc, agent
	CreatedAt time.Time
}

// RawMessage holds the exact bytes of a message, once per content hash:
// in Data (PostgreSQL), in raw_chunks (a large message on PostgreSQL,
// Segment = chunkSegment; see RawChunk), or in a segment file beside the
// SQLite database (Segment, Offset; see segments).
type RawMessage struct {
	Hash    string `gorm:"primaryKey;size:64"` // hex SHA-256 of the bytes
	Data    []byte
	Segment int   `gorm:"not null;default:0"`
	Offset  int64 `gorm:"not null;default:0"`
	Size    int64 `gorm:"not null"` // of the message
	// Packed is the length of the zstd frame the message is stored as,
	// in Data or at Offset in its segment (packing.go); 0: the message
	// is stored as it is, Size bytes.
	Packed    int64 `gorm:"not null;default:0"`
	CreatedAt time.Time
}

// SourceWeb is the Source of mail that tend composed for a signed-in agent
// (ingest's DeliverWritten): only tend writes it, no door can claim it.
const SourceWeb = "web"

// stored is how many bytes the row's message takes where it is kept.
func (r RawMessage) stored() int64 {
	if r.Packed > 0 {
		return r.Packed
	}
	return r.Size
}

// Message is one mail on a ticket, in or out, with the header fields that
// threading needs indexed. Text and HTML are filled by the full MIME parse
// after the message is committed (Parsed tells whether it ran).
type Message struct {
	ID          int64  `gorm:"primaryKey"`
	TicketID    *int64 `gorm:"index"`
	Direction   string `gorm:"size:3;not null"`
	MessageID   string `gorm:"size:998;not null;uniqueIndex:idx_messages_dedup,priority:1"`
	RawHash     string `gorm:"size:64;not null;uniqueIndex:idx_messages_dedup,priority:2"`
	ContentHash string `gorm:"size:64;not null;default:''"`       // without trace fields: a copy through one more hop has the same; '' on older rows
	InReplyTo   string `gorm:"size:998;not null;default:''"`      // indexed through MessageRef
	References  string `gorm:"type:text;not null;default:''"`     // space-separated, as sent
	ThreadRoot  string `gorm:"size:64;not null;default:'';index"` // Outlook Thread-Index conversation root
	ThreadTopic string `gorm:"type:text;not null;default:''"`
	FromAddr    string `gorm:"type:text;not null;default:''"`
	FromName    string `gorm:"type:text;not null;default:''"`
	ToAddrs     string `gorm:"type:text;not null;default:''"` // comma-separated
	CcAddrs     string `gorm:"type:text;not null;default:''"`
	EnvFrom     string `gorm:"type:text;not null;default:''"`
	EnvTo       string `gorm:"type:text;not null;default:''"`
	Subject     string `gorm:"type:text;not null;default:''"`
	Date        *time.Time
	Class       vocab.Class `gorm:"size:20;not null;default:'human'"`
	Role        string      `gorm:"size:20;not null;default:'customer'"` // customer, cc, agent, system
	Evidence    string      `gorm:"type:text;not null;default:''"`       // JSON list of threading evidence
	Size        int64       `gorm:"not null;default:0"`
	Source      string      `gorm:"type:text;not null;default:''"` // smtp, lmtp, imap:<inbox>/<mailbox>/<uidvalidity>/<uid>, SourceWeb
	Imported    bool        `gorm:"not null;default:false"`
	Parsed      bool        `gorm:"not null;default:false"`
	ParseError  string      `gorm:"type:text;not null;default:''"`
	Text        string      `gorm:"type:text;not null;default:''"`
	HTML        string      `gorm:"type:text;not null;default:''"`
	OutboxID    *int64      `gorm:"index"` // the outbox row of an outgoing message; RequeueMail rewrites its text by it
	// AgentID is the agent a verified signed reply address named; Note
	// marks an internal note (never sent to the customer).
	AgentID *int64
	Note    bool `gorm:"not null;default:false"`
	// Handled is set, in the same transaction as their effects, once the
	// rules have run for this message, so a retried work item never runs
	// them twice.
	Handled    bool      `gorm:"not null;default:false"`
	ReceivedAt time.Time `gorm:"not null"`

	// NoAutoReply and Suspect are the classifier's verdicts beside Class
	// (classify.Result): no automatic answer at all, or none after the
	// first acknowledgement. ClassReasons is the JSON list of its reasons.
	NoAutoReply  bool   `gorm:"not null;default:false"`
	Suspect      bool   `gorm:"not null;default:false"`
	ClassReasons string `gorm:"type:text;not null;default:''"`

	// Auth is the sender authentication verdict of a received message.
	Auth SenderAuth `gorm:"embedded;embeddedPrefix:auth_"`

	// Prepared is what the processor worked out of the message before
	// its batch's transaction; nil on a message read from the database.
	Prepared *Prepared `gorm:"-"`

	// OpensTicket, set by MessagesByID, is true when m is its ticket's
	// first message: the one the door opened the ticket for.
	OpensTicket bool `gorm:"-"`
}

// StartsConversation reports whether m is a customer's incoming mail that
// opened its ticket, which is what is worked out before the processing
// transaction (Prepared) is for: the new ticket's language and content
// cluster. Judged by the mail answering nothing (no In-Reply-To), it
// missed the replies to mail tend never saw, and those were worked out
// inside the transaction, on SQLite the one writer.
func (m *Message) StartsConversation() bool {
	return m.Direction == DirectionIn && m.Role == "customer" && m.OpensTicket
}

// SenderAuth is the stored sender authentication verdict (see
// mail/senderauth): results spelled as in Authentication-Results. An
// empty Method means nothing was checked (local verification off and no
// trusted Authentication-Results, or mail stored before the check
// existed).
type SenderAuth struct {
	Method     string `gorm:"size:20;not null;default:''"` // local, authres, ""
	ServID     string `gorm:"type:text;not null;default:''"`
	DKIM       string `gorm:"size:20;not null;default:''"`
	DKIMDomain string `gorm:"type:text;not null;default:''"`
	SPF        string `gorm:"size:20;not null;default:''"`
	SPFDomain  string `gorm:"type:text;not null;default:''"`
	DMARC      string `gorm:"size:20;not null;default:''"`
	FromDomain string `gorm:"type:text;not null;default:''"`
	// Aligned: DKIM or SPF passed for a domain aligned with FromDomain.
	Aligned bool `gorm:"not null;default:false"`
}

// Authenticated reports whether the verdict proves the From domain.
func (a SenderAuth) Authenticated() bool { return a.Method != "" && a.Aligned }

// MessageRef indexes one entry of a message's In-Reply-To and References,
// so that a parent arriving after its child is still found. The primary
// key leads with Ref: it is the index, and the only b-tree written.
type MessageRef struct {
	Ref          string `gorm:"primaryKey;size:998"`
	MessageRowID int64  `gorm:"primaryKey;autoIncrement:false"`
}

// Attachment is the metadata of one attachment; the bytes are served from
// the raw message (Part is its position in enmime's attachment list).
type Attachment struct {
	ID           int64  `gorm:"primaryKey"`
	MessageRowID int64  `gorm:"not null;index"`
	Part         int    `gorm:"not null"`
	Filename     string `gorm:"type:text;not null;default:''"`
	ContentType  string `gorm:"type:text;not null;default:''"`
	Size         int64  `gorm:"not null;default:0"`
	Hash         string `gorm:"size:64;not null;default:''"`
	Inline       bool   `gorm:"not null;default:false"`
}

// Event is one entry on a ticket's timeline.
type Event struct {
	ID           int64           `gorm:"primaryKey"`
	TicketID     int64           `gorm:"not null;index"`
	Kind         vocab.EventKind `gorm:"size:50;not null;index:idx_events_kind_created,priority:1"`
	Actor        string          `gorm:"type:text;not null;default:''"`
	Detail       string          `gorm:"type:text;not null;default:''"`
	MessageRowID *int64
	CreatedAt    time.Time `gorm:"index:idx_events_kind_created,priority:2"` // the stats find reopens by kind since a date
}

// OutboxMail is an outgoing mail. It is committed in the same transaction as
// the event that caused it and delivered after commit by the sender.
type OutboxMail struct {
	// The claim index ends in the id: a claim takes the due rows in
	// (next_attempt_at, id) order straight from it, with no sort.
	ID        int64  `gorm:"primaryKey;index:idx_outbox_claim,priority:3"`
	TicketID  *int64 `gorm:"index:idx_outbox_ticket_created,priority:1"` // no index of its own (migration step 15)
	Kind      string `gorm:"size:30;not null"`                           // customer or staff
	Auto      bool   `gorm:"not null;default:false"`
	EnvFrom   string `gorm:"type:text;not null;default:''"`
	EnvTo     string `gorm:"size:2000;not null;index:idx_outbox_to_created,priority:1"` // comma-separated
	MessageID string `gorm:"size:998;not null;default:'';index"`
	// Raw is the composed mail. It is kept in outbox_bodies (OutboxBody),
	// not in this row: the row is rewritten at every claim and outcome,
	// and on SQLite a rewrite of a row rewrites its blob with it. Only
	// LoadOutboxBodies fills it; nil elsewhere.
	Raw []byte `gorm:"-"`
	// RawErr is why LoadOutboxBodies could not give Raw (stored bytes
	// that no longer unpack, or none): the mail cannot be sent as
	// composed.
	RawErr        error     `gorm:"-"`
	Status        string    `gorm:"size:20;not null;index:idx_outbox_claim,priority:1"` // pending, sent, failed, held
	Attempts      int       `gorm:"not null;default:0"`
	NextAttemptAt time.Time `gorm:"not null;index:idx_outbox_claim,priority:2"`
	LeaseOwner    string    `gorm:"size:100;not null;default:''"`
	LeaseUntil    *time.Time
	LastError     string `gorm:"type:text;not null;default:''"`
	SentAt        *time.Time
	CreatedAt     time.Time `gorm:"index:idx_outbox_to_created,priority:2;index:idx_outbox_ticket_created,priority:2"`
	// Template is the template the mail was rendered from ("" for a
	// relayed agent reply), so texts about what was sent can be checked.
	Template string `gorm:"size:100;not null;default:''"`
	// Stream names the notification stream a row belongs to (template
	// and agent): a later notification of the same stream, while this
	// row still waits for its not-before time, updates it instead of
	// adding a mail. Count is how many notifications it stands for.
	Stream string `gorm:"size:200;not null;default:''"`
	Count  int    `gorm:"not null;default:1"`
}

// OutboxBody holds the composed bytes of an outgoing mail, written once
// when it is queued (replaced when a coalesced notification is requeued)
// and deleted when its body is dropped (staff mail at relay, pruning,
// erasure); a mail whose body was dropped has no row. Apart from the
// outbox row so that claiming and finishing the mail, which rewrite that
// row, never rewrite (SQLite) or walk past the bytes.
type OutboxBody struct {
	OutboxID int64  `gorm:"primaryKey;autoIncrement:false"`
	Raw      []byte `gorm:"not null"`
	// Packed is the size of the mail when Raw holds it zstd-compressed
	// (packing.go), 0 when Raw is the mail as it is.
	Packed int64 `gorm:"not null;default:0"`
	// Mail only declares the foreign key: a body goes with its mail.
	Mail *OutboxMail `gorm:"foreignKey:OutboxID;constraint:OnDelete:CASCADE"`
}

// Timer is a named, durable timer on a ticket. It fires once: a replica
// claims it with a lease before firing it.
type Timer struct {
	ID          int64     `gorm:"primaryKey;index:idx_timers_claim,priority:3"`
	TicketID    int64     `gorm:"not null;index"`
	Name        string    `gorm:"size:100;not null"`
	DueAt       time.Time `gorm:"not null;index:idx_timers_claim,priority:2"`
	Status      string    `gorm:"size:20;not null;index:idx_timers_claim,priority:1"` // pending, fired, cancelled
	LeaseOwner  string    `gorm:"size:100;not null;default:''"`
	LeaseUntil  *time.Time
	CreatedAt   time.Time
	CompletedAt *time.Time
}

// Work is a durable unit of post-commit processing (full parse, rules) for
// one message. Workers claim it with a lease; processing is idempotent.
type Work struct {
	ID           int64     `gorm:"primaryKey;index:idx_work_claim,priority:2"`
	Kind         string    `gorm:"size:30;not null"`
	MessageRowID int64     `gorm:"not null"`
	NotBefore    time.Time `gorm:"not null;index:idx_work_claim,priority:1"`
	LeaseOwner   string    `gorm:"size:100;not null;default:''"`
	LeaseUntil   *time.Time
	Attempts     int    `gorm:"not null;default:0"`
	LastError    string `gorm:"type:text;not null;default:''"`
	CreatedAt    time.Time
}

// APIToken is a bearer token for the JSON API. Only its SHA-256 is stored.
type APIToken struct {
	ID         int64  `gorm:"primaryKey"`
	Name       string `gorm:"size:200;not null"`
	Role       string `gorm:"size:20;not null"`
	Hash       string `gorm:"size:64;not null;uniqueIndex"`
	CreatedAt  time.Time
	LastUsedAt *time.Time
}

// WebSession is a logged-in browser session. Only the token's SHA-256 is
// stored.
type WebSession struct {
	Hash      string `gorm:"primaryKey;size:64"`
	AgentID   int64  `gorm:"not null"`
	CSRF      string `gorm:"size:64;not null"`
	ExpiresAt time.Time
	CreatedAt time.Time
}

// Lease gives one process the right to do a named job (poll a mailbox)
// until a time, so that several replicas can share one database.
type Lease struct {
	Name   string `gorm:"primaryKey;size:300"`
	Holder string `gorm:"size:100;not null"`
	Until  time.Time
}

// MailboxState remembers how far an IMAP mailbox has been read.
type MailboxState struct {
	Key          string `gorm:"primaryKey;size:400"`
	UIDValidity  uint32 `gorm:"not null"`
	LastUID      uint32 `gorm:"not null"`
	ConnectedAt  time.Time
	BackfillDone bool `gorm:"not null;default:false"`
	Synced       int  `gorm:"not null;default:0"`
	Total        int  `gorm:"not null;default:0"`
	UpdatedAt    time.Time
}

// Setting is a named value of the installation: secrets, rotated OAuth
// tokens.
type Setting struct {
	Key   string `gorm:"primaryKey;size:200"`
	Value string `gorm:"type:text;not null"`
}

// allModels lists every model in creation order for migrations.
func allModels() []any {
	return []any{
		&Inbox{}, &Contact{}, &Agent{}, &Ticket{}, &TicketInbox{}, &TicketBand{}, &Participant{},
		&RawMessage{}, &RawChunk{}, &Message{}, &MessageRef{}, &Attachment{}, &Event{},
		&OutboxMail{}, &OutboxBody{}, &Timer{}, &Work{}, &APIToken{}, &WebSession{}, &Lease{},
		&MailboxState{}, &Setting{}, &Erasure{},
	}
}
