package followup_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/followup"
	"github.com/tendhq/tend/rules"
	"github.com/tendhq/tend/storage/storagetest"
)

// mailFrom is a first message from a customer of the given address.
func mailFrom(from, msgID, subject, body string) string {
	return fmt.Sprintf("From: %s\r\nTo: Acme Support <%s>\r\nSubject: %s\r\nMessage-ID: <%s>\r\n"+
		"Date: Mon, 2 Mar 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n", from, inbox, subject, msgID, body)
}

// withPolicy sets the inbox's language and calendar and detects languages.
func withPolicy(t *testing.T, lang, zone, hours string, holidays ...string) func(*followup.Options) {
	t.Helper()
	cal, err := rules.NewCalendar(zone, hours, holidays)
	if err != nil {
		t.Fatal(err)
	}
	return func(o *followup.Options) {
		o.Inboxes = map[string]followup.InboxPolicy{inbox: {Language: lang, Calendar: cal}}
		o.Detector = followup.NewDetector()
	}
}

// TestAcknowledgementInCustomerLanguage: each customer is acknowledged in
// the language of their first message; one the detector cannot place is
// answered in the inbox's language; later notices follow the ticket's
// language.
func TestAcknowledgementInCustomerLanguage(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) {
		w := newWorldOn(t, b.Open, withPolicy(t, "de", "", ""))
		cases := []struct{ lang, from, subject, body, want string }{
			{"en", "eve@example.com", "Export stuck", "Hi, my export has been stuck since yesterday and I need the report.", "A person will answer within 4 hours."},
			{"de", "dora@example.de", "Export hängt", "Hallo, mein Export hängt seit gestern und ich brauche den Bericht.", "Ein Mensch antwortet Ihnen innerhalb von 4 Stunden."},
			{"fr", "fleur@example.fr", "Export bloqué", "Bonjour, mon export est bloqué depuis hier et j'ai besoin du rapport.", "Une personne vous répondra sous 4 heures."},
			{"es", "sol@example.es", "Exportación bloqueada", "Hola, mi exportación está bloqueada desde ayer y necesito el informe.", "Una persona le responderá en un plazo de 4 horas."},
			{"pt", "joao@example.pt", "Exportação travada", "Olá, minha exportação está travada desde ontem e preciso do relatório.", "Uma pessoa vai responder em até 4 horas."},
			{"nl", "noor@example.nl", "Export loopt vast", "Hallo, mijn export loopt sinds gisteren vast en ik heb het rapport nodig.", "Een medewerker antwoordt binnen 4 uur."},
			{"de (inbox fallback)", "x@example.com", "??", "+1", "Ein Mensch antwortet Ihnen innerhalb von 4 Stunden."},
		}
		for i, c := range cases {
			w.clock.Advance(time.Minute)
			w.mustSend(c.from, []string{inbox}, mailFrom(c.from, fmt.Sprintf("lang%d@example.com", i), c.subject, c.body))
			acks := to(w.capture.take(), c.from)
			if len(acks) != 1 {
				t.Fatalf("%s: %d acknowledgements", c.lang, len(acks))
			}
			if !strings.Contains(acks[0].Env.Text, c.want) {
				t.Errorf("%s acknowledgement lacks %q:\n%s", c.lang, c.want, acks[0].Env.Text)
			}
			t.Logf("acknowledgement (%s):\nSubject: %s\n%s", c.lang, acks[0].Env.GetHeader("Subject"), acks[0].Env.Text)
		}
		if d := w.ticket(3); d.Language != "fr" {
			t.Errorf("ticket 3 language %q, want fr", d.Language)
		}
		// Later notices follow the ticket's language.
		if err := w.exec.Resolve(context.Background(), 3, lena); err != nil {
			t.Fatal(err)
		}
		w.settle()
		got := to(w.capture.take(), "fleur@example.fr")
		if len(got) != 1 || !strings.Contains(got[0].Env.GetHeader("Subject"), "Est-ce résolu ?") || !strings.Contains(got[0].Env.Text, "Répondez OUI") {
			t.Errorf("confirmation request not in French: %+v", got)
		}
		// The nudge says when we asked, in French too.
		w.advance(2 * 24 * time.Hour)
		got = to(w.capture.take(), "fleur@example.fr")
		if len(got) != 1 || !strings.Contains(got[0].Env.Text, "Nous vous avons demandé il y a 2 jours si") {
			t.Errorf("the French nudge does not say when we asked: %+v", got)
		}
	})
}

// TestPromiseInBusinessHours: with business hours the acknowledgement
// promises a local time that skips the weekend (and holidays), and the
// breach comes then, not four clock hours later.
func TestPromiseInBusinessHours(t *testing.T) {
	for _, c := range []struct {
		name     string
		holidays []string
		promise  string
		due      time.Time
	}{
		{"weekend", nil, "by Monday 11:00 CET", time.Date(2026, 3, 9, 10, 0, 0, 0, time.UTC)},
		{"holiday monday", []string{"2026-03-09"}, "by Tuesday 11:00 CET", time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)},
	} {
		t.Run(c.name, func(t *testing.T) {
			onBackends(t, func(t *testing.T, b storagetest.Backend) {
				w := newWorldOn(t, b.Open, withPolicy(t, "en", "Europe/Berlin", "Mon-Fri 09:00-17:00", c.holidays...))
				w.clock.Set(time.Date(2026, 3, 6, 14, 0, 0, 0, time.UTC)) // Friday 15:00 CET
				w.mustSend(customer, []string{inbox}, customerMail("bh1@example.com", "Export stuck", "My export has been stuck since yesterday."))
				ack := to(w.expect("ack", map[string]int{customer: 1}), customer)[0]
				if !strings.Contains(ack.Env.Text, "A person will answer "+c.promise+".") {
					t.Errorf("promise not %q:\n%s", c.promise, ack.Env.Text)
				}
				w.advance(c.due.Sub(w.clock.Now()) - time.Minute)
				w.expect("before the promise", map[string]int{alice: 0, lena: 0})
				if d := w.ticket(1); d.Breached {
					t.Fatal("breached before the promised time")
				}
				w.advance(time.Minute)
				w.expect("promise broken", map[string]int{alice: 1, lena: 1}) // lena once, though on two rules' lists
				if d := w.ticket(1); !d.Breached {
					t.Error("not breached at the promised time")
				}
			})
		})
	}
}
