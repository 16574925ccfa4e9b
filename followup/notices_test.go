package followup_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

// subjects lists the subjects of the mails to addr.
func subjects(msgs []captured, addr string) []string {
	var out []string
	for _, m := range to(msgs, addr) {
		out = append(out, m.Env.GetHeader("Subject"))
	}
	return out
}

// TestPersonCausedNoticesPastTheHourlyCap is issue 11's silent close: one
// customer's acknowledgement, confirmation request, thank-you, reopen,
// close, reopen and second request, all inside one hour. The hourly cap of
// 3 automatic mails bounds acknowledgements only; every notice a person's
// action caused arrives.
func TestPersonCausedNoticesPastTheHourlyCap(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) {
		personCausedNoticesPastTheHourlyCap(t, newWorldOn(t, b.Open))
	})
}

func personCausedNoticesPastTheHourlyCap(t *testing.T, w *world) {
	ctx := context.Background()
	var all []captured
	step := func(name string, wantSubject string) captured {
		t.Helper()
		w.clock.Advance(3 * time.Minute) // past the notification window
		w.settle()
		got := w.capture.take()
		all = append(all, got...)
		mine := to(got, customer)
		var notice *captured
		for i := range mine {
			if strings.Contains(strings.ToLower(mine[i].Env.GetHeader("Subject")), strings.ToLower(wantSubject)) {
				notice = &mine[i]
			}
		}
		if notice == nil {
			t.Fatalf("%s: the customer got no %q notice; got %q; timeline %v", name, wantSubject, subjects(got, customer), w.ticket(1).Events)
		}
		return *notice
	}
	w.mustSend(customer, []string{inbox}, customerMail("p1@example.com", "Export stuck", "The export hangs at 99%."))
	ack := step("new ticket", "Export stuck")
	note := to(all, alice)[0]
	rcpt, raw := replyTo(note, alice, "Please clear the cache and try again.\r\n\r\n#resolve")
	w.mustSend(alice, []string{rcpt}, raw)
	confirm := step("#resolve", "Is it solved?")
	w.mustSend(customer, []string{inbox}, replyToUs(t, confirm, "p2@example.com", "Yes, that fixed it."))
	thanks := step("customer confirms", "Resolved:")
	w.mustSend(customer, []string{inbox}, replyToUs(t, thanks, "p3@example.com", "It hangs again since this morning, same place."))
	step("customer reopens", "Reopened:")
	if err := w.exec.Close(ctx, 1, "duplicate of #0", lena); err != nil {
		t.Fatal(err)
	}
	step("lead closes", "Closed:")
	if err := w.exec.Reopen(ctx, 1, lena); err != nil {
		t.Fatal(err)
	}
	step("lead reopens", "Reopened:")
	rcpt, raw = replyTo(note, alice, "Found it: a stuck job. Fixed now.\r\n\r\n#resolve")
	w.mustSend(alice, []string{rcpt}, raw)
	step("#resolve again", "Is it solved?")
	if ack.Env.GetHeader("Auto-Submitted") != "auto-replied" {
		t.Error("the acknowledgement is not marked automatic")
	}
	d := w.ticket(1)
	if hasEvent(d, "mail.suppressed", "") {
		t.Errorf("a notice was suppressed: %v", d.Events)
	}
	// The cap still bounds acknowledgements: a new ticket from the same
	// address within the hour is not acknowledged, and the timeline says why.
	w.mustSend(customer, []string{inbox}, customerMail("p9@example.com", "Another thing", "A new question."))
	if got := to(w.capture.take(), customer); len(got) != 0 {
		t.Errorf("acknowledgement sent past the hourly cap: %q", got[0].Env.GetHeader("Subject"))
	}
	if !hasEvent(w.ticket(2), "mail.suppressed", "this hour (flood protection)") {
		t.Error("the capped acknowledgement is not explained on the timeline")
	}
}

// TestHeldNoticesAndTrueTexts: the customer's address hard-bounced, so the
// nudge and the "stays open" notice after a #resolve are held until the
// suppression ends, never dropped; the timeline says "held until", and the
// lead is not told the customer "was reminded" or "told it stays open".
// When the hold ends, both are sent.
func TestHeldNoticesAndTrueTexts(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { heldNoticesAndTrueTexts(t, newWorldOn(t, b.Open)) })
}

func heldNoticesAndTrueTexts(t *testing.T, w *world) {
	w.capture.script(customer, 250, 250, 550) // the confirmation request hard-bounces
	w.mustSend(customer, []string{inbox}, customerMail("s1@example.com", "Export stuck", "The export hangs."))
	note := to(w.capture.take(), alice)[0]
	rcpt, raw := replyTo(note, alice, "Fixed, please check.\r\n\r\n#resolve")
	w.mustSend(alice, []string{rcpt}, raw)
	w.capture.take()
	w.advance(2 * 24 * time.Hour)
	if got := to(w.capture.take(), customer); len(got) != 0 {
		t.Fatalf("mail to a suppressed address: %q", got[0].Env.GetHeader("Subject"))
	}
	d := w.ticket(1)
	if !hasEvent(d, "mail.deferred", "nudge to "+customer+" held until ") {
		t.Fatalf("the held nudge is not on the timeline as held until: %v", d.Events)
	}
	w.advance(3 * 24 * time.Hour)
	got := w.capture.take()
	leads := to(got, lena)
	if len(leads) != 1 {
		t.Fatalf("lena got %d mails at unconfirmed", len(leads))
	}
	text := leads[0].Env.Text
	for _, lie := range []string{"despite a reminder", "was told it stays open"} {
		if strings.Contains(text, lie) {
			t.Errorf("the lead is told %q, but the mail was held: %s", lie, text)
		}
	}
	if !strings.Contains(text, "held until") {
		t.Errorf("the lead is not told the notices are held: %s", text)
	}
	w.advance(30 * 24 * time.Hour)
	if s := subjects(w.capture.take(), customer); len(s) != 2 {
		t.Errorf("after the suppression the customer got %q, want the nudge and the stays-open notice", s)
	}
	if d := w.ticket(1); d.State != vocab.StateUnconfirmed {
		t.Errorf("state %s", d.State)
	}
}

// TestTrueTextsWhenSent: on the normal reminder chain the lead's text says
// what did happen.
func TestTrueTextsWhenSent(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { trueTextsWhenSent(t, newWorldOn(t, b.Open)) })
}

func trueTextsWhenSent(t *testing.T, w *world) {
	w.mustSend(customer, []string{inbox}, customerMail("s2@example.com", "Export stuck", "The export hangs."))
	note := to(w.capture.take(), alice)[0]
	rcpt, raw := replyTo(note, alice, "Fixed, please check.\r\n\r\n#resolve")
	w.mustSend(alice, []string{rcpt}, raw)
	w.advance(2 * 24 * time.Hour)
	w.advance(3 * 24 * time.Hour)
	leads := to(w.capture.take(), lena)
	if len(leads) != 1 || !strings.Contains(leads[0].Env.Text, "despite a reminder") || !strings.Contains(leads[0].Env.Text, "was told it stays open") {
		t.Fatalf("lead's unconfirmed notice: %d mails %v", len(leads), leads)
	}
}
