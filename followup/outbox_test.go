package followup_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/tendhq/tend/followup"
	"github.com/tendhq/tend/mail/relay"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"

	_ "modernc.org/sqlite" // database/sql driver "sqlite", for the damage from outside
)

// outbox returns ticket 1's mail to the customer.
func (w *world) customerOutbox() []storage.OutboxMail {
	w.t.Helper()
	rows, err := w.store.Outbox(context.Background(), 1)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []storage.OutboxMail
	for _, r := range rows {
		if r.Kind == storage.OutboxToCustomer {
			out = append(out, r)
		}
	}
	return out
}

func TestRelayTemporaryFailuresThenSuccess(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { relayTemporaryFailuresThenSuccess(t, b.Open) })
}

func relayTemporaryFailuresThenSuccess(t *testing.T, open func(testing.TB, storage.Clock) *storage.Store) {
	w := newWorldOn(t, open)
	w.capture.script(customer, 451, 451, 451) // the acknowledgement is refused three times
	w.mustSend(customer, []string{inbox}, customerMail("r1@example.com", "Hi", "Hello."))
	for range 5 {
		w.advance(time.Hour)
	}
	acks := to(w.capture.take(), customer)
	if len(acks) != 1 {
		t.Fatalf("customer got %d copies of the acknowledgement, want exactly 1", len(acks))
	}
	rows := w.customerOutbox()
	if len(rows) != 1 || rows[0].Status != storage.OutboxSent || rows[0].Attempts != 4 {
		t.Fatalf("outbox = %+v, want one row sent after 4 attempts", rows)
	}
}

func TestRelayPermanentFailure(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { relayPermanentFailure(t, b.Open) })
}

func relayPermanentFailure(t *testing.T, open func(testing.TB, storage.Clock) *storage.Store) {
	w := newWorldOn(t, open)
	w.capture.script(customer, 550)
	w.mustSend(customer, []string{inbox}, customerMail("r2@example.com", "Hi", "Hello."))
	rows := w.customerOutbox()
	if len(rows) != 1 || rows[0].Status != storage.OutboxFailed || !strings.Contains(rows[0].LastError, "550") {
		t.Fatalf("outbox = %+v, want the acknowledgement failed with the 550", rows)
	}
	d := w.ticket(1)
	failed := false
	for _, e := range d.Events {
		failed = failed || (e.Kind == "mail.failed" && strings.Contains(e.Detail, "550"))
	}
	if !failed {
		t.Error("the failure is not on the timeline")
	}
	if n := len(to(w.capture.take(), alice)); n == 0 {
		t.Error("the agents were not told about the failure")
	}
}

// TestRelayProtocolRefusalIsNoHardBounce: a relay that refuses how the
// mail was sent (553 5.6.7 "Must declare SMTPUTF8", Postfix with
// strict_smtputf8) fails that mail with its reason, but the address is
// not paused for bounce_suppression as after a 550 5.1.1 unknown user.
func TestRelayProtocolRefusalIsNoHardBounce(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      *gosmtp.SMTPError
		suppress bool
	}{
		{"553 5.6.7", &gosmtp.SMTPError{Code: 553, EnhancedCode: gosmtp.EnhancedCode{5, 6, 7}, Message: "Must declare SMTPUTF8 to send unicode address"}, false},
		{"554 5.5.0", &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 5, 0}, Message: "protocol error"}, false},
		{"550 5.1.1", &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such user"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.capture.scriptErr(customer, tc.err)
			w.mustSend(customer, []string{inbox}, customerMail("p1@example.com", "Hi", "Hello."))
			rows := w.customerOutbox()
			if len(rows) != 1 || rows[0].Status != storage.OutboxFailed || !strings.Contains(rows[0].LastError, tc.err.Message) {
				t.Fatalf("outbox = %+v, want the acknowledgement failed with %q", rows, tc.err.Message)
			}
			suppressed := false
			for _, e := range w.ticket(1).Events {
				suppressed = suppressed || e.Kind == "contact.suppressed"
			}
			if suppressed != tc.suppress {
				t.Errorf("address suppressed = %v, want %v", suppressed, tc.suppress)
			}
		})
	}
}

// TestRestartSendsOnce: mail committed but not yet sent when the process
// dies is sent once by the next process; mail a dead process had claimed
// is sent once its lease has run out, never twice.
func TestRestartSendsOnce(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { restartSendsOnce(t, b.Open) })
}

func restartSendsOnce(t *testing.T, open func(testing.TB, storage.Clock) *storage.Store) {
	w := newWorldOn(t, open)
	if err := w.send(customer, []string{inbox}, customerMail("r3@example.com", "Hi", "Hello.")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.proc.RunOnce(context.Background()); err != nil { // committed, not sent: the process "dies" here
		t.Fatal(err)
	}
	claimed, err := w.store.ClaimOutbox(context.Background(), "dead-replica", 1, 10*time.Minute)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v, %d rows", err, len(claimed))
	}
	restarted := followup.NewSender(w.store, w.exec, relay.New(relay.Config{Addr: w.capture.addr, TLS: "none", Timeout: 5 * time.Second}),
		followup.SenderOptions{Owner: "new-replica", Clock: w.clock})
	drain := func() {
		for {
			n, err := restarted.RunOnce(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				return
			}
		}
	}
	drain()
	first := w.capture.take()
	if n := len(to(first, customer)); n != 0 {
		t.Fatalf("a mail leased by another replica was sent (%d)", n)
	}
	w.clock.Advance(11 * time.Minute)
	drain()
	drain()
	if n := len(to(w.capture.take(), customer)); n != 1 {
		t.Fatalf("after the lease ran out the customer got %d acknowledgements, want 1", n)
	}
}

// TestSenderClaimsManyHoldsFew: a claim takes more mail than the sender
// holds the bytes of at once (sendBatch rows, sendChunk bodies): every
// mail still leaves once, with its own bytes, and mail to one recipient
// in the order it was queued across the chunks.
func TestSenderClaimsManyHoldsFew(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	const n = 150
	var mails []storage.QueuedMail
	for i := range n {
		rcpt := []string{"a@example.com", "b@example.com"}[i%2]
		subject := fmt.Sprintf("mail %03d", i)
		mails = append(mails, storage.QueuedMail{
			Outbox:  storage.OutboxMail{Kind: storage.OutboxToStaff, EnvTo: rcpt, Template: "test"},
			Message: storage.Message{Subject: subject},
			Build: func(id int64) (storage.Composed, error) {
				msgID := fmt.Sprintf("m%d@tend.test", id)
				raw := fmt.Sprintf("From: support@acme.test\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s>\r\n\r\nbody of %s\r\n", rcpt, subject, msgID, subject)
				return storage.Composed{MessageID: msgID, EnvFrom: "bounce@tend.test", Raw: storagetest.Fixed([]byte(raw))}, nil
			},
		})
	}
	if err := w.store.InTx(ctx, func(tx *storage.Tx) error {
		_, err := tx.QueueMails(ctx, mails)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	w.settle()
	got := w.capture.take()
	if len(got) != n {
		t.Fatalf("relay got %d mails, want %d", len(got), n)
	}
	last := map[string]int{}
	for _, g := range got {
		subject := g.Env.GetHeader("Subject")
		var i int
		if _, err := fmt.Sscanf(subject, "mail %d", &i); err != nil {
			t.Fatalf("unexpected mail %q", subject)
		}
		if !strings.Contains(g.Env.Text, "body of "+subject) {
			t.Errorf("%s arrived with another mail's bytes: %q", subject, g.Env.Text)
		}
		rcpt := g.To[0]
		if prev, ok := last[rcpt]; ok && i < prev {
			t.Errorf("to %s: mail %d after mail %d", rcpt, i, prev)
		}
		last[rcpt] = i
	}
}

// TestUnreadableBodyFailsAlone: the acknowledgement's stored bytes are
// damaged on disk before the sender gets to them. That mail fails, with
// the reason on its row and the agents told; the notifications queued
// with it still go out, and nothing waits to be claimed again.
func TestUnreadableBodyFailsAlone(t *testing.T) {
	w := newWorldWith(t, nil, nil)
	ctx := context.Background()
	if err := w.send(customer, []string{inbox}, customerMail("u1@example.com", "Printer", "My printer prints nothing at all since the update.")); err != nil {
		t.Fatal(err)
	}
	for {
		n, err := w.proc.RunOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	// A second handle on the database file, as damage from outside.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(w.dataDir, "tend.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.ExecContext(ctx, `UPDATE outbox_bodies SET packed = packed + 1 WHERE packed > 0
		AND outbox_id IN (SELECT id FROM outbox_mails WHERE kind = ?)`, storage.OutboxToCustomer)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("damaged %d stored acknowledgements, %v; want the one, packed", n, err)
	}
	w.settle()
	rows := w.customerOutbox()
	if len(rows) != 1 || rows[0].Status != storage.OutboxFailed || !strings.Contains(rows[0].LastError, "cannot be read") {
		t.Fatalf("outbox = %+v, want the acknowledgement failed as unreadable", rows)
	}
	got := w.capture.take()
	if len(to(got, customer)) != 0 {
		t.Error("the customer got a mail whose bytes could not be read")
	}
	if n := len(to(got, alice)); n < 2 {
		t.Errorf("alice got %d mails, want the notification and the failure notice", n)
	}
}
