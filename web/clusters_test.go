package web

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/tendhq/tend/storage"
)

// TestClustersAPIAndPage: three customers write about the same problem
// in their own words, one about another: /api/clusters has the three as
// one cluster with its headline, the cluster page lists them, and an
// agent restricted to billing sees no cluster and no cluster page.
func TestClustersAPIAndPage(t *testing.T) {
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, backend, nil)
			var same []int64
			for i, m := range []struct{ subject, body string }{
				{"Export CSV has broken umlauts", "When I export to CSV all umlauts like ä and ü come out as garbled characters in Excel."},
				{"CSV export shows strange characters", "The CSV export breaks special characters, umlauts appear as strange symbols in Excel."},
				{"Special characters garbled", "Exported CSV file has the wrong encoding: umlauts are garbled when opened in Excel."},
			} {
				same = append(same, e.deliver(mail(fmt.Sprintf("c%d@example.com", i), fmt.Sprintf("x%d@example.com", i), m.subject, m.body)).Ticket)
			}
			e.deliver(mail("other@example.com", "y@example.com", "Refund please", "I was charged twice for my subscription."))
			ts := e.serve()
			tok, err := e.store.CreateToken(e.ctx, "clusters", "lead")
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Clusters []clusterView `json:"clusters"`
			}
			if code := apiGet(t, ts.URL, tok, "/api/clusters", &got); code != http.StatusOK {
				t.Fatalf("GET /api/clusters = %d", code)
			}
			if len(got.Clusters) != 1 || !slices.Equal(got.Clusters[0].Tickets, same) || got.Clusters[0].Customers != 3 ||
				got.Clusters[0].Headline != "3 customers this week: Export CSV has broken umlauts" {
				t.Fatalf("clusters %+v, want one of %v", got.Clusters, same)
			}
			if code := apiGet(t, ts.URL, tok, "/api/clusters?inbox="+billing, &got); code != http.StatusOK || len(got.Clusters) != 0 {
				t.Errorf("billing clusters %d %+v", code, got.Clusters)
			}
			b := newBrowser(t, ts.URL)
			b.login("lena@acme.test", leadPW)
			code, page := b.get(fmt.Sprintf("/clusters/%d", same[0]))
			if code != http.StatusOK || !strings.Contains(page, "<h1>Export CSV has broken umlauts</h1>") || !strings.Contains(page, "3 tickets from 3 customers") {
				t.Errorf("cluster page %d:\n%s", code, page)
			}
			for _, n := range same {
				if !strings.Contains(page, fmt.Sprintf(`data-number="%d"`, n)) {
					t.Errorf("cluster page lacks #%d", n)
				}
			}
			if code, _ := b.get("/clusters/999999"); code != http.StatusNotFound {
				t.Errorf("unknown cluster: %d", code)
			}
			if code, _ := b.get("/clusters/x"); code != http.StatusNotFound {
				t.Errorf("malformed cluster: %d", code)
			}

			if err := e.store.SyncAgents(e.ctx, []storage.AgentSpec{{Email: "alice@acme.test", Name: "Alice Agent", Role: storage.RoleAgent, Inboxes: []string{billing}}}); err != nil {
				t.Fatal(err)
			}
			a := newBrowser(t, ts.URL)
			a.login("alice@acme.test", agentPW)
			if code, _ := a.get(fmt.Sprintf("/clusters/%d", same[0])); code != http.StatusNotFound {
				t.Errorf("a billing agent opened a support cluster: %d", code)
			}
		})
	}
}
