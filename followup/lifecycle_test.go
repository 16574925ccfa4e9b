package followup_test

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

// replyToUs is the customer answering the newest mail we sent them, as a
// mail client does.
func replyToUs(t testing.TB, last captured, msgID, body string) string {
	t.Helper()
	id := last.Env.GetHeader("Message-Id")
	return fmt.Sprintf("From: Ann Example <%s>\r\nTo: %s\r\nSubject: Re: %s\r\nMessage-ID: <%s>\r\nIn-Reply-To: %s\r\nReferences: %s\r\n"+
		"Date: Mon, 2 Mar 2026 12:00:00 +0100\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n\r\nOn Monday Acme Support wrote:\r\n> earlier mail\r\n",
		customer, inbox, last.Env.GetHeader("Subject"), msgID, id, id, body)
}

// expect takes what was sent and checks how many mails each address got.
func (w *world) expect(step string, want map[string]int) []captured {
	w.t.Helper()
	got := w.capture.take()
	for addr, n := range want {
		if m := to(got, addr); len(m) != n {
			var subj []string
			for _, c := range got {
				subj = append(subj, fmt.Sprintf("%v: %s", c.To, c.Env.GetHeader("Subject")))
			}
			w.t.Fatalf("%s: %s got %d mails, want %d (sent: %v)", step, addr, len(m), n, subj)
		}
	}
	return got
}

func (w *world) state(step string, want vocab.State) storage.TicketDetail {
	w.t.Helper()
	d := w.ticket(1)
	if d.State != want {
		w.t.Fatalf("%s: state %s, want %s", step, d.State, want)
	}
	return d
}

// TestFollowThroughToConfirmation is the life of a ticket under the
// default rules: acknowledged at once, a repeat contact noticed, the
// promise breached, answered, resolution proposed, nudged, unconfirmed,
// and finally confirmed by the customer.
func TestFollowThroughToConfirmation(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { followThroughToConfirmation(t, newWorldOn(t, b.Open)) })
}

func followThroughToConfirmation(t *testing.T, w *world) {
	w.mustSend(customer, []string{inbox}, customerMail("l1@example.com", "Invoice missing", "I did not get my invoice for February."))
	got := w.expect("first mail", map[string]int{customer: 1, alice: 1, lena: 1})
	ack := to(got, customer)[0]
	if !strings.Contains(ack.Env.Text, "4 hours") {
		t.Errorf("acknowledgement makes no honest promise: %q", ack.Env.Text)
	}
	w.state("first mail", vocab.StateNew)

	w.clock.Advance(30 * time.Minute)
	w.mustSend(customer, []string{inbox}, replyToUs(t, ack, "l2@example.com", "Hello? Any news?"))
	w.expect("repeat contact", map[string]int{customer: 0, alice: 1})
	d := w.state("repeat contact", vocab.StateNew)
	if d.RepeatContacts != 1 || d.Priority != "high" {
		t.Errorf("repeat contact: repeats %d priority %s, want 1/high", d.RepeatContacts, d.Priority)
	}

	w.advance(4 * time.Hour)
	// Lena is a lead and an agent: on both rules' lists, she gets it once.
	got = w.expect("breach", map[string]int{customer: 0, alice: 1, lena: 1})
	if d := w.state("breach", vocab.StateNew); !d.Breached {
		t.Error("breach not recorded")
	}

	notes := to(got, alice)
	rcpt, raw := replyTo(notes[0], alice, "Sorry for the wait: the invoice is attached to your account now.\r\n\r\n#resolve")
	w.mustSend(alice, []string{rcpt}, raw)
	got = w.expect("agent resolves", map[string]int{customer: 2})
	w.state("agent resolves", vocab.StateProposed)
	confirm := to(got, customer)[1]
	if !strings.Contains(confirm.Env.Text, "/confirm?t=") {
		t.Errorf("confirmation request has no signed links: %q", confirm.Env.Text)
	}

	w.advance(2 * 24 * time.Hour)
	w.expect("first nudge", map[string]int{customer: 1})
	w.state("first nudge", vocab.StateProposed)

	w.advance(3 * 24 * time.Hour)
	got = w.expect("unconfirmed", map[string]int{customer: 1, lena: 1})
	w.state("unconfirmed", vocab.StateUnconfirmed)

	w.clock.Advance(time.Hour)
	w.mustSend(customer, []string{inbox}, replyToUs(t, to(got, customer)[0], "l3@example.com", "Yes, it works now, thanks!"))
	w.expect("confirmed", map[string]int{customer: 1})
	w.state("confirmed", vocab.StateResolved)

	if timers, _ := w.store.PendingTimers(context.Background(), 1); len(timers) != 0 {
		t.Errorf("timers left on a resolved ticket: %+v", timers)
	}

	// Weeks later the customer answers an old mail: a new ticket, linked,
	// acknowledged on its own; the resolved one stays resolved.
	w.capture.take()
	w.clock.Advance(20 * 24 * time.Hour)
	w.mustSend(customer, []string{inbox}, replyToUs(t, ack, "l4@example.com", "The invoice for March is missing now."))
	got = w.expect("late reply", map[string]int{customer: 1})
	w.state("late reply", vocab.StateResolved)
	if s := to(got, customer)[0].Env.GetHeader("Subject"); !strings.Contains(s, "[#2]") {
		t.Errorf("late reply acknowledged as %q, want ticket #2", s)
	}
	if d := w.ticket(2); d.State != vocab.StateNew || len(d.Messages) == 0 {
		t.Errorf("linked ticket = %+v", d.TicketRow)
	}
}

var linkRE = regexp.MustCompile(`https://support\.acme\.test/confirm\?t=(\S+)`)

func TestNoAndLinks(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { noAndLinks(t, newWorldOn(t, b.Open)) })
}

func noAndLinks(t *testing.T, w *world) {
	w.mustSend(customer, []string{inbox}, customerMail("k1@example.com", "Password reset", "The reset mail never arrives."))
	w.capture.take()
	if err := w.exec.Resolve(context.Background(), 1, "lena@acme.test"); err != nil {
		t.Fatal(err)
	}
	w.settle()
	got := w.expect("resolve by a lead", map[string]int{customer: 1})
	w.state("resolve by a lead", vocab.StateProposed)

	// An unclear answer is not a yes: back to open, the agents told.
	w.mustSend(customer, []string{inbox}, replyToUs(t, to(got, customer)[0], "k2@example.com", "I will check tomorrow, maybe."))
	// Alice was notified of the ticket a moment ago: the next notification
	// waits for the end of the coalescing window.
	w.expect("unclear answer", map[string]int{alice: 0})
	w.advance(2 * time.Minute)
	w.expect("unclear answer", map[string]int{alice: 1})
	w.state("unclear answer", vocab.StateOpen)

	// Later that day (three automatic mails an hour is the flood limit).
	w.clock.Advance(3 * time.Hour)
	if err := w.exec.Resolve(context.Background(), 1, "lena@acme.test"); err != nil {
		t.Fatal(err)
	}
	w.settle()
	got = w.expect("resolve again", map[string]int{customer: 1})
	links := linkRE.FindAllStringSubmatch(to(got, customer)[0].Env.Text, -1)
	if len(links) < 2 {
		t.Fatalf("want solved and not-solved links, got %v", links)
	}
	tok, _ := url.QueryUnescape(links[0][1])
	if _, answer, err := w.exec.Confirm(context.Background(), tok); err != nil || answer != "yes" {
		t.Fatalf("Confirm(solved link) = %s, %v", answer, err)
	}
	w.settle()
	w.expect("clicked solved", map[string]int{customer: 1})
	w.state("clicked solved", vocab.StateResolved)
	if _, _, err := w.exec.Confirm(context.Background(), tok+"x"); err == nil {
		t.Error("a forged link was accepted")
	}
}

// TestAutoResponderLoop: the customer's mailbox answers everything, with
// and without RFC 3834 headers. After an hour at most one automatic mail
// went each way.
func TestAutoResponderLoop(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) {
		for _, tc := range []struct{ name, headers, subject string }{
			{"rfc3834", "Auto-Submitted: auto-replied\r\n", "Automatic reply: "},
			{"exchange", "X-Auto-Response-Suppress: All\r\nX-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent\r\n", "Automatic reply: "},
			{"plain vacation", "", "Out of Office: "},
			{"no markers at all", "", "Re: "},
		} {
			t.Run(tc.name, func(t *testing.T) {
				w := newWorldOn(t, b.Open)
				w.mustSend(customer, []string{inbox}, customerMail("v0@example.com", "Question", "A question."))
				ours, theirs := 0, 0
				for i := range 12 {
					got := to(w.capture.take(), customer)
					ours += len(got)
					for _, m := range got {
						theirs++
						raw := fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s%s\r\nMessage-ID: <v%d-%d@example.com>\r\nIn-Reply-To: %s\r\n%s\r\nI am away until Monday.\r\n",
							customer, inbox, tc.subject, m.Env.GetHeader("Subject"), i, theirs, m.Env.GetHeader("Message-Id"), tc.headers)
						w.mustSend(customer, []string{inbox}, raw)
					}
					w.advance(5 * time.Minute)
				}
				if ours > 1 || theirs > 1 {
					t.Errorf("in an hour tend sent %d automatic mails and the responder %d; want at most 1 each", ours, theirs)
				}
			})
		}
	})
}

// TestMergeAndSplit: a lead merges a customer's second ticket into the
// first (the old number redirects, replies to either thread land on the
// survivor) and splits a stray message off again.
func TestMergeAndSplit(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { mergeAndSplit(t, newWorldOn(t, b.Open)) })
}

func mergeAndSplit(t *testing.T, w *world) {
	w.mustSend(customer, []string{inbox}, customerMail("m1@example.com", "VPN down", "The VPN is down."))
	w.mustSend(customer, []string{inbox}, customerMail("m2@example.com", "Still no VPN", "Also, printing fails."))
	w.capture.take()
	ctx := context.Background()
	if err := w.exec.Merge(ctx, 2, 1, "lena@acme.test"); err != nil {
		t.Fatal(err)
	}
	if d := w.ticket(2); d.Number != 1 {
		t.Fatalf("ticket 2 resolves to #%d after the merge, want #1", d.Number)
	}
	if err := w.exec.Merge(ctx, 1, 1, "lena@acme.test"); err == nil {
		t.Error("merged a ticket into itself")
	}
	var second int64
	for _, m := range w.ticket(1).Messages {
		if m.MessageID == "m2@example.com" {
			second = m.ID
		}
	}
	n, err := w.exec.Split(ctx, second, "lena@acme.test")
	if err != nil || n <= 2 {
		t.Fatalf("split = #%d, %v", n, err)
	}
	if d := w.ticket(n); len(d.Messages) != 1 || d.Messages[0].MessageID != "m2@example.com" {
		t.Errorf("split ticket = %+v", d.Messages)
	}
}
