package followup_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

// inQueue reports whether ticket n is in the lead's default queue.
func (w *world) inQueue(n int64) bool {
	w.t.Helper()
	rows, _, err := w.store.Queue(w.t.Context(), storage.QueueFilter{})
	if err != nil {
		w.t.Fatal(err)
	}
	return slices.ContainsFunc(rows, func(r storage.QueueRow) bool { return r.Number == n })
}

// agentReply answers the first notification alice got in got.
func (w *world) agentReply(got []captured, body string) {
	w.t.Helper()
	rcpt, raw := replyTo(to(got, alice)[0], alice, body)
	w.mustSend(alice, []string{rcpt}, raw)
}

// TestFollowUpWaitingUntil: "#waiting until DATE" takes the ticket out of
// the queue until 09:00 that day; then it is back, open again, and the
// agents are told.
func TestFollowUpWaitingUntil(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) {
		w := newWorldOn(t, b.Open) // Monday 2 March 2026, 09:00 UTC
		w.mustSend(customer, []string{inbox}, customerMail("f1@example.com", "Export stuck", "The export hangs."))
		got := w.expect("first", map[string]int{customer: 1, alice: 1})
		w.agentReply(got, "Could you send the log file?\r\n\r\n#waiting until 2026-03-09")
		w.expect("reply", map[string]int{customer: 1, alice: 0})
		d := w.state("reply", vocab.StateWaiting)
		if want := time.Date(2026, 3, 9, 9, 0, 0, 0, time.UTC); d.SnoozedUntil == nil || !d.SnoozedUntil.Equal(want) {
			t.Fatalf("snoozed until %v, want %s", d.SnoozedUntil, want)
		}
		if w.inQueue(1) {
			t.Error("a ticket put aside is still in the queue")
		}
		if rows, _, err := w.store.Queue(t.Context(), storage.QueueFilter{State: "all"}); err != nil || len(rows) != 1 {
			t.Errorf("a ticket put aside is out of sight under \"all\": %v, %v", rows, err)
		}
		w.advance(6*24*time.Hour + 23*time.Hour)
		w.expect("before due", map[string]int{customer: 0, alice: 0, lena: 0})
		if w.inQueue(1) {
			t.Error("back in the queue before the follow-up")
		}
		w.advance(time.Hour)
		got = w.expect("due", map[string]int{customer: 0, alice: 1, lena: 1})
		if s := to(got, alice)[0].Env.GetHeader("Subject"); !strings.Contains(s, "Follow-up due") {
			t.Errorf("notification subject %q", s)
		}
		if d := w.state("due", vocab.StateOpen); d.SnoozedUntil != nil {
			t.Errorf("still snoozed until %v", d.SnoozedUntil)
		}
		if !w.inQueue(1) {
			t.Error("not back in the queue when due")
		}
	})
}

// TestFollowUpEndsWhenCustomerWrites: a customer reply during a #remind
// brings the ticket back at once, and the reminder never fires.
func TestFollowUpEndsWhenCustomerWrites(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) {
		w := newWorldOn(t, b.Open)
		w.mustSend(customer, []string{inbox}, customerMail("f2@example.com", "Invoice wrong", "The VAT is wrong."))
		got := w.expect("first", map[string]int{customer: 1})
		w.agentReply(got, "We are checking with accounting.\r\n\r\n#remind 3d")
		reply := to(w.expect("reply", map[string]int{customer: 1}), customer)[0]
		if w.inQueue(1) {
			t.Fatal("reminded ticket still in the queue")
		}
		w.advance(24 * time.Hour)
		w.mustSend(customer, []string{inbox}, replyToUs(t, reply, "f3@example.com", "Here is the corrected address."))
		w.expect("customer wrote", map[string]int{alice: 1})
		if d := w.state("customer wrote", vocab.StateOpen); d.SnoozedUntil != nil {
			t.Errorf("still snoozed until %v after the customer wrote", d.SnoozedUntil)
		}
		if !w.inQueue(1) {
			t.Error("not back in the queue after the customer wrote")
		}
		w.advance(3 * 24 * time.Hour)
		for _, m := range w.capture.take() {
			if strings.Contains(m.Env.GetHeader("Subject"), "Follow-up due") {
				t.Errorf("the reminder fired after the customer wrote: %v", m.To)
			}
		}
	})
}

// TestFollowUpSnoozeAndMistakes: "#snooze monday" alone puts the ticket
// aside until next Monday 09:00 and sends nothing to the customer; a date
// in the past is explained to the agent, and nothing runs.
func TestFollowUpSnoozeAndMistakes(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) {
		w := newWorldOn(t, b.Open) // a Monday
		w.mustSend(customer, []string{inbox}, customerMail("f4@example.com", "Feature request", "Dark mode, please."))
		got := w.expect("first", map[string]int{customer: 1})

		w.agentReply(got, "We will look at it.\r\n\r\n#waiting until 2026-01-01")
		back := w.expect("past date", map[string]int{customer: 0, alice: 1})
		if txt := to(back, alice)[0].Env.Text; !strings.Contains(txt, "is in the past") {
			t.Errorf("explanation lacks the reason:\n%s", txt)
		}
		if d := w.state("past date", vocab.StateNew); d.SnoozedUntil != nil {
			t.Errorf("snoozed by a refused command: %v", d.SnoozedUntil)
		}

		w.agentReply(got, "#snooze monday")
		w.expect("snooze", map[string]int{customer: 0})
		d := w.state("snooze", vocab.StateNew)
		if want := time.Date(2026, 3, 9, 9, 0, 0, 0, time.UTC); d.SnoozedUntil == nil || !d.SnoozedUntil.Equal(want) {
			t.Fatalf("snoozed until %v, want %s", d.SnoozedUntil, want)
		}
		w.clock.Set(time.Date(2026, 3, 9, 9, 0, 0, 0, time.UTC))
		w.settle()
		var due bool
		for _, m := range to(w.capture.take(), alice) {
			due = due || strings.Contains(m.Env.GetHeader("Subject"), "Follow-up due")
		}
		if !due || !w.inQueue(1) {
			t.Errorf("snooze did not end on Monday: notified %v, in queue %v", due, w.inQueue(1))
		}
	})
}
