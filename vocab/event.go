package vocab

import "slices"

// EventKind names something that happened on a ticket: the kind of a
// timeline entry (events.kind, shown on the ticket page and in the API)
// and the type of an event the rules react to (a rule's "on:"). The two
// share one namespace; RuleEvents lists the ones a rule may name.
type EventKind string

// Events the rules react to; all but timer.due and outbox.failed are also
// written on the timeline.
const (
	// EventMessageReceived: a further message on an existing ticket.
	EventMessageReceived EventKind = "message.received"
	// EventTicketCreated: a new ticket, with its first message.
	EventTicketCreated EventKind = "ticket.created"
	// EventStateChanged: a person (lead, agent command) or a rule changed
	// the state.
	EventStateChanged EventKind = "ticket.state_changed"
	// EventTimerDue: a timer scheduled by a rule fired (rules only).
	EventTimerDue EventKind = "timer.due"
	// EventOutboxFailed: an outgoing mail failed for good or bounced
	// (rules only; the timeline says EventMailFailed).
	EventOutboxFailed EventKind = "outbox.failed"
	// EventResolveRequested: an agent's #resolve or a lead's resolve button.
	EventResolveRequested EventKind = "ticket.resolve_requested"
	// EventConfirmationClicked: the customer clicked a signed solved or
	// not-solved link.
	EventConfirmationClicked EventKind = "confirmation.clicked"
)

// Timeline entries. The strings are what the ticket page and the API
// show, and what older rows hold: never rename one.
const (
	// EventReopened: a finished (resolved or closed) ticket went back to
	// work; the stats count it.
	EventReopened EventKind = "ticket.reopened"
	// EventMerged: a ticket was merged into another (on both).
	EventMerged EventKind = "ticket.merged"
	// EventSplit: a message was split off into a ticket of its own (on both).
	EventSplit EventKind = "message.split"
	// EventErased: messages of a person whose data was erased were taken
	// off the ticket (which survives the erasure).
	EventErased EventKind = "customer.erased"
	// EventAssigned: the ticket got an assignee.
	EventAssigned EventKind = "ticket.assigned"
	// EventPriority: a rule set the ticket's priority.
	EventPriority EventKind = "ticket.priority"
	// EventTicketMailHeld: the ticket's mail fuse tripped;
	// EventTicketMailReleased: a lead released its held mail.
	EventTicketMailHeld     EventKind = "ticket.mail_held"
	EventTicketMailReleased EventKind = "ticket.mail_released"
	// EventConfirmationAnswered: the executor read a customer's reply as an
	// answer to "is it solved?".
	EventConfirmationAnswered EventKind = "confirmation.answered"
	// EventUnprocessable: a message that kept failing was given up on.
	EventUnprocessable EventKind = "message.unprocessable"
	// EventQuarantined: a message that failed the sender checks was held
	// as an unverified comment.
	EventQuarantined EventKind = "message.quarantined"
	// EventNote: an agent's internal note.
	EventNote EventKind = "note"
	// EventCommand: an agent's command ran; EventCommandRejected: it did not.
	EventCommand         EventKind = "command"
	EventCommandRejected EventKind = "command.rejected"
	// Agent replies relayed to the customer: queued, held (fuse or a
	// colleague's answer first), released (#send) or kept as a note (#note).
	EventReplyQueued   EventKind = "reply.queued"
	EventReplyHeld     EventKind = "reply.held"
	EventReplyReleased EventKind = "reply.released"
	EventReplyNoted    EventKind = "reply.noted"
	// EventAgentAutoReplyHeld: an agent's out-of-office was not relayed.
	EventAgentAutoReplyHeld EventKind = "agent.auto_reply_held"
	// Outgoing mail a rule made: queued, held by the fuse, deferred,
	// suppressed by the gate, failed; attachments that could not be relayed.
	EventMailQueued             EventKind = "mail.queued"
	EventMailHeld               EventKind = "mail.held"
	EventMailDeferred           EventKind = "mail.deferred"
	EventMailSuppressed         EventKind = "mail.suppressed"
	EventMailFailed             EventKind = "mail.failed"
	EventMailAttachmentsDropped EventKind = "mail.attachments_dropped"
	// EventContactSuppressed: automatic mail to an address is paused (a
	// hard bounce).
	EventContactSuppressed EventKind = "contact.suppressed"
	// EventMergeCustomerTold: the customer of a merged ticket was told.
	EventMergeCustomerTold EventKind = "merge.customer_told"
	// EventFollowUpSet and EventFollowUpEnded: #waiting until, #remind and
	// their end.
	EventFollowUpSet   EventKind = "follow_up.set"
	EventFollowUpEnded EventKind = "follow_up.ended"
	// EventRuleFailed: a rule could not run; EventRuleRecord: a rule's
	// record action.
	EventRuleFailed EventKind = "rule.failed"
	EventRuleRecord EventKind = "rule.record"
	// EventSatisfactionAsked and EventSatisfactionRated: the one
	// satisfaction question and its answer.
	EventSatisfactionAsked EventKind = "satisfaction.asked"
	EventSatisfactionRated EventKind = "satisfaction.rated"
)

// RuleEvents lists the events a rule's "on:" may name.
func RuleEvents() []EventKind {
	return []EventKind{EventMessageReceived, EventTicketCreated, EventStateChanged, EventTimerDue,
		EventOutboxFailed, EventResolveRequested, EventConfirmationClicked}
}

// EventKinds lists every kind.
func EventKinds() []EventKind {
	return append(RuleEvents(),
		EventReopened, EventMerged, EventSplit, EventErased, EventAssigned, EventPriority,
		EventTicketMailHeld, EventTicketMailReleased, EventConfirmationAnswered, EventUnprocessable,
		EventQuarantined, EventNote, EventCommand, EventCommandRejected,
		EventReplyQueued, EventReplyHeld, EventReplyReleased, EventReplyNoted,
		EventAgentAutoReplyHeld, EventMailQueued, EventMailHeld, EventMailDeferred,
		EventMailSuppressed, EventMailFailed, EventMailAttachmentsDropped,
		EventContactSuppressed, EventMergeCustomerTold, EventFollowUpSet, EventFollowUpEnded,
		EventRuleFailed, EventRuleRecord, EventSatisfactionAsked, EventSatisfactionRated)
}

// Valid reports whether k is one of the EventKind constants.
func (k EventKind) Valid() bool { return slices.Contains(EventKinds(), k) }

// RuleEvent reports whether a rule may react to k.
func (k EventKind) RuleEvent() bool { return slices.Contains(RuleEvents(), k) }

// ParseEventKind returns the EventKind s names, or an error for a string
// that names none.
func ParseEventKind(s string) (EventKind, error) { return parse(s, EventKinds(), "event kind") }
