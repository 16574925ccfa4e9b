package vocab

import (
	"encoding/json"
	"testing"
)

// The strings are the external contract: the database rows, the JSON API,
// the ticket page and rule files hold them. Each table spells every
// constant's string out, so a rename fails here before it reaches a user.

func TestStateStrings(t *testing.T) {
	want := map[State]string{
		StateNew: "new", StateOpen: "open", StateWaiting: "waiting", StateProposed: "proposed",
		StateResolved: "resolved", StateUnconfirmed: "unconfirmed", StateClosed: "closed",
	}
	checkStrings(t, States(), want, ParseState)
	if got := States(); got[0] != StateNew || got[len(got)-1] != StateClosed {
		t.Errorf("States() = %v: the state machine's order starts with new and ends with closed", got)
	}
}

func TestClassStrings(t *testing.T) {
	want := map[Class]string{
		ClassHuman: "human", ClassAutoReply: "auto-reply", ClassBounce: "bounce", ClassList: "list",
		ClassOwnMail: "own-mail", ClassSpam: "spam", ClassReport: "report",
	}
	checkStrings(t, Classes(), want, ParseClass)
}

func TestEventKindStrings(t *testing.T) {
	want := map[EventKind]string{
		EventMessageReceived: "message.received", EventTicketCreated: "ticket.created",
		EventStateChanged: "ticket.state_changed", EventTimerDue: "timer.due",
		EventOutboxFailed: "outbox.failed", EventResolveRequested: "ticket.resolve_requested",
		EventConfirmationClicked: "confirmation.clicked",
		EventReopened:            "ticket.reopened", EventMerged: "ticket.merged", EventSplit: "message.split",
		EventErased: "customer.erased", EventAssigned: "ticket.assigned", EventPriority: "ticket.priority",
		EventTicketMailHeld: "ticket.mail_held", EventTicketMailReleased: "ticket.mail_released",
		EventConfirmationAnswered: "confirmation.answered", EventUnprocessable: "message.unprocessable",
		EventQuarantined: "message.quarantined", EventNote: "note", EventCommand: "command",
		EventCommandRejected: "command.rejected", EventReplyQueued: "reply.queued",
		EventReplyHeld: "reply.held", EventReplyReleased: "reply.released", EventReplyNoted: "reply.noted",
		EventAgentAutoReplyHeld: "agent.auto_reply_held", EventMailQueued: "mail.queued",
		EventMailHeld: "mail.held", EventMailDeferred: "mail.deferred", EventMailSuppressed: "mail.suppressed",
		EventMailFailed: "mail.failed", EventMailAttachmentsDropped: "mail.attachments_dropped",
		EventContactSuppressed: "contact.suppressed", EventMergeCustomerTold: "merge.customer_told",
		EventFollowUpSet: "follow_up.set", EventFollowUpEnded: "follow_up.ended",
		EventRuleFailed: "rule.failed", EventRuleRecord: "rule.record",
		EventSatisfactionAsked: "satisfaction.asked", EventSatisfactionRated: "satisfaction.rated",
	}
	checkStrings(t, EventKinds(), want, ParseEventKind)

	rule := map[EventKind]bool{}
	for _, k := range RuleEvents() {
		rule[k] = true
	}
	for _, k := range EventKinds() {
		if k.RuleEvent() != rule[k] {
			t.Errorf("%q.RuleEvent() = %v, RuleEvents lists it: %v", k, k.RuleEvent(), rule[k])
		}
	}
	if len(rule) != 7 || EventReopened.RuleEvent() || !EventTimerDue.RuleEvent() {
		t.Errorf("RuleEvents() = %v", RuleEvents())
	}
}

// checkStrings holds a vocabulary's list, its strings, its parser, Valid
// and its JSON form to the table want.
func checkStrings[T ~string](t *testing.T, all []T, want map[T]string, parse func(string) (T, error)) {
	t.Helper()
	if len(all) != len(want) {
		t.Errorf("the list has %d values, the table %d", len(all), len(want))
	}
	seen := map[T]bool{}
	for _, v := range all {
		if seen[v] {
			t.Errorf("%q listed twice", v)
		}
		seen[v] = true
		s, ok := want[v]
		if !ok {
			t.Errorf("%q is listed but not in the table", v)
			continue
		}
		if string(v) != s {
			t.Errorf("%q, want %q", v, s)
		}
		got, err := parse(s)
		if err != nil || got != v {
			t.Errorf("parse(%q) = %q, %v", s, got, err)
		}
		b, err := json.Marshal(v)
		if err != nil || string(b) != `"`+s+`"` {
			t.Errorf("JSON of %q = %s, %v", v, b, err)
		}
	}
	for v := range want {
		if !seen[v] {
			t.Errorf("%q is in the table but not listed", v)
		}
	}
	for _, s := range []string{"", "unknown", "Human", "NEW", " new", "own", "ticket.Created", "auto_reply"} {
		if got, err := parse(s); err == nil {
			t.Errorf("parse(%q) = %q, want an error", s, got)
		}
	}
}
