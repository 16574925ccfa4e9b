package followup_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/mail/followup"
	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// mailWithAttachment is a customer's mail as Thunderbird writes it: a
// text part and one base64 attachment of size bytes.
func mailWithAttachment(msgID, subject, text, filename string, size int) string {
	data := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("%PDF-1.7 ", size/9+1)[:size]))
	var lines []string
	for len(data) > 76 {
		lines, data = append(lines, data[:76]), data[76:]
	}
	lines = append(lines, data)
	return fmt.Sprintf("From: Ann Example <%s>\r\nTo: Acme Support <%s>\r\nSubject: %s\r\nMessage-ID: <%s>\r\n"+
		"Date: Mon, 2 Mar 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\nUser-Agent: Mozilla/5.0 Thunderbird/128.3.0\r\n"+
		"Content-Type: multipart/mixed; boundary=\"------------b0undary\"\r\n\r\nThis is a multi-part message in MIME format.\r\n"+
		"--------------b0undary\r\nContent-Type: text/plain; charset=UTF-8; format=flowed\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s\r\n"+
		"--------------b0undary\r\nContent-Type: application/pdf; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--------------b0undary--\r\n",
		customer, inbox, subject, msgID, text, filename, filename, strings.Join(lines, "\r\n"))
}

// TestNotificationContentIsBounded: a customer's long mail reaches each
// agent as a bounded notification (notifications.max_text), its
// attachments listed with their sizes and a link to the ticket page; a
// small attachment is forwarded, one above notifications.attach_max is
// not.
func TestNotificationContentIsBounded(t *testing.T) {
	w := newWorldWith(t, storagetest.OpenSQLite, &worldTweaks{exec: func(o *followup.Options) {
		o.NotifyMaxText = 4 << 10
		o.NotifyAttachMax = 64 << 10
	}})
	long := strings.Repeat("The printer prints blank pages whatever I try.\r\n", 2000) // ~96 KB
	w.mustSend(customer, []string{inbox}, mailWithAttachment("big1@example.com", "Printer log", long, "log.pdf", 10<<10))
	got := w.expect("small attachment", map[string]int{customer: 1, alice: 1, lena: 1})
	for _, n := range append(to(got, alice), to(got, lena)...) {
		if len(n.Env.Text) > 6<<10 {
			t.Errorf("notification text is %d bytes, want about notifications.max_text (4 KiB)", len(n.Env.Text))
		}
		if !strings.Contains(n.Env.Text, "more not shown") || !strings.Contains(n.Env.Text, "https://support.acme.test/tickets/1") {
			t.Errorf("cut notification does not say where the rest is:\n%s", n.Env.Text[len(n.Env.Text)-600:])
		}
		if !strings.Contains(n.Env.Text, "log.pdf (10 KB)") {
			t.Errorf("notification does not list the attachment with its size")
		}
		if len(n.Env.Attachments) != 1 || len(n.Env.Attachments[0].Content) != 10<<10 {
			t.Errorf("small attachment not forwarded: %d attachments", len(n.Env.Attachments))
		}
	}

	w.mustSend(customer, []string{inbox}, mailWithAttachment("big2@example.com", "Scan of the contract", "Here is the scan.", "scan.pdf", 200<<10))
	got = w.expect("large attachment", map[string]int{customer: 1, alice: 1, lena: 1})
	for _, n := range to(got, alice) {
		if len(n.Env.Attachments) != 0 {
			t.Errorf("an attachment over attach_max was forwarded")
		}
		if !strings.Contains(n.Env.Text, "scan.pdf (200 KB)") || !strings.Contains(n.Env.Text, "on the ticket page: https://support.acme.test/tickets/2") {
			t.Errorf("large attachment not listed with size and link:\n%s", n.Env.Text)
		}
		if len(n.Raw) > 20<<10 {
			t.Errorf("notification of a mail with a 200 KB attachment is %d bytes", len(n.Raw))
		}
	}
}

// TestUnprocessableMessageIsStillAnswered: a message whose after-work
// always fails (an injected failing hook) is given up after
// processing.max_attempts; it is marked "could not be processed" on its
// ticket, the customer still gets the acknowledgement, the agents are
// told, and the mail behind it is handled normally meanwhile.
func TestUnprocessableMessageIsStillAnswered(t *testing.T) {
	boom := errors.New("injected: the parse cannot be saved")
	w := newWorldWith(t, storagetest.OpenSQLite, &worldTweaks{proc: func(w *world, o *ingest.ProcessorOptions) {
		o.MaxAttempts, o.RetryBackoff = 2, time.Minute
		o.GiveUp = w.exec.Unprocessable
		o.AfterParse = func(ctx context.Context, tx *storage.Tx, m storage.Message) error {
			if m.Subject == "Poison" {
				return boom
			}
			return w.exec.HandleMessage(ctx, tx, m)
		}
	}})
	w.mustSend(customer, []string{inbox}, customerMail("poison@example.com", "Poison", "This one cannot be processed."))
	w.expect("first attempt", map[string]int{customer: 0, alice: 0})
	w.mustSend("bob@example.org", []string{inbox}, strings.Replace(customerMail("behind@example.com", "Behind the poison", "Hello?"), customer, "bob@example.org", 1))
	w.expect("the mail behind", map[string]int{"bob@example.org": 1, alice: 1})
	w.advance(2 * time.Minute)
	got := w.expect("given up", map[string]int{customer: 1, alice: 1, lena: 1})
	if n := to(got, alice)[0]; !strings.Contains(n.Env.Text, "could not be processed") || !strings.Contains(n.Env.Text, boom.Error()) {
		t.Errorf("agents not told why:\n%s", n.Env.Text)
	}
	d := w.ticket(1)
	found := false
	for _, ev := range d.Events {
		if ev.Kind == "message.unprocessable" && strings.Contains(ev.Detail, boom.Error()) {
			found = true
		}
	}
	if !found {
		t.Errorf("ticket timeline lacks the unprocessable entry: %+v", d.Events)
	}
}
