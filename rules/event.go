package rules

import (
	"time"

	"github.com/tendhq/tend/vocab"
)

// Priorities, lowest first. SetPriority "up" and "down" move one step.
const (
	PriorityLow    = "low"
	PriorityNormal = "normal"
	PriorityHigh   = "high"
	PriorityUrgent = "urgent"
)

// priorityRank orders priorities; unknown (or empty) counts as normal so
// that "up" on a ticket without a priority yields high.
func priorityRank(p string) int {
	switch p {
	case PriorityLow:
		return 0
	case PriorityHigh:
		return 2
	case PriorityUrgent:
		return 3
	}
	return 1
}

// priorityAt is the inverse of priorityRank, clamped to the ends.
func priorityAt(rank int) string {
	switch {
	case rank <= 0:
		return PriorityLow
	case rank == 1:
		return PriorityNormal
	case rank == 2:
		return PriorityHigh
	}
	return PriorityUrgent
}

// Message roles: who sent it, as decided by ingest (signed reply address
// for agents, never From alone).
const (
	RoleCustomer = "customer"
	RoleAgent    = "agent"
	RoleCC       = "cc"
)

// Event is one thing that happened on a ticket, with a plain view of the
// ticket as it stands. It is built by the executor; the engine only reads it.
type Event struct {
	// Type is one of vocab.RuleEvents.
	Type vocab.EventKind
	// Now is the event time from the executor's injected clock. The engine
	// never reads a clock of its own.
	Now    time.Time
	Ticket Ticket
	// Message is set for message.received and ticket.created.
	Message *Message
	// Timer is set for timer.due.
	Timer *Timer
	// Outbox is set for outbox.failed.
	Outbox *Outbox
	// NewState and Reason describe a state change or a resolve request
	// ("spam", "duplicate", free text from the lead).
	NewState vocab.State
	Reason   string
	// Answer is the customer's click for confirmation.clicked.
	Answer Answer
}

// Person is a mail address with its display name.
type Person struct {
	Address string `expr:"address"`
	Name    string `expr:"name"`
}

// Inbox is the support address a ticket belongs to.
type Inbox struct {
	Address string `expr:"address"`
	Name    string `expr:"name"`
	// ResponseTime is the promise made in acknowledgements; zero means no
	// promise is made.
	ResponseTime time.Duration `expr:"response_time"`
}

// Ticket is the read-only view of a ticket that rules see. The expr tags
// are the names used in rule conditions (ticket.inbox.response_time).
// Rules read State, PrevState and Message.Class as strings (vocabPatch).
type Ticket struct {
	Number    int64       `expr:"number"`
	Subject   string      `expr:"subject"`
	State     vocab.State `expr:"state"`
	PrevState vocab.State `expr:"prev_state"`
	// CloseReason is why the ticket was closed ("spam", "duplicate", …).
	CloseReason string   `expr:"close_reason"`
	Priority    string   `expr:"priority"`
	Customer    Person   `expr:"customer"`
	Assignee    Person   `expr:"assignee"` // zero when unassigned
	Inbox       Inbox    `expr:"inbox"`
	Tags        []string `expr:"tags"`
	// RepeatContacts counts customer messages that arrived while the
	// customer was already waiting for an answer.
	RepeatContacts int  `expr:"repeat_contacts"`
	Breached       bool `expr:"breached"`
	// CustomerWaitingTickets counts the customer's other tickets that
	// still wait for our answer (new or open); CustomerRepeatContacts
	// sums their repeat contacts. A new subject from a customer already
	// waiting is a repeat contact too.
	CustomerWaitingTickets int `expr:"customer_waiting_tickets"`
	CustomerRepeatContacts int `expr:"customer_repeat_contacts"`
	// Language is the customer's language (ISO 639-1) the mail to them is
	// written in.
	Language string `expr:"language"`
	// SatisfactionAsked: the one satisfaction question was sent already.
	SatisfactionAsked bool `expr:"satisfaction_asked"`

	CreatedAt       time.Time `expr:"created_at"`
	FirstResponseAt time.Time `expr:"first_response_at"` // zero until an agent answered
	LastCustomerAt  time.Time `expr:"last_customer_at"`
	LastAgentAt     time.Time `expr:"last_agent_at"`
	// ResolvedAt is when the ticket last entered resolved or closed.
	ResolvedAt time.Time `expr:"resolved_at"`

	// Flood counters for Gate, counted by the executor from the outbox.
	AutoMailsToCustomerLastHour int `expr:"auto_mails_to_customer_last_hour"`
	AutoMailsOnTicketToday      int `expr:"auto_mails_on_ticket_today"`
	// CustomerSuppressedUntil is set after a hard bounce (Suppress action).
	CustomerSuppressedUntil time.Time `expr:"customer_suppressed_until"`
}

// Message is the view of a received message.
type Message struct {
	From  Person      `expr:"from"`
	Role  string      `expr:"role"` // Role* constant
	Class vocab.Class `expr:"class"`
	// Text is the new text only, quotes stripped by the mail package.
	Text    string    `expr:"text"`
	Subject string    `expr:"subject"`
	Date    time.Time `expr:"date"`
	// Attachments are file names, for the acknowledgement's "what we got".
	Attachments []string `expr:"attachments"`
	// Answer is the confirmation answer; Evaluate fills it from Text when
	// the ticket awaits confirmation and it is empty.
	Answer Answer `expr:"answer"`
	// Gratitude is true for a customer's reply that only thanks
	// (IsGratitude); Evaluate fills it when the ticket is proposed,
	// unconfirmed, resolved or closed, where a thank-you must not reopen.
	Gratitude bool `expr:"gratitude"`
	// Imported marks IMAP backfill: never answered automatically.
	Imported bool `expr:"imported"`
	// NoAutoReply is the classifier's "answer nothing automatically"
	// (X-Auto-Response-Suppress, a postmaster or null sender, ...), on
	// mail of any class; Gate refuses every automatic mail for it.
	NoAutoReply bool `expr:"no_auto_reply"`
	// Suspect marks mail that only heuristics (a subject that reads like a
	// bounce or out-of-office notice) call automatic: Gate lets the first
	// acknowledgement through (a person may write such a subject) and
	// holds every further automatic mail.
	Suspect bool `expr:"suspect"`
	// ClassReasons are the classifier's reasons, for the timeline.
	ClassReasons []string `expr:"class_reasons"`
	// Note marks an agent's internal note: it is not an answer to the customer.
	Note bool `expr:"note"`
	// Commands are the agent's one-line commands ("#resolve", "#assign lena").
	Commands []string `expr:"commands"`
	// Unverified marks a message whose sender is not authenticated and
	// that either was checked or joined its ticket on weak evidence:
	// agents are told, as its From may be forged.
	Unverified bool `expr:"unverified"`
	// SenderAuth is the verdict in a few words ("dkim=fail spf=softfail
	// dmarc=none for example.com"), "" when nothing was checked.
	SenderAuth string `expr:"sender_auth"`
}

// Timer is a fired timer.
type Timer struct {
	Name  string    `expr:"name"`
	DueAt time.Time `expr:"due_at"`
	Seq   int64     `expr:"seq"`
}

// Outbox describes a failed outgoing mail.
type Outbox struct {
	To     string `expr:"to"`
	Reason string `expr:"reason"`
	// Permanent is a hard failure (5xx, or a DSN with a 5.x.x status,
	// RFC 3464): the address should be suppressed.
	Permanent bool `expr:"permanent"`
}
