package ingest

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseHeaders(t *testing.T) {
	tests := []struct {
		name, raw                    string
		msgID, inReplyTo, from, subj string
		refs                         int
		derived                      bool
	}{
		{"outlook", "From: \"Müller, Jörg\" <Joerg.Mueller@Example.DE>\r\nSubject: =?iso-8859-1?Q?AW:_Drucker_f=E4llt_aus?=\r\nMessage-ID: <AM0PR01MB1234@eurprd01.prod.outlook.com>\r\nIn-Reply-To: <tend.1.2.abc@mail.acme.test>\r\nThread-Index: AQHZ\r\n\r\nbody",
			"AM0PR01MB1234@eurprd01.prod.outlook.com", "tend.1.2.abc@mail.acme.test", "joerg.mueller@example.de", "AW: Drucker fällt aus", 0, false},
		{"no message-id", "From: a@example.com\r\nSubject: hi\r\n\r\nx", "", "", "a@example.com", "hi", 0, true},
		{"bracketless references", "From: a@example.com\r\nMessage-ID: <m@x>\r\nReferences: r1@x r2@x\r\n\r\n", "m@x", "", "a@example.com", "", 2, false},
		{"junk ids dropped", "From: a@example.com\r\nMessage-ID: <>\r\nIn-Reply-To: <no-at-sign>\r\nReferences: <> <ok@x>\r\n\r\n", "", "", "a@example.com", "", 1, true},
		{"8-bit subject", "From: b@example.com\r\nSubject: caf\xe9 \x00menu\r\n\r\n", "", "", "b@example.com", "caf\uFFFD menu", 0, true},
		{"cr-only line ends", "From: c@example.com\rSubject: old mac\r\rbody", "", "", "c@example.com", "old mac", 0, true},
		{"broken from", "From: <<<bad@@example.com\r\nSubject: s\r\n\r\n", "", "", "", "s", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := ParseHeaders([]byte(tc.raw))
			if tc.msgID != "" && h.MessageID != tc.msgID || h.Derived != tc.derived {
				t.Errorf("Message-ID %q derived %v, want %q %v", h.MessageID, h.Derived, tc.msgID, tc.derived)
			}
			if h.Derived && !strings.HasSuffix(h.MessageID, "@hash.tend.invalid") {
				t.Errorf("derived Message-ID %q", h.MessageID)
			}
			if h.Parent() != tc.inReplyTo || h.From != tc.from || h.Subject != tc.subj || len(h.References) != tc.refs {
				t.Errorf("got in-reply-to %q from %q subject %q refs %v", h.InReplyTo, h.From, h.Subject, h.References)
			}
		})
	}
}

// FuzzParseHeaders: any bytes give headers that are safe to store.
func FuzzParseHeaders(f *testing.F) {
	for _, s := range []string{"From: a@b\r\n\r\n", "Subject: =?utf-8?B?w6k=?=\r\n\r\n", "\n\n\nFrom x\r\n", "Message-ID: <\x00@x>\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		h := ParseHeaders(raw)
		for _, s := range append([]string{h.MessageID, h.Subject, h.From, h.FromName, h.ThreadTopic, h.Parent()}, h.References...) {
			if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
				t.Fatalf("unstorable text %q", s)
			}
		}
		if h.MessageID == "" || h.BodyOffset > len(raw) {
			t.Fatalf("message id %q, body offset %d of %d", h.MessageID, h.BodyOffset, len(raw))
		}
	})
}

// FuzzParse: the full parse never panics and always yields storable text.
func FuzzParse(f *testing.F) {
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n"))
	f.Add([]byte("Content-Type: text/plain; charset=koi8-r\r\n\r\n\xf0\xf2\xe9\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p := Parse(raw)
		if !utf8.ValidString(p.Text) || !utf8.ValidString(p.HTML) || strings.ContainsRune(p.Text, 0) {
			t.Fatal("unstorable parse result")
		}
	})
}
