package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRateLinks: following a rating link (as a mail scanner does) changes
// nothing; the button does, with the comment; a bad token is refused; the
// ticket's score is in the API, and the aggregate figure too.
func TestRateLinks(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	e := newEnv(t, "sqlite", func(o *Options) {
		o.Rate = func(_ context.Context, token, comment string) (int64, int, error) {
			mu.Lock()
			defer mu.Unlock()
			if token != "good" {
				return 0, 0, errors.New("bad token")
			}
			calls = append(calls, token+":"+comment)
			return 1, 4, nil
		}
	})
	d := e.deliver(mail("ann@example.com", "r1@example.com", "Export stuck", "It hangs."))
	e.setTicket(d.Ticket, "state = 'resolved', satisfaction_asked_at = created_at, satisfaction_score = 4, satisfaction_comment = 'quick'")
	ts := e.serve()
	b := newBrowser(t, ts.URL)

	code, body := b.get("/rate?t=good")
	if code != http.StatusOK || !strings.Contains(body, `<form method="post" action="/rate"`) {
		t.Fatalf("GET /rate = %d:\n%s", code, body)
	}
	if len(calls) != 0 {
		t.Fatalf("GET rated: %v", calls)
	}
	code, body, _ = b.post("/rate", url.Values{"t": {"good"}, "comment": {"quick <b>and</b> kind"}})
	if code != http.StatusOK || !strings.Contains(body, "4 out of 5") {
		t.Errorf("POST /rate = %d:\n%s", code, body)
	}
	if len(calls) != 1 || calls[0] != "good:quick <b>and</b> kind" {
		t.Errorf("calls %v", calls)
	}
	if code, _, _ := b.post("/rate", url.Values{"t": {"forged"}}); code != http.StatusForbidden {
		t.Errorf("forged token: %d", code)
	}

	tok, err := e.store.CreateToken(e.ctx, "stats", "lead")
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string, v any) {
		if code := apiGet(t, ts.URL, tok, path, v); code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, code)
		}
	}
	var tj TicketJSON
	get("/api/tickets/1", &tj)
	if tj.Satisfaction == nil || tj.Satisfaction.Score != 4 || tj.Satisfaction.Comment != "quick" {
		t.Errorf("ticket JSON satisfaction %+v", tj.Satisfaction)
	}
	var st struct {
		Asked, Rated int
		Average      float64
		ByScore      map[string]int `json:"by_score"`
	}
	get("/api/stats/satisfaction", &st)
	if st.Asked != 1 || st.Rated != 1 || st.Average != 4 || st.ByScore["4"] != 1 {
		t.Errorf("stats %+v", st)
	}

	reg := prometheus.NewRegistry()
	RegisterSatisfaction(reg, e.store)
	text, err := testutil.GatherAndCount(reg, "tend_satisfaction_ratings", "tend_satisfaction_asked")
	if err != nil || text != 6 {
		t.Fatalf("gathered %d series, %v", text, err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`# HELP tend_satisfaction_asked Tickets on which the satisfaction question was asked.
# TYPE tend_satisfaction_asked gauge
tend_satisfaction_asked 1
`), "tend_satisfaction_asked"); err != nil {
		t.Error(err)
	}
}
