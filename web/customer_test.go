package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// fakeLinks verifies the tokens "<purpose>.<ticket>" and nothing else.
type fakeLinks map[string]int64

func (f fakeLinks) VerifyLinkToken(token string, _ time.Time) (string, int64, error) {
	n, ok := f[token]
	if !ok {
		return "", 0, errors.New("bad token")
	}
	purpose, _, _ := strings.Cut(token, ".")
	return purpose, n, nil
}

// TestCustomerPagesNameTicket: the pages behind the customer's links name
// the company (web.company, else the inbox's name), the ticket and its
// subject, before and after the button, and say what the button answers.
func TestCustomerPagesNameTicket(t *testing.T) {
	for _, tc := range []struct {
		company, want string
	}{
		{"", "Acme Support"}, // the inbox's display name
		{"Acme Widgets Ltd", "Acme Widgets Ltd"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			var ticket int64
			e := newEnv(t, "sqlite", func(o *Options) {
				o.Company = tc.company
				o.Links = fakeLinks{"solved.1": 1, "not_solved.1": 1, "rate_4.1": 1, "bogus.1": 1}
				o.Confirm = func(_ context.Context, tok string) (int64, string, error) {
					if tok == "solved.1" {
						return ticket, "yes", nil
					}
					return 0, "", errors.New("bad token")
				}
				o.Rate = func(_ context.Context, tok, _ string) (int64, int, error) {
					if tok == "rate_4.1" {
						return ticket, 4, nil
					}
					return 0, 0, errors.New("bad token")
				}
			})
			ticket = e.deliver(mail("ann@example.com", "c1@example.com", "Export <stuck> at 99%", "It hangs.")).Ticket
			ts := e.serve()
			b := newBrowser(t, ts.URL)
			has := func(what, body string, frags ...string) {
				t.Helper()
				for _, f := range frags {
					if !strings.Contains(body, f) {
						t.Errorf("%s lacks %q:\n%s", what, f, body)
					}
				}
			}
			named := []string{`<p class="company" id="company">` + tc.want + `</p>`, "Ticket #1: “Export &lt;stuck&gt; at 99%”", "<title>" + tc.want + " · tend</title>"}
			for _, p := range []struct {
				path  string
				frags []string
			}{
				{"/confirm?t=solved.1", []string{"<h1>Is your problem solved?</h1>", "Yes, it is solved"}},
				{"/confirm?t=not_solved.1", []string{"<h1>Still not solved?</h1>", "No, it is not solved yet"}},
				{"/rate?t=rate_4.1", []string{"<h1>How did we do?</h1>", "Your rating: 4 out of 5.", `<label for="comment">`}},
			} {
				code, body := b.get(p.path)
				if code != http.StatusOK {
					t.Errorf("GET %s = %d", p.path, code)
				}
				has("GET "+p.path, body, append(p.frags, named...)...)
			}
			code, body, _ := b.post("/confirm", url.Values{"t": {"solved.1"}})
			if code != http.StatusOK {
				t.Errorf("POST /confirm = %d", code)
			}
			has("POST /confirm", body, append(named, "marked ticket #1 as solved")...)
			code, body, _ = b.post("/rate", url.Values{"t": {"rate_4.1"}})
			if code != http.StatusOK {
				t.Errorf("POST /rate = %d", code)
			}
			has("POST /rate", body, append(named, "4 out of 5")...)

			// A forged link, or one issued for something else, is refused
			// on sight, with a heading.
			for _, path := range []string{"/confirm?t=forged", "/rate?t=forged", "/confirm?t=rate_4.1", "/rate?t=bogus.1"} {
				code, body := b.get(path)
				if code != http.StatusForbidden || !strings.Contains(body, "<h1>This link has expired</h1>") || strings.Contains(body, "<form") {
					t.Errorf("GET %s = %d:\n%s", path, code, body)
				}
			}
		})
	}
}
