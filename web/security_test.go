package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// assertNoInlineCode fails when a page carries anything the CSP
// (script-src 'self'; style-src 'self') would block or that could run
// script: inline scripts, event handler or style attributes, style
// elements, javascript: URLs.
func assertNoInlineCode(t testing.TB, page string) {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatalf("parse page: %v", err)
	}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			hasSrc := false
			for _, a := range n.Attr {
				key := strings.ToLower(a.Key)
				val := strings.ToLower(strings.TrimSpace(a.Val))
				switch {
				case strings.HasPrefix(key, "on"):
					t.Errorf("<%s %s=%q>: event handler attribute", n.Data, a.Key, a.Val)
				case key == "style":
					t.Errorf("<%s style=%q>: inline style", n.Data, a.Val)
				case (key == "href" || key == "src" || key == "action") && strings.HasPrefix(val, "javascript:"):
					t.Errorf("<%s %s=%q>: javascript URL", n.Data, a.Key, a.Val)
				case key == "src":
					hasSrc = true
				}
			}
			if n.Data == "script" && (!hasSrc || n.FirstChild != nil) {
				t.Errorf("inline <script>")
			}
			if n.Data == "style" || n.Data == "iframe" || n.Data == "object" || n.Data == "embed" {
				t.Errorf("<%s> element in page", n.Data)
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
}

// TestPagesCSPClean renders every page with the seeded tickets (and the
// hostile one) and checks the headers and markup.
func TestPagesCSPClean(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	s := seedQueue(e)
	hostile := e.deliverFile("hostile_html.eml")
	ts := e.serve()
	b := newBrowser(t, ts.URL)
	_, login := b.get("/login")
	assertNoInlineCode(t, login)
	b.login("lena@acme.test", leadPW)
	paths := []string{"/", "/?state=all", "/queue/live"}
	for _, n := range []int64{s.old, s.breached, s.tom, s.ines, s.maria, hostile.Ticket} {
		paths = append(paths, fmt.Sprintf("/tickets/%d", n))
	}
	for _, p := range paths {
		t.Run(p, func(t *testing.T) {
			code, body, res := b.do(http.MethodGet, p, nil)
			if code != http.StatusOK {
				t.Fatalf("GET %s = %d", p, code)
			}
			for h, want := range map[string]string{
				"Content-Security-Policy": "script-src 'self'",
				"X-Content-Type-Options":  "nosniff",
				"X-Frame-Options":         "DENY",
				"Cache-Control":           "no-store",
			} {
				if !strings.Contains(res.Header.Get(h), want) {
					t.Errorf("%s: %q, want it to contain %q", h, res.Header.Get(h), want)
				}
			}
			assertNoInlineCode(t, body)
		})
	}
}

// TestCSRF: every state-changing request needs the token of its session.
func TestCSRF(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	n := e.deliver(mail("ann@example.com", "a@example.com", "Hi", "x")).Ticket
	ts := e.serve()
	b := newBrowser(t, ts.URL)
	b.login("lena@acme.test", leadPW)
	good := b.csrf
	other := newBrowser(t, ts.URL)
	other.login("root@acme.test", adminPW)
	action := fmt.Sprintf("/tickets/%d/actions", n)
	for _, tc := range []struct {
		name, path, csrf string
		want             int
	}{
		{"logout without token", "/logout", "", http.StatusForbidden},
		{"logout with a forged token", "/logout", "forged", http.StatusForbidden},
		{"action without token", action, "", http.StatusForbidden},
		{"action with another session's token", action, other.csrf, http.StatusForbidden},
		{"action with the token", action, good, http.StatusSeeOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, _ := b.do(http.MethodPost, tc.path, url.Values{"csrf": {tc.csrf}, "action": {"resolve"}})
			if code != tc.want {
				t.Errorf("POST %s = %d, want %d", tc.path, code, tc.want)
			}
		})
	}
	if calls := e.actions.Calls(); len(calls) != 1 {
		t.Errorf("actions ran %v, want exactly the one with the token", calls)
	}

	t.Run("login form", func(t *testing.T) {
		fresh := newBrowser(t, ts.URL)
		code, _, _ := fresh.do(http.MethodPost, "/login", url.Values{"csrf": {"guess"}, "email": {"lena@acme.test"}, "password": {leadPW}})
		if code != http.StatusForbidden {
			t.Errorf("login without the form's cookie = %d, want 403", code)
		}
	})
}

func TestCookies(t *testing.T) {
	for _, tc := range []struct {
		name   string
		base   string
		force  bool
		secure bool
	}{
		{"http", "http://127.0.0.1:8080", false, false},
		{"https base url", "https://support.acme.test", false, true},
		{"forced", "http://127.0.0.1:8080", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "sqlite", func(o *Options) { o.BaseURL, o.SecureCookies = tc.base, tc.force })
			ts := e.serve()
			b := newBrowser(t, ts.URL)
			b.get("/login")
			_, _, res := b.post("/login", url.Values{"email": {"lena@acme.test"}, "password": {leadPW}})
			var found bool
			for _, c := range res.Cookies() {
				if c.Name != sessionCookie {
					continue
				}
				found = true
				if c.Secure != tc.secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.MaxAge != int(sessionTTL/time.Second) {
					t.Errorf("session cookie %+v: want Secure=%v, HttpOnly, SameSite=Lax, MaxAge=%v", c, tc.secure, sessionTTL)
				}
			}
			if !found {
				t.Fatal("no session cookie set")
			}
		})
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	ts := e.serve()
	b := newBrowser(t, ts.URL)
	try := func(pw string) int {
		b.get("/login")
		code, _, _ := b.post("/login", url.Values{"email": {"lena@acme.test"}, "password": {pw}})
		return code
	}
	for i := range 5 {
		if code := try("wrong"); code != http.StatusUnauthorized {
			t.Fatalf("attempt %d = %d, want 401", i+1, code)
		}
	}
	if code := try(leadPW); code != http.StatusTooManyRequests {
		t.Fatalf("sixth attempt, right password = %d, want 429", code)
	}
	e.clock.Advance(10 * time.Second)
	if code := try(leadPW); code != http.StatusSeeOther {
		t.Fatalf("after waiting = %d, want 303", code)
	}
}

func TestSessionExpiryAndLogout(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	ts := e.serve()
	redirected := func(b *browser, path string) bool {
		code, _, res := b.do(http.MethodGet, path, nil)
		return code == http.StatusSeeOther && res.Header.Get("Location") == "/login"
	}

	t.Run("expiry", func(t *testing.T) {
		b := newBrowser(t, ts.URL)
		b.login("lena@acme.test", leadPW)
		e.clock.Advance(sessionTTL - time.Minute)
		if redirected(b, "/") {
			t.Fatal("session ended before its time")
		}
		e.clock.Advance(2 * time.Minute)
		if !redirected(b, "/") || !redirected(b, "/queue/live") {
			t.Fatal("expired session still works")
		}
	})

	t.Run("logout", func(t *testing.T) {
		b := newBrowser(t, ts.URL)
		b.login("lena@acme.test", leadPW)
		u, _ := url.Parse(ts.URL)
		var old *http.Cookie
		for _, c := range b.c.Jar.Cookies(u) {
			if c.Name == sessionCookie {
				old = c
			}
		}
		code, _, res := b.post("/logout", url.Values{})
		if code != http.StatusSeeOther || res.Header.Get("Location") != "/login" {
			t.Fatalf("logout = %d -> %q", code, res.Header.Get("Location"))
		}
		if !redirected(b, "/") {
			t.Error("still logged in after logout")
		}
		// The cookie's value is dead on the server, not only in this
		// browser.
		thief := newBrowser(t, ts.URL)
		thief.c.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: old.Value}})
		if !redirected(thief, "/") {
			t.Error("a copied cookie works after logout")
		}
	})
}

func TestAPIAuth(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	ts := e.serve()
	tok, err := e.store.CreateToken(e.ctx, "ci", "agent")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"none", "", http.StatusUnauthorized},
		{"basic", "Basic Zm9vOmJhcg==", http.StatusUnauthorized},
		{"forged", "Bearer tend_forged", http.StatusUnauthorized},
		{"valid", "Bearer " + tok, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/tickets", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tc.want {
				t.Errorf("status %d, want %d", res.StatusCode, tc.want)
			}
		})
	}
}
