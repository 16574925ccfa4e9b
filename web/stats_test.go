package web

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/vocab"
)

// TestStatsAPIAndPage: the figures of a few tickets with known times, as
// JSON (with the key shape), as CSV and on the page, with the
// filters; an agent restricted to one inbox sees only its figures.
func TestStatsAPIAndPage(t *testing.T) {
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, backend, nil)
			// Three support tickets, one billing ticket, at t0 (09:00).
			for i := 1; i <= 4; i++ {
				inbox := support
				if i == 4 {
					inbox = billing
				}
				e.deliver(mail(fmt.Sprintf("c%d@example.com", i), fmt.Sprintf("s%d@example.com", i), fmt.Sprintf("Help %d", i), "Hello."), inbox)
			}
			// Answered after 10 min, 20 min, 3 h; ticket 4 not yet.
			update := func(n int64, at time.Duration, u storage.TicketUpdate) {
				t.Helper()
				e.clock.Set(t0.Add(at))
				if err := e.store.InTx(e.ctx, func(tx *storage.Tx) error { return tx.UpdateTicket(e.ctx, n, u) }); err != nil {
					t.Fatal(err)
				}
			}
			answered := func(d time.Duration) *time.Time { at := t0.Add(d); return &at }
			state := func(s vocab.State) *vocab.State { return &s }
			yes := true
			update(1, 0, storage.TicketUpdate{FirstResponseAt: answered(10 * time.Minute)})
			update(2, 0, storage.TicketUpdate{FirstResponseAt: answered(20 * time.Minute), Breached: &yes})
			update(3, 0, storage.TicketUpdate{FirstResponseAt: answered(3 * time.Hour), RepeatContacts: 2})
			update(1, 2*time.Hour, storage.TicketUpdate{State: state(vocab.StateResolved)})
			update(2, 5*24*time.Hour, storage.TicketUpdate{State: state(vocab.StateUnconfirmed)})
			e.clock.Set(t0)
			e.clock.Advance(24 * time.Hour)
			ts := e.serve()
			tok, err := e.store.CreateToken(e.ctx, "stats", "lead")
			if err != nil {
				t.Fatal(err)
			}
			get := func(path string) (int, string) { return apiGetRaw(t, ts.URL, tok, path) }
			var rep struct {
				Tickets       int
				FirstResponse struct {
					MedianS float64 `json:"median_s"`
					P90S    float64 `json:"p90_s"`
					Count   int
				} `json:"first_response"`
				Resolved, Unconfirmed, Breaches int
				RepeatContacts                  int     `json:"repeat_contacts"`
				ConfirmedRate                   float64 `json:"confirmed_resolution_rate"`
				ByInbox                         []struct {
					Key     string
					Tickets int
				} `json:"by_inbox"`
				Daily []struct{ Date string } `json:"daily"`
			}
			code, body := get("/api/stats")
			if code != http.StatusOK {
				t.Fatalf("GET /api/stats = %d: %s", code, body)
			}
			if err := json.Unmarshal([]byte(body), &rep); err != nil {
				t.Fatal(err)
			}
			if rep.Tickets != 4 || rep.FirstResponse.Count != 3 || rep.FirstResponse.MedianS != 1200 || rep.FirstResponse.P90S != 3*3600 ||
				rep.Resolved != 1 || rep.Unconfirmed != 1 || rep.ConfirmedRate != 0.5 || rep.Breaches != 1 || rep.RepeatContacts != 2 {
				t.Errorf("report %+v\n%s", rep, body)
			}
			if len(rep.ByInbox) != 2 || rep.ByInbox[0].Key != billing || rep.ByInbox[0].Tickets != 1 {
				t.Errorf("by inbox %+v", rep.ByInbox)
			}
			if len(rep.Daily) != 31 { // the last 30 days from 09:00 touch 31 dates
				t.Errorf("%d days", len(rep.Daily))
			}
			day := t0.Format(time.DateOnly)
			for _, tt := range []struct {
				q       string
				code    int
				tickets int
			}{
				{"?inbox=" + billing, 200, 1},
				{"?from=" + day + "&to=" + day, 200, 4},
				{"?to=" + t0.Add(-24*time.Hour).Format(time.DateOnly), 200, 0},
				{"?agent=nobody@acme.test", 200, 0},
				{"?from=" + t0.Format(time.RFC3339) + "&to=" + t0.Add(time.Minute).Format(time.RFC3339), 200, 4},
				{"?from=yesterday", 400, 0},
				{"?from=2026-03-05&to=2026-03-01", 400, 0},
				{"?from=2020-01-01&to=2026-03-01", 400, 0},
			} {
				code, body := get("/api/stats" + tt.q)
				if code != tt.code {
					t.Errorf("%s: %d, want %d: %s", tt.q, code, tt.code, body)
					continue
				}
				var r struct{ Tickets int }
				_ = json.Unmarshal([]byte(body), &r)
				if code == 200 && r.Tickets != tt.tickets {
					t.Errorf("%s: %d tickets, want %d", tt.q, r.Tickets, tt.tickets)
				}
			}

			code, body = get("/api/stats?format=csv")
			records, err := csv.NewReader(strings.NewReader(body)).ReadAll()
			if code != 200 || err != nil || len(records) < 4 || records[0][0] != "group" || records[1][0] != "total" || records[1][3] != "4" {
				t.Errorf("CSV %d %v:\n%s", code, err, body)
			}

			b := newBrowser(t, ts.URL)
			b.login("lena@acme.test", leadPW)
			code, page := b.get("/stats")
			if code != 200 || !strings.Contains(page, `<h1>Stats</h1>`) || !strings.Contains(page, `id="f-tickets">4<`) ||
				!strings.Contains(page, `id="f-first-median">20 min<`) || !strings.Contains(page, `<svg class="chart"`) || !strings.Contains(page, "Acme Billing") {
				t.Errorf("GET /stats = %d:\n%s", code, page)
			}
			if code, csvPage := b.get("/stats?format=csv&inbox=" + billing); code != 200 || !strings.HasPrefix(csvPage, "group,") {
				t.Errorf("GET /stats CSV = %d:\n%s", code, csvPage)
			}

			// Alice may see support only: billing's ticket is not in her
			// figures.
			if err := e.store.SyncAgents(e.ctx, []storage.AgentSpec{{Email: "alice@acme.test", Name: "Alice Agent", Role: storage.RoleAgent, Inboxes: []string{support}}}); err != nil {
				t.Fatal(err)
			}
			a := newBrowser(t, ts.URL)
			a.login("alice@acme.test", agentPW)
			if code, page := a.get("/stats"); code != 200 || !strings.Contains(page, `id="f-tickets">3<`) {
				t.Errorf("alice's /stats = %d:\n%s", code, page)
			}
		})
	}
}
