package rules

import (
	"fmt"
	"time"

	"github.com/tendhq/tend/vocab"
)

// ActionKind says what an Action asks the executor to do.
type ActionKind string

// Action kinds. The executor applies them in the order returned.
const (
	// Send mails a template to the customer in the ticket's thread.
	Send ActionKind = "send"
	// Notify mails a template to staff (To: assignee, agents, leads, …).
	Notify ActionKind = "notify"
	// SetState moves the ticket to State; Note carries a reason if any.
	SetState ActionKind = "set_state"
	// Assign gives the ticket to the agent named in Assignee.
	Assign ActionKind = "assign"
	// SetPriority sets Priority (already resolved from "up"/"down").
	SetPriority ActionKind = "set_priority"
	// Tag adds Tag to the ticket.
	Tag ActionKind = "tag"
	// Schedule arms timer Timer to fire After from Event.Now, replacing a
	// pending timer of the same name.
	Schedule ActionKind = "schedule"
	// Cancel disarms timer Timer; a no-op when none is pending.
	Cancel ActionKind = "cancel"
	// Record puts Note on the timeline. Some notes are also counters the
	// executor keeps: RecordRepeatContact, RecordBreach.
	Record ActionKind = "record"
	// Suppress stops automatic mail to Address for After (hard bounce):
	// the executor sets Ticket.CustomerSuppressedUntil = Now + After for
	// every ticket of that address.
	Suppress ActionKind = "suppress"
	// OpenLinked asks the executor to open a new ticket for the event's
	// message, linked to this one, and to feed ticket.created for it (so the
	// new ticket is acknowledged by its own rules). Used for late replies to
	// resolved or closed tickets.
	OpenLinked ActionKind = "open_linked"
)

// Recipients for Send and Notify.
const (
	ToCustomer = "customer"
	ToAssignee = "assignee"
	ToAgents   = "agents"
	ToLeads    = "leads"
	// ToAssigneeOrAgents is the assignee if there is one, else all agents.
	ToAssigneeOrAgents = "assignee_or_agents"
)

// Causes of an automatic mail to the customer (Action.Cause).
const (
	// CauseInbound answers inbound mail that may be automatic.
	CauseInbound = "inbound"
	// CausePerson follows a person's action.
	CausePerson = "person"
)

// Well-known Record notes that the executor also counts.
const (
	// RecordRepeatContact increments Ticket.RepeatContacts.
	RecordRepeatContact = "repeat_contact"
	// RecordBreach marks the ticket breached in the queue.
	RecordBreach = "breach"
)

// Action is one decision of the engine, plain data for the executor.
type Action struct {
	Kind ActionKind
	// Template names the template for Send and Notify.
	Template string
	// To is a To* recipient for Send and Notify.
	To string
	// State for SetState.
	State vocab.State
	// Priority for SetPriority, Tag for Tag, Assignee for Assign, Timer
	// for Schedule and Cancel.
	Priority, Tag, Assignee, Timer string
	// Note is the timeline text for Record, or the reason for SetState.
	Note string
	// Address is the address for Suppress.
	Address string
	// After is the delay for Schedule and the duration for Suppress.
	After time.Duration
	// BusinessTime makes a Schedule's delay count only the inbox's
	// business hours (a promise made in working time is measured in it).
	BusinessTime bool
	// Auto marks automatic mail (sent with Auto-Submitted: auto-replied,
	// RFC 3834 §5): it must pass Gate before it becomes an outbox row.
	Auto bool
	// Cause says why an automatic mail to the customer is sent: CauseInbound
	// (the default) answers inbound mail that may itself be automatic (an
	// acknowledgement) and is bounded by the per-address and per-ticket
	// caps; CausePerson follows a person's action (an agent's #resolve, a
	// lead's close, the customer's own reply, the nudges a #resolve set
	// off) and is never capped by them: the customer must get it. Either
	// way the executor's per-ticket fuse bounds a loop.
	Cause string
	// Rule is the name of the rule that produced the action, for the timeline.
	Rule string
}

// String renders the action compactly for logs and test failures.
func (a Action) String() string {
	s := string(a.Kind)
	add := func(k, v string) {
		if v != "" {
			s += " " + k + "=" + v
		}
	}
	add("template", a.Template)
	add("to", a.To)
	add("state", string(a.State))
	add("priority", a.Priority)
	add("tag", a.Tag)
	add("assignee", a.Assignee)
	add("timer", a.Timer)
	add("note", a.Note)
	add("address", a.Address)
	if a.After != 0 {
		s += " after=" + a.After.String()
	}
	if a.Auto {
		s += " auto"
	}
	if a.Cause != "" {
		s += " cause=" + a.Cause
	}
	return s + " (" + a.Rule + ")"
}

// RuleError is a rule that failed at run time. The other rules still ran;
// the caller logs it and puts it on the ticket's timeline.
type RuleError struct {
	Rule  string          // rule name
	File  string          // rules file name
	Line  int             // line of the rule in the file
	Event vocab.EventKind // event type being evaluated
	Err   error
}

// Error formats like a load error: file:line: rule "name": cause.
func (e RuleError) Error() string {
	return fmt.Sprintf("%s:%d: rule %q: on %s: %v", e.File, e.Line, e.Rule, e.Event, e.Err)
}

// Unwrap gives the cause to errors.Is and errors.As.
func (e RuleError) Unwrap() error { return e.Err }
