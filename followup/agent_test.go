package followup_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

func customerMail(msgID, subject, body string) string {
	return fmt.Sprintf("From: Ann Example <%s>\r\nTo: Acme Support <%s>\r\nSubject: %s\r\nMessage-ID: <%s>\r\n"+
		"Date: Mon, 2 Mar 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"+
		"User-Agent: Mozilla/5.0 Thunderbird/128.3.0\r\n\r\n%s\r\n", customer, inbox, subject, msgID, body)
}

// replyTo builds an agent's reply to a notification the way a mail client
// does: to its Reply-To, "Re:" its subject, In-Reply-To and References it,
// the new text on top and the notification quoted below.
func replyTo(n captured, from, body string) (rcpt, raw string) {
	rcpt = n.Env.GetHeader("Reply-To")
	if i := strings.IndexByte(rcpt, '<'); i >= 0 {
		rcpt = strings.Trim(rcpt[i:], "<>")
	}
	id := strings.Trim(n.Env.GetHeader("Message-Id"), "<>")
	var q strings.Builder
	for _, line := range strings.Split(strings.TrimRight(n.Env.Text, "\n"), "\n") {
		q.WriteString("> " + strings.TrimRight(line, "\r") + "\r\n")
	}
	raw = fmt.Sprintf("From: Alice Smith <%s>\r\nTo: %s\r\nSubject: Re: %s\r\nMessage-ID: <agent-%d@acme.test>\r\n"+
		"In-Reply-To: <%s>\r\nReferences: <%s>\r\nDate: Mon, 2 Mar 2026 11:00:00 +0100\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n\r\nOn Mon, 2 Mar 2026 at 10:00, Acme Support <%s> wrote:\r\n%s",
		from, rcpt, n.Env.GetHeader("Subject"), time.Now().UnixNano(), id, id, body, inbox, q.String())
	return rcpt, raw
}

func TestAgentReplyReachesCustomer(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { agentReplyReachesCustomer(t, b.Open) })
}

func agentReplyReachesCustomer(t *testing.T, open func(testing.TB, storage.Clock) *storage.Store) {
	w := newWorldOn(t, open)
	w.mustSend(customer, []string{inbox}, customerMail("q1@example.com", "Printer on fire", "The printer in room 4 is on fire."))
	got := w.capture.take()
	acks := to(got, customer)
	if len(acks) != 1 {
		t.Fatalf("customer got %d mails, want one acknowledgement", len(acks))
	}
	ack := acks[0]
	if ack.Env.GetHeader("Auto-Submitted") != "auto-replied" || !strings.Contains(ack.Env.GetHeader("Subject"), "[#1]") {
		t.Errorf("acknowledgement headers: Auto-Submitted=%q Subject=%q", ack.Env.GetHeader("Auto-Submitted"), ack.Env.GetHeader("Subject"))
	}
	if strings.Contains(ack.Env.Text, "room 4 is on fire") {
		t.Error("the acknowledgement quotes the customer's message (Ticket Trick)")
	}
	notes := to(got, alice)
	if len(notes) != 1 {
		t.Fatalf("alice got %d notifications, want 1", len(notes))
	}
	if !strings.Contains(notes[0].Env.Text, "room 4 is on fire") {
		t.Errorf("notification lacks the customer's text: %q", notes[0].Env.Text)
	}

	rcpt, raw := replyTo(notes[0], alice, "Hi Ann, we put it out and replaced the toner.\r\n\r\n#priority high")
	w.mustSend(alice, []string{rcpt}, raw)
	got = w.capture.take()
	out := to(got, customer)
	if len(out) != 1 {
		t.Fatalf("customer got %d mails after the agent's reply, want 1: %v", len(out), got)
	}
	c := out[0]
	h := c.Env
	checks := []struct{ name, got, want string }{
		{"From", addr(t, h.GetHeader("From")), `"Alice Smith (Acme Support)" <` + inbox + ">"},
		{"To", addr(t, h.GetHeader("To")), `"Ann Example" <` + customer + ">"},
		{"In-Reply-To", h.GetHeader("In-Reply-To"), "<q1@example.com>"},
		{"References", h.GetHeader("References"), "<q1@example.com>"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if id := h.GetHeader("Message-Id"); !strings.HasSuffix(id, "@"+domain+">") {
		t.Errorf("Message-ID %q is not on our domain", id)
	}
	if s := h.GetHeader("Subject"); !strings.Contains(s, "[#1]") || !strings.Contains(s, "Printer on fire") {
		t.Errorf("Subject = %q", s)
	}
	if h.GetHeader("Auto-Submitted") != "" {
		t.Error("an agent's reply is marked Auto-Submitted")
	}
	if !strings.HasPrefix(c.From, "bounce+") {
		t.Errorf("envelope sender %q is not our VERP address", c.From)
	}
	for _, leak := range []string{alice, "#priority", "> ", "wrote:", "reply+"} {
		if bytes.Contains(c.Raw, []byte(leak)) {
			t.Errorf("customer copy contains %q", leak)
		}
	}
	if !strings.Contains(h.Text, "replaced the toner") {
		t.Errorf("customer copy lacks the agent's text: %q", h.Text)
	}
	d := w.ticket(1)
	if d.State != vocab.StateWaiting || d.Priority != "high" {
		t.Errorf("ticket state %s priority %s, want waiting/high", d.State, d.Priority)
	}
	if timers, _ := w.store.PendingTimers(context.Background(), 1); len(timers) != 0 {
		t.Errorf("timers still pending after the first answer: %+v", timers)
	}
}

func TestAgentAddressForgeries(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { agentAddressForgeries(t, b.Open) })
}

func agentAddressForgeries(t *testing.T, open func(testing.TB, storage.Clock) *storage.Store) {
	w := newWorldOn(t, open)
	w.mustSend(customer, []string{inbox}, customerMail("f1@example.com", "Help", "Please help."))
	w.mustSend("bob@example.com", []string{inbox}, strings.ReplaceAll(customerMail("f2@example.com", "Other", "Other."), customer, "bob@example.com"))
	notes := to(w.capture.take(), alice)
	if len(notes) != 2 {
		t.Fatalf("alice got %d notifications, want 2", len(notes))
	}
	valid, raw := replyTo(notes[0], alice, "Answer")

	// A forged token, and a real token replayed for another ticket, are
	// refused at RCPT.
	local, _, _ := strings.Cut(valid, "@")
	flip := byte('a')
	if local[len(local)-1] == 'a' {
		flip = 'b'
	}
	forged := local[:len(local)-1] + string(flip) + "@" + domain
	other := strings.Replace(valid, "reply+1.", "reply+2.", 1)
	for _, rcpt := range []string{forged, other, "reply+1.1.a@" + domain} {
		err := w.send(alice, []string{rcpt}, raw)
		var te *textproto.Error
		if !errors.As(err, &te) || te.Code != 550 {
			t.Errorf("RCPT %s: err = %v, want 550", rcpt, err)
		}
	}
	// A valid token from the wrong sender: held, nothing sent, agent told.
	_, raw = replyTo(notes[0], "mallory@example.com", "Closing this. #close spam")
	w.mustSend("mallory@example.com", []string{valid}, raw)
	got := w.capture.take()
	if n := len(to(got, customer)); n != 0 {
		t.Errorf("customer got %d mails from a forged agent", n)
	}
	if n := len(to(got, alice)); n != 1 {
		t.Errorf("alice was told %d times about the quarantined mail, want 1", n)
	}
	d := w.ticket(1)
	if d.State == vocab.StateClosed {
		t.Error("a command ran from the wrong sender")
	}
	quarantined := false
	for _, e := range d.Events {
		quarantined = quarantined || e.Kind == "message.quarantined"
	}
	if !quarantined {
		t.Error("no quarantine on the timeline")
	}
}

func TestInternalNoteStaysInternal(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { internalNoteStaysInternal(t, b.Open) })
}

func internalNoteStaysInternal(t *testing.T, open func(testing.TB, storage.Clock) *storage.Store) {
	w := newWorldOn(t, open)
	w.mustSend(customer, []string{inbox}, customerMail("n1@example.com", "Refund", "I want a refund."))
	w.capture.take()
	note := w.signer.Sign("note", 1, 1) + "@" + domain
	raw := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: note\r\nMessage-ID: <note1@acme.test>\r\n\r\nCustomer is on the legacy plan, check with finance.\r\n", alice, note)
	w.mustSend(alice, []string{note}, raw)
	got := w.capture.take()
	if n := len(to(got, customer)); n != 0 {
		t.Fatalf("an internal note reached the customer (%d mails)", n)
	}
	if n := len(to(got, lena)); n != 1 {
		t.Errorf("lena got %d note notifications, want 1", n)
	}
}

// addr normalizes one address field for comparison.
func addr(t *testing.T, v string) string {
	a, err := mail.ParseAddress(v)
	if err != nil {
		t.Fatalf("address %q: %v", v, err)
	}
	return a.String()
}
