package followup_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
)

// resolvedTicket brings ticket #1 to resolved the way it happens: the
// customer writes, a lead proposes resolution, the customer says yes. It
// returns the last mail the customer got (the thank-you).
func resolvedTicket(t *testing.T, w *world) captured {
	t.Helper()
	w.mustSend(customer, []string{inbox}, customerMail("g1@example.com", "Export stuck", "The CSV export never finishes."))
	w.capture.take()
	if err := w.exec.Resolve(context.Background(), 1, lena); err != nil {
		t.Fatal(err)
	}
	w.settle()
	got := w.expect("resolve", map[string]int{customer: 1})
	w.clock.Advance(time.Hour)
	w.mustSend(customer, []string{inbox}, replyToUs(t, to(got, customer)[0], "g2@example.com", "Yes, it works now."))
	got = w.expect("confirmed", map[string]int{customer: 1})
	w.state("confirmed", storage.StateResolved)
	return to(got, customer)[0]
}

// TestGratitudeIsNotAReopen: "Thanks again, great service!" to a resolved
// or a proposed ticket keeps its state and mails nobody; the same thanks
// with a problem in it reopens and tells the agents.
func TestGratitudeIsNotAReopen(t *testing.T) {
	t.Run("resolved", func(t *testing.T) {
		w := newWorld(t)
		last := resolvedTicket(t, w)
		w.clock.Advance(time.Hour)
		w.mustSend(customer, []string{inbox}, replyToUs(t, last, "g3@example.com", "Thanks again, great service!"))
		w.expect("thanks", map[string]int{customer: 0, alice: 0, lena: 0})
		d := w.state("thanks", storage.StateResolved)
		if !hasEvent(d, "rule.record", "only said thank you") {
			t.Errorf("the thank-you is not on the timeline: %+v", d.Events)
		}

		w.clock.Advance(time.Hour)
		w.mustSend(customer, []string{inbox}, replyToUs(t, last, "g4@example.com", "Thanks, but the export still fails for March."))
		w.expect("thanks with a problem", map[string]int{customer: 1, alice: 1})
		w.state("thanks with a problem", storage.StateOpen)
	})
	t.Run("proposed", func(t *testing.T) {
		w := newWorld(t)
		w.mustSend(customer, []string{inbox}, customerMail("p1@example.com", "Export stuck", "The CSV export never finishes."))
		w.capture.take()
		if err := w.exec.Resolve(context.Background(), 1, lena); err != nil {
			t.Fatal(err)
		}
		w.settle()
		got := w.expect("resolve", map[string]int{customer: 1})
		ask := to(got, customer)[0]
		w.clock.Advance(time.Hour)
		w.mustSend(customer, []string{inbox}, replyToUs(t, ask, "p2@example.com", "Vielen Dank für die schnelle Hilfe!"))
		w.expect("thanks", map[string]int{customer: 0, alice: 0, lena: 0})
		w.state("thanks", storage.StateProposed)

		w.mustSend(customer, []string{inbox}, replyToUs(t, ask, "p3@example.com", "Danke! Wann kommt die Rechnung?"))
		w.expect("thanks with a question", map[string]int{alice: 1})
		w.state("thanks with a question", storage.StateOpen)
	})
}

// hasEvent reports whether the ticket's timeline has an entry of kind
// whose detail contains text.
func hasEvent(d storage.TicketDetail, kind, text string) bool {
	for _, e := range d.Events {
		if e.Kind == kind && strings.Contains(e.Detail, text) {
			return true
		}
	}
	return false
}
