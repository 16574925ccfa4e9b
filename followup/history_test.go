package followup_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestCustomerRecognisedAcrossTickets: a customer who wrote four times on
// one ticket then writes "REFUND!!!" under a new subject. The new ticket is
// linked to the open one, counts the repeats across both, and the agent's
// notification shows the other ticket; the queue's wait runs from the
// first unanswered message, not the last.
func TestCustomerRecognisedAcrossTickets(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) {
		w := newWorldOn(t, b.Open)
		first := w.clock.Now()
		w.mustSend(customer, []string{inbox}, customerMail("h1@example.com", "Export stuck", "My export has been running since yesterday."))
		ack := to(w.expect("first", map[string]int{customer: 1}), customer)[0]
		for i, id := range []string{"h2@example.com", "h3@example.com", "h4@example.com"} {
			w.clock.Advance(40 * time.Minute)
			w.mustSend(customer, []string{inbox}, replyToUs(t, ack, id, "Any news? "+strings.Repeat("!", i+1)))
		}
		w.capture.take()
		if d := w.ticket(1); d.RepeatContacts != 3 {
			t.Fatalf("repeats on #1: %d, want 3", d.RepeatContacts)
		}
		if d := w.ticket(1); d.WaitingSince == nil || !d.WaitingSince.Equal(first) {
			t.Errorf("#1 waiting since %v, want the first unanswered message at %v", d.WaitingSince, first)
		}

		w.advance(48 * time.Hour)
		w.capture.take()
		w.mustSend(customer, []string{inbox}, customerMail("h5@example.com", "REFUND!!!", "I want my money back."))
		got := w.expect("new subject", map[string]int{customer: 1, lena: 2}) // lena: notification and repeat-to-lead
		d := w.ticket(2)
		if d.LinkedTo == nil || *d.LinkedTo != 1 {
			t.Errorf("#2 linked to %v, want #1", d.LinkedTo)
		}
		if d.RepeatContacts != 4 {
			t.Errorf("#2 repeat contacts %d, want 4 (three on #1 and this one)", d.RepeatContacts)
		}
		if d.Priority != "high" {
			t.Errorf("#2 priority %s, want high", d.Priority)
		}
		// Language, repeat contact and priority reach the row in one
		// write (scope.change): none is lost on the way.
		if d.Language != "en" {
			t.Errorf("#2 language %q, want the inbox's en", d.Language)
		}
		var notice string
		for _, m := range to(got, alice) {
			notice += m.Env.Text
		}
		if !strings.Contains(notice, "also open: #1 Export stuck, 2 days") {
			t.Errorf("notification does not show the customer's other ticket:\n%s", notice)
		}
		t.Logf("notification:\n%s", notice)

		// The queue ranks #1 by the wait since its first message.
		rows, _, err := w.store.Queue(t.Context(), queueAll())
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 || rows[0].WaitingSince == nil || !rows[0].WaitingSince.Equal(first) {
			t.Errorf("queue: %+v", rows)
		}

		// An answer ends the wait.
		rcpt, raw := replyTo(to(got, alice)[0], alice, "We are refunding you today.")
		w.mustSend(alice, []string{rcpt}, raw)
		if d := w.ticket(2); d.WaitingSince != nil {
			t.Errorf("answered #2 still waiting since %v", d.WaitingSince)
		}
		hist, err := w.store.CustomerHistory(t.Context(), customer, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(hist) != 2 || hist[0].Number != 2 || !hist[0].Open {
			t.Errorf("history: %+v", hist)
		}
	})
}

func queueAll() storage.QueueFilter { return storage.QueueFilter{} }
