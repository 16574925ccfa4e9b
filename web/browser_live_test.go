package web

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tendhq/tend/followup"
	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/mail/webreply"
	"github.com/tendhq/tend/rules"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/threading"
)

// TestBrowserLive drives the real pages in headless Chromium with the
// live feed on and the slow redraw off (an hour): an open queue and an
// open ticket show new mail within 2 s without a reload, and a reply
// written on the ticket page goes through the rules into the outbox, as
// an agent's mail reply does.
func TestBrowserLive(t *testing.T) {
	exe := chromium(t)
	var e *env
	e = liveEnv(t, "sqlite", func(o *Options) {
		o.QueueRefresh = time.Hour
		o.Answer = func(ctx context.Context, a Answer) error {
			_, err := e.writer.Write(ctx, webreply.Request{Ticket: a.Ticket, Inbox: a.Inbox, Subject: a.Subject, Agent: a.Agent, Text: a.Text, Note: a.Note, InReplyTo: a.InReplyTo})
			return err
		}
	})
	e.withRules()
	first := e.deliver(mail("Ann Example <ann@example.com>", "live-1@example.com", "Printer on fire", "Room 4.")).Ticket
	ts := e.serve()
	ctx := headless(t, exe)
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	// waitFor polls the page for expr for at most 2 s: the promise.
	waitFor := func(what, expr string) time.Duration {
		t.Helper()
		start := time.Now()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(2*time.Second), chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
			t.Fatalf("%s: not on the open page within 2 s: %v", what, err)
		}
		return time.Since(start)
	}
	run("login", chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.CSS(`input[name=email]`), "lena@acme.test"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), leadPW),
		chromedp.Click(chromedp.CSS(`#login button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("queue")))
	waitFor("event stream", `document.getElementById("live").dataset.live === "connected"`)
	run("mark", chromedp.Evaluate[chromedp.Void](`window.__notReloaded = true`))

	// New mail on another replica: the queue shows it.
	second := e.deliver(mail("Bob Example <bob@example.com>", "live-2@example.com", "Invoice missing", "Where is it?")).Ticket
	took := waitFor("new ticket in the queue", fmt.Sprintf(`!!document.querySelector('#queue tr[data-number="%d"]') && window.__notReloaded === true`, second))
	t.Logf("queue showed the new mail after %v", took)

	// The ticket page: a customer reply shows up in the open timeline.
	run("ticket", chromedp.Navigate(fmt.Sprintf("%s/tickets/%d", ts.URL, first)), chromedp.WaitVisible(chromedp.ID("timeline")))
	waitFor("event stream", `document.getElementById("main").dataset.live === "connected"`)
	run("mark", chromedp.Evaluate[chromedp.Void](`window.__notReloaded = true`))
	e.clock.Advance(time.Minute)
	e.deliver("From: Ann Example <ann@example.com>\nTo: " + support + "\nSubject: Re: Printer on fire\nMessage-ID: <live-3@example.com>\nIn-Reply-To: <live-1@example.com>\nReferences: <live-1@example.com>\nDate: Mon, 2 Mar 2026 09:01:00 +0000\n\nNow it smokes too.\n")
	took = waitFor("customer reply in the timeline", `document.getElementById("timeline").textContent.includes("Now it smokes too.") && window.__notReloaded === true`)
	t.Logf("ticket page showed the reply after %v", took)

	// Reply from the page, with a command.
	e.clock.Advance(time.Minute)
	run("reply", chromedp.SendKeys(chromedp.ID("answer-text"), "Hi Ann, facilities are on the way.\n\n#priority high"),
		chromedp.Click(chromedp.ID("send-reply")), chromedp.WaitVisible(chromedp.ID("flash")))
	e.settle()
	outbox, err := e.store.Outbox(e.ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	sent := false
	for _, o := range outbox {
		raw, err := e.store.OutboxRaw(e.ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		if o.Kind == storage.OutboxToCustomer && strings.Contains(string(raw), "facilities are on the way") {
			sent = !strings.Contains(string(raw), "#priority")
		}
	}
	if !sent {
		t.Fatalf("the web reply is not in the outbox for the customer (or carries its command): %d outbox rows", len(outbox))
	}
	waitFor("the reply and the priority on the open page", `document.getElementById("timeline").textContent.includes("reply.queued") && document.getElementById("ticket-head").textContent.includes("high")`)
	screenshot(t, ctx, "ticket-live-reply.png")
}

// withRules puts the real rules executor behind e's processor, as
// cmd/tend wires it, and a web writer on e's ingest path.
func (e *env) withRules() {
	t := e.t
	signer, err := threading.NewSigner("a", threading.Key{ID: "a", Secret: []byte("web-test-secret-0123456789")})
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := rules.LoadTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	ro := rules.DefaultOptions()
	ro.Templates, ro.OwnAddresses = tpl, []string{support, billing}
	eng, err := rules.Default(ro)
	if err != nil {
		t.Fatal(err)
	}
	x, err := followup.New(followup.Options{Store: e.store, Engine: eng, Templates: tpl, Signer: signer, Domain: "mail.acme.test",
		BaseURL: "http://127.0.0.1", LoopValue: "test", Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	e.proc = ingest.NewProcessor(e.store, ingest.ProcessorOptions{Owner: "test", Clock: e.clock, AfterParse: x.HandleMessage})
	if e.writer, err = webreply.New(webreply.Options{Deliverer: e.pipe, Domain: "mail.acme.test", Clock: e.clock}); err != nil {
		t.Fatal(err)
	}
}

// settle runs the processor until it has nothing left.
func (e *env) settle() {
	e.t.Helper()
	for {
		n, err := e.proc.RunOnce(e.ctx)
		if err != nil {
			e.t.Fatalf("process: %v", err)
		}
		if n == 0 {
			return
		}
	}
}

// headless starts Chromium for one test.
func headless(t *testing.T, exe string) context.Context {
	t.Helper()
	alloc, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancel3)
	return ctx
}
