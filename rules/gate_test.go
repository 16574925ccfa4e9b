package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/vocab"
)

func TestGate(t *testing.T) {
	opts := Options{OwnAddresses: []string{"bounces@mail.acme.test"}}
	ack := Action{Kind: Send, Template: "acknowledgement", To: ToCustomer, Auto: true}
	ev := func(f func(*Event)) Event {
		e := Event{Type: vocab.EventTicketCreated, Now: t0, Ticket: baseTicket(), Message: customerMsg("help")}
		if f != nil {
			f(&e)
		}
		return e
	}
	to := func(addr string) func(*Event) { return func(e *Event) { e.Ticket.Customer.Address = addr } }
	class := func(c vocab.Class) func(*Event) { return func(e *Event) { e.Message.Class = c } }

	tests := []struct {
		name   string
		ev     Event
		a      Action
		ok     bool
		reason string // substring of the refusal
	}{
		{"human customer", ev(nil), ack, true, ""},
		{"not automatic", ev(class(vocab.ClassAutoReply)), Action{Kind: Send, To: ToCustomer}, true, ""},
		{"auto-reply", ev(class(vocab.ClassAutoReply)), ack, false, "automatic reply (RFC 3834)"},
		{"bounce", ev(class(vocab.ClassBounce)), ack, false, "delivery failure report"},
		{"list", ev(class(vocab.ClassList)), ack, false, "mailing list"},
		{"own mail", ev(class(vocab.ClassOwnMail)), ack, false, "loop"},
		{"spam", ev(class(vocab.ClassSpam)), ack, false, "spam"},
		{"report", ev(class(vocab.ClassReport)), ack, false, "report"},
		{"unknown class fails closed", ev(class("challenge-response")), ack, false, `class "challenge-response" is unknown`},
		{"empty class fails closed", ev(class("")), ack, false, `class "" is unknown`},
		{"the rules' old name for own mail is no class", ev(class("own")), ack, false, `class "own" is unknown`},
		{"no-auto-reply human", ev(func(e *Event) {
			e.Message.NoAutoReply, e.Message.ClassReasons = true, []string{"X-Auto-Response-Suppress asks for no automatic reply"}
		}), ack, false, "X-Auto-Response-Suppress"},
		{"no-auto-reply holds staff auto mail too", ev(func(e *Event) { e.Message.NoAutoReply = true }), Action{Kind: Notify, To: ToLeads, Auto: true}, false, "no automatic reply"},
		{"suspect subject: first acknowledgement goes", ev(func(e *Event) {
			e.Message.Suspect, e.Message.ClassReasons = true, []string{`auto-reply subject "automatic reply"`}
		}), ack, true, ""},
		{"suspect subject: nothing after it", ev(func(e *Event) {
			e.Type, e.Message.Suspect, e.Message.ClassReasons = vocab.EventMessageReceived, true, []string{`auto-reply subject "out of office"`}
		}), Action{Kind: Send, Template: "reopened", To: ToCustomer, Auto: true}, false, "out of office"},
		{"imported", ev(func(e *Event) { e.Message.Imported = true }), ack, false, "imported"},
		{"no message (timer) is fine", ev(func(e *Event) { e.Type = vocab.EventTimerDue; e.Message = nil }), ack, true, ""},
		{"empty address", ev(to("")), ack, false, "empty"},
		{"not an address", ev(to("jane")), ack, false, "not a mail address"},
		{"MAILER-DAEMON", ev(to("MAILER-DAEMON@mx.example.com")), ack, false, "robot"},
		{"postmaster", ev(to("postmaster@example.com")), ack, false, "robot"},
		{"noreply", ev(to("noreply@accounts.example.com")), ack, false, "robot"},
		{"no-reply with tag", ev(to("no-reply+abc@example.com")), ack, false, "robot"},
		{"do-not-reply", ev(to("Do-Not-Reply@example.com")), ack, false, "robot"},
		{"list request", ev(to("users-request@lists.example.org")), ack, false, "mailing list robot"},
		{"list owner", ev(to("owner-users@lists.example.org")), ack, false, "mailing list robot"},
		{"our inbox (Ticket Trick)", ev(to("Support@ACME.test")), ack, false, "own address"},
		{"our reply address", ev(to("reply+42.lena.abcdef@acme.test")), ack, false, "reply address"},
		{"reply+ elsewhere is a customer", ev(to("reply+x@example.com")), ack, true, ""},
		{"configured own address", ev(to("bounces@mail.acme.test")), ack, false, "own addresses"},
		{"suppressed after bounce", ev(func(e *Event) { e.Ticket.CustomerSuppressedUntil = t0.Add(time.Hour) }), ack, false, "bounced; automatic mail is paused until 2025-06-02 10:00 UTC"},
		{"suppression over", ev(func(e *Event) { e.Ticket.CustomerSuppressedUntil = t0 }), ack, true, ""},
		{"per-address flood", ev(func(e *Event) { e.Ticket.AutoMailsToCustomerLastHour = 3 }), ack, false, "this hour (flood protection)"},
		{"under per-address limit", ev(func(e *Event) { e.Ticket.AutoMailsToCustomerLastHour = 2 }), ack, true, ""},
		{"per-ticket flood", ev(func(e *Event) { e.Ticket.AutoMailsOnTicketToday = 10 }), ack, false, "today (flood protection)"},
		{"staff notify without address", ev(nil), Action{Kind: Notify, To: ToLeads, Auto: true}, true, ""},
		{"staff notify to a robot", ev(nil), Action{Kind: Notify, To: ToLeads, Auto: true, Address: "noreply@acme.test"}, false, "robot"},
		{"staff notify in answer to auto-reply", ev(class(vocab.ClassAutoReply)), Action{Kind: Notify, To: ToLeads, Auto: true}, false, "automatic reply"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, reason := Gate(tc.ev, tc.a, opts)
			if ok != tc.ok {
				t.Fatalf("Gate = %v (%q), want %v", ok, reason, tc.ok)
			}
			if tc.ok && reason != "" {
				t.Errorf("allowed with reason %q", reason)
			}
			if !tc.ok && !strings.Contains(reason, tc.reason) {
				t.Errorf("reason %q does not contain %q", reason, tc.reason)
			}
		})
	}
}

// GateAll counts what it allows: from one event, a ticket with two
// automatic mails left gets two of three.
func TestGateAllCountsWithinBatch(t *testing.T) {
	ev := Event{Type: vocab.EventTimerDue, Now: t0, Ticket: baseTicket()}
	ev.Ticket.AutoMailsToCustomerLastHour = 1
	send := Action{Kind: Send, To: ToCustomer, Auto: true}
	acts := []Action{send, {Kind: Notify, To: ToLeads}, send, send}
	got := GateAll(ev, acts, Options{})
	want := []bool{true, true, true, false}
	for i := range want {
		if got[i].Allowed != want[i] {
			t.Errorf("action %d allowed = %v (%q), want %v", i, got[i].Allowed, got[i].Reason, want[i])
		}
	}
	if ev.Ticket.AutoMailsToCustomerLastHour != 1 {
		t.Error("GateAll changed the caller's event")
	}
}

// TestGatePersonCausedNotices: the per-address and per-ticket caps bound
// mail that answers inbound mail (which may be automatic); a notice a
// person's action caused passes them, and to a bounce-suppressed address
// it is deferred to the end of the suppression, never dropped (issue 11).
func TestGatePersonCausedNotices(t *testing.T) {
	capped := Action{Kind: Send, Template: "acknowledgement", To: ToCustomer, Auto: true}
	person := Action{Kind: Send, Template: "closed", To: ToCustomer, Auto: true, Cause: CausePerson}
	flooded := Event{Type: vocab.EventStateChanged, Now: t0, Ticket: baseTicket()}
	flooded.Ticket.AutoMailsToCustomerLastHour, flooded.Ticket.AutoMailsOnTicketToday = 3, 10
	suppressed := Event{Type: vocab.EventStateChanged, Now: t0, Ticket: baseTicket()}
	suppressed.Ticket.CustomerSuppressedUntil = t0.Add(2 * time.Hour)
	robot := Event{Type: vocab.EventStateChanged, Now: t0, Ticket: baseTicket()}
	robot.Ticket.Customer.Address = "noreply@example.com"
	tests := []struct {
		name  string
		ev    Event
		a     Action
		ok    bool
		until time.Time
	}{
		{"acknowledgement over the hourly cap", flooded, capped, false, time.Time{}},
		{"person-caused notice over the hourly and daily caps", flooded, person, true, time.Time{}},
		{"acknowledgement to a suppressed address is dropped", suppressed, capped, false, time.Time{}},
		{"person-caused notice to a suppressed address is deferred", suppressed, person, false, t0.Add(2 * time.Hour)},
		{"person-caused notice to a robot is refused, not deferred", robot, person, false, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := GateAll(tc.ev, []Action{tc.a}, Options{})[0]
			if v.Allowed != tc.ok || !v.Until.Equal(tc.until) {
				t.Errorf("verdict = %+v, want allowed %v until %v", v, tc.ok, tc.until)
			}
		})
	}
}
