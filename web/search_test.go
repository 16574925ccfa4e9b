package web

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/tendhq/tend/storage"
)

// TestQueueSearch searches the queue and the API list on both databases:
// words of the subject, the body, the customer's name and address, with
// the state and inbox filters, in attention order, with the count.
func TestQueueSearch(t *testing.T) {
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, backend, nil)
			s := seedQueue(e)
			ts := e.serve()
			b := newBrowser(t, ts.URL)
			b.login("lena@acme.test", leadPW)
			for _, tc := range []struct {
				path string
				want []int64
				note string
			}{
				{"/?q=browsers", []int64{s.tom}, "1 ticket matches “browsers” in this view"},
				{"/?q=refund", []int64{s.breached, s.maria}, "2 tickets match “refund” in this view"},
				{"/?q=Archer", []int64{s.old}, "1 ticket matches"},
				{"/?q=" + url.QueryEscape("maria.keller@contoso.example"), []int64{s.maria}, "1 ticket matches"},
				{"/?q=" + url.QueryEscape(`"charged twice"`), []int64{s.maria}, "1 ticket matches"},
				{"/?q=" + url.QueryEscape(`"twice charged"`), nil, "0 tickets match"},
				{"/?q=pills", nil, "No ticket matches the search here; try all states."},
				{"/?q=pills&state=all", []int64{s.closed}, "1 ticket matches “pills”"},
				{"/?q=pills&state=closed", []int64{s.closed}, "1 ticket matches"},
				{"/?q=contoso&inbox=billing@acme.test", []int64{s.maria}, "1 ticket matches"},
				{"/?q=contoso&inbox=support@acme.test", nil, "0 tickets match"},
				{"/queue/live?q=browsers", []int64{s.tom}, "1 ticket matches"},
				{"/?q=" + url.QueryEscape(`" OR * NEAR( :* & !`), nil, "0 tickets match"},
			} {
				t.Run(tc.path, func(t *testing.T) {
					code, body := b.get(tc.path)
					if code != http.StatusOK {
						t.Fatalf("GET %s = %d", tc.path, code)
					}
					if got := queueRows(t, body); !slices.Equal(got, tc.want) {
						t.Errorf("rows = %v, want %v", got, tc.want)
					}
					if !strings.Contains(body, tc.note) {
						t.Errorf("page lacks %q", tc.note)
					}
				})
			}
			_, body := b.get("/?q=refund")
			for _, frag := range []string{
				`<label for="q">Search tickets</label>`, `value="refund"`,
				// The filters keep the search; the note clears it.
				`href="/?q=refund&amp;state=all"`, `<a href="/">clear search</a>`, `data-live-src="/queue/live?q=refund"`,
			} {
				if !strings.Contains(body, frag) {
					t.Errorf("search page lacks %q", frag)
				}
			}
			if code, _ := b.get("/?q=" + strings.Repeat("x", maxSearch+1)); code != http.StatusBadRequest {
				t.Errorf("an overlong search = %d, want 400", code)
			}

			tok, err := e.store.CreateToken(e.ctx, "dashboard", storage.RoleLead)
			if err != nil {
				t.Fatal(err)
			}
			for path, want := range map[string][]int64{
				"/api/tickets?q=refund":                            {s.breached, s.maria}, // attention order, as the queue
				"/api/tickets?q=pills":                             nil,
				"/api/tickets?q=pills&state=all":                   {s.closed},
				"/api/tickets?q=contoso&inbox=billing%40acme.test": {s.maria},
				"/api/tickets?q=" + url.QueryEscape(`"'\`):         nil,
			} {
				var list struct{ Tickets []TicketJSON }
				if code := apiGet(t, ts.URL, tok, path, &list); code != http.StatusOK {
					t.Fatalf("GET %s = %d", path, code)
				}
				var got []int64
				for _, tk := range list.Tickets {
					got = append(got, tk.Number)
				}
				if !slices.Equal(got, want) {
					t.Errorf("GET %s = %v, want %v", path, got, want)
				}
			}
			if code := apiGet(t, ts.URL, tok, "/api/tickets?q="+strings.Repeat("x", maxSearch+1), nil); code != http.StatusBadRequest {
				t.Errorf("an overlong API search = %d, want 400", code)
			}
			// The search pages like the list: the second page is the rest.
			var first struct {
				Tickets    []TicketJSON
				NextCursor string `json:"next_cursor"`
			}
			if code := apiGet(t, ts.URL, tok, "/api/tickets?q=refund&limit=1", &first); code != http.StatusOK || len(first.Tickets) != 1 || first.NextCursor == "" {
				t.Fatalf("first page of a search: %d %+v", code, first)
			}
			var second struct{ Tickets []TicketJSON }
			if code := apiGet(t, ts.URL, tok, "/api/tickets?q=refund&limit=1&cursor="+url.QueryEscape(first.NextCursor), &second); code != http.StatusOK ||
				len(second.Tickets) != 1 || second.Tickets[0].Number != s.maria {
				t.Errorf("a search with a cursor = %d %+v", code, second)
			}
		})
	}
}
