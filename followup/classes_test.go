package followup

import (
	"testing"

	"github.com/tendhq/tend/mail/classify"
	"github.com/tendhq/tend/rules"
)

// TestRuleClass checks the classify → rules mapping: every kind the
// classifier has maps, through its stored name, onto a distinct class the
// gate knows, only Human onto the one it answers, and anything else
// (an old or misspelt name, a kind added later) onto ClassUnknown, which
// the gate refuses.
func TestRuleClass(t *testing.T) {
	want := map[classify.Kind]string{
		classify.Human: rules.ClassHuman, classify.AutoReply: rules.ClassAutoReply, classify.Bounce: rules.ClassBounce,
		classify.List: rules.ClassList, classify.OwnMail: rules.ClassOwn, classify.Spam: rules.ClassSpam,
		classify.Report: rules.ClassReport,
	}
	seen := map[string]classify.Kind{}
	for k := classify.Kind(0); k.String() != "unknown"; k++ {
		got := ruleClass(k.String())
		if got != want[k] {
			t.Errorf("ruleClass(%q) = %q, want %q", k, got, want[k])
		}
		if other, dup := seen[got]; dup {
			t.Errorf("kinds %v and %v both map to %q", other, k, got)
		}
		seen[got] = k
	}
	if len(seen) != len(want) {
		t.Errorf("mapped %d kinds, the table has %d", len(seen), len(want))
	}
	for _, s := range []string{"", "own", "Human", "auto_reply", "unknown", "vacation"} {
		if got := ruleClass(s); got != rules.ClassUnknown {
			t.Errorf("ruleClass(%q) = %q, want %q", s, got, rules.ClassUnknown)
		}
	}
	if got := kindClass(classify.Kind(99)); got != rules.ClassUnknown {
		t.Errorf("kindClass(99) = %q, want %q", got, rules.ClassUnknown)
	}
	// The gate answers only what maps to human.
	ack := rules.Action{Kind: rules.Send, To: rules.ToCustomer, Auto: true}
	for k := classify.Kind(0); k <= classify.Report+1; k++ {
		ev := rules.Event{Type: rules.EventTicketCreated, Ticket: rules.Ticket{Customer: rules.Person{Address: "ann@example.com"}, Inbox: rules.Inbox{Address: "support@acme.test"}},
			Message: &rules.Message{Class: kindClass(k)}}
		ok, why := rules.Gate(ev, ack, rules.Options{})
		if ok != (k == classify.Human) {
			t.Errorf("kind %v: Gate = %v (%s)", k, ok, why)
		}
	}
}
