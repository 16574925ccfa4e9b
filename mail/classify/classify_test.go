package classify

import (
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tendhq/tend/mail/header"
	"github.com/tendhq/tend/vocab"
)

// testOwn is tend's identity in the testdata messages.
var testOwn = Own{
	Addresses:  []string{"support@tend.example", "bounce@tend.example"},
	Domains:    []string{"tend.example"},
	LoopHeader: "X-Tend-Loop",
	AuthServID: "mx.tend.example",
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read testdata: %v", err)
	}
	return raw
}

func TestClassifyTestdata(t *testing.T) {
	tests := []struct {
		file        string
		kind        vocab.Class
		noAutoReply bool
		suspect     bool
		spam        bool
		dmarcFail   bool
		reason      string // a substring one of the reasons must contain
	}{
		{file: "gmail-vacation.eml", kind: vocab.ClassAutoReply, noAutoReply: true, reason: "Auto-Submitted: auto-replied"},
		{file: "outlook-oof.eml", kind: vocab.ClassAutoReply, noAutoReply: true, reason: "Mailbox Rules Agent"},
		{file: "exchange2010-oof.eml", kind: vocab.ClassAutoReply, noAutoReply: true, reason: "Exchange inbox-rule reply"},
		{file: "icloud-vacation.eml", kind: vocab.ClassAutoReply, noAutoReply: true, reason: "auto-replied"},
		{file: "zimbra-vacation.eml", kind: vocab.ClassAutoReply, noAutoReply: true, reason: "auto-replied"},
		{file: "cpanel-autoresponder.eml", kind: vocab.ClassAutoReply, noAutoReply: true, reason: "X-Autorespond"},
		// A subject alone never decides: the mail stays Human, Suspect,
		// and gets its first acknowledgement (issue 9).
		{file: "subject-only-ooo.eml", kind: vocab.ClassHuman, noAutoReply: false, suspect: true, reason: "abwesenheitsnotiz"},
		{file: "mailman.eml", kind: vocab.ClassList, noAutoReply: true, reason: "List-Id"},
		{file: "google-groups.eml", kind: vocab.ClassList, noAutoReply: true, reason: "List-Id"},
		{file: "discourse.eml", kind: vocab.ClassList, noAutoReply: true, reason: "List-"},
		{file: "newsletter.eml", kind: vocab.ClassList, noAutoReply: true, reason: "List-Unsubscribe"},
		{file: "postfix-dsn.eml", kind: vocab.ClassBounce, noAutoReply: true, reason: "report-type=delivery-status"},
		{file: "exim-text.eml", kind: vocab.ClassBounce, noAutoReply: true, reason: "X-Failed-Recipients"},
		{file: "exim-delay.eml", kind: vocab.ClassBounce, noAutoReply: true, reason: "mailer daemon"},
		{file: "exchange-ndr.eml", kind: vocab.ClassBounce, noAutoReply: true, reason: "multipart/report"},
		{file: "gmail-dsn.eml", kind: vocab.ClassBounce, noAutoReply: true, reason: "multipart/report"},
		{file: "qmail.eml", kind: vocab.ClassBounce, noAutoReply: true, reason: "failure subject"},
		{file: "mdn-read-receipt.eml", kind: vocab.ClassReport, noAutoReply: true, reason: "disposition-notification"},
		{file: "outlook-human.eml", kind: vocab.ClassHuman},
		{file: "gmail-human.eml", kind: vocab.ClassHuman},
		{file: "applemail-human.eml", kind: vocab.ClassHuman},
		{file: "thunderbird-human.eml", kind: vocab.ClassHuman},
		{file: "outlook-human-suppress.eml", kind: vocab.ClassHuman, noAutoReply: true, reason: "X-Auto-Response-Suppress"},
		{file: "own-loop.eml", kind: vocab.ClassOwnMail, noAutoReply: true, reason: "X-Tend-Loop"},
		{file: "spam-flagged.eml", kind: vocab.ClassSpam, noAutoReply: true, spam: true, reason: "X-Spam-Flag"},
		{file: "dmarc-fail-ours.eml", kind: vocab.ClassHuman, dmarcFail: true, reason: "dmarc=fail"},
		{file: "dmarc-fail-foreign.eml", kind: vocab.ClassHuman},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			h, _ := header.Read(readTestdata(t, tt.file))
			got := Classify(h, ReversePath(h), testOwn)
			if got.Class != tt.kind || got.NoAutoReply != tt.noAutoReply || got.Suspect != tt.suspect ||
				got.Spam != tt.spam || got.DMARCFail != tt.dmarcFail {
				t.Fatalf("got kind=%v noAutoReply=%v suspect=%v spam=%v dmarcFail=%v (reasons %q); want kind=%v noAutoReply=%v suspect=%v spam=%v dmarcFail=%v",
					got.Class, got.NoAutoReply, got.Suspect, got.Spam, got.DMARCFail, got.Reasons,
					tt.kind, tt.noAutoReply, tt.suspect, tt.spam, tt.dmarcFail)
			}
			if tt.reason != "" && !containsReason(got.Reasons, tt.reason) {
				t.Errorf("reasons %q lack %q", got.Reasons, tt.reason)
			}
			if tt.kind == vocab.ClassHuman && !tt.noAutoReply && !tt.suspect && len(got.Reasons) != 0 && !tt.dmarcFail {
				t.Errorf("human mail with reasons %q", got.Reasons)
			}
		})
	}
}

func containsReason(reasons []string, sub string) bool {
	for _, r := range reasons {
		if strings.Contains(strings.ToLower(r), strings.ToLower(sub)) {
			return true
		}
	}
	return false
}

// TestClassifySignals covers each signal on a minimal header, including the
// edge values the RFCs and real clients produce.
func TestClassifySignals(t *testing.T) {
	base := func(fields ...string) textproto.MIMEHeader {
		h := textproto.MIMEHeader{}
		h.Set("From", "Pat Customer <pat@customer.example>")
		h.Set("Subject", "Printer offline")
		h.Set("Message-Id", "<abc@customer.example>")
		for i := 0; i+1 < len(fields); i += 2 {
			h.Set(fields[i], fields[i+1])
		}
		return h
	}
	tests := []struct {
		name        string
		h           textproto.MIMEHeader
		env         string
		kind        vocab.Class
		noAutoReply bool
	}{
		{"plain human", base(), "pat@customer.example", vocab.ClassHuman, false},
		{"auto-submitted no", base("Auto-Submitted", "No"), "pat@customer.example", vocab.ClassHuman, false},
		{"auto-submitted no with comment", base("Auto-Submitted", "no (sent by a person)"), "pat@customer.example", vocab.ClassHuman, false},
		{"auto-submitted auto-generated", base("Auto-Submitted", "auto-generated"), "pat@customer.example", vocab.ClassAutoReply, true},
		{"auto-submitted unknown value", base("Auto-Submitted", "auto-notified"), "pat@customer.example", vocab.ClassAutoReply, true},
		{"auto-submitted with owner param", base("Auto-Submitted", "auto-replied; owner-email=\"pat@customer.example\""), "pat@customer.example", vocab.ClassAutoReply, true},
		{"x-autoreply", base("X-Autoreply", "yes"), "pat@customer.example", vocab.ClassAutoReply, true},
		{"x-autoresponse", base("X-Autoresponse", "1"), "pat@customer.example", vocab.ClassAutoReply, true},
		{"precedence bulk", base("Precedence", "bulk"), "pat@customer.example", vocab.ClassList, true},
		{"precedence junk", base("Precedence", "junk"), "pat@customer.example", vocab.ClassAutoReply, true},
		{"precedence normal", base("Precedence", "normal"), "pat@customer.example", vocab.ClassHuman, false},
		{"precedence first-class", base("Precedence", "first-class"), "pat@customer.example", vocab.ClassHuman, false},
		{"list-post only", base("List-Post", "<mailto:l@lists.example>"), "pat@customer.example", vocab.ClassList, true},
		{"null envelope", base(), "<>", vocab.ClassAutoReply, true},
		{"empty envelope", base(), "", vocab.ClassAutoReply, true},
		{"suppress oof only", base("X-Auto-Response-Suppress", "OOF"), "pat@customer.example", vocab.ClassHuman, true},
		{"suppress dr only", base("X-Auto-Response-Suppress", "DR, NDR"), "pat@customer.example", vocab.ClassHuman, false},
		{"rules loop alone (a forward)", base("X-MS-Exchange-Inbox-Rules-Loop", "pat@customer.example"), "pat@customer.example", vocab.ClassHuman, true},
		{"mailer-daemon sender", base("From", "MAILER-DAEMON@mx.example"), "mailer-daemon@mx.example", vocab.ClassBounce, true},
		{"postmaster sender, human subject", base(), "postmaster@customer.example", vocab.ClassHuman, true},
		{"list request sender", base(), "users-request@lists.example", vocab.ClassList, true},
		{"owner- sender", base(), "owner-users@lists.example", vocab.ClassList, true},
		{"no-reply sender", base(), "no-reply@shop.example", vocab.ClassAutoReply, true},
		{"do_not_reply sender", base(), "do_not_reply@shop.example", vocab.ClassAutoReply, true},
		{"failure subject from person", base("Subject", "Undeliverable: your invoice"), "pat@customer.example", vocab.ClassHuman, false},
		{"person asks about a delivery", base("Subject", "Delivery status of my order?"), "pat@customer.example", vocab.ClassHuman, false},
		{"failure subject from a daemon", base("Subject", "Undeliverable: your invoice"), "postmaster@customer.example", vocab.ClassBounce, true},
		{"MAILER-DAEMON with a null From", base("From", "MAILER-DAEMON <>", "Subject", "Mail delivery failed"), "", vocab.ClassBounce, true},
		{"mail system name, no daemon", base("From", "Mail Delivery System <pat@customer.example>"), "pat@customer.example", vocab.ClassHuman, true},
		{"iCloud vacation", base("X-Apple-Action", "VACATION"), "pat@customer.example", vocab.ClassAutoReply, true},
		{"Hotmail JMRP", base("From", "staff@hotmail.com", "Subject", "complaint about message from 192.0.2.1"), "staff@hotmail.com", vocab.ClassReport, true},
		{"complaint subject from a person", base("Subject", "Complaint about message from your sales team"), "pat@customer.example", vocab.ClassHuman, false},
		{"reply to an out-of-office", base("Subject", "Re: Out of Office: printer"), "pat@customer.example", vocab.ClassHuman, false},
		{"auto: subject", base("Subject", "AUTO: Pat is out of the office (returning 03/04/2025)"), "pat@customer.example", vocab.ClassHuman, false},
		{"encoded french subject", base("Subject", "=?iso-8859-1?Q?R=E9ponse_automatique?="), "pat@customer.example", vocab.ClassHuman, false},
		{"spanish subject", base("Subject", "Respuesta automática: pedido"), "pat@customer.example", vocab.ClassHuman, false},
		{"question about auto replies", base("Subject", "Question about your automatic reply feature"), "pat@customer.example", vocab.ClassHuman, false},
		{"x-loop our address", base("X-Loop", "support@tend.example"), "pat@customer.example", vocab.ClassOwnMail, true},
		{"our message-id domain", base("Message-Id", "<ticket.1.2.3@TEND.example>"), "pat@customer.example", vocab.ClassOwnMail, true},
		{"message-id on a subdomain is not ours", base("Message-Id", "<x@mail.tend.example.org>"), "pat@customer.example", vocab.ClassHuman, false},
		{"our envelope sender", base(), "bounce@tend.example", vocab.ClassOwnMail, true},
		{"tls report", base("TLS-Report-Domain", "customer.example"), "pat@customer.example", vocab.ClassReport, true},
		{"dmarc aggregate subject", base("Subject", "Report Domain: tend.example Submitter: google.com Report-ID: 123"), "noreply-dmarc@google.com", vocab.ClassReport, true},
		{"spam status yes", base("X-Spam-Status", "Yes, score=9.1"), "pat@customer.example", vocab.ClassSpam, true},
		{"spam status no", base("X-Spam-Status", "No, score=-1.0"), "pat@customer.example", vocab.ClassHuman, false},
		{"spam beats list", base("X-Spam-Flag", "YES", "List-Unsubscribe", "<mailto:u@x.example>"), "pat@customer.example", vocab.ClassSpam, true},
		{"bounce beats auto-reply", base("Auto-Submitted", "auto-replied", "Content-Type", "multipart/report; report-type=\"delivery-status\"; boundary=x"), "", vocab.ClassBounce, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.h, tt.env, testOwn)
			if got.Class != tt.kind || got.NoAutoReply != tt.noAutoReply {
				t.Errorf("got %v noAutoReply=%v (%q), want %v noAutoReply=%v", got.Class, got.NoAutoReply, got.Reasons, tt.kind, tt.noAutoReply)
			}
		})
	}
}

func TestClassifyDMARCOnlyOurs(t *testing.T) {
	tests := []struct {
		name string
		ar   []string
		want bool
	}{
		{"ours fails", []string{"mx.tend.example; dmarc=fail header.from=x.example"}, true},
		{"ours fails, version given", []string{"mx.tend.example 1; spf=none; dmarc=fail (p=none) header.from=x.example"}, true},
		{"ours passes", []string{"mx.tend.example; dmarc=pass header.from=x.example"}, false},
		{"foreign fails", []string{"mx.evil.example; dmarc=fail header.from=x.example"}, false},
		{"no servid configured", nil, false},
		{"garbage", []string{";;;=;"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := textproto.MIMEHeader{"From": {"a@x.example"}, "Authentication-Results": tt.ar}
			if got := Classify(h, "a@x.example", testOwn).DMARCFail; got != tt.want {
				t.Errorf("DMARCFail = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestPrecedence holds the classifier to the vocabulary: every class but
// human has a place in the precedence, once, and nothing else has, so a
// class added to vocab is either produced here or fails this test.
func TestPrecedence(t *testing.T) {
	got := map[vocab.Class]int{vocab.ClassHuman: 1}
	for _, c := range precedence {
		got[c]++
	}
	for _, c := range vocab.Classes() {
		if got[c] != 1 {
			t.Errorf("class %q appears %d times in human + precedence", c, got[c])
		}
		delete(got, c)
	}
	if len(got) != 0 {
		t.Errorf("precedence holds classes vocab does not: %v", got)
	}
}

func BenchmarkClassify(b *testing.B) {
	for _, name := range []string{"outlook-human.eml", "outlook-oof.eml", "postfix-dsn.eml"} {
		h, _ := header.Read(readTestdata(b, name))
		env := ReversePath(h)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Classify(h, env, testOwn)
			}
		})
	}
}
