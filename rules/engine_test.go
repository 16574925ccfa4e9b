package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/internal/testenv"
	"github.com/tendhq/tend/vocab"
)

var t0 = time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)

// baseTicket is a fresh customer ticket on an inbox promising 4 hours.
func baseTicket() Ticket {
	return Ticket{
		Number: 42, Subject: "Cannot log in", State: vocab.StateNew, Priority: PriorityNormal,
		Customer:  Person{Address: "jane@example.com", Name: "Jane"},
		Inbox:     Inbox{Address: "support@acme.test", Name: "ACME Support", ResponseTime: 4 * time.Hour},
		CreatedAt: t0, LastCustomerAt: t0,
	}
}

func customerMsg(text string) *Message {
	return &Message{From: Person{Address: "jane@example.com"}, Role: RoleCustomer, Class: vocab.ClassHuman, Text: text}
}

// brief renders actions as "kind key=value" strings without the rule name,
// so expectations read like the policy.
func brief(acts []Action) []string {
	out := make([]string, len(acts))
	for i, a := range acts {
		s := a.String()
		out[i] = s[:strings.LastIndex(s, " (")]
	}
	return out
}

func defaultEngine(t testing.TB) *Engine {
	t.Helper()
	e, err := Default(Options{})
	if err != nil {
		t.Fatalf("Default: %v", err)
	}
	return e
}

func TestDefaultRules(t *testing.T) {
	e := defaultEngine(t)
	clock := testenv.NewFakeClock(t0)
	with := func(f func(*Ticket)) Ticket { tk := baseTicket(); f(&tk); return tk }
	later := t0.Add(2 * time.Hour)

	tests := []struct {
		name string
		ev   Event
		want []string
	}{
		{"new customer ticket is acknowledged at once", Event{Type: vocab.EventTicketCreated, Ticket: baseTicket(), Message: customerMsg("Help")}, []string{
			"send template=acknowledgement to=customer auto",
			"notify template=notify_customer_message to=assignee_or_agents",
			"schedule timer=first_response after=4h0m0s",
		}},
		{"no promise, no clock", Event{Type: vocab.EventTicketCreated, Ticket: with(func(t *Ticket) { t.Inbox.ResponseTime = 0 }), Message: customerMsg("Help")}, []string{
			"send template=acknowledgement to=customer auto",
			"notify template=notify_customer_message to=assignee_or_agents",
		}},
		{"imported backfill is never acknowledged", Event{Type: vocab.EventTicketCreated, Ticket: baseTicket(),
			Message: &Message{Role: RoleCustomer, Class: vocab.ClassHuman, Imported: true}}, nil},
		{"auto-reply opening a ticket is only recorded", Event{Type: vocab.EventTicketCreated, Ticket: baseTicket(),
			Message: &Message{Role: RoleCustomer, Class: vocab.ClassAutoReply}}, []string{"record note=automatic mail stored; no state change, no answer"}},
		{"bounce on a ticket changes nothing", Event{Type: vocab.EventMessageReceived, Ticket: with(func(t *Ticket) { t.State = vocab.StateProposed }),
			Message: &Message{Role: RoleCustomer, Class: vocab.ClassBounce, Text: "yes"}}, []string{"record note=automatic mail stored; no state change, no answer"}},
		{"vacation reply while waiting changes nothing", Event{Type: vocab.EventMessageReceived, Ticket: with(func(t *Ticket) { t.State = vocab.StateWaiting }),
			Message: &Message{Role: RoleCustomer, Class: vocab.ClassAutoReply, Text: "I am out of office"}}, []string{"record note=automatic mail stored; no state change, no answer"}},
		{"second mail while waiting for us is a repeat contact", Event{Type: vocab.EventMessageReceived, Ticket: baseTicket(), Message: customerMsg("Any news?")}, []string{
			"record note=repeat_contact", "set_priority priority=high",
			"notify template=notify_customer_message to=assignee_or_agents",
		}},
		{"second repeat reaches a lead", Event{Type: vocab.EventMessageReceived, Ticket: with(func(t *Ticket) { t.RepeatContacts = 1; t.Priority = PriorityHigh }),
			Message: customerMsg("Hello??")}, []string{
			"record note=repeat_contact", "set_priority priority=urgent",
			"notify template=notify_customer_message to=assignee_or_agents",
			"notify template=notify_repeat to=leads",
		}},
		{"priority stops at urgent", Event{Type: vocab.EventMessageReceived, Ticket: with(func(t *Ticket) { t.RepeatContacts = 5; t.Priority = PriorityUrgent; t.State = vocab.StateOpen }),
			Message: customerMsg("!!!")}, []string{
			"record note=repeat_contact", "set_priority priority=urgent",
			"notify template=notify_customer_message to=assignee_or_agents",
			"notify template=notify_repeat to=leads",
		}},
		{"open ticket the agent already answered since is not a repeat", Event{Type: vocab.EventMessageReceived,
			Ticket:  with(func(t *Ticket) { t.State = vocab.StateOpen; t.LastAgentAt = later }),
			Message: customerMsg("more info")}, nil},
		{"customer answers our answer", Event{Type: vocab.EventMessageReceived, Ticket: with(func(t *Ticket) { t.State = vocab.StateWaiting; t.LastAgentAt = later }),
			Message: customerMsg("Here is the log")}, []string{
			"set_state state=open", "notify template=notify_customer_message to=assignee_or_agents",
		}},
		{"agent answer stops the clock and waits", Event{Type: vocab.EventMessageReceived, Ticket: baseTicket(),
			Message: &Message{Role: RoleAgent, Class: vocab.ClassHuman, Text: "Try again"}}, []string{
			"cancel timer=first_response", "set_state state=waiting",
		}},
		{"internal note is no answer", Event{Type: vocab.EventMessageReceived, Ticket: baseTicket(),
			Message: &Message{Role: RoleAgent, Class: vocab.ClassHuman, Note: true}}, nil},
		{"first response breached", Event{Type: vocab.EventTimerDue, Ticket: baseTicket(), Timer: &Timer{Name: "first_response"}}, []string{
			"record note=breach",
			"notify template=notify_breach to=assignee_or_agents",
			"notify template=notify_breach to=leads",
		}},
		{"stale first response timer does nothing", Event{Type: vocab.EventTimerDue, Ticket: with(func(t *Ticket) { t.FirstResponseAt = later; t.State = vocab.StateWaiting }),
			Timer: &Timer{Name: "first_response"}}, nil},
		{"resolve requested proposes and asks", Event{Type: vocab.EventResolveRequested, Ticket: with(func(t *Ticket) { t.State = vocab.StateWaiting })}, []string{
			"set_state state=proposed", "send template=confirm_request to=customer auto cause=person",
			"cancel timer=first_response", "cancel timer=nudge_2", "schedule timer=nudge_1 after=48h0m0s",
		}},
		{"resolve requested twice does nothing", Event{Type: vocab.EventResolveRequested, Ticket: with(func(t *Ticket) { t.State = vocab.StateProposed })}, nil},
		{"clear yes resolves", Event{Type: vocab.EventMessageReceived, Ticket: with(func(t *Ticket) { t.State = vocab.StateProposed }),
			Message: customerMsg("Hi Lena,\n\nYes, it works now!\n\nOn Mon, Jun 2, 2025 Lena wrote:\n> is it solved?")}, []string{
			"set_state state=resolved", "send template=thank_you to=customer auto cause=person",
			"cancel timer=nudge_1", "cancel timer=nudge_2",
			"notify template=notify_customer_message to=assignee_or_agents",
		}},
		{"no reopens", Event{Type: vocab.EventMessageReceived, Ticket: with(func(t *Ticket) { t.State = vocab.StateProposed }), Message: customerMsg("No, still broken")}, []string{
			"set_state state=open", "cancel timer=nudge_1", "cancel timer=nudge_2",
			"notify template=notify_customer_message to=assignee_or_agents",
		}},
		{"unclear reopens, never a guess", Event{Type: vocab.EventMessageReceived, Ticket: with(func(t *Ticket) { t.State = vocab.StateProposed }),
			Message: customerMsg("yes but it still crashes on startup")}, []string{
			"set_state state=open", "cancel timer=nudge_1", "cancel timer=nudge_2",
			"notify template=notify_customer_message to=assignee_or_agents",
		}},
		{"answer already set by the caller is respected", Event{Type: vocab.EventMessageReceived, Ticket: with(func(t *Ticket) { t.State = vocab.StateProposed }),
			Message: &Message{Role: RoleCustomer, Class: vocab.ClassHuman, Text: "yes", Answer: AnswerNo}}, []string{
			"set_state state=open", "cancel timer=nudge_1", "cancel timer=nudge_2",
			"notify template=notify_customer_message to=assignee_or_agents",
		}},
		{"yes after unconfirmed resolves", Event{Type: vocab.EventMessageReceived, Ticket: with(func(t *Ticket) { t.State = vocab.StateUnconfirmed }), Message: customerMsg("Ja, gelöst")}, []string{
			"set_state state=resolved", "send template=thank_you to=customer auto cause=person",
			"cancel timer=nudge_1", "cancel timer=nudge_2",
			"notify template=notify_customer_message to=assignee_or_agents",
		}},
		{"solved link", Event{Type: vocab.EventConfirmationClicked, Answer: AnswerYes, Ticket: with(func(t *Ticket) { t.State = vocab.StateProposed })}, []string{
			"set_state state=resolved", "send template=thank_you to=customer auto cause=person",
			"cancel timer=nudge_1", "cancel timer=nudge_2", "record note=customer confirmed the resolution by link",
		}},
		{"not solved link", Event{Type: vocab.EventConfirmationClicked, Answer: AnswerNo, Ticket: with(func(t *Ticket) { t.State = vocab.StateProposed })}, []string{
			"set_state state=open", "cancel timer=nudge_1", "cancel timer=nudge_2",
			"notify template=notify_customer_message to=assignee_or_agents",
		}},
		{"second click changes nothing", Event{Type: vocab.EventConfirmationClicked, Answer: AnswerYes, Ticket: with(func(t *Ticket) { t.State = vocab.StateResolved })}, nil},
		{"first nudge", Event{Type: vocab.EventTimerDue, Timer: &Timer{Name: "nudge_1"}, Ticket: with(func(t *Ticket) { t.State = vocab.StateProposed })}, []string{
			"send template=nudge to=customer auto cause=person", "schedule timer=nudge_2 after=72h0m0s",
		}},
		{"last nudge: unconfirmed, lead and customer told", Event{Type: vocab.EventTimerDue, Timer: &Timer{Name: "nudge_2"}, Ticket: with(func(t *Ticket) { t.State = vocab.StateProposed })}, []string{
			"set_state state=unconfirmed", "send template=unconfirmed to=customer auto cause=person", "notify template=notify_unconfirmed to=leads",
		}},
		{"nudge after the customer answered does nothing", Event{Type: vocab.EventTimerDue, Timer: &Timer{Name: "nudge_1"}, Ticket: with(func(t *Ticket) { t.State = vocab.StateOpen })}, nil},
		{"reply to resolved within the window reopens", Event{Type: vocab.EventMessageReceived,
			Ticket:  with(func(t *Ticket) { t.State = vocab.StateResolved; t.ResolvedAt = t0.Add(-13 * 24 * time.Hour) }),
			Message: customerMsg("It broke again")}, []string{
			"set_state state=open note=reopened by the customer's reply", "send template=reopened to=customer auto cause=person",
			"notify template=notify_customer_message to=assignee_or_agents",
		}},
		{"yes after resolution does not reopen", Event{Type: vocab.EventMessageReceived,
			Ticket:  with(func(t *Ticket) { t.State = vocab.StateResolved; t.ResolvedAt = t0.Add(-time.Hour) }),
			Message: customerMsg("Yes, it works now")}, []string{
			"record note=customer wrote again to confirm; ticket stays resolved",
			"notify template=notify_customer_message to=assignee_or_agents",
		}},
		{"thanks after resolution does not reopen, pages nobody", Event{Type: vocab.EventMessageReceived,
			Ticket:  with(func(t *Ticket) { t.State = vocab.StateResolved; t.ResolvedAt = t0.Add(-time.Hour) }),
			Message: customerMsg("Thanks, that worked!")}, []string{
			"record note=the customer only said thank you; the ticket keeps its state",
		}},
		{"thanks to a resolved ticket keeps it resolved", Event{Type: vocab.EventMessageReceived,
			Ticket:  with(func(t *Ticket) { t.State = vocab.StateResolved; t.ResolvedAt = t0.Add(-time.Hour) }),
			Message: customerMsg("Thanks again, great service!")}, []string{
			"record note=the customer only said thank you; the ticket keeps its state",
		}},
		{"thanks to a proposed ticket keeps it proposed", Event{Type: vocab.EventMessageReceived,
			Ticket:  with(func(t *Ticket) { t.State = vocab.StateProposed }),
			Message: customerMsg("Vielen Dank für die schnelle Hilfe!")}, []string{
			"record note=the customer only said thank you; the ticket keeps its state",
		}},
		{"thanks long after a close opens nothing", Event{Type: vocab.EventMessageReceived,
			Ticket:  with(func(t *Ticket) { t.State = vocab.StateClosed; t.ResolvedAt = t0.Add(-40 * 24 * time.Hour) }),
			Message: customerMsg("Merci encore !")}, []string{
			"record note=the customer only said thank you; the ticket keeps its state",
		}},
		{"thanks with a question reopens a proposed ticket", Event{Type: vocab.EventMessageReceived,
			Ticket:  with(func(t *Ticket) { t.State = vocab.StateProposed }),
			Message: customerMsg("Thanks! Can you also send me the invoice?")}, []string{
			"set_state state=open", "cancel timer=nudge_1", "cancel timer=nudge_2",
			"notify template=notify_customer_message to=assignee_or_agents",
		}},
		{"thanks with a problem reopens a resolved ticket", Event{Type: vocab.EventMessageReceived,
			Ticket:  with(func(t *Ticket) { t.State = vocab.StateResolved; t.ResolvedAt = t0.Add(-time.Hour) }),
			Message: customerMsg("Thanks, but the export still fails.")}, []string{
			"set_state state=open note=reopened by the customer's reply", "send template=reopened to=customer auto cause=person",
			"notify template=notify_customer_message to=assignee_or_agents",
		}},
		{"late reply opens a linked ticket", Event{Type: vocab.EventMessageReceived,
			Ticket:  with(func(t *Ticket) { t.State = vocab.StateClosed; t.ResolvedAt = t0.Add(-15 * 24 * time.Hour) }),
			Message: customerMsg("New problem")}, []string{"open_linked note=reply after the reopen window; continued in a new ticket"}},
		{"reply to spam does nothing", Event{Type: vocab.EventMessageReceived,
			Ticket: with(func(t *Ticket) {
				t.State = vocab.StateClosed
				t.CloseReason = "spam"
				t.ResolvedAt = t0.Add(-time.Hour)
			}),
			Message: customerMsg("buy now")}, nil},
		{"lead closes: customer told with reason", Event{Type: vocab.EventStateChanged, NewState: vocab.StateClosed, Reason: "duplicate of #40",
			Ticket: with(func(t *Ticket) { t.State = vocab.StateClosed; t.PrevState = vocab.StateOpen })}, []string{
			"cancel timer=first_response", "cancel timer=nudge_1", "cancel timer=nudge_2",
			"send template=closed to=customer auto cause=person",
		}},
		{"closed as spam: silence", Event{Type: vocab.EventStateChanged, NewState: vocab.StateClosed, Reason: "spam",
			Ticket: with(func(t *Ticket) { t.State = vocab.StateClosed; t.PrevState = vocab.StateNew })}, []string{
			"cancel timer=first_response", "cancel timer=nudge_1", "cancel timer=nudge_2",
		}},
		{"lead reopens: customer told", Event{Type: vocab.EventStateChanged, NewState: vocab.StateOpen,
			Ticket: with(func(t *Ticket) { t.State = vocab.StateOpen; t.PrevState = vocab.StateResolved })}, []string{"send template=reopened to=customer auto cause=person"}},
		{"lead marks unconfirmed: customer told", Event{Type: vocab.EventStateChanged, NewState: vocab.StateUnconfirmed,
			Ticket: with(func(t *Ticket) { t.State = vocab.StateUnconfirmed; t.PrevState = vocab.StateProposed })}, []string{
			"send template=unconfirmed to=customer auto cause=person", "cancel timer=nudge_1", "cancel timer=nudge_2",
		}},
		{"soft failure to the customer", Event{Type: vocab.EventOutboxFailed, Ticket: baseTicket(),
			Outbox: &Outbox{To: "Jane@Example.com", Reason: "451 try later, gave up"}}, []string{
			"record note=delivery to the customer failed", "notify template=notify_failure to=assignee_or_agents",
		}},
		{"hard bounce suppresses the address", Event{Type: vocab.EventOutboxFailed, Ticket: baseTicket(),
			Outbox: &Outbox{To: "jane@example.com", Reason: "550 5.1.1 no such user", Permanent: true}}, []string{
			"record note=delivery to the customer failed", "notify template=notify_failure to=assignee_or_agents",
			"suppress address=jane@example.com after=720h0m0s",
		}},
		{"failed staff notification is only recorded", Event{Type: vocab.EventOutboxFailed, Ticket: baseTicket(),
			Outbox: &Outbox{To: "lena@acme.test", Reason: "mailbox full"}}, []string{"record note=delivery of a staff notification failed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.ev.Now = clock.Now()
			acts, errs := e.Evaluate(tc.ev)
			if len(errs) > 0 {
				t.Fatalf("rule errors: %v", errs)
			}
			got := brief(acts)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("actions:\n got  %q\n want %q", got, tc.want)
			}
			for _, a := range acts {
				if a.Rule == "" {
					t.Errorf("%v: no rule name", a)
				}
			}
		})
	}
}

// The caller's message must not be changed by Evaluate (it fills Answer on
// its own copy).
func TestEvaluateDoesNotMutateEvent(t *testing.T) {
	e := defaultEngine(t)
	m := customerMsg("yes")
	tk := baseTicket()
	tk.State = vocab.StateProposed
	if _, errs := e.Evaluate(Event{Type: vocab.EventMessageReceived, Now: t0, Ticket: tk, Message: m}); len(errs) > 0 {
		t.Fatal(errs)
	}
	if m.Answer != "" {
		t.Errorf("caller's message answer = %q, want untouched", m.Answer)
	}
}

func TestEvaluateUnknownEvent(t *testing.T) {
	acts, errs := defaultEngine(t).Evaluate(Event{Type: "no.such.event", Now: t0})
	if acts != nil || errs != nil {
		t.Errorf("got %v %v, want nothing", acts, errs)
	}
}

func TestDefaultOptionsHonoured(t *testing.T) {
	e, err := Default(Options{Nudges: []time.Duration{time.Hour, 3 * time.Hour}, RepeatContactsToLead: 1, ReopenWindow: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ev   Event
		want string
	}{
		{"nudge delay", Event{Type: vocab.EventResolveRequested, Ticket: baseTicket()}, "schedule timer=nudge_1 after=1h0m0s"},
		{"second nudge delay", Event{Type: vocab.EventTimerDue, Timer: &Timer{Name: "nudge_1"}, Ticket: func() Ticket { tk := baseTicket(); tk.State = vocab.StateProposed; return tk }()},
			"schedule timer=nudge_2 after=2h0m0s"},
		{"lead after first repeat", Event{Type: vocab.EventMessageReceived, Ticket: baseTicket(), Message: customerMsg("?")}, "notify template=notify_repeat to=leads"},
		{"short reopen window", Event{Type: vocab.EventMessageReceived, Ticket: func() Ticket {
			tk := baseTicket()
			tk.State = vocab.StateResolved
			tk.ResolvedAt = t0.Add(-2 * time.Hour)
			return tk
		}(), Message: customerMsg("again")}, "open_linked note=reply after the reopen window; continued in a new ticket"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.ev.Now = t0
			acts, errs := e.Evaluate(tc.ev)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			if !strings.Contains(strings.Join(brief(acts), "\n"), tc.want) {
				t.Errorf("actions %q lack %q", brief(acts), tc.want)
			}
		})
	}
	if _, err := Default(Options{Nudges: []time.Duration{time.Hour}}); err == nil {
		t.Error("Default with one nudge: want an error")
	}
	if _, err := Default(Options{Nudges: []time.Duration{3 * time.Hour, time.Hour}}); err == nil {
		t.Error("Default with decreasing nudges: want an error")
	}
}

// follow_through.acknowledge: false must stop acknowledgements, and only
// them: the agents still hear of the new ticket and the clock still runs.
func TestNoAcknowledgement(t *testing.T) {
	for _, off := range []bool{false, true} {
		e, err := Default(Options{NoAcknowledgement: off})
		if err != nil {
			t.Fatal(err)
		}
		acts, errs := e.Evaluate(Event{Type: vocab.EventTicketCreated, Now: t0, Ticket: baseTicket(), Message: customerMsg("Help")})
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		got := strings.Join(brief(acts), "\n")
		if acked := strings.Contains(got, "template=acknowledgement"); acked == off {
			t.Errorf("NoAcknowledgement=%v: actions %q", off, got)
		}
		if !strings.Contains(got, "notify template=notify_customer_message") || !strings.Contains(got, "schedule timer=first_response") {
			t.Errorf("NoAcknowledgement=%v: agents not told or no clock: %q", off, got)
		}
	}
}
