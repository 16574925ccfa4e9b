package web

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/tendhq/tend/internal/testenv"
)

// screenshotEnv names a directory that receives the browser test's
// screenshots as well as the test's temp dir.
const screenshotEnv = "TEND_SCREENSHOT_DIR"

// chromium finds a Chromium to drive, or skips (fails under CI).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.SkipOrFail(t, "no Chromium found (apt-get install chromium): browser test skipped")
	return ""
}

// consoleErrors collects what the page reports as errors: script
// exceptions, console.error, and the browser's own log entries, which
// include every CSP violation ("Refused to execute inline script…").
type consoleErrors struct {
	mu   sync.Mutex
	errs []string
}

// on is called by chromedp on its reading goroutine: it only records.
func (c *consoleErrors) on(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg = "exception: " + ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			msg += " " + ev.ExceptionDetails.Exception.Description
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			msg = "console.error"
			for _, a := range ev.Args {
				msg += " " + string(a.Value)
			}
		}
	case *page.EventJavascriptDialogOpening:
		msg = "dialog: " + ev.Message // a script from a mail ran
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level == cdplog.EntryLevelError {
			msg = "log: " + ev.Entry.Text + " " + ev.Entry.URL
		}
	}
	if msg != "" {
		c.mu.Lock()
		c.errs = append(c.errs, msg)
		c.mu.Unlock()
	}
}

func (c *consoleErrors) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.errs)
}

// TestBrowser drives the real server in headless Chromium: log in, see
// the queue in attention order, watch it update from the database, open a
// ticket and its timeline, propose a resolution, log out.
func TestBrowser(t *testing.T) {
	exe := chromium(t)
	e := newEnv(t, "sqlite", func(o *Options) {
		o.QueueRefresh = 200 * time.Millisecond
		o.InboxStatus = func() []InboxStatus {
			return []InboxStatus{
				{Inbox: support, State: "idle", Detail: "SMTP · last mail 2 min ago"},
				{Inbox: "imap.example.net/INBOX", State: "error", Detail: "login failed: AUTHENTICATIONFAILED", Stale: true},
			}
		}
	})
	s := seedQueue(e)
	ts := e.serve()

	c := newChrome(t, exe, 40*time.Second)
	ctx, console, do, js := c.ctx, c.console, c.do, c.js
	start := time.Now()

	// Log in through the form.
	do("login", chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.CSS(`input[name=email]`), "lena@acme.test"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), leadPW),
		chromedp.Click(chromedp.CSS(`#login button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("queue")))

	// The queue, in attention order.
	rows := `Array.from(document.querySelectorAll('#queue tr.ticket')).map(r => r.dataset.number).join(' ')`
	want := fmt.Sprint([]int64{s.breached, s.repeat, s.unconfirmed, s.old, s.tom, s.ines, s.maria, s.waiting, s.answeredBreach})
	if got := "[" + js(rows) + "]"; got != want {
		t.Errorf("queue in the browser = %s, want %s", got, want)
	}
	screenshot(t, ctx, "queue.png")

	// Another replica stores a breached ticket: the open page shows it
	// without a reload, from the database.
	late := e.deliver(mail("Hugo Hall <hugo@example.com>", "hugo-1@example.com", "Site down", "Everything is down.")).Ticket
	e.setTicket(late, "breached = TRUE")
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(`document.querySelectorAll('#queue tr.ticket')[1]?.dataset.number === "%d"`, late),
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("the new breach never showed in the open queue (rows now %s): %v", js(rows), err)
	}

	// Search: words of Tom's mail typed into the search box list his
	// ticket alone, with the count; he is opened from the result.
	do("search", chromedp.SendKeys(chromedp.ID("q"), `"two browsers"`),
		chromedp.Click(chromedp.CSS(`form.search button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("search-count")))
	if got := js(rows); got != fmt.Sprint(s.tom) {
		t.Errorf("search results in the browser = %s, want %d", got, s.tom)
	}
	if note := js(`document.querySelector('#search-count').textContent`); !strings.Contains(note, "1 ticket matches “\"two browsers\"”") {
		t.Errorf("search count = %q", note)
	}
	screenshot(t, ctx, "search.png")

	// Open Tom's ticket from the queue.
	do("ticket", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#queue tr[data-number="%d"] td.subj a`, s.tom))),
		chromedp.WaitVisible(chromedp.ID("timeline")))
	timeline := js(`document.querySelector('#timeline').textContent`)
	for _, frag := range []string{"since I reset my password this morning", "Still broken.", "threaded by In-Reply-To", "login page.html", "ticket.created"} {
		if !strings.Contains(timeline, frag) {
			t.Errorf("timeline lacks %q", frag)
		}
	}
	if state := js(`document.querySelector('#state').textContent`); state != "new" {
		t.Errorf("state before = %q", state)
	}
	screenshot(t, ctx, "ticket.png")

	// Propose a resolution.
	do("resolve", chromedp.Click(chromedp.ID("resolve")), chromedp.WaitVisible(chromedp.ID("flash")))
	flash, state := js(`document.querySelector('#flash').textContent`), js(`document.querySelector('#state').textContent`)
	if !strings.Contains(flash, "Resolution proposed") || state != "proposed" {
		t.Errorf("after resolve: flash %q, state %q", flash, state)
	}
	if calls := e.actions.Calls(); !slices.Contains(calls, fmt.Sprintf("resolve %d by lena@acme.test", s.tom)) {
		t.Errorf("actions = %v, want the resolve", calls)
	}
	screenshot(t, ctx, "ticket-resolved.png")

	if errs := console.all(); len(errs) > 0 {
		t.Errorf("the pages reported errors (CSP violations included):\n%s", strings.Join(errs, "\n"))
	}

	// A hostile HTML mail: none of its scripts runs, and the CSP stops
	// its tracking pixel (the one error the page may report).
	hostile := e.deliverFile("hostile_html.eml").Ticket
	seen := len(console.all())
	do("hostile", chromedp.Navigate(fmt.Sprintf("%s/tickets/%d", ts.URL, hostile)), chromedp.WaitVisible(chromedp.ID("timeline")))
	if body := js(`document.querySelector('#timeline').textContent`); !strings.Contains(body, "Regards, M.") {
		t.Errorf("hostile mail not shown: %q", body)
	}
	blocked := false
	for _, msg := range console.all()[seen:] {
		if !strings.Contains(msg, "tracker.evil.example") {
			t.Errorf("hostile page: %s", msg)
		}
		blocked = blocked || strings.Contains(msg, "Content Security Policy")
	}
	if !blocked {
		t.Error("the tracking pixel was not reported blocked by the CSP")
	}
	screenshot(t, ctx, "hostile.png")

	// Log out; the queue is gone.
	do("logout", chromedp.Click(chromedp.ID("logout")),
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("login")))
	t.Logf("browser session took %v", time.Since(start).Round(time.Millisecond))
}

// chrome is a headless Chromium driven by one test.
type chrome struct {
	t       *testing.T
	ctx     context.Context
	console *consoleErrors
}

// do runs steps, failing the test with the pages' errors if one fails.
func (c *chrome) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	if err := chromedp.Do(c.ctx, steps...); err != nil {
		c.t.Fatalf("%s: %v (console: %v)", what, err, c.console.all())
	}
}

// js evaluates a JavaScript expression that gives a string.
func (c *chrome) js(expr string) string {
	c.t.Helper()
	v, err := chromedp.Run(c.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		c.t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// newChrome starts a headless Chromium for one test, with a 1280×900
// window, listening for the pages' errors; it is closed when the test
// ends, or after timeout.
func newChrome(t *testing.T, exe string, timeout time.Duration) *chrome {
	t.Helper()
	alloc, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancel)
	ctx, cancel = context.WithTimeout(ctx, timeout)
	t.Cleanup(cancel)
	console := &consoleErrors{}
	if err := chromedp.Listen(ctx, console.on); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, runtime.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	return &chrome{t: t, ctx: ctx, console: console}
}

// screenshot saves the page into the test's temp dir and, when
// TEND_SCREENSHOT_DIR is set, there too.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dirs := []string{t.TempDir()}
	if d := os.Getenv(screenshotEnv); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", p)
	}
}
