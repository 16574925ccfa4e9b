package main

import (
	"database/sql"
	"fmt"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tendhq/tend/mail/imappoll/dovecottest"
	"github.com/tendhq/tend/storage/storagetest"
)

// replicaRun is the size of one TestReplicasOnPostgres run. The short form
// runs in .ci/run in seconds on a 2 s lease; TEND_REPLICAS_LONG=1 runs the
// long form on the default lease (30 s), with ten times the mail.
type replicaRun struct {
	smtp, imap int    // messages sent by SMTP, and appended to the IMAP mailbox
	lease      string // database.lease; "" keeps the default
}

func replicaSize() replicaRun {
	if os.Getenv("TEND_REPLICAS_LONG") != "" {
		return replicaRun{smtp: 300, imap: 60}
	}
	return replicaRun{smtp: 30, imap: 10, lease: "2s"}
}

// replicaConfig is one replica's config: its own data directory and ports,
// the shared database, mailbox and relay.
func replicaConfig(t *testing.T, dsn, relay string, d *dovecottest.Server, lease string) string {
	dir := t.TempDir()
	leaseLine := ""
	if lease != "" {
		leaseLine = ", lease: " + lease
	}
	cfg := fmt.Sprintf(`data_dir: %s
database: {driver: postgres, dsn: %q%s}
smtp: {listen: "127.0.0.1:0", hostname: mail.acme.test}
web: {listen: "127.0.0.1:0", base_url: "http://127.0.0.1"}
relay: {addr: %q}
inboxes:
  - address: support@acme.test
    name: Acme Support
    response_time: 3s
    imap: {addr: %q, tls: none, insecure: true, username: %q, password: %q, after: {move: Archive}, poll_interval: 1m}
agents:
  - {email: alice@acme.test, name: Alice, role: agent}
  - {email: lena@acme.test, name: Lena, role: lead}
log: {level: info}
sender_auth: {verify: false} # no live DNS in tests (see writeConfig)
`, filepath.Join(dir, "data"), dsn, leaseLine, relay, d.Addr, d.User, d.Password)
	p := filepath.Join(dir, "tend.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func replicaMail(i int) []byte {
	return fmt.Appendf(nil, "From: Customer %d <r%d@example.com>\r\nTo: support@acme.test\r\nSubject: Replica question %d\r\nMessage-ID: <replica-%d@example.com>\r\nDate: Tue, 1 Dec 2026 09:00:00 +0000\r\n\r\nQuestion number %d, sent to a replica.\r\n", i, i, i, i, i)
}

func replicaIMAPMail(i int) []byte {
	return fmt.Appendf(nil, "From: Mailbox customer %d <m%d@example.com>\r\nTo: support@acme.test\r\nSubject: Mailbox question %d\r\nMessage-ID: <replica-imap-%d@example.com>\r\nDate: Tue, 1 Dec 2026 09:00:00 +0000\r\n\r\nQuestion number %d, from the mailbox.\r\n", i, i, i, i, i)
}

// replicaDB creates the replicas' database and opens it for the test's
// own queries.
func replicaDB(t *testing.T) (string, *sql.DB) {
	dsn := storagetest.PostgresDSN(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return dsn, db
}

// alive is the set of replicas a sender may try, in turn.
type alive struct {
	mu    sync.Mutex
	procs []*tendProc
	dead  map[*tendProc]bool
}

func (a *alive) kill(p *tendProc) {
	a.mu.Lock()
	a.dead[p] = true
	a.mu.Unlock()
	p.Kill()
}

// send delivers raw to replica i, or on a failure (the replica was
// killed, or answered no 250) to the next, as an MTA would retry. It
// returns the replica that said 250.
func (a *alive) send(i int, raw []byte) (*tendProc, error) {
	var last error
	for try := range 2 * len(a.procs) {
		p := a.procs[(i+try)%len(a.procs)]
		a.mu.Lock()
		dead := a.dead[p]
		a.mu.Unlock()
		if dead {
			continue
		}
		if last = smtp.SendMail(p.SMTPAddr, nil, "sender@example.com", []string{"support@acme.test"}, raw); last == nil {
			return p, nil
		}
	}
	return nil, fmt.Errorf("no replica took the message: %w", last)
}

// TestReplicasOnPostgres runs three real `tend serve` processes on one
// PostgreSQL database, one IMAP mailbox (Dovecot) and one relay, sends
// mail to all three and SIGKILLs the one polling the mailbox mid-run. The
// others must take over its leases (the mailbox, outgoing mail, timers,
// processing) within about one lease, and in the end nothing is lost and
// nothing doubled: every accepted message stored once, every customer
// acknowledged once, every outgoing mail at the relay once, every timer
// fired, the mailbox emptied, and the web live on both survivors.
//
// The one mail that may reach the relay twice is one the killed replica
// had handed the relay (250) but not yet marked sent: it is sent again,
// with the same Message-ID (at least once, as SMTP relaying is). Those are
// the rows still leased to the killed replica at its death; the test
// allows them at most two copies and logs how many there were.
func TestReplicasOnPostgres(t *testing.T) {
	run := replicaSize()
	dsn, db := replicaDB(t)
	d := dovecottest.Start(t)
	sink := startRelayCapture(t)
	count := func(q string, args ...any) int {
		t.Helper()
		var n int
		if err := db.QueryRow(q, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}

	start := time.Now()
	a := &alive{dead: map[*tendProc]bool{}}
	for range 3 {
		a.procs = append(a.procs, startTend(t, replicaConfig(t, dsn, sink.addr, d, run.lease)))
	}
	t.Logf("three replicas up in %v", time.Since(start).Round(time.Millisecond))

	// The replica polling the mailbox is the one to kill: its death must
	// hand the mailbox over too.
	var holder string
	waitFor(t, "a replica to take the mailbox lease", 30*time.Second, func() bool {
		err := db.QueryRow("SELECT holder FROM leases WHERE name LIKE 'imap:%'").Scan(&holder)
		return err == nil && holder != ""
	})
	var victim *tendProc
	for _, p := range a.procs {
		if strings.Contains(holder, fmt.Sprintf("/%d/", p.cmd.Process.Pid)) {
			victim = p
		}
	}
	if victim == nil {
		t.Fatalf("the mailbox lease holder %q is none of the replicas", holder)
	}

	// Mail flows into all three at once, by SMTP and through the mailbox.
	var wg sync.WaitGroup
	errs := make(chan error, run.smtp)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < run.smtp; i += 3 {
				if _, err := a.send(i, replicaMail(i)); err != nil {
					errs <- fmt.Errorf("message %d: %w", i, err)
				}
			}
		}()
	}
	for i := range run.imap / 2 {
		d.Append(t, "INBOX", replicaIMAPMail(i))
	}
	// Mid-run: mail is leaving, and more is on its way. The relay holds
	// every DATA until the doomed replica is mid-send, so that it dies
	// holding outgoing mail (the case where a lease must be taken over,
	// and the one mail may be sent twice).
	waitFor(t, "the first outgoing mail at the relay", 60*time.Second, func() bool { return len(sink.all()) >= run.smtp/5 })
	victimOwner := fmt.Sprintf("%%/%d/%%", victim.cmd.Process.Pid)
	sink.holdData()
	t.Cleanup(sink.releaseData) // should the test fail before it lets go
	waitFor(t, "the replica to kill to be sending mail", 60*time.Second, func() bool {
		return count("SELECT count(*) FROM outbox_mails WHERE lease_owner LIKE $1", victimOwner) > 0
	})
	a.kill(victim)
	killed := time.Now()
	// What the dead replica held: mail it may have handed the relay
	// without recording it, and the count of every lease it held.
	resendable := map[string]bool{}
	rows, err := db.Query("SELECT message_id FROM outbox_mails WHERE lease_owner LIKE $1", victimOwner)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		resendable[strings.Trim(id, "<>")] = true
	}
	_ = rows.Close()
	sink.releaseData()
	// A fired timer keeps the name of the replica that fired it: done
	// work, not a lease.
	heldBy := func() int {
		return count(`SELECT (SELECT count(*) FROM works WHERE lease_owner LIKE $1) + (SELECT count(*) FROM outbox_mails WHERE lease_owner LIKE $1)
			+ (SELECT count(*) FROM timers WHERE lease_owner LIKE $1 AND status = 'pending') + (SELECT count(*) FROM leases WHERE holder LIKE $1)`, victimOwner)
	}
	t.Logf("killed replica %d (the mailbox's poller) %v after start, holding %d leases (%d outgoing mails)", victim.cmd.Process.Pid,
		killed.Sub(start).Round(time.Millisecond), heldBy(), len(resendable))
	for i := run.imap / 2; i < run.imap; i++ {
		d.Append(t, "INBOX", replicaIMAPMail(i))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Takeover: nothing stays with the dead replica. A lease not renewed
	// runs out after database.lease; the survivors look again at least
	// every half lease. The deadline is generous, the figure is logged.
	lease := 30 * time.Second
	if run.lease != "" {
		lease, _ = time.ParseDuration(run.lease)
	}
	takenOver := func() bool {
		return heldBy() == 0 && count("SELECT count(*) FROM leases WHERE name LIKE 'imap:%' AND holder NOT LIKE $1", victimOwner) == 1
	}
	tick := time.NewTicker(20 * time.Millisecond) // a condition polled, as waitFor does
	defer tick.Stop()
	for end := time.After(3*lease + 15*time.Second); !takenOver(); {
		select {
		case <-end:
			t.Fatalf("the survivors did not take over every lease of the killed replica within %v; it still holds:\n%s", 3*lease+15*time.Second, victimRows(t, db, victimOwner))
		case <-tick.C:
		}
	}
	t.Logf("leases taken over %v after the kill (lease %v)", time.Since(killed).Round(time.Millisecond), lease)

	// Drained: every message in, processed, its timer fired, its mail out.
	total := run.smtp + run.imap
	waitFor(t, "every message stored and processed, every timer fired and every mail sent", 120*time.Second+4*lease, func() bool {
		return count("SELECT count(*) FROM messages WHERE message_id LIKE 'replica-%'") >= total &&
			count("SELECT count(*) FROM works") == 0 &&
			count("SELECT count(*) FROM timers WHERE status = 'pending'") == 0 &&
			count("SELECT count(*) FROM outbox_mails WHERE status <> 'sent'") == 0 &&
			len(sink.all()) >= count("SELECT count(*) FROM outbox_mails")
	})
	t.Logf("drained %v after the kill, %v in all", time.Since(killed).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	// Nothing lost, nothing doubled, inbound.
	if n := count("SELECT count(*) FROM messages WHERE message_id LIKE 'replica-%'"); n != total {
		t.Errorf("%d messages stored, want %d", n, total)
	}
	if n := count("SELECT count(*) FROM (SELECT message_id FROM messages GROUP BY message_id HAVING count(*) > 1) d"); n != 0 {
		t.Errorf("%d messages stored twice", n)
	}
	if n := count("SELECT count(*) FROM tickets"); n != total {
		t.Errorf("%d tickets, want one per message (%d)", n, total)
	}
	if n := count("SELECT count(*) FROM timers WHERE status = 'fired'"); n < total {
		t.Errorf("%d timers fired, want a first-response timer per ticket (%d)", n, total)
	}
	if n := d.Count(t, "INBOX"); n != 0 {
		t.Errorf("%d messages left in the IMAP INBOX", n)
	}
	// Nothing lost, nothing doubled, outbound.
	sent := map[string]int{}
	for _, m := range sink.all() {
		sent[strings.Trim(m.Env.GetHeader("Message-ID"), "<>")]++
	}
	ids, err := db.Query("SELECT message_id FROM outbox_mails")
	if err != nil {
		t.Fatal(err)
	}
	outbox := 0
	resent := 0
	for ids.Next() {
		var id string
		if err := ids.Scan(&id); err != nil {
			t.Fatal(err)
		}
		outbox++
		id = strings.Trim(id, "<>")
		switch n := sent[id]; {
		case n == 1:
		case n == 2 && resendable[id]:
			resent++
		default:
			t.Errorf("outgoing mail %s reached the relay %d times", id, n)
		}
		delete(sent, id)
	}
	_ = ids.Close()
	for id, n := range sent {
		t.Errorf("the relay got %d mails %s that no outbox row sent", n, id)
	}
	// One acknowledgement each: one distinct mail (a copy resent after
	// the kill, counted above, is the same mail).
	for i := range run.smtp {
		distinct := map[string]bool{}
		for _, m := range sink.to(fmt.Sprintf("r%d@example.com", i), 0) {
			distinct[m.Env.GetHeader("Message-ID")] = true
		}
		if len(distinct) != 1 {
			t.Errorf("customer %d got %d distinct mails, want one acknowledgement", i, len(distinct))
		}
	}
	t.Logf("%d messages in (%d SMTP, %d IMAP), %d mails out, %d sent again after the kill", total, run.smtp, run.imap, outbox, resent)

	// The web is live on every survivor, and each sees every ticket.
	tok := a.procs[0].token("lead")
	for _, p := range a.procs {
		if p == victim {
			continue
		}
		if code := p.getJSON("", "/healthz", nil); code != 200 {
			t.Errorf("replica %s: /healthz %d", p.WebAddr, code)
		}
		var l ticketList
		if code := p.getJSON(tok, "/api/tickets?limit=500", &l); code != 200 || len(l.Tickets) == 0 {
			t.Errorf("replica %s: /api/tickets %d with %d tickets", p.WebAddr, code, len(l.Tickets))
		}
	}
}

// all returns every mail the relay got so far.
func (c *relayCapture) all() []sentMail {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sentMail(nil), c.got...)
}

// TestGracefulHandover: a replica that is stopped (SIGTERM) releases its
// leases, so another takes its work over at once. The lease is ten
// minutes here: waiting it out would fail the test's deadline, so only the
// release can pass it.
func TestGracefulHandover(t *testing.T) {
	dsn, db := replicaDB(t)
	d := dovecottest.Start(t)
	sink := startRelayCapture(t)
	holder := func() string {
		var h string
		_ = db.QueryRow("SELECT holder FROM leases WHERE name LIKE 'imap:%'").Scan(&h)
		return h
	}
	var procs []*tendProc
	for range 2 {
		procs = append(procs, startTend(t, replicaConfig(t, dsn, sink.addr, d, "10m")))
	}
	waitFor(t, "a replica to take the mailbox lease", 30*time.Second, func() bool { return holder() != "" })
	first := holder()
	var stopping, other *tendProc
	for _, p := range procs {
		if strings.Contains(first, fmt.Sprintf("/%d/", p.cmd.Process.Pid)) {
			stopping = p
		} else {
			other = p
		}
	}
	if stopping == nil || other == nil {
		t.Fatalf("mailbox lease holder %q is not one of the two replicas", first)
	}
	stopping.Stop()
	waitFor(t, "the other replica to take the mailbox over (a 10m lease, so only a release passes)", 60*time.Second, func() bool {
		return strings.Contains(holder(), fmt.Sprintf("/%d/", other.cmd.Process.Pid))
	})
	// And it polls it: new mail in the mailbox arrives.
	d.Append(t, "INBOX", replicaIMAPMail(1))
	var l ticketList
	tok := other.token("lead")
	waitFor(t, "mail from the mailbox on the remaining replica", 60*time.Second, func() bool {
		return other.getJSON(tok, "/api/tickets", &l) == 200 && len(l.Tickets) == 1
	})
}

// victimRows lists what owner still holds, for a failure's message.
func victimRows(t *testing.T, db *sql.DB, owner string) string {
	rows, err := db.Query(`SELECT 'works', id, '', lease_until, now() FROM works WHERE lease_owner LIKE $1
		UNION ALL SELECT 'outbox_mails', id, status, lease_until, now() FROM outbox_mails WHERE lease_owner LIKE $1
		UNION ALL SELECT 'timers', id, status || ' due ' || due_at::text, lease_until, now() FROM timers WHERE lease_owner LIKE $1
		UNION ALL SELECT 'leases ' || name, 0, '', until, now() FROM leases WHERE holder LIKE $1`, owner)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var table, status string
		var id int64
		var until, now time.Time
		if err := rows.Scan(&table, &id, &status, &until, &now); err != nil {
			return err.Error()
		}
		fmt.Fprintf(&b, "%s %d %s lease until %s (now %s)\n", table, id, status, until.Format(time.RFC3339Nano), now.Format(time.RFC3339Nano))
	}
	return b.String()
}
