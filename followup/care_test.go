package followup_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

// resolvedTicket brings ticket #1 to resolved the way it happens: the
// customer writes, a lead proposes resolution, the customer says yes. It
// returns the last mail the customer got (the thank-you).
func resolvedTicket(t *testing.T, w *world) captured {
	t.Helper()
	ask := proposedTicket(t, w, "g1@example.com")
	w.clock.Advance(time.Hour)
	w.mustSend(customer, []string{inbox}, replyToUs(t, ask, "g2@example.com", "Yes, it works now."))
	got := w.expect("confirmed", map[string]int{customer: 1})
	w.state("confirmed", vocab.StateResolved)
	return to(got, customer)[0]
}

// proposedTicket opens ticket #1 with a customer mail of that Message-ID
// and has a lead propose resolution; it returns the confirmation request
// the customer got.
func proposedTicket(t *testing.T, w *world, msgID string) captured {
	t.Helper()
	w.mustSend(customer, []string{inbox}, customerMail(msgID, "Export stuck", "The CSV export never finishes."))
	w.capture.take()
	// Later than the agents' notification window: the next notification
	// is not coalesced with the first.
	w.advance(5 * time.Minute)
	if err := w.exec.Resolve(context.Background(), 1, lena); err != nil {
		t.Fatal(err)
	}
	w.settle()
	return to(w.expect("resolve", map[string]int{customer: 1}), customer)[0]
}

// TestGratitudeIsNotAReopen: "Thanks again, great service!" to a resolved
// or a proposed ticket keeps its state and mails nobody; the same thanks
// with a problem in it reopens and tells the agents.
func TestGratitudeIsNotAReopen(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) {
		t.Run("resolved", func(t *testing.T) {
			w := newWorldOn(t, b.Open)
			last := resolvedTicket(t, w)
			w.clock.Advance(time.Hour)
			w.mustSend(customer, []string{inbox}, replyToUs(t, last, "g3@example.com", "Thanks again, great service!"))
			w.expect("thanks", map[string]int{customer: 0, alice: 0, lena: 0})
			d := w.state("thanks", vocab.StateResolved)
			if !hasEvent(d, "rule.record", "only said thank you") {
				t.Errorf("the thank-you is not on the timeline: %+v", d.Events)
			}

			w.clock.Advance(time.Hour)
			w.mustSend(customer, []string{inbox}, replyToUs(t, last, "g4@example.com", "Thanks, but the export still fails for March."))
			w.expect("thanks with a problem", map[string]int{customer: 1, alice: 1})
			w.state("thanks with a problem", vocab.StateOpen)
		})
		t.Run("proposed", func(t *testing.T) {
			w := newWorldOn(t, b.Open)
			ask := proposedTicket(t, w, "p1@example.com")
			w.clock.Advance(time.Hour)
			w.mustSend(customer, []string{inbox}, replyToUs(t, ask, "p2@example.com", "Vielen Dank für die schnelle Hilfe!"))
			w.expect("thanks", map[string]int{customer: 0, alice: 0, lena: 0})
			w.state("thanks", vocab.StateProposed)

			w.mustSend(customer, []string{inbox}, replyToUs(t, ask, "p3@example.com", "Danke! Wann kommt die Rechnung?"))
			w.expect("thanks with a question", map[string]int{alice: 1})
			w.state("thanks with a question", vocab.StateOpen)
		})
	})
}

// hasEvent reports whether the ticket's timeline has an entry of kind
// whose detail contains text.
func hasEvent(d storage.TicketDetail, kind vocab.EventKind, text string) bool {
	for _, e := range d.Events {
		if e.Kind == kind && strings.Contains(e.Detail, text) {
			return true
		}
	}
	return false
}

// TestAgentsNeverCollide: Alice and Lena answer the same notification
// within a second, contradicting each other. Only the first answer reaches
// the customer; the other agent is told who answered, when and what, and
// #send in reply to that warning delivers theirs after all.
func TestAgentsNeverCollide(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) { agentsNeverCollide(t, newWorldOn(t, b.Open)) })
	}
}

func agentsNeverCollide(t *testing.T, w *world) {
	w.mustSend(customer, []string{inbox}, customerMail("c1@example.com", "Refund for order 881", "Can I get a refund for order 881?"))
	got := w.expect("first mail", map[string]int{customer: 1, alice: 1, lena: 1})
	w.clock.Advance(20 * time.Minute)

	answers := map[string]string{alice: "Yes, we refund order 881 today.", lena: "Sorry, order 881 cannot be refunded."}
	errs := make(chan error, 2)
	for who, text := range answers {
		rcpt, raw := replyTo(to(got, who)[0], who, text)
		go func() { errs <- w.send(who, []string{rcpt}, raw) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	w.settle()
	got = w.capture.take()
	out := to(got, customer)
	if len(out) != 1 {
		t.Fatalf("the customer got %d answers, want exactly 1", len(out))
	}
	first, second := alice, lena
	if strings.Contains(out[0].Env.Text, answers[lena]) {
		first, second = lena, alice
	}
	if !strings.Contains(out[0].Env.Text, answers[first]) {
		t.Fatalf("the customer got %q", out[0].Env.Text)
	}
	if n := len(to(got, first)); n != 0 {
		t.Errorf("%s, whose answer went out, got %d mails", first, n)
	}
	warn := to(got, second)
	if len(warn) != 1 {
		t.Fatalf("%s got %d mails, want one warning", second, len(warn))
	}
	firstName := map[string]string{alice: "Alice Smith", lena: "Lena"}[first]
	for _, want := range []string{"NOT sent", firstName, answers[first], answers[second], "#send", "#note", w.clock.Now().UTC().Format("15:04")} {
		if !strings.Contains(warn[0].Env.Text, want) {
			t.Errorf("the warning lacks %q:\n%s", want, warn[0].Env.Text)
		}
	}
	d := w.ticket(1)
	if !hasEvent(d, "reply.held", second) {
		t.Errorf("the held reply is not on the timeline: %+v", d.Events)
	}

	w.clock.Advance(5 * time.Minute)
	rcpt, raw := replyTo(warn[0], second, "#send")
	w.mustSend(second, []string{rcpt}, raw)
	got = w.capture.take()
	out = to(got, customer)
	if len(out) != 1 || !strings.Contains(out[0].Env.Text, answers[second]) {
		t.Fatalf("after #send the customer got %d mails, want %s's held answer: %v", len(out), second, out)
	}
	if len(to(got, second)) != 0 {
		t.Errorf("#send was answered with a mail to %s", second)
	}
	// #send again has nothing left to send: the agent is told, the
	// customer gets nothing.
	w.mustSend(second, []string{rcpt}, strings.Replace(raw, "Message-ID: <agent-", "Message-ID: <again-", 1))
	w.expect("second #send", map[string]int{customer: 0, second: 1})
}

// TestStaleNotificationHeld: an agent answering an old notification after
// a colleague answered is held, and #note keeps it internal; answering the
// notification that came after the colleague's answer is not held.
func TestStaleNotificationHeld(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { staleNotificationHeld(t, newWorldOn(t, b.Open)) })
}

func staleNotificationHeld(t *testing.T, w *world) {
	w.mustSend(customer, []string{inbox}, customerMail("s1@example.com", "Login fails", "I cannot log in."))
	first := w.expect("first mail", map[string]int{alice: 1, lena: 1})
	w.clock.Advance(10 * time.Minute)
	rcpt, raw := replyTo(to(first, alice)[0], alice, "Please reset your password from the login page.")
	w.mustSend(alice, []string{rcpt}, raw)
	w.expect("alice answers", map[string]int{customer: 1})

	w.clock.Advance(2 * time.Hour)
	rcpt, raw = replyTo(to(first, lena)[0], lena, "Your account is locked; I unlocked it.")
	w.mustSend(lena, []string{rcpt}, raw)
	got := w.expect("lena answers the old notification", map[string]int{customer: 0, lena: 1})
	warn := to(got, lena)[0]
	if !strings.Contains(warn.Env.Text, "Please reset your password") {
		t.Errorf("the warning does not say what Alice answered:\n%s", warn.Env.Text)
	}
	w.clock.Advance(time.Minute)
	rcpt, raw = replyTo(warn, lena, "#note")
	w.mustSend(lena, []string{rcpt}, raw)
	w.expect("#note", map[string]int{customer: 0})
	d := w.ticket(1)
	if !hasEvent(d, "note", "Your account is locked") || !hasEvent(d, "reply.noted", "") {
		t.Errorf("the held reply was not kept as a note: %+v", d.Events)
	}

	w.clock.Advance(time.Hour)
	w.mustSend(customer, []string{inbox}, customerMail("s2@example.com", "Re: Login fails", "The reset mail never arrives."))
	got = w.expect("customer again", map[string]int{lena: 1})
	rcpt, raw = replyTo(to(got, lena)[0], lena, "I sent it again; please check your spam folder.")
	w.mustSend(lena, []string{rcpt}, raw)
	w.expect("lena answers the new notification", map[string]int{customer: 1, lena: 0})
}

// freshToSigned is an agent's mail written afresh to their signed address
// (copied from an old notification): no In-Reply-To, no References.
func freshToSigned(n captured, from, msgID, body string) (rcpt, raw string) {
	rcpt, _ = replyTo(n, from, "")
	raw = fmt.Sprintf("From: <%s>\r\nTo: %s\r\nSubject: ticket 1\r\nMessage-ID: <%s>\r\nDate: Mon, 2 Mar 2026 11:00:00 +0100\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n", from, rcpt, msgID, body)
	return rcpt, raw
}

// TestRepliesWithinSecondsHeld: without a notification to go by, a reply
// arriving seconds after a colleague's is held; one arriving minutes later
// is not. A held reply's commands wait for #send and run then.
func TestRepliesWithinSecondsHeld(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { repliesWithinSecondsHeld(t, newWorldOn(t, b.Open)) })
}

func repliesWithinSecondsHeld(t *testing.T, w *world) {
	w.mustSend(customer, []string{inbox}, customerMail("w1@example.com", "Password", "Reset my password please."))
	got := w.expect("first mail", map[string]int{alice: 1, lena: 1})
	rcpt, raw := freshToSigned(to(got, alice)[0], alice, "w2@acme.test", "Done, check your inbox.")
	w.mustSend(alice, []string{rcpt}, raw)
	w.expect("alice", map[string]int{customer: 1})

	w.clock.Advance(3 * time.Second)
	rcpt, raw = freshToSigned(to(got, lena)[0], lena, "w3@acme.test", "I reset it for you.\r\n\r\n#resolve")
	w.mustSend(lena, []string{rcpt}, raw)
	held := w.expect("lena seconds later", map[string]int{customer: 0, lena: 1})
	w.state("held: its #resolve did not run", vocab.StateWaiting)
	rcpt, raw = replyTo(to(held, lena)[0], lena, "#send")
	w.mustSend(lena, []string{rcpt}, raw)
	got2 := w.expect("#send", map[string]int{customer: 2}) // the reply, then the confirmation request its #resolve asks
	if !strings.Contains(to(got2, customer)[0].Env.Text, "I reset it for you.") {
		t.Errorf("#send delivered %q", to(got2, customer)[0].Env.Text)
	}
	w.state("#send ran the held #resolve", vocab.StateProposed)

	w.clock.Advance(10 * time.Minute)
	rcpt, raw = freshToSigned(to(got, alice)[0], alice, "w4@acme.test", "Let us know if the link expired.")
	w.mustSend(alice, []string{rcpt}, raw)
	w.expect("alice minutes later", map[string]int{customer: 1, alice: 0})
}
