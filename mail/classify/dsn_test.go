package classify

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseDSN(t *testing.T) {
	tests := []struct {
		file        string
		standard    bool
		recipient   string
		action      string
		status      string
		permanent   bool
		diagContent string
		msgID       string
		returnPath  string
		deliveredTo string
	}{
		{"postfix-dsn.eml", true, "old.user@customer.example", "failed", "5.1.1", true, "User unknown", "ticket.1042.3.b7e1@tend.example", "bounce+42.9f3c1a@tend.example", "bounce+42.9f3c1a@tend.example"},
		{"exchange-ndr.eml", true, "gone@northwind.example", "failed", "5.1.10", true, "RecipientNotFound", "ticket.1045.2.bead@tend.example", "bounce+45.c0ffee@tend.example", "bounce+45.c0ffee@tend.example"},
		{"gmail-dsn.eml", true, "no.such.person@gmail.com", "failed", "5.1.1", true, "does not exist", "ticket.1046.1.f00d@tend.example", "bounce+46.d00d@tend.example", "bounce+46.d00d@tend.example"},
		{"exim-text.eml", false, "nobody@isp.example", "failed", "5.1.1", true, "User unknown", "ticket.1043.1.aa01@tend.example", "bounce+43.0d1e2f@tend.example", "bounce+43.0d1e2f@tend.example"},
		{"qmail.eml", false, "ghost@oldhost.example", "failed", "5.1.1", true, "no mailbox here", "ticket.1047.1.beef@tend.example", "bounce+47.beef@tend.example", "bounce+47.beef@tend.example"},
		{"exim-delay.eml", false, "slow@overloaded.example", "delayed", "4.7.0", false, "Try again later", "", "", "bounce+44.55aa66@tend.example"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			d, err := ParseDSN(readTestdata(t, tt.file))
			if err != nil {
				t.Fatalf("ParseDSN: %v", err)
			}
			if d.Standard != tt.standard {
				t.Errorf("Standard = %v, want %v", d.Standard, tt.standard)
			}
			if len(d.Recipients) != 1 {
				t.Fatalf("recipients = %+v, want exactly one", d.Recipients)
			}
			r := d.Recipients[0]
			if r.Address != tt.recipient || r.Action != tt.action || r.Status != tt.status || r.Permanent != tt.permanent {
				t.Errorf("recipient = %+v, want %s %s %s permanent=%v", r, tt.recipient, tt.action, tt.status, tt.permanent)
			}
			if !containsReason([]string{r.Diagnostic}, tt.diagContent) {
				t.Errorf("diagnostic %q lacks %q", r.Diagnostic, tt.diagContent)
			}
			if d.OriginalMessageID != tt.msgID {
				t.Errorf("OriginalMessageID = %q, want %q", d.OriginalMessageID, tt.msgID)
			}
			if d.OriginalReturnPath != tt.returnPath {
				t.Errorf("OriginalReturnPath = %q, want %q", d.OriginalReturnPath, tt.returnPath)
			}
			if !slices.Contains(d.DeliveredTo, tt.deliveredTo) {
				t.Errorf("DeliveredTo = %v, want it to hold %q", d.DeliveredTo, tt.deliveredTo)
			}
			wantFailed := 0
			if tt.action == "failed" {
				wantFailed = 1
			}
			if got := len(d.Failed()); got != wantFailed {
				t.Errorf("Failed() has %d, want %d", got, wantFailed)
			}
		})
	}
}

func TestParseDSNNotABounce(t *testing.T) {
	for _, name := range []string{"outlook-human.eml", "gmail-vacation.eml", "mailman.eml", "mdn-read-receipt.eml"} {
		t.Run(name, func(t *testing.T) {
			d, err := ParseDSN(readTestdata(t, name))
			if !errors.Is(err, ErrNotDSN) || d != nil {
				t.Errorf("ParseDSN = %+v, %v; want nil, ErrNotDSN", d, err)
			}
		})
	}
}

func TestParseDSNBroken(t *testing.T) {
	tests := []struct {
		name string
		raw  string
	}{
		{"empty", ""},
		{"header only", "From: MAILER-DAEMON@x.example\r\nSubject: Undeliverable"},
		{"report without parts", "From: MAILER-DAEMON@x.example\nContent-Type: multipart/report; report-type=delivery-status; boundary=zz\n\n--zz\n"},
		{"status without recipient", "Content-Type: multipart/report; report-type=delivery-status; boundary=zz\n\n--zz\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; x\n\n--zz--\n"},
		{"cr only", "From: MAILER-DAEMON@x.example\rSubject: failure notice\r\r<a@b.example>:\rno such user (#5.1.1)\r"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := ParseDSN([]byte(tt.raw))
			if d == nil && err == nil {
				t.Fatal("nil DSN without an error")
			}
		})
	}
	d, err := ParseDSN([]byte(tests[4].raw))
	if err != nil || len(d.Failed()) != 1 || d.Failed()[0].Address != "a@b.example" || d.Failed()[0].Status != "5.1.1" {
		t.Errorf("CR-only qmail bounce: %+v, %v", d, err)
	}
}

// TestLowerInPlace: letters are lowered where that keeps their length,
// and every byte stays at its offset, invalid UTF-8 and letters whose
// lower case is longer included.
func TestLowerInPlace(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Reporting-MTA: dns; X", "reporting-mta: dns; x"},
		{"\xff\x7fFinal-Recipient", "\xff\x7ffinal-recipient"},
		{"İSTANBUL Ünterwegs", "İstanbul ünterwegs"},
		{"", ""},
	} {
		got := lowerInPlace(c.in)
		if got != c.want || len(got) != len(c.in) {
			t.Errorf("lowerInPlace(%q) = %q, want %q of the same length", c.in, got, c.want)
		}
	}
	text := "\xff\xfe\xfdİİİ Some text\nReporting-MTA: dns; mx.example\n"
	if i := inlineStatus(text); i < 0 || !strings.HasPrefix(text[i:], "Reporting-MTA:") {
		t.Errorf("inlineStatus = %d, want the offset of the Reporting-MTA line in the text itself", i)
	}
}
