package followup_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// humanMail is a person's mail from a webmail client: nothing automatic
// about it but the words of its subject.
func humanMail(from, msgID, subject, body string) string {
	return fmt.Sprintf("From: %s\r\nTo: Acme Support <%s>\r\nSubject: %s\r\nMessage-ID: <%s>\r\n"+
		"Date: Mon, 2 Mar 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"+
		"Content-Transfer-Encoding: 7bit\r\nUser-Agent: Roundcube Webmail/1.6.9\r\n\r\n%s\r\n", from, inbox, subject, msgID, body)
}

// TestHumanMailWithMachineSubjectsIsAnswered sends, through the SMTP door
// and the whole follow-through on both backends, mail people write whose
// subjects sound like bounces, vacation notices or list traffic, from
// ordinary addresses with no report structure. Each must open a ticket
// and be acknowledged: a subject alone is no evidence of a machine, and a
// customer stored on no ticket is a customer nobody answers.
func TestHumanMailWithMachineSubjectsIsAnswered(t *testing.T) {
	subjects := []string{
		"Delivery status of my order?",
		"Undeliverable package - please help",
		"Mail delivery failed for my invoice? Please check",
		"Returned mail: how do I send a product back?",
		"Failure notice on my card payment",
		"Delivery has failed - where is my parcel",
		"Non-delivery of my order #5521",
		"Out of office question",
		"Question about your automatic reply feature",
		"Auto-reply keeps sending me your newsletter",
		"Vacation reply settings do not save",
		"Unsubscribe me please",
		"Please remove me from your mailing list",
		"Complaint about message from your sales team",
		"Abwesenheitsnotiz einrichten - wie geht das?",
	}
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			w := newWorldOn(t, b.Open)
			for i, subj := range subjects {
				from := fmt.Sprintf("person%d@example.org", i)
				w.mustSend(from, []string{inbox}, humanMail("Pat Person <"+from+">", fmt.Sprintf("h%d@mail.example.org", i), subj,
					"Hello, I have a question about this. Thanks, Pat"))
				acks := to(w.capture.take(), from)
				if len(acks) != 1 {
					t.Errorf("%q: %d acknowledgements, want 1", subj, len(acks))
				}
				rows, _, err := w.store.ListTickets(context.Background(), storage.TicketFilter{State: "all", Limit: 500})
				if err != nil {
					t.Fatal(err)
				}
				var number int64
				for _, r := range rows {
					if r.Customer == from {
						number = r.Number
					}
				}
				if number == 0 {
					t.Errorf("%q: no ticket for %s: the mail was stored on no ticket", subj, from)
					continue
				}
				if d := w.ticket(number); len(d.Messages) == 0 || d.Messages[0].Class != "human" {
					t.Errorf("%q: ticket #%d: first message not classified human (%d messages)", subj, number, len(d.Messages))
				}
			}
		})
	}
}

// TestSuppressHeaderReachesTheGate: X-Auto-Response-Suppress: All on a
// person's mail (Exchange and Outlook set it on mail that must not be
// answered automatically) opens a ticket and tells the agents, but gets no
// acknowledgement, and the timeline says why.
func TestSuppressHeaderReachesTheGate(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			w := newWorldOn(t, b.Open)
			raw := strings.Replace(customerMail("s1@example.com", "Printer offline", "The printer is offline."),
				"\r\n\r\n", "\r\nX-Auto-Response-Suppress: All\r\n\r\n", 1)
			w.mustSend(customer, []string{inbox}, raw)
			got := w.capture.take()
			if n := len(to(got, customer)); n != 0 {
				t.Errorf("customer got %d automatic mails despite X-Auto-Response-Suppress: All", n)
			}
			if n := len(to(got, alice)); n == 0 {
				t.Error("the agents were not told about the new ticket")
			}
			d := w.ticket(1)
			why := ""
			for _, e := range d.Events {
				if e.Kind == "mail.suppressed" {
					why = e.Detail
				}
			}
			if !strings.Contains(why, "X-Auto-Response-Suppress") {
				t.Errorf("timeline does not say why the acknowledgement was held: %q", why)
			}
		})
	}
}
