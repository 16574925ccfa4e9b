package followup_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/followup"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

// TestNoteNotificationNamesAuthor: Alice's one-line "#note …" is a note
// with that text; Lena is told it is from Alice (not from Lena), and that
// her reply stays internal.
func TestNoteNotificationNamesAuthor(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { noteNotificationNamesAuthor(t, newWorldOn(t, b.Open)) })
}

func noteNotificationNamesAuthor(t *testing.T, w *world) {
	w.mustSend(customer, []string{inbox}, customerMail("n1@example.com", "Delivery late", "Where is my parcel?"))
	got := w.expect("first mail", map[string]int{alice: 1, lena: 1})
	rcpt, raw := replyTo(to(got, alice)[0], alice, "#note called her, she is fine with the delay")
	w.mustSend(alice, []string{rcpt}, raw)
	got = w.expect("note", map[string]int{customer: 0, alice: 0, lena: 1})
	n := to(got, lena)[0]
	subj := n.Env.GetHeader("Subject")
	if !strings.Contains(subj, "Note from Alice Smith") || strings.Contains(subj, "Lena") {
		t.Errorf("note notification subject %q, want it from Alice Smith", subj)
	}
	if !strings.Contains(n.Env.Text, "Alice Smith added an internal note") || !strings.Contains(n.Env.Text, "called her, she is fine with the delay") {
		t.Errorf("note notification does not carry Alice's note:\n%s", n.Env.Text)
	}
	if strings.Contains(n.Env.Text, "answer the customer") {
		t.Errorf("note notification says a reply answers the customer:\n%s", n.Env.Text)
	}
	d := w.ticket(1)
	if !hasEvent(d, "note", "called her, she is fine with the delay") || hasEvent(d, "command.rejected", "") {
		t.Errorf("the one-line note is not a note: %+v", d.Events)
	}
	// Lena answering the note notification adds a note; nothing reaches
	// the customer.
	rcpt, raw = replyTo(n, lena, "Thanks, good to know.")
	w.mustSend(lena, []string{rcpt}, raw)
	w.expect("reply to the note", map[string]int{customer: 0})
}

// TestNudgeSaysTheInterval: the reminder says when we asked.
func TestNudgeSaysTheInterval(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { nudgeSaysTheInterval(t, newWorldOn(t, b.Open)) })
}

func nudgeSaysTheInterval(t *testing.T, w *world) {
	proposedTicket(t, w, "u1@example.com")
	w.advance(2 * 24 * time.Hour)
	got := w.expect("nudge", map[string]int{customer: 1})
	text := to(got, customer)[0].Env.Text
	if !strings.Contains(text, "We asked 2 days ago") || strings.Contains(text, "A few days ago") {
		t.Errorf("the nudge does not say the real interval:\n%s", text)
	}
}

// TestStrangerAcknowledgementOneTag: someone not on ticket #1 answers its
// acknowledgement; the new ticket's acknowledgement carries one tag, its
// own.
func TestStrangerAcknowledgementOneTag(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { strangerAcknowledgementOneTag(t, newWorldOn(t, b.Open)) })
}

func strangerAcknowledgementOneTag(t *testing.T, w *world) {
	w.mustSend(customer, []string{inbox}, customerMail("t1@example.com", "Printer jam", "The printer jams."))
	got := w.expect("first mail", map[string]int{customer: 1})
	subj := to(got, customer)[0].Env.GetHeader("Subject")
	const carol = "carol@other.example"
	raw := fmt.Sprintf("From: Carol <%s>\r\nTo: %s\r\nSubject: Re: %s\r\nMessage-ID: <t2@other.example>\r\n"+
		"Date: Mon, 2 Mar 2026 11:00:00 +0100\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nOurs jams too.\r\n", carol, inbox, subj)
	w.mustSend(carol, []string{inbox}, raw)
	got = w.expect("stranger", map[string]int{carol: 1})
	s := to(got, carol)[0].Env.GetHeader("Subject")
	if strings.Count(s, "[#") != 1 || !strings.Contains(s, "[#2]") || strings.Count(s, "Re:") > 1 {
		t.Errorf("the stranger's acknowledgement subject is %q, want one tag [#2] and one Re:", s)
	}
}

// TestAttachmentsListed: the acknowledgement and the agents' notification
// name what came attached.
func TestAttachmentsListed(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { attachmentsListed(t, newWorldOn(t, b.Open)) })
}

func attachmentsListed(t *testing.T, w *world) {
	raw := "From: Ann Example <" + customer + ">\r\nTo: " + inbox + "\r\nSubject: Invoice wrong\r\nMessage-ID: <a1@example.com>\r\n" +
		"Date: Mon, 2 Mar 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe invoice is wrong, see attached.\r\n" +
		"--b1\r\nContent-Type: application/pdf; name=\"invoice-881.pdf\"\r\nContent-Disposition: attachment; filename=\"invoice-881.pdf\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n"
	w.mustSend(customer, []string{inbox}, raw)
	got := w.expect("first mail", map[string]int{customer: 1, alice: 1})
	if text := to(got, customer)[0].Env.Text; !strings.Contains(text, "with 1 attachment (invoice-881.pdf)") {
		t.Errorf("the acknowledgement does not list the attachment:\n%s", text)
	}
	if text := to(got, alice)[0].Env.Text; !strings.Contains(text, "Attachments: invoice-881.pdf") {
		t.Errorf("the notification does not list the attachment:\n%s", text)
	}
}

// TestNotSolvedBanner: a customer's "no" reopens, and the agents'
// notification says so plainly.
func TestNotSolvedBanner(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { notSolvedBanner(t, newWorldOn(t, b.Open)) })
}

func notSolvedBanner(t *testing.T, w *world) {
	ask := proposedTicket(t, w, "b1@example.com")
	w.mustSend(customer, []string{inbox}, replyToUs(t, ask, "b2@example.com", "No, still broken."))
	got := w.expect("no", map[string]int{alice: 1})
	if text := to(got, alice)[0].Env.Text; !strings.Contains(text, "The customer says the problem is NOT solved") {
		t.Errorf("the notification lacks the not-solved line:\n%s", text)
	}
	if d := w.state("no", vocab.StateOpen); !hasEvent(d, "confirmation.answered", "not solved") {
		t.Errorf("the answer is not on the timeline: %+v", d.Events)
	}
}

// TestMergeTellsTheOtherCustomer: merging Bob's ticket into Ann's tells
// Bob, and the answer on Ann's ticket reaches him too.
func TestMergeTellsTheOtherCustomer(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { mergeTellsTheOtherCustomer(t, newWorldOn(t, b.Open)) })
}

func mergeTellsTheOtherCustomer(t *testing.T, w *world) {
	const bob = "bob@other.example"
	w.mustSend(customer, []string{inbox}, customerMail("mg1@example.com", "Outage", "Nothing loads."))
	first := w.expect("ann", map[string]int{customer: 1, alice: 1})
	raw := fmt.Sprintf("From: Bob <%s>\r\nTo: %s\r\nSubject: Site down?\r\nMessage-ID: <mg2@other.example>\r\n"+
		"Date: Mon, 2 Mar 2026 10:05:00 +0100\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYour site is down for us.\r\n", bob, inbox)
	w.mustSend(bob, []string{inbox}, raw)
	w.expect("bob", map[string]int{bob: 1})
	w.clock.Advance(time.Hour)
	if err := w.exec.Merge(context.Background(), 2, 1, lena); err != nil {
		t.Fatal(err)
	}
	w.settle()
	got := w.expect("merge", map[string]int{bob: 1, customer: 0})
	if text := to(got, bob)[0].Env.Text; !strings.Contains(text, "merged into #1") {
		t.Errorf("Bob's notice does not say where his request went:\n%s", text)
	}
	rcpt, reply := replyTo(to(first, alice)[0], alice, "The outage is over; sorry for the trouble.")
	w.mustSend(alice, []string{rcpt}, reply)
	w.expect("answer", map[string]int{customer: 1, bob: 1})
}

// TestMergeToldIsTrue: the timeline's line about the merged ticket's
// customer says what became of their notice. When the mail fuse holds it,
// it says so, the held notice waits on the surviving ticket (not on the
// redirect, where nobody could release it), and a lead's release sends it.
func TestMergeToldIsTrue(t *testing.T) {
	const bob = "bob@other.example"
	onBackends(t, func(t *testing.T, b storagetest.Backend) {
		for _, tc := range []struct {
			name string
			fuse int // follow_through.fuse_max_mails
			told string
		}{
			{"sent", 20, "is told (the notice is on its way)"},
			// Bob's acknowledgement and the two notifications are three
			// mails on #2 within the window: the notice is the fourth.
			{"held by the fuse", 3, "held by the mail fuse"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				w := newWorldOn(t, b.Open, func(o *followup.Options) { o.FuseMaxMails = tc.fuse })
				w.mustSend(customer, []string{inbox}, customerMail("mt1@example.com", "Outage", "Nothing loads."))
				raw := fmt.Sprintf("From: Bob <%s>\r\nTo: %s\r\nSubject: Site down?\r\nMessage-ID: <mt2@other.example>\r\n"+
					"Date: Mon, 2 Mar 2026 10:05:00 +0100\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYour site is down for us.\r\n", bob, inbox)
				w.mustSend(bob, []string{inbox}, raw)
				w.expect("bob", map[string]int{bob: 1})
				ctx := context.Background()
				if err := w.exec.Merge(ctx, 2, 1, lena); err != nil {
					t.Fatal(err)
				}
				w.settle()
				got := w.capture.take()
				d := w.ticket(1)
				var line string
				for _, e := range d.Events {
					if e.Kind == "merge.customer_told" {
						line = e.Detail
					}
				}
				if !strings.Contains(line, tc.told) {
					t.Fatalf("the timeline says %q, want %q", line, tc.told)
				}
				if tc.fuse == 20 {
					if len(to(got, bob)) != 1 {
						t.Errorf("bob got %d mails, want the notice", len(to(got, bob)))
					}
					return
				}
				if strings.Contains(line, "is told") || len(to(got, bob)) != 0 {
					t.Fatalf("held, yet the timeline says %q and bob got %d mails", line, len(to(got, bob)))
				}
				if d.MailHeldSince == nil {
					t.Error("the surviving ticket does not show the held mail")
				}
				if _, err := w.exec.ReleaseMail(ctx, 1, lena); err != nil {
					t.Fatal(err)
				}
				w.settle()
				out := to(w.capture.take(), bob)
				if len(out) != 1 || !strings.Contains(out[0].Env.Text, "merged into #1") {
					t.Errorf("after the release bob got %d mails, want the merge notice", len(out))
				}
			})
		}
	})
}
