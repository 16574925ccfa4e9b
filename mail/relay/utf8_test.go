package relay

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"mime"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"github.com/tendhq/tend/mail/compose"
)

// utf8Msg has a raw UTF-8 Subject and display name, as a relayed reply
// to a customer with an internationalised address carries (RFC 6532).
func utf8Msg(to string) []byte {
	return []byte("From: Support <support@acme.example>\r\nTo: José <" + to + ">\r\nSubject: Grüße aus Köln\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nHallo José, schöne Grüße.\r\n")
}

// TestSendSMTPUTF8 sends to servers with and without SMTPUTF8 (RFC 6531):
// SMTPUTF8 is declared exactly when an address or header needs it; where
// the server lacks it the message is downgraded (IDN domains as A-labels,
// headers RFC 2047-encoded) or, for a non-ASCII local part, which has no
// ASCII form, refused before RCPT with a reason that is not the address's
// hard bounce; a 553 5.6.7 answer is such a protocol refusal too; and
// every session ends with QUIT.
func TestSendSMTPUTF8(t *testing.T) {
	t.Parallel()
	e553 := &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7}, Message: "Must declare SMTPUTF8 to send unicode address"}
	e550 := &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	cases := []struct {
		name     string
		srv      *captureServer
		to       string
		msg      []byte
		wantUTF8 bool   // MAIL FROM declared SMTPUTF8
		wantRcpt string // envelope recipient as the server saw it; "" when nothing was delivered
		wantData func(t *testing.T, data []byte)
		// failure expectations, when nothing is delivered
		protocol bool
		code     int
		reason   string
	}{
		{name: "server with SMTPUTF8, unicode local part", srv: &captureServer{smtputf8: true, strictUTF8: true},
			to: "josé@example.es", msg: utf8Msg("josé@example.es"), wantUTF8: true, wantRcpt: "josé@example.es",
			wantData: func(t *testing.T, data []byte) {
				if !bytes.Equal(data, utf8Msg("josé@example.es")) {
					t.Errorf("message changed on the way:\n%s", data)
				}
			}},
		{name: "server with SMTPUTF8, ASCII mail declares nothing", srv: &captureServer{smtputf8: true},
			to: "anna@example.ru", msg: testMsg, wantUTF8: false, wantRcpt: "anna@example.ru"},
		{name: "server with SMTPUTF8, only a UTF-8 header", srv: &captureServer{smtputf8: true},
			to: "anna@example.ru", msg: utf8Msg("anna@example.ru"), wantUTF8: true, wantRcpt: "anna@example.ru"},
		{name: "server without SMTPUTF8, unicode local part cannot be downgraded", srv: &captureServer{strictUTF8: true},
			to: "josé@example.es", msg: utf8Msg("josé@example.es"), protocol: true, reason: "SMTPUTF8"},
		{name: "server without SMTPUTF8, IDN domain and UTF-8 headers are downgraded", srv: &captureServer{strictUTF8: true},
			to: "anna@bücher.example", msg: utf8Msg("anna@bücher.example"), wantUTF8: false, wantRcpt: "anna@xn--bcher-kva.example",
			wantData: func(t *testing.T, data []byte) {
				if i := bytes.IndexFunc(data[:bytes.Index(data, []byte("\r\n\r\n"))], func(r rune) bool { return r > 127 }); i >= 0 {
					t.Errorf("header still has non-ASCII at %d:\n%s", i, data)
				}
				m, err := mail.ReadMessage(bytes.NewReader(data))
				if err != nil {
					t.Fatal(err)
				}
				dec := mime.WordDecoder{}
				if s, err := dec.DecodeHeader(m.Header.Get("Subject")); err != nil || s != "Grüße aus Köln" {
					t.Errorf("Subject = %q, %v", s, err)
				}
				to, err := m.Header.AddressList("To")
				if err != nil || len(to) != 1 || to[0].Address != "anna@xn--bcher-kva.example" || to[0].Name != "José" {
					t.Errorf("To = %v, %v", to, err)
				}
				if !bytes.Contains(data, []byte("Hallo José, schöne Grüße.")) {
					t.Errorf("8-bit body changed:\n%s", data)
				}
			}},
		{name: "553 5.6.7 is a protocol refusal, not a bounce", srv: &captureServer{smtputf8: true, rcptErr: map[string]*smtp.SMTPError{"josé@example.es": e553}},
			to: "josé@example.es", msg: utf8Msg("josé@example.es"), protocol: true, code: 553, reason: "5.6.7"},
		{name: "550 5.1.1 stays the address's bounce", srv: &captureServer{rcptErr: map[string]*smtp.SMTPError{"gone@example.es": e550}},
			to: "gone@example.es", msg: testMsg, protocol: false, code: 550, reason: "5.1.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr, _ := tc.srv.start(t, TLSNone)
			err := New(Config{Addr: addr, TLS: TLSNone, Timeout: 10 * time.Second}).Send(context.Background(), "bounce@acme.example", []string{tc.to}, tc.msg)
			msgs := tc.srv.messages()
			if tc.wantRcpt != "" {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				if len(msgs) != 1 || len(msgs[0].to) != 1 || msgs[0].to[0] != tc.wantRcpt {
					t.Fatalf("delivered %+v, want one to %s", msgs, tc.wantRcpt)
				}
				if msgs[0].utf8 != tc.wantUTF8 {
					t.Errorf("SMTPUTF8 declared = %v, want %v", msgs[0].utf8, tc.wantUTF8)
				}
				if msgs[0].body != smtp.Body8BitMIME {
					t.Errorf("BODY = %q, want 8BITMIME (the server offers it)", msgs[0].body)
				}
				if tc.wantData != nil {
					tc.wantData(t, msgs[0].data)
				}
			} else {
				var se *SendError
				if !errors.As(err, &se) {
					t.Fatalf("err = %v, want *SendError", err)
				}
				if se.Temporary || se.Protocol != tc.protocol || se.Code != tc.code || !strings.Contains(err.Error(), tc.reason) {
					t.Errorf("got temporary=%v protocol=%v code=%d %q; want permanent, protocol=%v code=%d mentioning %q",
						se.Temporary, se.Protocol, se.Code, err, tc.protocol, tc.code, tc.reason)
				}
				if tc.protocol && se.HardBounce() {
					t.Errorf("a protocol refusal counts as a hard bounce: %v", err)
				}
				if !tc.protocol && !se.HardBounce() {
					t.Errorf("a 5.1.1 refusal is not a hard bounce: %v", err)
				}
				if len(msgs) != 0 {
					t.Errorf("delivered %d messages", len(msgs))
				}
			}
			if trace := tc.srv.trace.String(); !strings.Contains(trace, "QUIT") {
				t.Errorf("session did not end with QUIT:\n%s", trace)
			}
		})
	}
}

// TestDowngradeKeepsDKIM composes and signs a reply to an internationalised
// domain as the outbox does, and sends it to a relay without SMTPUTF8: the
// envelope is downgraded, the signed header is already ASCII (compose
// writes A-labels) and arrives byte for byte, so the signature verifies.
func TestDowngradeKeepsDKIM(t *testing.T) {
	t.Parallel()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := compose.Build(compose.Message{
		From: compose.Address{Name: "Acme Support", Email: "support@acme.example"}, To: []compose.Address{{Name: "José Núñez", Email: "jose@bücher.example"}},
		Subject: "Ihre Bestellung – Grüße", MessageID: "r1.42@mail.acme.example", Date: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC),
		LoopHeader: "X-Tend-Loop: acme", Text: "Schöne Grüße.\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := compose.Sign(raw, compose.DKIM{Domain: "acme.example", Selector: "tend1", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	srv := &captureServer{strictUTF8: true}
	addr, _ := srv.start(t, TLSNone)
	if err := New(Config{Addr: addr, TLS: TLSNone, Timeout: 10 * time.Second}).Send(context.Background(), "bounce@acme.example", []string{"jose@bücher.example"}, signed); err != nil {
		t.Fatalf("Send: %v", err)
	}
	msgs := srv.messages()
	if len(msgs) != 1 || msgs[0].to[0] != "jose@xn--bcher-kva.example" || msgs[0].utf8 {
		t.Fatalf("delivered %+v", msgs)
	}
	record := "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(msgs[0].data), &dkim.VerifyOptions{LookupTXT: func(string) ([]string, error) { return []string{record}, nil }})
	if err != nil || len(vs) != 1 || vs[0].Err != nil {
		t.Fatalf("DKIM after the downgrade: %+v, %v", vs, err)
	}
}

// FuzzDowngrade feeds arbitrary messages and addresses to the downgrade:
// it never panics, and what it returns has an ASCII envelope and header
// and the body it was given.
func FuzzDowngrade(f *testing.F) {
	f.Add("bounce@acme.example", "anna@bücher.example", string(utf8Msg("anna@bücher.example")))
	f.Add("bounce@acme.example", "josé@example.es", string(utf8Msg("josé@example.es")))
	f.Add("a@b", "c@d", "Subject: Grüße\n folded ü\nTo: \"Ä, B\" <x@ü.example>,\n y@z\n\nbody\n")
	f.Add("", "@", "\xff\xfe: \x80\r\n\r\n")
	f.Fuzz(func(t *testing.T, from, to, raw string) {
		gotFrom, gotTo, out, err := downgrade(from, []string{to}, []byte(raw))
		if err != nil {
			return
		}
		head, body := headerBlock(out)
		_, inBody := headerBlock([]byte(raw))
		if !isASCII(gotFrom) || !isASCII(gotTo[0]) || !isASCII(string(head)) {
			t.Errorf("not ASCII after downgrade: %q %q %q", gotFrom, gotTo, head)
		}
		if !bytes.Equal(body, inBody) {
			t.Errorf("body changed: %q → %q", inBody, body)
		}
	})
}
