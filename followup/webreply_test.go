package followup_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/mail/webreply"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

// webWriter is the web view's writer on w's ingest path.
func webWriter(t *testing.T, w *world) *webreply.Writer {
	t.Helper()
	wr, err := webreply.New(webreply.Options{Deliverer: w.pipe, Domain: domain, Clock: w.clock})
	if err != nil {
		t.Fatal(err)
	}
	return wr
}

// agentRow is the stored agent with that address.
func agentRow(t *testing.T, w *world, email string) storage.Agent {
	t.Helper()
	as, err := w.store.Agents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if a.Email == email {
			return a
		}
	}
	t.Fatalf("no agent %s", email)
	return storage.Agent{}
}

func eventKinds(d storage.TicketDetail) []string {
	var out []string
	for _, e := range d.Events {
		out = append(out, string(e.Kind))
	}
	return out
}

// TestWebAnswerTakesTheMailPath: a reply written in the web view reaches
// the customer from the support address through the outbox and the
// relay, its commands run as from mail (#resolve asks the customer to
// confirm), and a note stays internal.
func TestWebAnswerTakesTheMailPath(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) {
		w := newWorldOn(t, b.Open)
		w.mustSend(customer, []string{inbox}, customerMail("wq1@example.com", "Printer on fire", "The printer in room 4 is on fire."))
		w.capture.take()
		wr := webWriter(t, w)
		ctx := context.Background()
		newest := w.ticket(1).Messages[len(w.ticket(1).Messages)-1].MessageID

		// An internal note: nothing to the customer.
		if _, err := wr.Write(ctx, webreply.Request{Ticket: 1, Inbox: inbox, Subject: "Printer on fire", Agent: agentRow(t, w, alice),
			Text: "Facilities are on their way.", Note: true, InReplyTo: newest}); err != nil {
			t.Fatal(err)
		}
		w.settle()
		if got := to(w.capture.take(), customer); len(got) != 0 {
			t.Fatalf("a note reached the customer: %d mails", len(got))
		}
		d := w.ticket(1)
		if !slices.ContainsFunc(d.Events, func(e storage.Event) bool {
			return e.Kind == "note" && e.Actor == alice && strings.Contains(e.Detail, "Facilities are on their way.")
		}) {
			t.Fatalf("no note on the timeline: %v", eventKinds(d))
		}

		// A reply with a command.
		w.clock.Advance(time.Minute)
		if _, err := wr.Write(ctx, webreply.Request{Ticket: 1, Inbox: inbox, Subject: "Printer on fire", Agent: agentRow(t, w, alice),
			Text: "Hi Ann, we put it out and replaced the toner.\n\n#resolve", InReplyTo: newest}); err != nil {
			t.Fatal(err)
		}
		w.settle()
		out := to(w.capture.take(), customer)
		var reply *captured
		for i := range out {
			if strings.Contains(out[i].Env.Text, "we put it out") {
				reply = &out[i]
			}
		}
		if reply == nil {
			t.Fatalf("the web reply never reached the relay: %d mails to the customer", len(out))
		}
		if from := reply.Env.GetHeader("From"); !strings.Contains(from, inbox) || strings.Contains(from, alice) {
			t.Errorf("reply From %q: want the support address, no agent address", from)
		}
		if strings.Contains(reply.Env.Text, "#resolve") {
			t.Errorf("the command reached the customer: %q", reply.Env.Text)
		}
		if strings.Contains(reply.Env.GetHeader("In-Reply-To"), "web.") {
			t.Errorf("the customer's mail references the web's internal Message-ID: %q", reply.Env.GetHeader("In-Reply-To"))
		}
		d = w.ticket(1)
		if d.State != vocab.StateProposed {
			t.Errorf("state after #resolve from the web = %s, want proposed (events %v)", d.State, eventKinds(d))
		}
		if d.LastAgentAt == nil {
			t.Error("the answer is not recorded on the ticket")
		}
	})
}

// TestWebAnswerCollision: a web reply written before another agent's
// answer (the page showed an older message) is held, as a mail reply
// would be; one written after seeing it goes out.
func TestWebAnswerCollision(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) {
		w := newWorldOn(t, b.Open)
		w.mustSend(customer, []string{inbox}, customerMail("wc1@example.com", "Invoice", "The invoice is wrong."))
		notes := to(w.capture.take(), alice)
		wr := webWriter(t, w)
		ctx := context.Background()
		seenByLena := w.ticket(1).Messages[len(w.ticket(1).Messages)-1].MessageID

		// Alice answers by mail.
		w.clock.Advance(10 * time.Minute)
		rcpt, raw := replyTo(notes[0], alice, "Hi Ann, a corrected invoice is attached.")
		w.mustSend(alice, []string{rcpt}, raw)
		w.capture.take()

		// Lena, on a page that did not show Alice's answer yet, replies too.
		w.clock.Advance(10 * time.Minute)
		if _, err := wr.Write(ctx, webreply.Request{Ticket: 1, Inbox: inbox, Subject: "Invoice", Agent: agentRow(t, w, lena),
			Text: "Hi Ann, we are looking into it.", InReplyTo: seenByLena}); err != nil {
			t.Fatal(err)
		}
		w.settle()
		if got := to(w.capture.take(), customer); len(got) != 0 {
			t.Fatalf("the colliding web reply was sent: %d mails", len(got))
		}
		d := w.ticket(1)
		if !slices.Contains(eventKinds(d), "reply.held") {
			t.Fatalf("no reply.held: %v", eventKinds(d))
		}

		// Having seen Alice's answer (the page now shows it), Lena's next
		// reply goes out.
		msgs := w.ticket(1).Messages
		seen := msgs[len(msgs)-1].MessageID
		w.clock.Advance(time.Minute)
		if _, err := wr.Write(ctx, webreply.Request{Ticket: 1, Inbox: inbox, Subject: "Invoice", Agent: agentRow(t, w, lena),
			Text: "Hi Ann, one more thing: the credit note follows.", InReplyTo: seen}); err != nil {
			t.Fatal(err)
		}
		w.settle()
		if got := to(w.capture.take(), customer); len(got) != 1 {
			t.Fatalf("reply after seeing the other answer: %d mails to the customer, want 1", len(got))
		}
	})
}
