package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/cmd/tend/config"
	"github.com/tendhq/tend/mail/imappoll/dovecottest"
	"github.com/tendhq/tend/storage"
)

// imapConfig writes a config whose inbox is fed from the Dovecot mailbox.
func imapConfig(t *testing.T, d *dovecottest.Server) string {
	return imapConfigWith(t, d, "")
}

// imapConfigWith is imapConfig with more keys in the mailbox's imap map
// (", key: value" each).
func imapConfigWith(t *testing.T, d *dovecottest.Server, imapKeys string) string {
	dir := t.TempDir()
	cfg := fmt.Sprintf(`data_dir: %s
smtp: {listen: "127.0.0.1:0", hostname: mail.acme.test}
web: {listen: "127.0.0.1:0", base_url: "http://127.0.0.1"}
inboxes:
  - address: support@acme.test
    name: Acme Support
    response_time: 4h
    imap: {addr: %q, tls: none, insecure: true, username: %q, password: %q, after: {move: Archive}, poll_interval: 1m%s}
agents:
  - {email: alice@acme.test, name: Alice, role: agent}
log: {level: info}
sender_auth: {verify: false} # no live DNS in tests (see writeConfig)
`, filepath.Join(dir, "data"), d.Addr, d.User, d.Password, imapKeys)
	p := filepath.Join(dir, "tend.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func imapMail(i int) []byte {
	return fmt.Appendf(nil, "From: Customer %d <c%d@example.com>\r\nTo: support@acme.test\r\nSubject: Question %d\r\nMessage-ID: <imap-%d@example.com>\r\nDate: Mon, 2 Mar 2026 09:00:00 +0000\r\n\r\nQuestion number %d.\r\n", i, i, i, i, i)
}

// storeCounts opens the stopped tend's database.
func storeCounts(t *testing.T, cfgPath string) (storage.Counts, []storage.OutboxMail) {
	t.Helper()
	c, err := config.Load(cfgPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := storage.Open(context.Background(), storage.Options{Driver: c.Database.Driver, DSN: c.Database.DSN, DataDir: c.DataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	counts, err := st.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out, err := st.Outbox(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return counts, out
}

// TestIMAPInbox: an existing mailbox's old mail is imported without
// mailing anyone, new mail arrives through IDLE within seconds and is
// acknowledged, and every processed message is moved out of INBOX.
func TestIMAPInbox(t *testing.T) {
	d := dovecottest.Start(t)
	c := d.Client(t)
	for i := range 3 {
		dovecottest.AppendWith(t, c, "INBOX", imapMail(i), time.Now().Add(-48*time.Hour))
	}
	cfg := imapConfig(t, d)
	p := startTend(t, cfg)
	tok := p.token("lead")
	tickets := func() int {
		var l ticketList
		p.getJSON(tok, "/api/tickets?state=all", &l)
		return len(l.Tickets)
	}
	waitFor(t, "the old mail to be imported", 20*time.Second, func() bool { return tickets() == 3 })

	d.Append(t, "INBOX", imapMail(100))
	waitFor(t, "new mail to become a ticket via IDLE", 2*time.Second, func() bool { return tickets() == 4 })
	waitFor(t, "INBOX to be emptied into Archive", 10*time.Second, func() bool {
		return d.Count(t, "INBOX") == 0 && d.Count(t, "Archive") == 4
	})
	var l ticketList
	p.getJSON(tok, "/api/tickets?state=all", &l)
	// The list is in attention order: the new mail's ticket is the one
	// with the highest number.
	newest := l.Tickets[0].Number
	for _, tk := range l.Tickets {
		newest = max(newest, tk.Number)
	}
	var dt ticketDetail
	waitFor(t, "the new mail's acknowledgement", 10*time.Second, func() bool {
		p.getJSON(tok, fmt.Sprintf("/api/tickets/%d", newest), &dt)
		for _, m := range dt.Messages {
			if m.Direction == "out" {
				return true
			}
		}
		return false
	})
	p.Stop()
	counts, out := storeCounts(t, cfg)
	if counts.RawMessages != 4 {
		t.Errorf("%d raw messages stored, want 4", counts.RawMessages)
	}
	acks := 0
	for _, o := range out {
		if o.Kind == storage.OutboxToCustomer {
			acks++
			if o.EnvTo != "c100@example.com" {
				t.Errorf("imported mail was answered: acknowledgement to %s", o.EnvTo)
			}
		}
	}
	if acks != 1 {
		t.Errorf("%d acknowledgements, want 1 (old mail is imported quietly)", acks)
	}
}

// TestIMAPKilledDuringFirstSync kills tend (SIGKILL) in the middle of the
// first sync of 2,000 messages and restarts it: every message is stored
// exactly once.
func TestIMAPKilledDuringFirstSync(t *testing.T) {
	const n = 2000
	d := dovecottest.Start(t)
	c := d.Client(t)
	for i := range n {
		dovecottest.AppendWith(t, c, "INBOX", imapMail(i), time.Now().Add(-time.Hour))
	}
	// Throttled (imap.backfill_rate), so that the kill lands mid-sync
	// however fast the sync goes: unthrottled, a quiet machine finished
	// the 2,000 between two looks at the mailbox.
	cfg := imapConfigWith(t, d, ", backfill_rate: 250")
	p := startTend(t, cfg)
	waitFor(t, "a few hundred messages to be moved", 60*time.Second, func() bool { return d.Count(t, "Archive") >= 300 })
	p.Kill()
	moved := d.Count(t, "Archive")
	if moved >= n {
		t.Fatalf("the sync finished before the kill (%d moved): nothing was tested", moved)
	}
	p = startTend(t, cfg)
	waitFor(t, "the rest of the mailbox", 120*time.Second, func() bool { return d.Count(t, "INBOX") == 0 })
	p.Stop()
	counts, _ := storeCounts(t, cfg)
	if counts.RawMessages != n || counts.Messages < n {
		t.Errorf("after a kill at %d of %d: %d raw messages and %d messages stored, want exactly %d", moved, n, counts.RawMessages, counts.Messages, n)
	}
	if got := d.Count(t, "Archive"); got != n {
		t.Errorf("Archive holds %d, want %d", got, n)
	}
	t.Logf("killed after %d of %d moved; all %d stored exactly once after the restart", moved, n, n)
}

// TestIMAPRestartResumesAtOnce: tend is killed with SIGKILL while it holds
// the mailbox's lease (one minute) and started again; the restarted server
// takes the dead run's lease back at start and reads new mail within
// seconds, instead of waiting the lease out and then a poll interval.
func TestIMAPRestartResumesAtOnce(t *testing.T) {
	d := dovecottest.Start(t)
	cfg := imapConfig(t, d)
	p := startTend(t, cfg)
	d.Append(t, "INBOX", imapMail(1))
	waitFor(t, "the first mail to be taken", 20*time.Second, func() bool { return d.Count(t, "Archive") == 1 })
	p.Kill() // the mailbox lease stays in the database, held by the dead run

	d.Append(t, "INBOX", imapMail(2))
	again := startTend(t, cfg)
	// A third of the lease: without the reclaim the poller would find the
	// mailbox held elsewhere and wait.
	waitFor(t, "the restarted server to take the new mail", 20*time.Second, func() bool { return d.Count(t, "Archive") == 2 })
	if !strings.Contains(again.Log(), "took back the leases an earlier run left behind") {
		t.Errorf("the restart did not say it took the leases back:\n%s", again.Log())
	}
}
