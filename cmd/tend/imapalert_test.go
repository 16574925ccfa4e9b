package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/jhillyerd/enmime/v2"
)

// memIMAP is go-imap's in-memory server on 127.0.0.1:0 with one user,
// whose INBOX the caller may fill.
func memIMAP(t testing.TB, user, password string) (addr string, u *imapmemserver.User) {
	t.Helper()
	mem := imapmemserver.New()
	u = imapmemserver.NewUser(user, password)
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(u)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true,
		Logger:       log.New(io.Discard, "", 0),
	})
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), u
}

// alertMails returns the mails the relay received whose subject contains
// subj, for each of the config's agent, lead and admin that got any.
func alertMails(c *relayCapture, subj string) map[string][]*enmime.Envelope {
	out := map[string][]*enmime.Envelope{}
	for _, to := range []string{"alice@acme.test", "lena@acme.test", "root@acme.test"} {
		for _, m := range c.to(to, 0) {
			if strings.Contains(m.Subject, subj) {
				out[to] = append(out[to], m.Env)
			}
		}
	}
	return out
}

// alertConfig writes a config whose inbox is fed from addr with password,
// stale after 2 seconds, with an agent, a lead and an admin; mail leaves
// through relay.
func alertConfig(t *testing.T, dir, addr, password, relay string) string {
	t.Helper()
	cfg := fmt.Sprintf(`data_dir: %s
relay: {addr: %q}
smtp: {listen: "127.0.0.1:0", hostname: mail.acme.test}
web: {listen: "127.0.0.1:0", base_url: "http://127.0.0.1"}
inboxes:
  - address: support@acme.test
    name: Acme Support
    response_time: 4h
    imap: {addr: %q, tls: none, insecure: true, username: support@acme.test, password: %q, poll_interval: 1s, stale_after: 2s}
agents:
  - {email: alice@acme.test, name: Alice, role: agent}
  - {email: lena@acme.test, name: Lena, role: lead}
  - {email: root@acme.test, name: Root, role: admin}
log: {level: info}
sender_auth: {verify: false}
`, filepath.Join(dir, "data"), relay, addr, password)
	p := filepath.Join(dir, "tend.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestIMAPLoginFailureAlert runs tend against an IMAP server that refuses
// its password: past stale_after the lead and the admin (not the agent)
// get one mail naming the mailbox, since when and the server's error; a
// restart while the login still fails sends no second one; the password
// fixed, one recovery mail each.
func TestIMAPLoginFailureAlert(t *testing.T) {
	const down, up = "IMAP mailbox failing", "IMAP mailbox working again"
	addr, _ := memIMAP(t, "support@acme.test", "right")
	relay := startRelayCapture(t)
	dir := t.TempDir()
	cfg := alertConfig(t, dir, addr, "wrong", relay.addr)
	check := func(step, subj string) map[string][]*enmime.Envelope {
		t.Helper()
		got := alertMails(relay, subj)
		if len(got) != 2 || len(got["lena@acme.test"]) != 1 || len(got["root@acme.test"]) != 1 {
			n := map[string]int{}
			for to, m := range got {
				n[to] = len(m)
			}
			t.Fatalf("%s: %q mails %v, want one to the lead and one to the admin, none to the agent", step, subj, n)
		}
		return got
	}

	p := startTend(t, cfg)
	waitFor(t, "the mailbox-down alert at the relay", 30*time.Second, func() bool { return len(alertMails(relay, down)) == 2 })
	p.Stop()
	for to, ms := range check("first run", down) {
		e := ms[0]
		for _, s := range []string{"INBOX", "support@acme.test", addr, "Failing since: " + time.Now().UTC().Format("Mon 2 Jan 2006"), "The server's error: imappoll: authentication failed", "AUTHENTICATIONFAILED"} {
			if !strings.Contains(e.GetHeader("Subject")+"\n"+e.Text, s) {
				t.Errorf("alert to %s lacks %q:\n%s", to, s, e.Text)
			}
		}
		if tk := e.GetHeader("X-Tend-Ticket"); tk != "" {
			t.Errorf("alert to %s is on ticket %s", to, tk)
		}
	}

	// Restarted while the login still fails: stale again, no second alert.
	p = startTend(t, cfg)
	waitFor(t, "the restarted tend to see the mailbox stale", 30*time.Second, func() bool {
		return strings.Contains(p.Log(), "imap mailbox stale")
	})
	p.Stop()
	check("after a restart", down)
	// What the relay has not received yet is still in the outbox.
	if n := outboxRows(t, cfg, "notify_mailbox_down"); n != 2 {
		t.Fatalf("after a restart: %d mailbox-down mails queued, want the first 2 only", n)
	}
	if got := alertMails(relay, up); len(got) != 0 {
		t.Fatalf("a recovery was announced while the login still failed: %v", got)
	}

	// The password fixed: one recovery mail each.
	cfg = alertConfig(t, dir, addr, "right", relay.addr)
	p = startTend(t, cfg)
	waitFor(t, "the recovery mail at the relay", 30*time.Second, func() bool { return len(alertMails(relay, up)) == 2 })
	p.Stop()
	for to, ms := range check("login fixed", up) {
		if !strings.Contains(ms[0].Text, "AUTHENTICATIONFAILED") {
			t.Errorf("recovery mail to %s does not say what had failed:\n%s", to, ms[0].Text)
		}
	}
	check("login fixed", down)
	if n := outboxRows(t, cfg, "notify_mailbox_up"); n != 2 {
		t.Errorf("%d recovery mails queued, want 2", n)
	}
	_, out := storeCounts(t, cfg)
	for _, o := range out {
		if o.EnvTo == "alice@acme.test" {
			t.Errorf("the agent was mailed: %s", o.Template)
		}
	}
}

// outboxRows counts the stopped tend's outbox rows of template.
func outboxRows(t *testing.T, cfg, template string) int {
	t.Helper()
	_, out := storeCounts(t, cfg)
	n := 0
	for _, o := range out {
		if o.Template == template {
			n++
		}
	}
	return n
}
