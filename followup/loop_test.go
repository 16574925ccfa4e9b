package followup_test

import (
	"context"
	"fmt"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/followup"
	"github.com/tendhq/tend/mail/classify"
	"github.com/tendhq/tend/mail/header"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

// replyAddr is where a mail client sends a reply to m: its Reply-To, else
// its From.
func replyAddr(t *testing.T, m captured) string {
	t.Helper()
	h := m.Env.GetHeader("Reply-To")
	if h == "" {
		h = m.Env.GetHeader("From")
	}
	a, err := mail.ParseAddress(h)
	if err != nil {
		t.Fatalf("reply address of %q: %v", h, err)
	}
	return a.Address
}

// agentAuto is an agent's mail client answering notification n by itself:
// extra header fields, a subject, and a "#close spam" in the text that
// must never run.
func agentAuto(t *testing.T, n captured, from, extra, subject string) (rcpt, raw string) {
	t.Helper()
	rcpt = replyAddr(t, n)
	if subject == "" {
		subject = "Re: " + n.Env.GetHeader("Subject")
	}
	raw = fmt.Sprintf("From: Alice Smith <%s>\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <ooo-%d@acme.test>\r\n%s"+
		"Date: Mon, 2 Mar 2026 11:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+
		"I am out of the office until Monday and will answer then.\r\n\r\n#close spam\r\n",
		from, rcpt, subject, time.Now().UnixNano(), extra)
	return rcpt, raw
}

// TestAgentAutoReplyHeld: whatever automatic signal mail to an agent's
// reply address carries, it is never relayed to the customer, runs no
// command and notifies nobody; it stays on the ticket as an event
// (issue 9, "What was seen" 1: an agent's out-of-office was relayed).
func TestAgentAutoReplyHeld(t *testing.T) {
	tests := []struct {
		name, envFrom, extra, subject string
	}{
		{"RFC 3834 Auto-Submitted", alice, "Auto-Submitted: auto-replied\r\n", ""},
		{"Auto-Submitted auto-generated", alice, "Auto-Submitted: auto-generated\r\n", ""},
		{"X-Autoreply", alice, "X-Autoreply: yes\r\n", ""},
		{"X-Autorespond", alice, "X-Autorespond: Out of office\r\n", ""},
		{"Precedence bulk", alice, "Precedence: bulk\r\n", ""},
		{"Precedence junk", alice, "Precedence: junk\r\n", ""},
		{"Precedence list", alice, "Precedence: list\r\n", ""},
		{"Precedence auto_reply", alice, "Precedence: auto_reply\r\n", ""},
		{"Outlook automatic reply subject", alice, "", "Automatic reply: [#1] Printer on fire"},
		{"out of office subject", alice, "", "Out of Office: [#1] Printer on fire"},
		{"null envelope sender", "", "", ""},
		{"Exchange generated", alice, "X-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent\r\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.mustSend(customer, []string{inbox}, customerMail("h1@example.com", "Printer on fire", "The printer is on fire."))
			notes := to(w.capture.take(), alice)
			if len(notes) != 1 {
				t.Fatalf("alice got %d notifications", len(notes))
			}
			rcpt, raw := agentAuto(t, notes[0], alice, tc.extra, tc.subject)
			w.mustSend(tc.envFrom, []string{rcpt}, raw)
			w.advance(10 * time.Minute) // anything coalesced or deferred is due by now
			if got := w.capture.take(); len(got) != 0 {
				var s []string
				for _, c := range got {
					s = append(s, fmt.Sprintf("%v %s", c.To, c.Env.GetHeader("Subject")))
				}
				t.Fatalf("automatic mail to the reply address sent mail: %v", s)
			}
			d := w.ticket(1)
			if d.State != vocab.StateNew {
				t.Errorf("state %s: a command ran or the auto-reply was taken as an answer", d.State)
			}
			if !hasEvent(d, "agent.auto_reply_held", "not relayed to the customer") {
				t.Errorf("no agent.auto_reply_held event: %+v", d.Events)
			}
			if hasEvent(d, "reply.queued", "") || hasEvent(d, "command", "") {
				t.Error("the auto-reply was relayed or ran a command")
			}
		})
	}
	// Outlook puts X-Auto-Response-Suppress on a person's mail: that alone
	// is no automatic signal, the answer goes through.
	t.Run("person with X-Auto-Response-Suppress is relayed", func(t *testing.T) {
		w := newWorld(t)
		w.mustSend(customer, []string{inbox}, customerMail("h2@example.com", "Printer on fire", "The printer is on fire."))
		notes := to(w.capture.take(), alice)
		rcpt, raw := replyTo(notes[0], alice, "We put it out.")
		raw = strings.Replace(raw, "MIME-Version: 1.0\r\n", "MIME-Version: 1.0\r\nX-Auto-Response-Suppress: All\r\n", 1)
		w.mustSend(alice, []string{rcpt}, raw)
		if n := len(to(w.capture.take(), customer)); n != 1 {
			t.Fatalf("customer got %d mails, want the agent's answer", n)
		}
	})
}

// TestOwnMailComesBack: everything tend sends carries the loop header,
// relayed agent replies included, and mail carrying it that comes back is
// recognised as our own and answers nothing (issue 9, "What must work" 1).
func TestOwnMailComesBack(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { ownMailComesBack(t, b.Open) })
}

func ownMailComesBack(t *testing.T, open func(testing.TB, storage.Clock) *storage.Store) {
	w := newWorldOn(t, open)
	w.mustSend(customer, []string{inbox}, customerMail("o1@example.com", "Printer on fire", "The printer is on fire."))
	got := w.capture.take()
	rcpt, raw := replyTo(to(got, alice)[0], alice, "We put it out.")
	w.mustSend(alice, []string{rcpt}, raw)
	relayed := to(w.capture.take(), customer)
	if len(relayed) != 1 {
		t.Fatalf("customer got %d mails", len(relayed))
	}
	for _, m := range append(got, relayed...) {
		h, _ := header.Read(m.Raw)
		if h.Get(loopHeader) == "" {
			t.Errorf("%s to %v carries no loop header", m.Env.GetHeader("Subject"), m.To)
		}
		// A mail server that sends it back changes the Message-ID domain
		// rewriting nothing else: the loop header alone must tell.
		if r := classify.Classify(h, "", classify.Own{LoopHeader: loopHeader}); r.Class != vocab.ClassOwnMail {
			t.Errorf("%s: classified %s, want own mail", m.Env.GetHeader("Subject"), r.Class)
		}
	}
	// The customer's server forwards our relayed reply back to the inbox.
	w.mustSend(customer, []string{inbox}, string(relayed[0].Raw))
	w.advance(10 * time.Minute)
	if got := w.capture.take(); len(got) != 0 {
		t.Errorf("our own mail coming back sent %d mails", len(got))
	}
}

// TestMailFuse: independently of any classification, a ticket on which
// fuse_max_mails mails were queued within fuse_window holds everything
// further, is flagged, and its leads get exactly one alert; released by a
// lead, the held mail goes out. The limits are set below the defaults, so
// the test fails if the keys are ignored.
func TestMailFuse(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { mailFuse(t, b.Open) })
}

func mailFuse(t *testing.T, open func(testing.TB, storage.Clock) *storage.Store) {
	w := newWorldWith(t, open, &worldTweaks{exec: func(o *followup.Options) { o.FuseMaxMails, o.FuseWindow = 6, 5*time.Minute }})
	w.mustSend(customer, []string{inbox}, customerMail("u1@example.com", "Export stuck", "The export hangs."))
	got := w.capture.take() // 3: the acknowledgement, alice and lena told
	note := to(got, alice)[0]
	for i := range 6 {
		w.clock.Advance(10 * time.Second)
		rcpt, raw := replyTo(note, alice, fmt.Sprintf("Answer number %d.", i))
		w.mustSend(alice, []string{rcpt}, raw)
	}
	w.advance(time.Hour)
	got = append(got, w.capture.take()...)
	alerts := to(got, lena)[1:]
	if n := len(got) - len(alerts); n != 6 {
		t.Errorf("%d mails went out on the ticket besides the alert, want 6 (the fuse)", n)
	}
	if len(alerts) != 1 || !strings.Contains(alerts[0].Env.GetHeader("Subject"), "Mail held") {
		t.Fatalf("lena got %d mails after the trip, want exactly one alert", len(alerts))
	}
	d := w.ticket(1)
	if d.MailHeldSince == nil || !hasEvent(d, "ticket.mail_held", "mail fuse tripped") || !hasEvent(d, "reply.held", "mail fuse") {
		t.Fatalf("ticket not flagged or held replies not on the timeline: held since %v", d.MailHeldSince)
	}
	rows, err := w.store.Outbox(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for _, r := range rows {
		if r.Status == storage.OutboxHeld {
			held++
		}
	}
	if held != 3 {
		t.Errorf("%d held outbox rows, want the 3 replies after the trip", held)
	}
	n, err := w.exec.ReleaseMail(context.Background(), 1, lena)
	if err != nil || n != 3 {
		t.Fatalf("ReleaseMail = %d, %v", n, err)
	}
	w.settle()
	if got := to(w.capture.take(), customer); len(got) != 3 {
		t.Errorf("after the release the customer got %d of the 3 held replies", len(got))
	}
	if d := w.ticket(1); d.MailHeldSince != nil {
		t.Error("the ticket is still flagged after the release")
	}
}

// TestMailFuseWindow: the same mails spread wider than fuse_window never
// trip the fuse (the window slides; a busy ticket is not a loop).
func TestMailFuseWindow(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { mailFuseWindow(t, b.Open) })
}

func mailFuseWindow(t *testing.T, open func(testing.TB, storage.Clock) *storage.Store) {
	w := newWorldWith(t, open, &worldTweaks{exec: func(o *followup.Options) { o.FuseMaxMails, o.FuseWindow = 6, time.Minute }})
	w.mustSend(customer, []string{inbox}, customerMail("u2@example.com", "Export stuck", "The export hangs."))
	note := to(w.capture.take(), alice)[0]
	for i := range 12 {
		w.clock.Advance(20 * time.Second)
		rcpt, raw := replyTo(note, alice, fmt.Sprintf("Answer number %d.", i))
		w.mustSend(alice, []string{rcpt}, raw)
	}
	if got := to(w.capture.take(), customer); len(got) != 12 {
		t.Errorf("customer got %d of 12 answers sent 20 s apart with a 1-minute fuse window of 6", len(got))
	}
	if d := w.ticket(1); d.MailHeldSince != nil {
		t.Error("fuse tripped")
	}
}

// TestMailFusePerDay: a loop slowed down below the burst limit still trips
// the fuse at fuse_max_mails_per_day within 24 hours.
func TestMailFusePerDay(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { mailFusePerDay(t, b.Open) })
}

func mailFusePerDay(t *testing.T, open func(testing.TB, storage.Clock) *storage.Store) {
	w := newWorldWith(t, open, &worldTweaks{exec: func(o *followup.Options) { o.FuseMaxMails, o.FuseWindow, o.FuseMaxPerDay = 100, time.Minute, 8 }})
	w.mustSend(customer, []string{inbox}, customerMail("u3@example.com", "Export stuck", "The export hangs."))
	note := to(w.capture.take(), alice)[0] // 3 mails
	for i := range 7 {
		w.clock.Advance(5 * time.Minute)
		rcpt, raw := replyTo(note, alice, fmt.Sprintf("Answer number %d.", i))
		w.mustSend(alice, []string{rcpt}, raw)
	}
	if got := to(w.capture.take(), customer); len(got) != 5 {
		t.Errorf("customer got %d answers, want 5 (8 mails a day on the ticket)", len(got))
	}
	if d := w.ticket(1); d.MailHeldSince == nil {
		t.Error("the daily fuse did not trip")
	}
}
