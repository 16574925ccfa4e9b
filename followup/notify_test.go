package followup_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/followup"
	"github.com/tendhq/tend/rules"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestNotificationsCoalesced: an agent gets at most one notification per
// ticket per notify_window; what arrives meanwhile is one mail saying how
// many. The window is set below the default, so the test fails if the key
// is ignored.
func TestNotificationsCoalesced(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { notificationsCoalesced(t, b.Open) })
}

func notificationsCoalesced(t *testing.T, open func(testing.TB, storage.Clock) *storage.Store) {
	w := newWorldWith(t, open, &worldTweaks{exec: func(o *followup.Options) { o.NotifyWindow = 30 * time.Second }})
	w.mustSend(customer, []string{inbox}, customerMail("c1@example.com", "Export stuck", "The export hangs."))
	ack := to(w.capture.take(), customer)[0]
	for i := range 3 {
		w.clock.Advance(5 * time.Second)
		w.mustSend(customer, []string{inbox}, replyToUs(t, ack, fmt.Sprintf("c%d@example.com", i+2), fmt.Sprintf("Still stuck (%d).", i)))
	}
	if n := len(to(w.capture.take(), alice)); n != 0 {
		t.Fatalf("alice got %d notifications inside the window, want 0", n)
	}
	w.advance(15 * time.Second) // 30 s after the first notification
	got := to(w.capture.take(), alice)
	if len(got) != 1 {
		t.Fatalf("alice got %d notifications at the end of the window, want 1", len(got))
	}
	if s := got[0].Env.GetHeader("Subject"); !strings.Contains(s, "3 new messages") || !strings.Contains(got[0].Env.Text, "Still stuck (2)") {
		t.Errorf("coalesced notification: subject %q text %q", s, got[0].Env.Text)
	}
	w.advance(time.Hour)
	if n := len(to(w.capture.take(), alice)); n != 0 {
		t.Errorf("alice got %d more notifications", n)
	}
}

// TestAgentsNotificationsShareTheirBody: the two agents' notifications of
// one customer message carry one written body (the very bytes after the
// header, boundaries included, which are otherwise derived from each
// mail's own Message-ID), each under its own header: its own recipient
// and its own signed Reply-To. A template whose body greets the agent is
// written per agent, each greeting its own.
func TestAgentsNotificationsShareTheirBody(t *testing.T) {
	w := newWorld(t)
	w.mustSend(customer, []string{inbox}, customerMail("share1@example.com", "Export stuck", "The export hangs at 40%."))
	got := w.capture.take()
	a, l := to(got, alice), to(got, lena)
	if len(a) != 1 || len(l) != 1 {
		t.Fatalf("notifications: %d to alice, %d to lena, want 1 each", len(a), len(l))
	}
	body := func(c captured) []byte {
		_, b, ok := bytes.Cut(c.Raw, []byte("\r\nMime-Version: 1.0\r\n"))
		if !ok {
			t.Fatalf("no MIME-Version field in\n%s", c.Raw)
		}
		return b
	}
	if !bytes.Equal(body(a[0]), body(l[0])) {
		t.Error("the agents' notifications were written apart: their bodies differ")
	}
	if ra, rl := a[0].Env.GetHeader("Reply-To"), l[0].Env.GetHeader("Reply-To"); ra == rl {
		t.Errorf("both notifications reply to %q: the signed reply address must be each agent's own", ra)
	}
	for _, c := range []captured{a[0], l[0]} {
		if !strings.Contains(c.Env.Text, "The export hangs at 40%.") {
			t.Errorf("notification to %v lacks the customer's text:\n%s", c.To, c.Env.Text)
		}
	}

	dir := t.TempDir()
	src := "Subject: {{.Ticket.Tag}} {{.Ticket.Subject}}\n\nHello {{.Agent.Name}},\n\n{{.Message.Text}}\n"
	if err := os.WriteFile(filepath.Join(dir, "notify_customer_message.txt.tmpl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	tpl, err := rules.LoadTemplates(dir)
	if err != nil {
		t.Fatal(err)
	}
	w = newWorldWith(t, nil, &worldTweaks{exec: func(o *followup.Options) { o.Templates = tpl }})
	w.mustSend(customer, []string{inbox}, customerMail("share2@example.com", "Export stuck", "The export hangs at 40%."))
	got = w.capture.take()
	for addr, name := range map[string]string{alice: "Alice Smith", lena: "Lena"} {
		n := to(got, addr)
		if len(n) != 1 {
			t.Fatalf("%d notifications to %s, want 1", len(n), addr)
		}
		if !strings.Contains(n[0].Env.Text, "Hello "+name+",") {
			t.Errorf("the notification to %s does not greet %s:\n%s", addr, name, n[0].Env.Text)
		}
	}
}
