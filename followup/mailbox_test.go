package followup_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tendhq/tend/followup"
	"github.com/tendhq/tend/rules"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

const admin = "root@acme.test"

// mailboxWorld is a world with an admin besides the agent alice and the
// lead lena.
func mailboxWorld(t *testing.T, open func(testing.TB, storage.Clock) *storage.Store) *world {
	w := newWorldOn(t, open)
	if err := w.store.SyncAgents(context.Background(), []storage.AgentSpec{{Email: admin, Name: "Root", Role: storage.RoleAdmin}}); err != nil {
		t.Fatal(err)
	}
	return w
}

// restarted is a fresh Executor on w's store: what a restarted tend has.
// Nothing of the alert state may live in the old one.
func restarted(t *testing.T, w *world) *followup.Executor {
	t.Helper()
	tpl, err := rules.LoadTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	opts := rules.DefaultOptions()
	opts.Templates, opts.OwnAddresses = tpl, []string{inbox}
	eng, err := rules.Default(opts)
	if err != nil {
		t.Fatal(err)
	}
	x, err := followup.New(followup.Options{Store: w.store, Engine: eng, Templates: tpl, Signer: w.signer, Domain: domain, Clock: w.clock, LoopValue: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestMailboxAlert: a mailbox whose login fails for longer than
// stale_after gets the admins and leads (not plain agents) exactly one
// mail naming the mailbox, since when and the server's error; a restart
// while it still fails sends no second one, and does not take the fresh
// poller's "not stale yet" for a recovery; the first successful read
// after that sends exactly one recovery mail. A second outage alerts
// again.
func TestMailboxAlert(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) { mailboxAlert(t, mailboxWorld(t, b.Open)) })
	}
}

func mailboxAlert(t *testing.T, w *world) {
	ctx := context.Background()
	const serverErr = "imappoll: authentication failed: NO [AUTHENTICATIONFAILED] Authentication failed."
	t0 := w.clock.Now()
	h := followup.MailboxHealth{Inbox: inbox, InboxName: "Acme Support", Mailbox: "INBOX", Server: "imap.acme.test:993",
		User: "support@acme.test", StaleAfter: 10 * time.Minute, LastSuccess: t0.Add(-time.Minute)}
	nothing := map[string]int{admin: 0, lena: 0, alice: 0}
	step := func(x *followup.Executor, name string, h followup.MailboxHealth, wantTemplate string, want map[string]int) []captured {
		t.Helper()
		got, err := x.MailboxAlert(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if got != wantTemplate {
			t.Fatalf("%s: queued %q, want %q", name, got, wantTemplate)
		}
		w.settle()
		return w.expect(name, want)
	}

	step(w.exec, "healthy", h, "", nothing)
	h.FailingSince, h.Error = t0, serverErr
	w.clock.Advance(5 * time.Minute)
	step(w.exec, "failing, not yet stale", h, "", nothing)

	w.clock.Advance(6 * time.Minute)
	h.Stale = true
	down := step(w.exec, "stale", h, "notify_mailbox_down", map[string]int{admin: 1, lena: 1, alice: 0})
	since := t0.Format("Mon 2 Jan 2006 15:04 MST")
	for _, m := range down {
		text := m.Env.Text
		for _, want := range []string{"INBOX", inbox, "imap.acme.test:993", since, serverErr, "10 minutes"} {
			if !strings.Contains(text, want) {
				t.Errorf("alert to %v lacks %q:\n%s", m.To, want, text)
			}
		}
		if subj := m.Env.GetHeader("Subject"); !strings.Contains(subj, "INBOX") || !strings.Contains(subj, inbox) {
			t.Errorf("alert subject %q does not name the mailbox", subj)
		}
		if m.Env.GetHeader("X-Tend-Ticket") != "" || strings.HasPrefix(strings.Trim(m.Env.GetHeader("Message-Id"), "<"), "tend.") {
			t.Errorf("alert looks like ticket mail: X-Tend-Ticket %q, Message-ID %q", m.Env.GetHeader("X-Tend-Ticket"), m.Env.GetHeader("Message-Id"))
		}
	}
	w.clock.Advance(time.Minute)
	step(w.exec, "still stale", h, "", nothing)

	// A restart: a new executor, and a new poller that has not yet been
	// failing for stale_after, then has again.
	x := restarted(t, w)
	fresh := h
	fresh.Stale, fresh.LastSuccess, fresh.FailingSince = false, time.Time{}, w.clock.Now()
	step(x, "restarted, poller not stale yet", fresh, "", nothing)
	w.clock.Advance(11 * time.Minute)
	fresh.Stale = true
	step(x, "restarted, stale again", fresh, "", nothing)

	w.clock.Advance(time.Minute)
	ok := fresh
	ok.Stale, ok.LastSuccess, ok.FailingSince = false, w.clock.Now(), time.Time{}
	up := step(x, "login fixed", ok, "notify_mailbox_up", map[string]int{admin: 1, lena: 1, alice: 0})
	for _, m := range up {
		for _, want := range []string{"INBOX", inbox, since, serverErr} {
			if !strings.Contains(m.Env.Text, want) {
				t.Errorf("recovery mail to %v lacks %q:\n%s", m.To, want, m.Env.Text)
			}
		}
	}
	w.clock.Advance(time.Minute)
	step(x, "still fine", ok, "", nothing)

	w.clock.Advance(time.Hour)
	again := ok
	again.FailingSince, again.Stale, again.Error = w.clock.Now().Add(-15*time.Minute), true, "dial tcp: connection refused"
	step(x, "a second outage", again, "notify_mailbox_down", map[string]int{admin: 1, lena: 1, alice: 0})

	if n, err := w.store.Counts(ctx); err != nil || len(n.TicketsByState) != 0 {
		t.Errorf("alerts made tickets: %+v, %v", n, err)
	}
}

// TestMailboxAlertReplicas: replicas that see the same mailbox go stale
// at the same moment send one alert between them.
func TestMailboxAlertReplicas(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			w := mailboxWorld(t, b.Open)
			h := followup.MailboxHealth{Inbox: inbox, InboxName: "Acme Support", Mailbox: "INBOX", Stale: true,
				StaleAfter: 10 * time.Minute, FailingSince: w.clock.Now().Add(-20 * time.Minute), Error: "NO [AUTHENTICATIONFAILED]"}
			const replicas = 4
			var wg sync.WaitGroup
			errs := make(chan error, replicas)
			for range replicas {
				x := restarted(t, w)
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := x.MailboxAlert(context.Background(), h)
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				// A replica that lost the race on PostgreSQL may see a
				// serialization error; it tries again at its next check.
				if err != nil && !strings.Contains(err.Error(), "could not serialize") && !strings.Contains(err.Error(), "deadlock") {
					t.Error(err)
				}
			}
			w.settle()
			w.expect("racing replicas", map[string]int{admin: 1, lena: 1, alice: 0})
		})
	}
}
