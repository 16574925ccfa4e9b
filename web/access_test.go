package web

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestClientIP: X-Forwarded-For is believed only from a trusted proxy, and
// then only its rightmost hop that is not itself one of ours.
func TestClientIP(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []string
		peer    string
		xff     []string
		want    string
	}{
		{"no proxies: header ignored", nil, "203.0.113.9:4000", []string{"198.51.100.7"}, "203.0.113.9"},
		{"untrusted peer forging the header", []string{"10.0.0.0/8"}, "203.0.113.9:4000", []string{"198.51.100.7"}, "203.0.113.9"},
		{"trusted proxy, one hop", []string{"10.0.0.0/8"}, "10.1.2.3:4000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"trusted single address", []string{"10.1.2.3"}, "10.1.2.3:4000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"client-written hops left of the real one", []string{"10.0.0.0/8"}, "10.1.2.3:4000", []string{"1.1.1.1, 2.2.2.2, 198.51.100.7"}, "198.51.100.7"},
		{"two of our proxies", []string{"10.0.0.0/8"}, "10.1.2.3:4000", []string{"198.51.100.7, 10.9.9.9"}, "198.51.100.7"},
		{"header split over fields", []string{"10.0.0.0/8"}, "10.1.2.3:4000", []string{"6.6.6.6", "198.51.100.7"}, "198.51.100.7"},
		{"garbage hop stops the walk", []string{"10.0.0.0/8"}, "10.1.2.3:4000", []string{"198.51.100.7, not-an-ip"}, "10.1.2.3"},
		{"all hops trusted", []string{"10.0.0.0/8"}, "10.1.2.3:4000", []string{"10.4.4.4"}, "10.4.4.4"},
		{"trusted proxy, no header", []string{"10.0.0.0/8"}, "10.1.2.3:4000", nil, "10.1.2.3"},
		{"IPv6 proxy", []string{"2001:db8::/32"}, "[2001:db8::1]:4000", []string{"2001:db8:ffff::9, 198.51.100.7"}, "198.51.100.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(nil, Options{TrustedProxies: tc.trusted})
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodPost, "/login", nil)
			r.RemoteAddr = tc.peer
			for _, h := range tc.xff {
				r.Header.Add("X-Forwarded-For", h)
			}
			if got := s.clientIP(r); got != tc.want {
				t.Errorf("clientIP = %s, want %s", got, tc.want)
			}
		})
	}
	if _, err := New(nil, Options{TrustedProxies: []string{"10.0.0.300"}}); err == nil {
		t.Error("a bad trusted proxy was accepted")
	}
}

// loginFrom tries one login through the form with X-Forwarded-For set.
func loginFrom(b *browser, xff, email, pw string) int {
	b.t.Helper()
	b.get("/login")
	form := url.Values{"email": {email}, "password": {pw}, "csrf": {b.csrf}}
	req, err := http.NewRequest(http.MethodPost, b.base+"/login", strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Forwarded-For", xff)
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestTrustedProxiesLogin: behind the proxy (every connection comes from
// 127.0.0.1) one attacker hammering every lead's login throttles only
// himself. Without web.trusted_proxies taking effect, every request would
// count against 127.0.0.1 and the lead would be locked out.
func TestTrustedProxiesLogin(t *testing.T) {
	e := newEnv(t, "sqlite", func(o *Options) { o.TrustedProxies = []string{"127.0.0.1"} })
	ts := e.serve()
	attacker := newBrowser(t, ts.URL)
	const evil = "203.0.113.66"
	for _, acct := range []string{"lena@acme.test", "root@acme.test", "alice@acme.test"} {
		for range loginBurstAccount {
			if code := loginFrom(attacker, evil, acct, "guess"); code != http.StatusUnauthorized {
				t.Fatalf("attacker's guess on %s = %d, want 401", acct, code)
			}
		}
		if code := loginFrom(attacker, evil, acct, "guess"); code != http.StatusTooManyRequests {
			t.Fatalf("attacker's sixth guess on %s = %d, want 429", acct, code)
		}
	}
	// The attacker's own address ran out over all accounts too.
	for range loginBurstIP {
		loginFrom(attacker, evil, "nobody@acme.test", "guess")
	}
	if code := loginFrom(attacker, evil, "other@acme.test", "guess"); code != http.StatusTooManyRequests {
		t.Fatalf("attacker spraying accounts = %d, want 429", code)
	}
	lena := newBrowser(t, ts.URL)
	if code := loginFrom(lena, "198.51.100.7", "lena@acme.test", leadPW); code != http.StatusSeeOther {
		t.Fatalf("Lena from her own address, behind the proxy = %d, want 303", code)
	}
	ada := newBrowser(t, ts.URL)
	if code := loginFrom(ada, "198.51.100.8, 127.0.0.1", "root@acme.test", adminPW); code != http.StatusSeeOther {
		t.Fatalf("admin through two proxy hops = %d, want 303", code)
	}
}

// TestForgedForwardedFor: with no trusted proxy, a client rotating
// X-Forwarded-For is still one address and is throttled.
func TestForgedForwardedFor(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	ts := e.serve()
	b := newBrowser(t, ts.URL)
	for i := range loginBurstAccount {
		if code := loginFrom(b, fmt.Sprintf("198.51.100.%d", i+1), "lena@acme.test", "guess"); code != http.StatusUnauthorized {
			t.Fatalf("guess %d = %d", i, code)
		}
	}
	if code := loginFrom(b, "198.51.100.99", "lena@acme.test", leadPW); code != http.StatusTooManyRequests {
		t.Fatalf("forged new address = %d, want 429: the header was believed from an untrusted peer", code)
	}
}

// TestLoginLimiterPerAccount: the budget is per account and address; a
// right password from a throttled address works once the window passes.
func TestLoginLimiterPerAccount(t *testing.T) {
	clock := storagetest.NewFakeClock(t0)
	l := newLoginLimiter(clock)
	const a, b = "198.51.100.1", "198.51.100.2"
	for i := range loginBurstAccount {
		if !l.allow("lena@acme.test", a) {
			t.Fatalf("attempt %d refused", i+1)
		}
	}
	if l.allow("Lena@Acme.test ", a) {
		t.Fatal("sixth attempt on lena from a allowed (case and spaces must not reset the budget)")
	}
	if !l.allow("lena@acme.test", b) {
		t.Fatal("lena from another address refused: one attacker locks the account out")
	}
	if !l.allow("alice@acme.test", a) {
		t.Fatal("another account from a refused before the address's own budget ran out")
	}
	clock.Advance(loginEvery)
	if !l.allow("lena@acme.test", a) {
		t.Fatal("lena from a still refused after the window")
	}
	if l.allow("lena@acme.test", a) {
		t.Fatal("two attempts allowed in one window after the burst")
	}
	// A sweep forgets only full budgets: lena's from a is spent again.
	clock.Advance(11 * time.Minute)
	if !l.allow("lena@acme.test", a) {
		t.Fatal("refused after a long pause")
	}
}

// restrictAlice limits Alice to the billing inbox, as agents[].inboxes
// does through SyncAgents.
func restrictAlice(e *env) {
	e.t.Helper()
	if err := e.store.SyncAgents(e.ctx, []storage.AgentSpec{{Email: "alice@acme.test", Name: "Alice Agent", Role: storage.RoleAgent, Inboxes: []string{billing}}}); err != nil {
		e.t.Fatal(err)
	}
}

// accessTickets delivers one ticket to each inbox and returns their numbers
// and the row ids of their first messages.
func accessTickets(e *env) (sup, bill, pm int64, supMsg, billMsg, pmMsg int64) {
	d1 := e.deliver(mail("ann@example.com", "a1@example.com", "Support question", "Help."), support)
	d2 := e.deliver(mail("bob@example.com", "b1@example.com", "Billing question", "Invoice."), billing)
	d3 := e.deliver(mail("mailer@remote.example", "p1@example.com", "Abuse report", "Your host sent spam."), postmaster)
	return d1.Ticket, d2.Ticket, d3.Ticket, d1.MessageRowID, d2.MessageRowID, d3.MessageRowID
}

// TestAgentInboxesWeb: a restricted agent's queue lists only its inboxes'
// tickets, and every page and download of another inbox's ticket is 404;
// leads see all but the postmaster's, admins everything.
func TestAgentInboxesWeb(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	restrictAlice(e)
	sup, bill, pm, supMsg, billMsg, pmMsg := accessTickets(e)
	ts := e.serve()
	type page struct {
		path string
		want map[string]int // login -> status
	}
	alice, lena, ada := newBrowser(t, ts.URL), newBrowser(t, ts.URL), newBrowser(t, ts.URL)
	alice.login("alice@acme.test", agentPW)
	lena.login("lena@acme.test", leadPW)
	ada.login("root@acme.test", adminPW)
	who := map[string]*browser{"alice": alice, "lena": lena, "ada": ada}
	for _, p := range []page{
		{fmt.Sprintf("/tickets/%d", sup), map[string]int{"alice": 404, "lena": 200, "ada": 200}},
		{fmt.Sprintf("/tickets/%d", bill), map[string]int{"alice": 200, "lena": 200, "ada": 200}},
		{fmt.Sprintf("/tickets/%d", pm), map[string]int{"alice": 404, "lena": 404, "ada": 200}},
		{fmt.Sprintf("/tickets/%d/messages/%d/raw", sup, supMsg), map[string]int{"alice": 404, "lena": 200, "ada": 200}},
		{fmt.Sprintf("/tickets/%d/messages/%d/raw", bill, billMsg), map[string]int{"alice": 200, "lena": 200, "ada": 200}},
		{fmt.Sprintf("/tickets/%d/messages/%d/raw", pm, pmMsg), map[string]int{"alice": 404, "lena": 404, "ada": 200}},
		// A message of a hidden ticket under a visible ticket's number.
		{fmt.Sprintf("/tickets/%d/messages/%d/raw", bill, supMsg), map[string]int{"alice": 404, "lena": 404, "ada": 404}},
	} {
		for name, want := range p.want {
			if code, _ := who[name].get(p.path); code != want {
				t.Errorf("%s GET %s = %d, want %d", name, p.path, code, want)
			}
		}
	}
	for name, want := range map[string][]string{
		"alice": {"Billing question"},
		"lena":  {"Support question", "Billing question"},
		"ada":   {"Support question", "Billing question", "Abuse report"},
	} {
		_, body := who[name].get("/?state=all")
		for _, subj := range []string{"Support question", "Billing question", "Abuse report"} {
			if got := strings.Contains(body, subj); got != slices.Contains(want, subj) {
				t.Errorf("%s's queue lists %q: %v, want %v", name, subj, got, !got)
			}
		}
		if got := strings.Contains(body, "Postmaster"); got != (name == "ada") {
			t.Errorf("%s's queue offers the postmaster inbox filter: %v", name, got)
		}
	}
	// The inbox filter cannot widen a restriction.
	if _, body := alice.get("/?state=all&inbox=" + url.QueryEscape(support)); strings.Contains(body, "Support question") {
		t.Error("alice reaches the support inbox through the inbox filter")
	}
}

// apiGet calls the API with a bearer token and decodes the answer.
func apiGet(t *testing.T, base, tok, path string, out any) int {
	t.Helper()
	code, body := apiGetRaw(t, base, tok, path)
	if out != nil && code == http.StatusOK {
		if err := json.Unmarshal([]byte(body), out); err != nil {
			t.Fatal(err)
		}
	}
	return code
}

// apiGetRaw calls the API with a bearer token and returns the answer.
func apiGetRaw(t *testing.T, base, tok, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

// TestAgentInboxesAPI: an agent token named after a restricted agent
// lists and opens only that agent's inboxes; 404 for the rest.
func TestAgentInboxesAPI(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, backend, nil)
			restrictAlice(e)
			sup, bill, pm, supMsg, billMsg, pmMsg := accessTickets(e)
			ts := e.serve()
			token := func(name, role string) string {
				tok, err := e.store.CreateToken(e.ctx, name, role)
				if err != nil {
					t.Fatal(err)
				}
				return tok
			}
			toks := map[string]string{
				"alice": token("alice@acme.test", storage.RoleAgent),
				"ci":    token("ci", storage.RoleAgent),
				"lead":  token("dashboard", storage.RoleLead),
				"admin": token("ops", storage.RoleAdmin),
			}
			for name, want := range map[string][]int64{
				"alice": {bill},
				"ci":    {sup, bill},
				"lead":  {sup, bill},
				"admin": {sup, bill, pm},
			} {
				var list struct{ Tickets []TicketJSON }
				if code := apiGet(t, ts.URL, toks[name], "/api/tickets?state=all", &list); code != 200 {
					t.Fatalf("%s list = %d", name, code)
				}
				var got []int64
				for _, tk := range list.Tickets {
					got = append(got, tk.Number)
				}
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Errorf("%s lists %v, want %v", name, got, want)
				}
			}
			for _, tc := range []struct {
				path string
				want map[string]int
			}{
				{fmt.Sprintf("/api/tickets/%d", sup), map[string]int{"alice": 404, "ci": 200, "lead": 200, "admin": 200}},
				{fmt.Sprintf("/api/tickets/%d", bill), map[string]int{"alice": 200, "ci": 200, "lead": 200, "admin": 200}},
				{fmt.Sprintf("/api/tickets/%d", pm), map[string]int{"alice": 404, "ci": 404, "lead": 404, "admin": 200}},
				{fmt.Sprintf("/api/messages/%d", supMsg), map[string]int{"alice": 404, "ci": 200, "lead": 200, "admin": 200}},
				{fmt.Sprintf("/api/messages/%d", billMsg), map[string]int{"alice": 200, "ci": 200, "lead": 200, "admin": 200}},
				{fmt.Sprintf("/api/messages/%d", pmMsg), map[string]int{"alice": 404, "ci": 404, "lead": 404, "admin": 200}},
				{"/api/tickets?state=all&inbox=" + url.QueryEscape(support), map[string]int{"alice": 200}},
			} {
				for name, want := range tc.want {
					if code := apiGet(t, ts.URL, toks[name], tc.path, nil); code != want {
						t.Errorf("%s GET %s = %d, want %d", name, tc.path, code, want)
					}
				}
			}
			var list struct{ Tickets []TicketJSON }
			apiGet(t, ts.URL, toks["alice"], "/api/tickets?state=all&inbox="+url.QueryEscape(support), &list)
			if len(list.Tickets) != 0 {
				t.Errorf("alice lists %d support tickets through the inbox filter", len(list.Tickets))
			}
		})
	}
}

// TestMetricsToken: with a token, /metrics answers 401 without it.
func TestMetricsToken(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "tend_test_total", Help: "test"}))
	for _, tc := range []struct {
		name, token, auth string
		want              int
	}{
		{"open", "", "", 200},
		{"missing", "s3cret-token", "", 401},
		{"wrong", "s3cret-token", "Bearer s3cret-tokeX", 401},
		{"prefix", "s3cret-token", "Bearer s3cret", 401},
		{"right", "s3cret-token", "Bearer s3cret-token", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(nil, Options{Gatherer: reg, MetricsToken: tc.token})
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Fatalf("GET /metrics = %d, want %d", w.Code, tc.want)
			}
			if tc.want == 200 && !strings.Contains(w.Body.String(), "tend_test_total") {
				t.Fatal("metrics body lacks the registry's counter")
			}
		})
	}
}

// TestMetricsSeparate: with metrics on their own listener the main handler
// has no /metrics, and MetricsHandler serves it (with the token).
func TestMetricsSeparate(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(nil, Options{Gatherer: reg, MetricsSeparate: true, MetricsToken: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != http.StatusNotFound {
		t.Fatalf("main handler /metrics = %d, want 404", w.Code)
	}
	for auth, want := range map[string]int{"": 401, "Bearer tok": 200} {
		r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		s.MetricsHandler().ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("metrics handler with %q = %d, want %d", auth, w.Code, want)
		}
	}
	w = httptest.NewRecorder()
	s.MetricsHandler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/login", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("metrics listener serves /login: %d", w.Code)
	}
}

// TestProfiles: Go's profiles are served only with Options.Profiling, and
// then only with the metrics token: never open, even where /metrics is.
func TestProfiles(t *testing.T) {
	reg := prometheus.NewRegistry()
	for _, tc := range []struct {
		name      string
		profiling bool
		token     string
		separate  bool
		auth      string
		want      int
	}{
		{"off", false, "tok", false, "Bearer tok", 404},
		{"no token configured", true, "", false, "", 403},
		{"missing", true, "tok", false, "", 401},
		{"wrong", true, "tok", false, "Bearer toX", 401},
		{"right", true, "tok", false, "Bearer tok", 200},
		{"right, metrics listener", true, "tok", true, "Bearer tok", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(nil, Options{Gatherer: reg, MetricsToken: tc.token, Profiling: tc.profiling, MetricsSeparate: tc.separate})
			if err != nil {
				t.Fatal(err)
			}
			var h http.Handler = s
			if tc.separate {
				h = s.MetricsHandler()
			}
			for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1"} {
				r := httptest.NewRequest(http.MethodGet, path, nil)
				if tc.auth != "" {
					r.Header.Set("Authorization", tc.auth)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != tc.want {
					t.Fatalf("GET %s = %d, want %d", path, w.Code, tc.want)
				}
				if tc.want == 200 && !strings.Contains(w.Body.String(), "goroutine") {
					t.Fatalf("GET %s: no profile in %.200q", path, w.Body.String())
				}
			}
		})
	}
}

// TestPostmasterActions: a lead can neither act on a postmaster ticket nor
// merge another ticket into it; an admin can.
func TestPostmasterActions(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	sup, bill, pm, _, _, _ := accessTickets(e)
	ts := e.serve()
	lead, err := e.store.CreateToken(e.ctx, "dashboard", storage.RoleLead)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := e.store.CreateToken(e.ctx, "ops", storage.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := apiPost(t, ts.URL, lead, pm, `{"action":"resolve"}`); code != http.StatusNotFound {
		t.Errorf("lead resolves the postmaster ticket: %d, want 404", code)
	}
	if code, _ := apiPost(t, ts.URL, lead, sup, fmt.Sprintf(`{"action":"merge","into":%d}`, pm)); code != http.StatusBadRequest {
		t.Errorf("lead merges into the postmaster ticket: %d, want 400", code)
	}
	if code, _ := apiPost(t, ts.URL, admin, bill, fmt.Sprintf(`{"action":"merge","into":%d}`, pm)); code != http.StatusOK {
		t.Errorf("admin merges into the postmaster ticket: %d, want 200", code)
	}
	if calls := e.actions.Calls(); !slices.Equal(calls, []string{fmt.Sprintf("merge %d into %d by token:ops", bill, pm)}) {
		t.Errorf("actions called %v", calls)
	}
}
