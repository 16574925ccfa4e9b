package web

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/tendhq/tend/internal/fuzzseed"
	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
)

// urlAttrs are the attributes a browser follows or loads as a URL.
var urlAttrs = map[string]bool{"href": true, "src": true, "action": true, "formaction": true, "cite": true, "background": true,
	"poster": true, "xlink:href": true, "longdesc": true, "srcset": true, "data": true, "codebase": true, "ping": true, "lowsrc": true, "dynsrc": true}

// unsafeHTML names what a browser would run in html, or "". It reads html
// as a browser's tokenizer does: entities decoded, and URLs with the
// spaces and control characters a browser strips taken out.
func unsafeHTML(s string) string {
	z := html.NewTokenizer(strings.NewReader(s))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return ""
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			tok := z.Token()
			switch tok.Data {
			case "script", "iframe", "object", "embed", "frame", "frameset", "base", "meta", "link", "form", "style", "svg", "math":
				return "<" + tok.Data + ">"
			}
			for _, a := range tok.Attr {
				k := strings.ToLower(a.Key)
				if strings.HasPrefix(k, "on") || k == "style" || k == "srcdoc" {
					return "attribute " + a.Key
				}
				if !urlAttrs[k] {
					continue
				}
				v := strings.ToLower(strings.Map(func(r rune) rune {
					if r <= ' ' {
						return -1
					}
					return r
				}, a.Val))
				for _, scheme := range []string{"javascript:", "vbscript:", "livescript:", "data:text/html", "data:image/svg"} {
					if strings.Contains(v, scheme) {
						return a.Key + "=" + a.Val
					}
				}
			}
		}
	}
}

// FuzzSanitize: mail HTML, once through the policy the ticket page uses,
// never holds a script, an event handler, an inline style or a script URL,
// and sanitising the output again leaves it safe too.
func FuzzSanitize(f *testing.F) {
	for _, raw := range append(fuzzseed.Files(f, "testdata/*.eml"), fuzzseed.Corpus(f, corpusDir, 25)...) {
		if p := ingest.Parse(raw); p.HTML != "" {
			f.Add(p.HTML)
		}
	}
	for _, s := range []string{`<script>alert(1)</script>`, `<img src=x onerror=alert(1)>`, `<a href="jav&#x09;ascript:alert(1)">x</a>`,
		`<a href=" JaVaScRiPt:alert(1)">x</a>`, `<svg><script>alert(1)</script></svg>`, `<iframe srcdoc="<script>x</script>">`,
		`<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>`, `<p style="background:url(javascript:x)">x</p>`, `<<script>script>alert(1)<</script>/script>`,
		`<math><mi xlink:href="javascript:x">x</mi></math>`, `<form action="javascript:x"><button formaction="javascript:y">`, `<noscript><p title="</noscript><img src=x onerror=alert(1)>">`} {
		f.Add(s)
	}
	policy := mailPolicy()
	f.Fuzz(func(t *testing.T, in string) {
		out := policy.Sanitize(in)
		if bad := unsafeHTML(out); bad != "" {
			t.Fatalf("sanitised %q keeps %s: %q", in, bad, out)
		}
		if bad := unsafeHTML(policy.Sanitize(out)); bad != "" {
			t.Fatalf("sanitised twice, %q keeps %s", in, bad)
		}
	})
}

// TestUnsafeHTML: the fuzzer's judge catches what it must, so that
// FuzzSanitize's invariant is not vacuous.
func TestUnsafeHTML(t *testing.T) {
	for _, s := range []string{`<script>x</script>`, `<img src=x onerror=alert(1)>`, `<a href="jav&#x09;ascript:alert(1)">`, `<a href=" JAVASCRIPT:x">`,
		`<p style="x">`, `<iframe>`, `<a href="data:text/html,x">`} {
		if unsafeHTML(s) == "" {
			t.Errorf("unsafeHTML(%q) = \"\"", s)
		}
	}
	for _, s := range []string{`<p>hello</p>`, `<a href="https://example.com/" rel="nofollow noreferrer" target="_blank">x</a>`, `<img src="cid:1">`, `javascript: in text`} {
		if bad := unsafeHTML(s); bad != "" {
			t.Errorf("unsafeHTML(%q) = %q", s, bad)
		}
	}
}

// apiRoutes are the JSON API's routes the fuzzer calls: a method and a
// path in which "{n}" is the fuzzed path segment.
var apiRoutes = []struct{ method, path string }{
	{http.MethodGet, "/api/tickets"},
	{http.MethodGet, "/api/tickets/{n}"},
	{http.MethodGet, "/api/messages/{n}"},
	{http.MethodGet, "/api/stats"},
	{http.MethodGet, "/api/stats/satisfaction"},
	{http.MethodGet, "/api/clusters"},
	{http.MethodPost, "/api/tickets/{n}/state"},
	{http.MethodPost, "/api/tickets/{n}/reply"},
	{http.MethodPost, "/api/tickets/{n}/note"},
	{http.MethodPost, "/api/messages/{n}/split"},
}

// FuzzAPI: whatever the query, path number and JSON body, the API answers
// 2xx or 4xx (never a 5xx: a bad request is the caller's, and the store
// is up; the mux's redirect of an unclean path aside), always as JSON (CSV when the stats ask for it), for a lead's
// and for an agent's token alike.
func FuzzAPI(f *testing.F) {
	e := newEnv(f, "sqlite", func(o *Options) {
		o.Logger = slog.New(slog.DiscardHandler) // F's methods must not be called while the target runs
		o.Answer = func(context.Context, Answer) error { return nil }
	})
	d := e.deliverFile("thunderbird_reply.eml")
	e.deliver(mail("bob@example.com", "m2@example.com", "Invoice", "Where is my invoice?"), billing)
	lead, err := e.store.CreateToken(e.ctx, "lena@acme.test", storage.RoleLead)
	if err != nil {
		f.Fatal(err)
	}
	agent, err := e.store.CreateToken(e.ctx, "alice@acme.test", storage.RoleAgent)
	if err != nil {
		f.Fatal(err)
	}
	n := itoa(d.Ticket)
	for i := range apiRoutes {
		for _, s := range []struct{ num, query, body string }{
			{n, "", `{}`},
			{n, "state=open&inbox=Support@Acme.test&limit=2&cursor=" + n, `{"action":"resolve"}`},
			{"0", "state=bogus&limit=0", `{"action":"close","reason":"duplicate","duplicate":1}`},
			{"-1", "from=2026-01-01&to=2026-03-02&agent=alice@acme.test", `{"action":"merge","into":` + n + `}`},
			{"99999999999999999999", "from=2026-03-02T00:00:00Z&to=2025-01-01", `{"action":"assign","agent":"alice@acme.test"}`},
			{"x", "format=csv&from=2020-01-01", `{"text":"Thanks, fixed.","in_reply_to":"m2@example.com"}`},
			{n, "limit=501&cursor=x;y", `{"text":1}`},
			{n, "%zz", `{"action":"reopen","extra":true}`},
			{n, "", `[`},
		} {
			f.Add(uint8(i), s.num, s.query, []byte(s.body), i%2 == 0)
		}
	}
	f.Fuzz(func(t *testing.T, route uint8, num, query string, body []byte, asLead bool) {
		e.t = t // the fake actions write through env, which must not call F's methods now
		r := apiRoutes[int(route)%len(apiRoutes)]
		u, err := url.Parse(strings.ReplaceAll(r.path, "{n}", url.PathEscape(num)))
		if err != nil {
			return
		}
		if strings.ContainsFunc(query, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return // no request line carries these: net/http answers 400 before any handler
		}
		u.RawQuery = query
		req := httptest.NewRequest(r.method, "/", strings.NewReader(string(body)))
		req.URL, req.RequestURI = u, u.RequestURI()
		req.Header.Set("Content-Type", "application/json")
		tok := agent
		if asLead {
			tok = lead
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, req)
		res := rec.Result()
		out, _ := io.ReadAll(res.Body)
		if res.StatusCode == http.StatusTemporaryRedirect || res.StatusCode == http.StatusMovedPermanently {
			// The mux sends a path with "." or ".." segments (or "//") to
			// its clean form before any handler runs: that, and only that.
			loc, err := url.Parse(res.Header.Get("Location"))
			if err != nil || loc.Path != path.Clean(u.Path) || loc.Path == u.Path {
				t.Fatalf("%s %s: %d to %q", r.method, u, res.StatusCode, res.Header.Get("Location"))
			}
			return
		}
		if res.StatusCode < 200 || res.StatusCode >= 500 {
			t.Fatalf("%s %s: %d %s", r.method, u, res.StatusCode, out)
		}
		ct := res.Header.Get("Content-Type")
		if strings.HasPrefix(ct, "text/csv") && r.path == "/api/stats" && res.StatusCode == http.StatusOK {
			return
		}
		if !strings.HasPrefix(ct, "application/json") || !json.Valid(out) {
			t.Fatalf("%s %s: %d %s, not JSON: %q", r.method, u, res.StatusCode, ct, out)
		}
	})
}

// TestAPIUnknownRouteIsJSON: a path under /api/ that names no endpoint,
// or an endpoint with the wrong method, is answered in JSON like every
// other API error (FuzzAPI found /api/messages/ answered in text/plain).
func TestAPIUnknownRouteIsJSON(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{http.MethodGet, "/api/messages/", http.StatusNotFound},
		{http.MethodGet, "/api/tickets/1/nothing", http.StatusNotFound},
		{http.MethodGet, "/api/nothing", http.StatusNotFound},
		{http.MethodPost, "/api/tickets", http.StatusMethodNotAllowed},
		{http.MethodGet, "/api/tickets/1/state", http.StatusMethodNotAllowed},
	} {
		rec := httptest.NewRecorder()
		e.srv.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		if rec.Code != tc.code || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") || !json.Valid(rec.Body.Bytes()) {
			t.Errorf("%s %s: %d %s %q, want %d in JSON", tc.method, tc.path, rec.Code, rec.Header().Get("Content-Type"), rec.Body, tc.code)
		}
	}
}
