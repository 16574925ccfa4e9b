package rules

import (
	"strings"
	"testing"

	"github.com/tendhq/tend/vocab"
)

// TestPermit is the classify → rules mapping, over every class of the
// vocabulary: the table must name each one (a class added to vocab fails
// here until someone decides what automatic mail may do for it), only
// human mail is answered, and the classifier's flags narrow that.
func TestPermit(t *testing.T) {
	want := map[vocab.Class]struct {
		p      Permission
		reason string
	}{
		vocab.ClassHuman:     {Permitted, ""},
		vocab.ClassAutoReply: {Refused, "automatic reply (RFC 3834)"},
		vocab.ClassBounce:    {Refused, "delivery failure report"},
		vocab.ClassList:      {Refused, "mailing list"},
		vocab.ClassOwnMail:   {Refused, "our own mail coming back (loop)"},
		vocab.ClassSpam:      {Refused, "spam"},
		vocab.ClassReport:    {Refused, "read receipt, abuse or DMARC report"},
	}
	for _, c := range vocab.Classes() {
		w, ok := want[c]
		if !ok {
			t.Errorf("class %q: no row in the table", c)
			continue
		}
		t.Run(string(c), func(t *testing.T) {
			p, why := Permit(Classification{Class: c})
			if p != w.p || !strings.Contains(why, w.reason) || (p == Permitted) != (why == "") {
				t.Errorf("Permit(%q) = %v %q, want %v %q", c, p, why, w.p, w.reason)
			}
			// Suspect narrows human mail to its first acknowledgement and
			// NoAutoReply refuses it; neither widens a machine's class.
			ps, _ := Permit(Classification{Class: c, Suspect: true, Reasons: []string{"subject"}})
			pn, whyN := Permit(Classification{Class: c, NoAutoReply: true, Reasons: []string{"X-Auto-Response-Suppress: All"}})
			if c == vocab.ClassHuman {
				if ps != FirstAcknowledgement || pn != Refused || !strings.Contains(whyN, "X-Auto-Response-Suppress") {
					t.Errorf("human: suspect %v, no-auto-reply %v %q", ps, pn, whyN)
				}
			} else if ps != Refused || pn != Refused {
				t.Errorf("%q: suspect %v, no-auto-reply %v", c, ps, pn)
			}
		})
	}
	if len(want) != len(vocab.Classes()) {
		t.Errorf("the table has %d rows, the vocabulary %d classes", len(want), len(vocab.Classes()))
	}
}

// TestPermitUnknownClass: whatever is not a class of the vocabulary (the
// zero value of a classification never filled in, the rules' old name for
// own mail, a damaged row, a class a newer classifier wrote) is refused,
// with the class named, even with every flag clear.
func TestPermitUnknownClass(t *testing.T) {
	for _, c := range []vocab.Class{"", "unknown", "own", "Human", " human", "auto_reply", "challenge-response"} {
		p, why := Permit(Classification{Class: c})
		if p != Refused || !strings.Contains(why, "unknown") || !strings.Contains(why, `"`+string(c)+`"`) {
			t.Errorf("Permit(%q) = %v %q, want refused as unknown", c, p, why)
		}
		// And through the gate: no automatic mail goes, on any event.
		for _, typ := range vocab.RuleEvents() {
			ev := Event{Type: typ, Now: t0, Ticket: baseTicket(), Message: &Message{Role: RoleCustomer, Class: c}}
			if ok, why := Gate(ev, Action{Kind: Send, Template: "acknowledgement", To: ToCustomer, Auto: true}, Options{}); ok {
				t.Errorf("class %q on %s: the gate let automatic mail through (%q)", c, typ, why)
			}
		}
	}
}

// TestMessageClassification: the gate sees every part of a message's
// classification.
func TestMessageClassification(t *testing.T) {
	m := Message{Class: vocab.ClassList, NoAutoReply: true, Suspect: true, ClassReasons: []string{"List-Id present"}}
	got := m.Classification()
	if got.Class != m.Class || !got.NoAutoReply || !got.Suspect || len(got.Reasons) != 1 || got.Reasons[0] != "List-Id present" {
		t.Errorf("Classification() = %+v from %+v", got, m)
	}
}
