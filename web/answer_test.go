package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// answers records what the web hands on.
type answers struct {
	mu  sync.Mutex
	got []Answer
}

func (a *answers) take(_ context.Context, x Answer) error {
	a.mu.Lock()
	a.got = append(a.got, x)
	a.mu.Unlock()
	return nil
}

func (a *answers) all() []Answer {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Answer(nil), a.got...)
}

func answerPost(t *testing.T, url, token, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestAnswerAPI: who may reply or note through the API, and what reaches
// the writer.
func TestAnswerAPI(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var got answers
			e := newEnv(t, backend, func(o *Options) { o.Answer = got.take })
			restrictAlice(e)
			sup := e.deliver(mail("ann@example.com", "an1@example.com", "Printer", "help")).Ticket
			bill := e.deliver(mail("bob@example.com", "an2@example.com", "Invoice", "wrong"), billing).Ticket
			ts := e.serve()
			tok := func(name, role string) string {
				s, err := e.store.CreateToken(e.ctx, name, role)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			lena, alice, bot := tok("lena@acme.test", "lead"), tok("alice@acme.test", "agent"), tok("dashboard", "lead")
			for _, tc := range []struct {
				name, path, token, body string
				want                    int
			}{
				{"lead replies", "/api/tickets/" + itoa(sup) + "/reply", lena, `{"text":"Hi Ann\n#resolve","in_reply_to":"an1@example.com"}`, http.StatusAccepted},
				{"agent notes on a ticket she sees", "/api/tickets/" + itoa(bill) + "/note", alice, `{"text":"checking"}`, http.StatusAccepted},
				{"agent cannot answer a ticket she cannot see", "/api/tickets/" + itoa(sup) + "/reply", alice, `{"text":"hi"}`, http.StatusNotFound},
				{"token named after no agent", "/api/tickets/" + itoa(sup) + "/reply", bot, `{"text":"hi"}`, http.StatusForbidden},
				{"empty text", "/api/tickets/" + itoa(sup) + "/reply", lena, `{"text":"  \n"}`, http.StatusBadRequest},
				{"unknown field", "/api/tickets/" + itoa(sup) + "/reply", lena, `{"text":"x","to":"evil@example.com"}`, http.StatusBadRequest},
				{"no such ticket", "/api/tickets/9999/reply", lena, `{"text":"x"}`, http.StatusNotFound},
			} {
				t.Run(tc.name, func(t *testing.T) {
					if code := answerPost(t, ts.URL+tc.path, tc.token, tc.body); code != tc.want {
						t.Fatalf("status %d, want %d", code, tc.want)
					}
				})
			}
			all := got.all()
			if len(all) != 2 {
				t.Fatalf("writer got %d answers, want 2: %+v", len(all), all)
			}
			if a := all[0]; a.Ticket != sup || a.Agent.Email != "lena@acme.test" || a.Agent.ID == 0 || a.Note || a.Text != "Hi Ann\n#resolve" || a.InReplyTo != "an1@example.com" || a.Inbox != support || a.Subject != "Printer" {
				t.Errorf("reply handed on as %+v", a)
			}
			if a := all[1]; a.Ticket != bill || !a.Note || a.Agent.Email != "alice@acme.test" || a.Inbox != billing {
				t.Errorf("note handed on as %+v", a)
			}
		})
	}
}

// TestAnswerForm: the ticket page's form, with its CSRF token; without a
// writer there is no form and the API says 501.
func TestAnswerForm(t *testing.T) {
	var got answers
	e := newEnv(t, "sqlite", func(o *Options) { o.Answer = got.take })
	n := e.deliver(mail("ann@example.com", "af1@example.com", "Printer", "help")).Ticket
	ts := e.serve()
	b := newBrowser(t, ts.URL)
	b.login("alice@acme.test", agentPW)
	code, body := b.get("/tickets/" + itoa(n))
	if code != http.StatusOK || !strings.Contains(body, `id="answer-form"`) || !strings.Contains(body, `name="seen" value="af1@example.com"`) {
		t.Fatalf("ticket page: %d, form or seen missing", code)
	}
	if code, _, _ := b.post("/tickets/"+itoa(n)+"/note", url.Values{"text": {"check the toner"}, "seen": {"af1@example.com"}, "csrf": {"forged"}}); code != http.StatusForbidden {
		t.Fatalf("forged CSRF: %d", code)
	}
	code, _, res := b.post("/tickets/"+itoa(n)+"/note", url.Values{"text": {"check the toner"}, "seen": {"af1@example.com"}})
	if code != http.StatusSeeOther || res.Header.Get("Location") != "/tickets/"+itoa(n)+"?done=note" {
		t.Fatalf("note: %d %s", code, res.Header.Get("Location"))
	}
	if _, body := b.get("/tickets/" + itoa(n) + "?done=note"); !strings.Contains(body, "Note added") {
		t.Error("no confirmation after the note")
	}
	code, body, _ = b.post("/tickets/"+itoa(n)+"/reply", url.Values{"text": {" "}})
	if code != http.StatusBadRequest || !strings.Contains(body, "the text is empty") {
		t.Fatalf("empty reply: %d", code)
	}
	if all := got.all(); len(all) != 1 || !all[0].Note || all[0].Agent.Email != "alice@acme.test" || all[0].InReplyTo != "af1@example.com" {
		t.Fatalf("answers %+v", all)
	}

	bare := newEnv(t, "sqlite", nil)
	m := bare.deliver(mail("ann@example.com", "af2@example.com", "Printer", "help")).Ticket
	bts := bare.serve()
	bb := newBrowser(t, bts.URL)
	bb.login("lena@acme.test", leadPW)
	if _, body := bb.get("/tickets/" + itoa(m)); strings.Contains(body, `id="answer-form"`) {
		t.Error("a form without a writer")
	}
	tok, _ := bare.store.CreateToken(bare.ctx, "lena@acme.test", "lead")
	if code := answerPost(t, bts.URL+"/api/tickets/"+itoa(m)+"/reply", tok, `{"text":"x"}`); code != http.StatusNotImplemented {
		t.Fatalf("API without a writer: %d", code)
	}
}
