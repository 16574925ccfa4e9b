package web

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
)

// TestVocabularyOutput holds the pages and the JSON API to the strings
// they showed before the vocabulary was typed (the API contract in the
// README): states, message classes and event kinds appear as the words
// below, spelled out here on purpose, on both backends.
func TestVocabularyOutput(t *testing.T) {
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, backend, nil)
			d := e.deliver("Auto-Submitted: auto-replied\n" + mail("ooo@customer.example", "ooo-1@customer.example", "Out of office", "I am away until Monday."))
			e.clock.Advance(time.Minute)
			e.exec(fmt.Sprintf("INSERT INTO events (ticket_id, kind, actor, detail, created_at) VALUES (%d, 'ticket.reopened', '', 'resolved → open (lead)', '%s')",
				d.Ticket, e.clock.Now().UTC().Format("2006-01-02 15:04:05.999999999-07:00")))
			e.setTicket(d.Ticket, "state = 'proposed'")

			ts := e.serve()
			b := newBrowser(t, ts.URL)
			b.login("lena@acme.test", leadPW)
			_, page := b.get(fmt.Sprintf("/tickets/%d", d.Ticket))
			_, queue := b.get("/?" + url.Values{"state": {"proposed"}}.Encode())
			tok, err := e.store.CreateToken(e.ctx, "contract", storage.RoleLead)
			if err != nil {
				t.Fatal(err)
			}
			code, one := apiGetRaw(t, ts.URL, tok, fmt.Sprintf("/api/tickets/%d", d.Ticket))
			if code != 200 {
				t.Fatalf("API ticket = %d %s", code, one)
			}
			code, list := apiGetRaw(t, ts.URL, tok, "/api/tickets?state=proposed")
			if code != 200 {
				t.Fatalf("API list = %d %s", code, list)
			}

			for _, c := range []struct{ where, body, want string }{
				{"ticket page", page, `<span class="state s-proposed" id="state">proposed</span>`},
				{"ticket page", page, `<span class="tag warn">auto-reply</span>`},
				{"ticket page", page, `<div class="event k-ticket.created">`},
				{"ticket page", page, `<span class="kind">ticket.reopened</span>`},
				{"queue", queue, `<span class="state s-proposed">proposed</span>`},
				{"queue", queue, `class="on" aria-current="page">proposed</a>`},
				{"API ticket", one, `"state": "proposed"`},
				{"API ticket", one, `"class": "auto-reply"`},
				{"API ticket", one, `"kind": "ticket.created"`},
				{"API ticket", one, `"kind": "ticket.reopened"`},
				{"API list", list, `"state": "proposed"`},
			} {
				if !strings.Contains(c.body, c.want) {
					t.Errorf("%s lacks %s", c.where, c.want)
				}
			}
		})
	}
}
