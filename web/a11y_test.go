package web

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// axeSource is axe-core, vendored from npm (testdata/axe/README.md says
// which version and under which licence). It runs inside the page.
//
//go:embed testdata/axe/axe.min.js
var axeSource string

// viewport is a way the pages are looked at.
type viewport struct {
	name          string
	width, height int64
	scale         float64
	mobile        bool
}

var viewports = []viewport{
	{"desktop", 1280, 900, 1, false},
	// A laptop at 150 %: the width at which the queue's table used to
	// run under the side panel (901–950 px).
	{"laptop150", 920, 700, 1, false},
	// Just wide enough for the side panel beside the queue.
	{"narrow", 1010, 700, 1, false},
	// A phone: the queue is a list of cards.
	{"phone", 390, 844, 2, true},
	// A 1280 px window at 200 % zoom is a 640 px layout at scale 2.
	{"zoom200", 640, 450, 2, false},
}

// axeViolation is the part of an axe-core result the test reports.
type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// runAxe injects axe-core into the page and returns its violations.
func runAxe(ctx context.Context) ([]axeViolation, error) {
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](axeSource+"\n;typeof axe")); err != nil {
		return nil, fmt.Errorf("inject axe: %w", err)
	}
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](`axe.run(document, {resultTypes: ["violations"]}).then(r => JSON.stringify(r.violations.map(v => ({
		id: v.id, impact: v.impact, help: v.help,
		nodes: v.nodes.slice(0, 6).map(n => n.target.join(" ") + ": " + (n.failureSummary || "").replace(/\s+/g, " "))
	}))))`, chromedp.EvalAwaitPromise))
	if err != nil {
		return nil, fmt.Errorf("axe.run: %w", err)
	}
	var vs []axeViolation
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		return nil, err
	}
	return vs, nil
}

// layoutProblems are the page's layout faults, found in the browser: a
// page wider than the window (horizontal scrolling), text that runs out
// of its card on the ticket page, the queue's table under the side
// panel, and, on a phone, a ticket whose state, waiting time or assignee
// is not on screen. "" means none.
const layoutProblems = `(() => {
	const out = [];
	const W = window.innerWidth;
	const sw = document.scrollingElement.scrollWidth;
	if (sw > W) out.push("page is " + sw + " px wide in a " + W + " px window");
	document.querySelectorAll("details").forEach(d => d.open = true);
	document.querySelectorAll("article.message").forEach(card => {
		const right = card.getBoundingClientRect().right + 1;
		card.querySelectorAll("*").forEach(el => {
			const r = el.getBoundingClientRect();
			if (r.width > 0 && r.right > right) out.push(card.id + ": " + el.tagName.toLowerCase() + (el.className ? "." + el.className : "") + " runs " + Math.round(r.right - right) + " px out of its card");
		});
	});
	document.querySelectorAll("details").forEach(d => d.open = false);
	const table = document.querySelector("#queue"), side = document.querySelector(".side-col");
	if (table && side) {
		const t = table.getBoundingClientRect(), s = side.getBoundingClientRect();
		if (t.right > s.left + 1 && s.top < t.bottom - 1 && s.bottom > t.top + 1) out.push("the queue (right edge " + Math.round(t.right) + ") runs under the side panel (left edge " + Math.round(s.left) + ")");
	}
	document.querySelectorAll("#queue tr.ticket").forEach(tr => {
		for (const sel of ["td.state-cell", "td.wait", "td.assignee"]) {
			const td = tr.querySelector(sel), r = td && td.getBoundingClientRect();
			if (!r || r.width === 0 || r.height === 0 || r.left < 0 || r.right > W + 1 || getComputedStyle(td).visibility === "hidden") out.push("ticket " + tr.dataset.number + ": " + sel + " not on screen");
		}
	});
	return out.slice(0, 20).join("\n");
})()`

// TestAccessibleLayouts opens every page tend serves, to staff and to
// customers, in headless Chromium at five sizes (desktop, a laptop at
// 150 %, the narrowest with the side panel beside, a phone, 200 % zoom) and checks each: no horizontal scrolling,
// nothing running out of the ticket cards (an unbreakable Message-ID), the
// queue's state, waiting time and assignee on screen, and axe-core finds
// no serious or critical violation. A screenshot of each is kept (see
// screenshot: TEND_SCREENSHOT_DIR).
func TestAccessibleLayouts(t *testing.T) {
	exe := chromium(t)
	e := newEnv(t, "sqlite", func(o *Options) {
		o.InboxStatus = func() []InboxStatus {
			return []InboxStatus{
				{Inbox: support, State: "idle", Detail: "SMTP · last mail 2 min ago"},
				{Inbox: "imap.example.net/INBOX", State: "error", Detail: "login failed: AUTHENTICATIONFAILED", Stale: true},
			}
		}
		o.Links = fakeLinks{"solved.1": 1, "not_solved.1": 1, "rate_4.1": 1}
		o.Confirm = func(_ context.Context, tok string) (int64, string, error) {
			if tok == "solved.1" {
				return 1, "yes", nil
			}
			return 0, "", errors.New("bad token")
		}
		o.Rate = func(_ context.Context, tok, _ string) (int64, int, error) {
			if tok == "rate_4.1" {
				return 1, 4, nil
			}
			return 0, 0, errors.New("bad token")
		}
	})
	s := seedQueue(e)
	e.setTicket(s.tom, "assignee_id = (SELECT id FROM agents WHERE email = 'alice@acme.test')")
	long, _, _ := e.seedConversation(15)
	// Message-IDs and addresses with no place to break.
	unbroken := strings.Repeat("x7Kq", 40) + "@" + strings.Repeat("mail", 10) + ".example.com"
	wide := mail("Wolfgang "+strings.Repeat("Wortlang", 6)+" <"+strings.Repeat("w", 60)+"@example.com>", unbroken, "Re: "+strings.Repeat("Unbreakable", 12),
		"A line without spaces: "+strings.Repeat("abcdefghij", 30))
	wide = strings.Replace(wide, "\n\n", "\nIn-Reply-To: <"+strings.Repeat("p", 150)+"@example.com>\n\n", 1)
	wideTicket := e.deliver(wide).Ticket
	ts := e.serve()
	c := newChrome(t, exe, 5*time.Minute)
	ctx, console, do, js := c.ctx, c.console, c.do, c.js
	type page struct {
		name, path string
		// click, when set, is the button pressed before the check (the
		// customer's answer), wait what then appears.
		click, wait string
	}
	check := func(p page, vp viewport) {
		t.Helper()
		opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(vp.scale)}
		if vp.mobile {
			opts = append(opts, chromedp.EmulateMobile, chromedp.EmulatePortrait)
		}
		do(p.name+" at "+vp.name, chromedp.EmulateViewport(vp.width, vp.height, opts...), chromedp.Navigate(ts.URL+p.path), chromedp.WaitReady(chromedp.CSS("main")))
		if p.click != "" {
			do(p.name+" press", chromedp.Click(chromedp.CSS(p.click)), chromedp.WaitVisible(chromedp.CSS(p.wait)))
		}
		if got := js(`String(document.querySelectorAll("h1").length)`); got != "1" {
			t.Errorf("%s: %s <h1> on the page, want 1", p.name, got)
		}
		// Every script, style sheet and icon is tend's own (embedded), none
		// from a CDN.
		if ext := js(`Array.from(document.querySelectorAll("script[src], link[href]")).map(e => e.src || e.href).filter(u => !u.startsWith(location.origin + "/") && !u.startsWith("data:")).join(" ")`); ext != "" {
			t.Errorf("%s: assets from elsewhere: %s", p.name, ext)
		}
		if probs := js(layoutProblems); probs != "" {
			t.Errorf("%s at %s (%d×%d): layout:\n%s", p.name, vp.name, vp.width, vp.height, probs)
		}
		vs, err := runAxe(ctx)
		if err != nil {
			t.Fatalf("%s at %s: %v", p.name, vp.name, err)
		}
		for _, v := range vs {
			msg := fmt.Sprintf("%s at %s: axe %s (%s): %s\n  %s", p.name, vp.name, v.ID, v.Impact, v.Help, strings.Join(v.Nodes, "\n  "))
			if v.Impact == "serious" || v.Impact == "critical" {
				t.Error(msg)
			} else {
				t.Log(msg)
			}
		}
		screenshot(t, ctx, fmt.Sprintf("%s-%s.png", p.name, vp.name))
	}

	customer := []page{
		{"login", "/login", "", ""},
		{"confirm", "/confirm?t=solved.1", "", ""},
		{"confirm-no", "/confirm?t=not_solved.1", "", ""},
		{"confirmed", "/confirm?t=solved.1", "#confirm button", "#result"},
		{"rate", "/rate?t=rate_4.1", "", ""},
		{"rated", "/rate?t=rate_4.1", "#rate button", "#result"},
		{"link-expired", "/confirm?t=forged", "", ""},
	}
	staff := []page{
		{"queue", "/", "", ""},
		{"queue-all", "/?state=all", "", ""},
		{"ticket", fmt.Sprintf("/tickets/%d", s.tom), "", ""},
		{"ticket-html", fmt.Sprintf("/tickets/%d", s.ines), "", ""},
		{"ticket-attachment", fmt.Sprintf("/tickets/%d", s.maria), "", ""},
		{"ticket-long", fmt.Sprintf("/tickets/%d", long), "", ""},
		{"ticket-unbreakable", fmt.Sprintf("/tickets/%d", wideTicket), "", ""},
		{"stats", "/stats", "", ""},
		{"cluster", fmt.Sprintf("/clusters/%d", s.tom), "", ""},
	}
	for _, vp := range viewports {
		for _, p := range customer {
			check(p, vp)
		}
	}
	do("login", chromedp.EmulateViewport(1280, 900), chromedp.Navigate(ts.URL+"/login"),
		chromedp.SendKeys(chromedp.CSS(`input[name=email]`), "lena@acme.test"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), leadPW),
		chromedp.Click(chromedp.CSS(`#login button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("queue")))
	for _, vp := range viewports {
		for _, p := range staff {
			check(p, vp)
		}
	}

	// The 15-message ticket shows each answer once: its height at the
	// desktop size, for the record (8,088 px when every answer showed
	// twice).
	do("long ticket", chromedp.EmulateViewport(1280, 900), chromedp.Navigate(fmt.Sprintf("%s/tickets/%d", ts.URL, long)), chromedp.WaitVisible(chromedp.ID("timeline")))
	if got := js(`String(document.querySelectorAll("article.message").length)`); got != "10" {
		t.Errorf("15-message ticket (5 answers, each stored twice): %s messages shown, want 10", got)
	}
	t.Logf("15-message ticket: %s messages shown, page %s px tall at 1280 px", js(`String(document.querySelectorAll("article.message").length)`), js(`String(document.scrollingElement.scrollHeight)`))

	// The keyboard: the first Tab reaches the skip link, and the focused
	// element is drawn with a visible outline.
	do("tab", chromedp.Navigate(ts.URL+"/"), chromedp.WaitVisible(chromedp.ID("queue")), chromedp.KeyEvent("\t"))
	if got := js(`document.activeElement.className + " " + getComputedStyle(document.activeElement).outlineStyle + " " + getComputedStyle(document.activeElement).outlineWidth`); got != "skip solid 3px" {
		t.Errorf("after Tab: focused %q, want the skip link with a 3px solid outline", got)
	}
	screenshot(t, ctx, "queue-keyboard-focus.png")
	var errs []string
	for _, msg := range console.all() {
		if !strings.Contains(msg, "/confirm?t=forged") { // the expired link's 403, expected
			errs = append(errs, msg)
		}
	}
	if len(errs) > 0 {
		t.Errorf("the pages reported errors (CSP violations included):\n%s", strings.Join(errs, "\n"))
	}
}
