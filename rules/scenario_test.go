package rules

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/internal/testenv"
	"github.com/tendhq/tend/vocab"
)

// sim is a minimal executor over the engine: it keeps one ticket, its
// timers and the mails that went out, moves a fake clock and feeds timer.due
// back, as the real executor does over storage.
type sim struct {
	t      *testing.T
	e      *Engine
	clock  *testenv.FakeClock
	tk     Ticket
	timers map[string]time.Time
	log    []string // mails and gate refusals, in order
	auto   []time.Time
}

func newSim(t *testing.T) *sim {
	return &sim{t: t, e: defaultEngine(t), clock: testenv.NewFakeClock(t0), tk: baseTicket(), timers: map[string]time.Time{}}
}

func (s *sim) fire(ev Event) {
	s.t.Helper()
	now := s.clock.Now()
	ev.Now = now
	s.tk.AutoMailsToCustomerLastHour = 0
	for _, at := range s.auto {
		if now.Sub(at) < time.Hour {
			s.tk.AutoMailsToCustomerLastHour++
		}
	}
	ev.Ticket = s.tk
	acts, errs := s.e.Evaluate(ev)
	if len(errs) > 0 {
		s.t.Fatalf("rule errors: %v", errs)
	}
	verdicts := GateAll(ev, acts, s.e.Options())
	for i, a := range acts {
		switch a.Kind {
		case Send:
			if !verdicts[i].Allowed {
				s.log = append(s.log, "refused "+a.Template)
				continue
			}
			s.auto = append(s.auto, now)
			s.log = append(s.log, "customer <- "+a.Template)
		case Notify:
			s.log = append(s.log, a.To+" <- "+a.Template)
		case SetState:
			s.tk.PrevState, s.tk.State = s.tk.State, a.State
			if a.State == vocab.StateResolved || a.State == vocab.StateClosed {
				s.tk.ResolvedAt = now
			}
		case SetPriority:
			s.tk.Priority = a.Priority
		case Record:
			switch a.Note {
			case RecordRepeatContact:
				s.tk.RepeatContacts++
			case RecordBreach:
				s.tk.Breached = true
			}
		case Schedule:
			s.timers[a.Timer] = now.Add(a.After)
		case Cancel:
			delete(s.timers, a.Timer)
		}
	}
	if m := ev.Message; m != nil && m.Class == vocab.ClassHuman {
		switch m.Role {
		case RoleCustomer:
			s.tk.LastCustomerAt = now
		case RoleAgent:
			if !m.Note {
				s.tk.LastAgentAt = now
				if s.tk.FirstResponseAt.IsZero() {
					s.tk.FirstResponseAt = now
				}
			}
		}
	}
}

// advance moves the clock by d, firing due timers in order on the way.
func (s *sim) advance(d time.Duration) {
	end := s.clock.Now().Add(d)
	for {
		var names []string
		for n, at := range s.timers {
			if !at.After(end) {
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			break
		}
		sort.Slice(names, func(i, j int) bool { return s.timers[names[i]].Before(s.timers[names[j]]) })
		n := names[0]
		s.clock.Set(s.timers[n])
		delete(s.timers, n)
		s.fire(Event{Type: vocab.EventTimerDue, Timer: &Timer{Name: n}})
	}
	s.clock.Set(end)
}

func (s *sim) expect(want ...string) {
	s.t.Helper()
	if strings.Join(s.log, "\n") != strings.Join(want, "\n") {
		s.t.Errorf("mails:\n got  %q\n want %q", s.log, want)
	}
	s.log = nil
}

func TestScenarioConfirmedResolution(t *testing.T) {
	s := newSim(t)
	s.fire(Event{Type: vocab.EventTicketCreated, Message: customerMsg("I cannot log in")})
	s.expect("customer <- acknowledgement", "assignee_or_agents <- notify_customer_message")

	s.advance(time.Hour)
	s.fire(Event{Type: vocab.EventMessageReceived, Message: customerMsg("Any news??")})
	s.expect("assignee_or_agents <- notify_customer_message") // no second acknowledgement
	if s.tk.RepeatContacts != 1 || s.tk.Priority != PriorityHigh {
		t.Errorf("after repeat: contacts %d priority %s", s.tk.RepeatContacts, s.tk.Priority)
	}

	s.advance(4 * time.Hour) // promise was 4 hours
	s.expect("assignee_or_agents <- notify_breach", "leads <- notify_breach")
	if !s.tk.Breached {
		t.Error("not breached")
	}

	s.fire(Event{Type: vocab.EventMessageReceived, Message: &Message{Role: RoleAgent, Class: vocab.ClassHuman, Text: "Reset link sent"}})
	s.expect()
	s.advance(time.Hour)
	s.fire(Event{Type: vocab.EventMessageReceived, Message: customerMsg("Got it, trying")})
	s.expect("assignee_or_agents <- notify_customer_message")
	s.fire(Event{Type: vocab.EventResolveRequested})
	s.expect("customer <- confirm_request")
	if s.tk.State != vocab.StateProposed {
		t.Fatalf("state %s, want proposed", s.tk.State)
	}

	s.advance(48 * time.Hour)
	s.expect("customer <- nudge")
	s.advance(time.Hour)
	s.fire(Event{Type: vocab.EventMessageReceived, Message: customerMsg("Hi,\n\nyes it works now\n\n> Is it solved?")})
	s.expect("customer <- thank_you", "assignee_or_agents <- notify_customer_message")
	if s.tk.State != vocab.StateResolved || len(s.timers) != 0 {
		t.Errorf("state %s timers %v, want resolved and none", s.tk.State, s.timers)
	}
	s.advance(30 * 24 * time.Hour)
	s.expect() // nothing fires after resolution
}

func TestScenarioNoAnswerBecomesUnconfirmed(t *testing.T) {
	s := newSim(t)
	s.fire(Event{Type: vocab.EventTicketCreated, Message: customerMsg("Printer on fire")})
	s.fire(Event{Type: vocab.EventMessageReceived, Message: &Message{Role: RoleAgent, Class: vocab.ClassHuman, Text: "Use the extinguisher"}})
	s.expect("customer <- acknowledgement", "assignee_or_agents <- notify_customer_message")
	s.advance(5 * time.Hour)
	s.expect() // answered in time: the clock was cancelled
	s.fire(Event{Type: vocab.EventResolveRequested})
	s.advance(2 * 24 * time.Hour)
	s.advance(3 * 24 * time.Hour)
	s.expect("customer <- confirm_request", "customer <- nudge", "customer <- unconfirmed", "leads <- notify_unconfirmed")
	if s.tk.State != vocab.StateUnconfirmed {
		t.Fatalf("state %s, want unconfirmed", s.tk.State)
	}
	s.advance(24 * time.Hour)
	s.fire(Event{Type: vocab.EventMessageReceived, Message: customerMsg("Sorry, was away. It is still smoking.")})
	s.expect("assignee_or_agents <- notify_customer_message")
	if s.tk.State != vocab.StateOpen {
		t.Errorf("state %s, want open (a reply reopens it)", s.tk.State)
	}
}

// A customer whose mailbox auto-replies to everything: tend's
// acknowledgement gets a vacation notice back (ingest classifies it as
// auto-reply, from RFC 3834 headers or the other signals; that is the mail
// package's test). After an hour of simulated time at most one automatic
// mail went each way, and the notices changed nothing.
func TestScenarioAutoResponderLoop(t *testing.T) {
	s := newSim(t)
	s.fire(Event{Type: vocab.EventTicketCreated, Message: customerMsg("Where is my order?")})
	sentByUs, sentByResponder := 0, 0
	for i := 0; i < 60; i++ {
		for _, l := range s.log {
			if !strings.HasPrefix(l, "customer <- ") {
				continue
			}
			sentByUs++
			// The responder answers every mail it gets (real ones answer a
			// sender once per few days; this one is worse).
			s.advance(time.Minute)
			sentByResponder++
			s.fire(Event{Type: vocab.EventMessageReceived, Message: &Message{
				From: Person{Address: "jane@example.com"}, Role: RoleCustomer, Class: vocab.ClassAutoReply,
				Text: "I am out of the office until Monday."}})
		}
		s.log = nil
		s.advance(time.Minute)
	}
	if sentByUs != 1 || sentByResponder != 1 {
		t.Errorf("in an hour tend sent %d and the responder %d automatic mails, want 1 each", sentByUs, sentByResponder)
	}
	if s.tk.State != vocab.StateNew || s.tk.RepeatContacts != 0 {
		t.Errorf("auto-replies changed the ticket: state %s repeats %d", s.tk.State, s.tk.RepeatContacts)
	}
}

func TestScenarioFloodOfNewTickets(t *testing.T) {
	// One address opening many tickets in an hour gets at most
	// MaxAutoPerAddressPerHour acknowledgements; the rest are refused with
	// a reason the agent sees.
	s := newSim(t)
	for i := 0; i < 5; i++ {
		s.tk = baseTicket()
		s.tk.Number = int64(100 + i)
		s.fire(Event{Type: vocab.EventTicketCreated, Message: customerMsg("spam-ish")})
		s.advance(time.Minute)
	}
	got := strings.Count(strings.Join(s.log, "\n"), "customer <- acknowledgement")
	refused := strings.Count(strings.Join(s.log, "\n"), "refused acknowledgement")
	if got != 3 || refused != 2 {
		t.Errorf("acknowledged %d, refused %d; want 3 and 2: %q", got, refused, s.log)
	}
}
