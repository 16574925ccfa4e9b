package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/tendhq/tend/storage"
)

func TestActionsForm(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	n := e.deliver(mail("ann@example.com", "a1@example.com", "Printer on fire", "x")).Ticket
	other := e.deliver(mail("bob@example.com", "b1@example.com", "Printer on fire too", "y")).Ticket
	ts := e.serve()
	lead := newBrowser(t, ts.URL)
	lead.login("lena@acme.test", leadPW)
	agent := newBrowser(t, ts.URL)
	agent.login("alice@acme.test", agentPW)
	admin := newBrowser(t, ts.URL)
	admin.login("root@acme.test", adminPW)

	page := fmt.Sprintf("/tickets/%d", n)
	if _, body := lead.get(page); !strings.Contains(body, `id="resolve"`) || !strings.Contains(body, `id="close-form"`) || !strings.Contains(body, "alice@acme.test</option>") {
		t.Fatal("a lead does not see the actions")
	}
	if _, body := agent.get(page); strings.Contains(body, `id="actions"`) {
		t.Fatal("an agent sees the actions")
	}

	path := page + "/actions"
	for _, tc := range []struct {
		name string
		b    *browser
		form url.Values
		code int
		call string // what Actions must have been asked, "" for nothing
		page string // what the page must say (on an error)
	}{
		{"agent may not", agent, url.Values{"action": {"resolve"}}, http.StatusForbidden, "", ""},
		{"resolve", lead, url.Values{"action": {"resolve"}}, http.StatusSeeOther, fmt.Sprintf("resolve %d by lena@acme.test", n), ""},
		{"reopen by an admin", admin, url.Values{"action": {"reopen"}}, http.StatusSeeOther, fmt.Sprintf("reopen %d by root@acme.test", n), ""},
		{"assign", lead, url.Values{"action": {"assign"}, "agent": {"Alice@Acme.test"}}, http.StatusSeeOther, fmt.Sprintf("assign %d to alice@acme.test by lena@acme.test", n), ""},
		{"assign a stranger", lead, url.Values{"action": {"assign"}, "agent": {"eve@evil.example"}}, http.StatusBadRequest, "", "no agent &#34;eve@evil.example&#34;"},
		{"close as spam", lead, url.Values{"action": {"close"}, "reason": {"spam"}}, http.StatusSeeOther, fmt.Sprintf("close %d (spam) by lena@acme.test", n), ""},
		{"close as duplicate", lead, url.Values{"action": {"close"}, "reason": {"duplicate"}, "duplicate": {fmt.Sprintf("#%d", other)}}, http.StatusSeeOther,
			fmt.Sprintf("close %d (duplicate of #%d) by lena@acme.test", n, other), ""},
		{"duplicate of itself", lead, url.Values{"action": {"close"}, "reason": {"duplicate"}, "duplicate": {fmt.Sprint(n)}}, http.StatusBadRequest, "", "a ticket cannot duplicate itself"},
		{"duplicate of nothing", lead, url.Values{"action": {"close"}, "reason": {"duplicate"}, "duplicate": {"999"}}, http.StatusBadRequest, "", "there is no ticket #999"},
		{"duplicate without number", lead, url.Values{"action": {"close"}, "reason": {"duplicate"}}, http.StatusBadRequest, "", "needs the number"},
		{"unknown reason", lead, url.Values{"action": {"close"}, "reason": {"boredom"}}, http.StatusBadRequest, "", "close reason must be"},
		{"unknown action", lead, url.Values{"action": {"delete"}}, http.StatusBadRequest, "", "unknown action"},
		{"merge", lead, url.Values{"action": {"merge"}, "into": {fmt.Sprintf("#%d", other)}}, http.StatusSeeOther, fmt.Sprintf("merge %d into %d by lena@acme.test", n, other), ""},
		{"release held mail", lead, url.Values{"action": {"release_mail"}}, http.StatusSeeOther, fmt.Sprintf("release mail of %d by lena@acme.test", n), ""},
		{"merge into nothing", lead, url.Values{"action": {"merge"}, "into": {"999"}}, http.StatusBadRequest, "", "there is no ticket #999"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.actions.Calls())
			code, body, res := tc.b.post(path, tc.form)
			if code != tc.code {
				t.Fatalf("POST = %d, want %d\n%s", code, tc.code, body)
			}
			calls := e.actions.Calls()[before:]
			if tc.call == "" && len(calls) != 0 || tc.call != "" && !slices.Equal(calls, []string{tc.call}) {
				t.Errorf("actions called %v, want %q", calls, tc.call)
			}
			if code == http.StatusSeeOther {
				loc := res.Header.Get("Location")
				want := page
				if tc.form.Get("action") == "merge" {
					want = fmt.Sprintf("/tickets/%d", other)
				}
				if loc != want+"?done="+tc.form.Get("action") {
					t.Errorf("redirect to %q", loc)
				}
				if _, body := tc.b.get(loc); !strings.Contains(body, `id="flash"`) {
					t.Error("no confirmation after the action")
				}
			}
			if tc.page != "" && !strings.Contains(body, tc.page) {
				t.Errorf("page lacks %q", tc.page)
			}
		})
	}

	t.Run("not allowed in state", func(t *testing.T) {
		e.actions.fail(fmt.Errorf("resolve closed ticket: %w", ErrNotAllowed))
		defer e.actions.fail(nil)
		code, body, _ := lead.post(path, url.Values{"action": {"resolve"}})
		if code != http.StatusConflict || !strings.Contains(body, "not possible in the ticket&#39;s current state") {
			t.Errorf("POST = %d\n%s", code, body)
		}
	})

	t.Run("executor failure", func(t *testing.T) {
		e.actions.fail(errors.New("database on fire"))
		defer e.actions.fail(nil)
		code, body, _ := lead.post(path, url.Values{"action": {"resolve"}})
		if code != http.StatusInternalServerError || strings.Contains(body, "on fire") {
			t.Errorf("POST = %d %q: want 500 without the cause", code, body)
		}
	})

	t.Run("split", func(t *testing.T) {
		d, err := e.store.GetTicket(e.ctx, other)
		if err != nil {
			t.Fatal(err)
		}
		split := fmt.Sprintf("/tickets/%d/messages/%d/split", other, d.Messages[0].ID)
		if code, _, _ := agent.post(split, url.Values{}); code != http.StatusForbidden {
			t.Errorf("agent split: %d, want 403", code)
		}
		if code, _, _ := lead.post(fmt.Sprintf("/tickets/%d/messages/%d/split", n, d.Messages[0].ID), url.Values{}); code != http.StatusNotFound {
			t.Errorf("split of another ticket's message: %d, want 404", code)
		}
		before := len(e.actions.Calls())
		code, _, res := lead.post(split, url.Values{})
		if code != http.StatusSeeOther || res.Header.Get("Location") != "/tickets/99" {
			t.Errorf("split: %d to %q", code, res.Header.Get("Location"))
		}
		if calls := e.actions.Calls()[before:]; !slices.Equal(calls, []string{fmt.Sprintf("split message %d by lena@acme.test", d.Messages[0].ID)}) {
			t.Errorf("actions called %v", calls)
		}
	})

	t.Run("unknown ticket", func(t *testing.T) {
		code, _, _ := lead.post("/tickets/999/actions", url.Values{"action": {"resolve"}})
		if code != http.StatusNotFound {
			t.Errorf("POST = %d, want 404", code)
		}
	})
}

func TestActionsAbsent(t *testing.T) {
	e := newEnv(t, "sqlite", func(o *Options) { o.Actions = nil })
	n := e.deliver(mail("ann@example.com", "a1@example.com", "Hello", "x")).Ticket
	ts := e.serve()
	lead := newBrowser(t, ts.URL)
	lead.login("lena@acme.test", leadPW)
	if _, body := lead.get(fmt.Sprintf("/tickets/%d", n)); strings.Contains(body, `id="actions"`) {
		t.Error("buttons shown without Actions")
	}
	if code, _, _ := lead.post(fmt.Sprintf("/tickets/%d/actions", n), url.Values{"action": {"resolve"}}); code != http.StatusNotImplemented {
		t.Errorf("form POST = %d, want 501", code)
	}
	tok, _ := e.store.CreateToken(e.ctx, "lead", storage.RoleLead)
	if code, _ := apiPost(t, ts.URL, tok, n, `{"action":"resolve"}`); code != http.StatusNotImplemented {
		t.Errorf("API POST = %d, want 501", code)
	}
}

func apiPost(t *testing.T, base, token string, n int64, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/api/tickets/%d/state", base, n), strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatalf("response is not JSON: %v", err)
	}
	return res.StatusCode, out
}

func TestActionsAPI(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	n := e.deliver(mail("ann@example.com", "a1@example.com", "Hello", "x")).Ticket
	dup := e.deliver(mail("ann@example.com", "a2@example.com", "Hello again", "x")).Ticket
	ts := e.serve()
	tokens := map[string]string{}
	for _, role := range []string{storage.RoleAgent, storage.RoleLead, storage.RoleAdmin} {
		tok, err := e.store.CreateToken(e.ctx, role+"-bot", role)
		if err != nil {
			t.Fatal(err)
		}
		tokens[role] = tok
	}
	for _, tc := range []struct {
		name, token, body string
		ticket            int64
		code              int
		call, state       string
	}{
		{"no token", "", `{"action":"resolve"}`, n, http.StatusUnauthorized, "", ""},
		{"agent token", tokens["agent"], `{"action":"resolve"}`, n, http.StatusForbidden, "", ""},
		{"resolve", tokens["lead"], `{"action":"resolve"}`, n, http.StatusOK, fmt.Sprintf("resolve %d by token:lead-bot", n), "proposed"},
		{"reopen by admin", tokens["admin"], `{"action":"reopen"}`, n, http.StatusOK, fmt.Sprintf("reopen %d by token:admin-bot", n), "open"},
		{"close duplicate", tokens["lead"], fmt.Sprintf(`{"action":"close","reason":"duplicate of #%d"}`, dup), n, http.StatusOK,
			fmt.Sprintf("close %d (duplicate of #%d) by token:lead-bot", n, dup), "closed"},
		{"close no response", tokens["lead"], `{"action":"close","reason":"No Response"}`, dup, http.StatusOK, fmt.Sprintf("close %d (no response) by token:lead-bot", dup), "closed"},
		{"close without reason", tokens["lead"], `{"action":"close"}`, n, http.StatusBadRequest, "", ""},
		{"assign", tokens["lead"], `{"action":"assign","agent":"alice@acme.test"}`, n, http.StatusOK, fmt.Sprintf("assign %d to alice@acme.test by token:lead-bot", n), "closed"},
		{"assign nobody", tokens["lead"], `{"action":"assign"}`, n, http.StatusBadRequest, "", ""},
		{"unknown field", tokens["lead"], `{"action":"resolve","force":true}`, n, http.StatusBadRequest, "", ""},
		{"not json", tokens["lead"], `action=resolve`, n, http.StatusBadRequest, "", ""},
		{"unknown ticket", tokens["lead"], `{"action":"resolve"}`, 999, http.StatusNotFound, "", ""},
		{"merge into itself", tokens["lead"], fmt.Sprintf(`{"action":"merge","into":%d}`, n), n, http.StatusBadRequest, "", ""},
		{"merge into nothing", tokens["lead"], `{"action":"merge","into":999}`, n, http.StatusBadRequest, "", ""},
		{"merge", tokens["lead"], fmt.Sprintf(`{"action":"merge","into":%d}`, n), dup, http.StatusOK, fmt.Sprintf("merge %d into %d by token:lead-bot", dup, n), "closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.actions.Calls())
			code, out := apiPost(t, ts.URL, tc.token, tc.ticket, tc.body)
			if code != tc.code {
				t.Fatalf("status %d %v, want %d", code, out, tc.code)
			}
			calls := e.actions.Calls()[before:]
			if tc.call == "" && len(calls) != 0 || tc.call != "" && !slices.Equal(calls, []string{tc.call}) {
				t.Errorf("actions called %v, want %q", calls, tc.call)
			}
			if code == http.StatusOK && (out["state"] != tc.state || out["number"] != float64(tc.ticket)) {
				t.Errorf("response %v, want state %q", out, tc.state)
			}
			if code != http.StatusOK && out["error"] == nil {
				t.Errorf("error response without an error: %v", out)
			}
		})
	}
}

func TestCloseReason(t *testing.T) {
	for _, tc := range []struct {
		reason string
		dup    int64
		want   string
		wantN  int64
		ok     bool
	}{
		{"spam", 0, "spam", 0, true},
		{" SPAM ", 0, "spam", 0, true},
		{"no response", 0, "no response", 0, true},
		{"no-response", 0, "no response", 0, true},
		{"duplicate", 12, "duplicate of #12", 12, true},
		{"duplicate of #12", 0, "duplicate of #12", 12, true},
		{"Duplicate #7", 0, "duplicate of #7", 7, true},
		{"duplicate of 7", 7, "duplicate of #7", 7, true},
		{"duplicate of #7", 8, "", 0, false},
		{"duplicate", 0, "", 0, false},
		{"duplicate of #0", 0, "", 0, false},
		{"duplicate of #-3", 0, "", 0, false},
		{"duplicate of #x", 0, "", 0, false},
		{"duplicates", 0, "", 0, false},
		{"", 0, "", 0, false},
		{"resolved", 0, "", 0, false},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			got, n, err := closeReason(tc.reason, tc.dup)
			if (err == nil) != tc.ok || got != tc.want || n != tc.wantN {
				t.Errorf("closeReason(%q, %d) = %q, %d, %v", tc.reason, tc.dup, got, n, err)
			}
		})
	}
}

// A ticket whose mail fuse tripped says so on its page and in the API, and
// a lead can release its held mail from either.
func TestMailHeldShownAndReleased(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	n := e.deliver(mail("ann@example.com", "h1@example.com", "Loop", "x")).Ticket
	e.setTicket(n, "mail_held_since = updated_at")
	ts := e.serve()
	lead := newBrowser(t, ts.URL)
	lead.login("lena@acme.test", leadPW)
	page := fmt.Sprintf("/tickets/%d", n)
	if _, body := lead.get(page); !strings.Contains(body, "mail held since") || !strings.Contains(body, `id="release-mail"`) {
		t.Fatalf("the page does not show the held mail and its release:\n%s", body)
	}
	tok, err := e.store.CreateToken(e.ctx, "lead-bot", storage.RoleLead)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/tickets/%d", ts.URL, n), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	err = json.NewDecoder(res.Body).Decode(&got)
	res.Body.Close()
	if err != nil || got["mail_held_since"] == nil {
		t.Fatalf("API ticket lacks mail_held_since: %v %v", got, err)
	}
	code, out := apiPost(t, ts.URL, tok, n, `{"action":"release_mail"}`)
	if code != http.StatusOK || out["mail_held_since"] != nil {
		t.Fatalf("API release = %d %v", code, out)
	}
	if _, body := lead.get(page); strings.Contains(body, `id="release-mail"`) {
		t.Error("the release button stays after the release")
	}
}
