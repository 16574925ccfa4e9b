package followup_test

import (
	"context"
	"errors"
	"fmt"
	"net/smtp"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/mail/senderauth"
	"github.com/tendhq/tend/mail/senderauth/senderauthtest"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

// authWorld is a world whose ingest path verifies senders through an
// offline DNS: example.com (the customer's domain) signs with DKIM and
// sends from 192.0.2.0/24 only, so mail from the test's 127.0.0.1 fails
// SPF; acme.test (the agents') sends from 127.0.0.1. mx.acme.test is the
// trusted upstream authserv-id.
func authWorld(t *testing.T) (*world, senderauthtest.Key) {
	t.Helper()
	r := senderauthtest.NewResolver()
	r.Set("example.com", "v=spf1 ip4:192.0.2.0/24 -all")
	r.Set("_dmarc.example.com", "v=DMARC1; p=quarantine")
	r.Set("acme.test", "v=spf1 ip4:127.0.0.1 -all")
	r.Set("evil.test", "v=spf1 ip4:127.0.0.1 -all")
	key := senderauthtest.NewKey(t, r, "example.com", "s2026")
	v := senderauth.New(senderauth.Options{Local: true, AuthServID: "mx.acme.test", Resolver: r})
	return newWorldAuth(t, v), key
}

// TestSpoofedCustomerCannotWidenTicket is the hijack of issue 9: a
// stranger writes "From: <the customer>", "Re: [#1] …" with a Cc of
// their own and no In-Reply-To. The message lands on the ticket (the
// customer may really have written it), but the Cc does not join, the
// agent is told the sender is not verified, and the agent's next answer,
// with its secret, goes to the customer only.
//
// It holds with verification off too: a sender who is not authenticated
// is one nobody checked.
func TestSpoofedCustomerCannotWidenTicket(t *testing.T) {
	for _, verify := range []bool{true, false} {
		t.Run(fmt.Sprintf("verify=%v", verify), func(t *testing.T) { spoofedCustomer(t, verify) })
	}
}

func spoofedCustomer(t *testing.T, verify bool) {
	var w *world
	var key senderauthtest.Key
	if verify {
		w, key = authWorld(t)
	} else {
		// Signed all the same: nobody checks it.
		w, key = newWorld(t), senderauthtest.NewKey(t, senderauthtest.NewResolver(), "example.com", "s2026")
	}
	w.mustSend(customer, []string{inbox}, string(key.Sign(t, []byte(customerMail("q1@example.com", "Password reset", "I cannot log in.")))))
	got := w.capture.take()
	if n := to(got, alice); len(n) != 1 || strings.Contains(n[0].Env.Text, "not verified") {
		t.Fatalf("genuine, DKIM-signed mail: alice got %d notifications, or one says 'not verified'", len(n))
	}

	spoof := fmt.Sprintf("From: Ann Example <%s>\r\nTo: Acme Support <%s>\r\nCc: Ann's assistant <evil@evil.test>\r\n"+
		"Subject: Re: [#1] Password reset\r\nMessage-ID: <spoof-1@evil.test>\r\nDate: Mon, 2 Mar 2026 10:30:00 +0100\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease send the reset link to my assistant too.\r\n", customer, inbox)
	w.mustSend(customer, []string{inbox}, spoof)
	var spoofed *storage.Message
	for _, m := range w.ticket(1).Messages {
		if m.MessageID == "spoof-1@evil.test" {
			spoofed = &m
		}
	}
	if spoofed == nil {
		t.Fatal("the spoof is not on ticket 1")
	}
	if w.participant(1, "evil@evil.test") {
		t.Fatal("the spoofed mail's Cc joined the ticket")
	}
	if a := spoofed.Auth; verify && (a.Authenticated() || a.SPF != "fail" || a.DMARC != "fail") {
		t.Errorf("spoof's stored verdict %+v: want spf=fail dmarc=fail, not authenticated", a)
	}
	// A second notification within the notify window waits for its end.
	w.advance(3 * time.Minute)
	got = w.capture.take()
	n := to(got, alice)
	if len(n) != 1 || !strings.Contains(n[0].Env.Text, "Sender not verified") {
		t.Fatalf("alice's notification of the spoof does not say 'Sender not verified': %d mails", len(n))
	}

	rcpt, raw := replyTo(n[0], alice, "Here is your reset link: https://acme.test/reset/SECRET")
	w.mustSend(alice, []string{rcpt}, raw)
	for _, m := range w.capture.take() {
		if strings.Contains(string(m.Raw), "SECRET") {
			for _, r := range m.To {
				if r != customer {
					t.Errorf("the agent's answer went to %s", r)
				}
			}
		}
	}
}

// TestAuthenticatedCustomerStillWidensTicket: the same Cc from the real,
// DKIM-signed customer joins and gets the answer; reply-all still works.
func TestAuthenticatedCustomerStillWidensTicket(t *testing.T) {
	w, key := authWorld(t)
	w.mustSend(customer, []string{inbox}, string(key.Sign(t, []byte(customerMail("q1@example.com", "Password reset", "I cannot log in.")))))
	w.capture.take()
	cc := fmt.Sprintf("From: Ann Example <%s>\r\nTo: Acme Support <%s>\r\nCc: Bob <bob@example.com>\r\n"+
		"Subject: Re: [#1] Password reset\r\nMessage-ID: <q2@example.com>\r\nDate: Mon, 2 Mar 2026 10:30:00 +0100\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBob is my colleague.\r\n", customer, inbox)
	w.mustSend(customer, []string{inbox}, string(key.Sign(t, []byte(cc))))
	if !w.participant(1, "bob@example.com") {
		t.Fatal("the authenticated customer's Cc did not join")
	}
	w.advance(3 * time.Minute) // past the notify window
	n := to(w.capture.take(), alice)
	if len(n) != 1 || strings.Contains(n[0].Env.Text, "not verified") {
		t.Fatalf("notification of authenticated mail: %d, or it says 'not verified'", len(n))
	}
	rcpt, raw := replyTo(n[0], alice, "Done.")
	w.mustSend(alice, []string{rcpt}, raw)
	if len(to(w.capture.take(), "bob@example.com")) != 1 {
		t.Error("the Cc of the authenticated customer did not get the answer")
	}
}

// participant reports whether addr takes part in ticket n.
func (w *world) participant(n int64, addr string) bool {
	w.t.Helper()
	var ok bool
	if err := w.store.InTx(context.Background(), func(tx *storage.Tx) error {
		var err error
		ok, err = tx.IsParticipant(context.Background(), n, []string{addr})
		return err
	}); err != nil {
		w.t.Fatal(err)
	}
	return ok
}

// TestForgedAgentWithValidToken is the impersonation of issue 9: a valid
// reply token (leaked from a notification), "From: Alice", and a body
// with "#resolve". Each variant is held: nothing reaches the customer,
// the command does not run, the timeline says why and Alice is told.
func TestForgedAgentWithValidToken(t *testing.T) {
	const header = "Authentication-Results: mx.acme.test; spf=fail smtp.mailfrom=alice@acme.test; dmarc=fail header.from=acme.test\r\n"
	tests := []struct {
		name     string
		verify   bool   // the ingest path verifies senders
		envFrom  string // MAIL FROM
		prepend  string // fields the upstream MTA added
		relayed  bool
		because  string // in the quarantine event
		resolved bool
		// autoHeld: the null sender marks automatic mail, which the
		// loop guard holds first, telling nobody (a responder would
		// answer the explanation).
		autoHeld bool
	}{
		{name: "envelope sender is not the agent", envFrom: "evil@evil.test", because: "envelope sender is evil@evil.test"},
		{name: "envelope sender is not the agent, verified", verify: true, envFrom: "evil@evil.test", because: "envelope sender is evil@evil.test"},
		{name: "null envelope sender", envFrom: "", because: "null envelope sender", autoHeld: true},
		{name: "trusted Authentication-Results say spf=fail dmarc=fail", verify: true, envFrom: alice, prepend: header, because: "not authenticated (dkim=none spf=fail dmarc=fail for acme.test)"},
		{name: "the real agent, SPF pass aligned", verify: true, envFrom: alice, relayed: true, resolved: true},
		{name: "the real agent, nothing verified", envFrom: alice, relayed: true, resolved: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			if tc.verify {
				w, _ = authWorld(t)
			}
			w.mustSend(customer, []string{inbox}, customerMail("r1@example.com", "Refund", "Where is my refund?"))
			notes := to(w.capture.take(), alice)
			if len(notes) != 1 {
				t.Fatalf("alice got %d notifications", len(notes))
			}
			rcpt, raw := replyTo(notes[0], alice, "Refund sent, all done.\r\n\r\n#resolve")
			if err := sendEnvelope(w, tc.envFrom, rcpt, tc.prepend+raw); err != nil {
				t.Fatal(err)
			}
			w.settle()
			got := w.capture.take()
			toCustomer := to(got, customer)
			if tc.relayed != (len(toCustomer) > 0) {
				t.Errorf("customer got %d mails, want relayed=%v", len(toCustomer), tc.relayed)
			}
			d := w.ticket(1)
			if resolved := d.State == vocab.StateProposed; resolved != tc.resolved {
				t.Errorf("ticket state %s: #resolve ran = %v, want %v", d.State, resolved, tc.resolved)
			}
			if tc.relayed {
				return
			}
			kind, told := vocab.EventQuarantined, 1
			if tc.autoHeld {
				kind, told = vocab.EventAgentAutoReplyHeld, 0
			}
			held := false
			for _, e := range d.Events {
				held = held || (e.Kind == kind && strings.Contains(e.Detail, tc.because))
			}
			if !held {
				t.Errorf("no %s event saying %q: %+v", kind, tc.because, d.Events)
			}
			if told == 0 {
				if n := to(got, alice); len(n) != 0 {
					t.Errorf("alice was told %d times about automatic mail", len(n))
				}
				return
			}
			if n := to(got, alice); len(n) != 1 || !strings.Contains(n[0].Env.Text, "held as an unverified comment") {
				t.Errorf("alice was told %d times", len(n))
			}
		})
	}
}

// sendEnvelope delivers raw through the SMTP door with MAIL FROM from
// (the null sender when "").
func sendEnvelope(w *world, from, rcpt, raw string) error {
	c, err := smtp.Dial(w.smtp)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("mx.acme.test"); err != nil {
		return err
	}
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt); err != nil {
		return err
	}
	wc, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := wc.Write([]byte(raw)); err != nil {
		return err
	}
	if err := wc.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// TestExpiredReplyAddressRefused: a reply address works for its
// lifetime (90 days by default) and is refused at RCPT after; nothing
// reaches the customer.
func TestExpiredReplyAddressRefused(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { expiredReplyAddressRefused(t, b.Open) })
}

func expiredReplyAddressRefused(t *testing.T, open func(testing.TB, storage.Clock) *storage.Store) {
	w := newWorldOn(t, open)
	w.mustSend(customer, []string{inbox}, customerMail("e1@example.com", "Old question", "Still there?"))
	notes := to(w.capture.take(), alice)
	if len(notes) != 1 {
		t.Fatalf("alice got %d notifications", len(notes))
	}
	rcpt, raw := replyTo(notes[0], alice, "Late answer. #resolve")
	w.advance(91 * 24 * time.Hour)
	w.capture.take()
	err := w.send(alice, []string{rcpt}, raw)
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code != 550 {
		t.Fatalf("expired reply address: err = %v, want 550 at RCPT", err)
	}
	w.settle()
	if n := len(to(w.capture.take(), customer)); n != 0 {
		t.Errorf("customer got %d mails through an expired address", n)
	}
	if st := w.ticket(1).State; st == vocab.StateProposed {
		t.Error("#resolve ran through an expired address")
	}
}

// TestDNSHangDoesNotHoldThe250: when DNS does not answer, the sender
// still gets its 250 once sender_auth's timeout has passed, the message
// is stored with a temperror verdict, and it is handled like any other
// unverified mail.
func TestDNSHangDoesNotHoldThe250(t *testing.T) {
	r := senderauthtest.NewResolver()
	for _, n := range []string{"example.com", "_dmarc.example.com", "s2026._domainkey.example.com"} {
		r.Hang[n] = true
	}
	key := senderauthtest.NewKey(t, r, "example.com", "s2026")
	const timeout = 200 * time.Millisecond
	w := newWorldAuth(t, senderauth.New(senderauth.Options{Local: true, Resolver: r, Timeout: timeout}))
	start := time.Now()
	w.mustSend(customer, []string{inbox}, string(key.Sign(t, []byte(customerMail("h1@example.com", "DNS down", "Hello?")))))
	if took := time.Since(start); took > timeout+10*time.Second {
		t.Errorf("the 250 took %s with a %s verification timeout", took, timeout)
	}
	d := w.ticket(1)
	if a := d.Messages[0].Auth; a.DMARC != "temperror" || a.Authenticated() {
		t.Errorf("verdict %+v, want temperror", a)
	}
	if n := to(w.capture.take(), customer); len(n) != 1 {
		t.Errorf("customer got %d acknowledgements", len(n))
	}
}
