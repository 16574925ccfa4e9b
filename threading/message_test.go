package threading

import (
	"slices"
	"strings"
	"testing"
)

func TestParseIDList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"<a@b>", []string{"a@b"}},
		{"<a@b> <c@d>\r\n <e@f>", []string{"a@b", "c@d", "e@f"}},
		{"<a@b> (comment) <a@b>", []string{"a@b"}},
		{"a@b", []string{"a@b"}},
		{"<>", nil},
		{"<@>", nil},
		{"<a b@c>", nil},
		{"<noat>", nil},
		{"<a@>", nil},
		{"<@b>", nil},
		{"foo", nil},
		{"", nil},
		{"<unterminated@x", nil},
		{"<" + strings.Repeat("x", 300) + "@y>", nil},
		{"junk <ok@host> junk", []string{"ok@host"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := ParseIDList(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("ParseIDList(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNormalizeAddress(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Jana <Jana.Novak@Gmail.com>", "jana.novak@gmail.com"},
		{"jana@example.org", "jana@example.org"},
		{"=?UTF-8?Q?J=C3=BCrgen?= <j@w.example>", "j@w.example"},
		{"Müller, Jürgen <j.mueller@x.example>", "j.mueller@x.example"},
		{"<weird..dots.@x.example>", "weird..dots.@x.example"},
		{"no address", ""},
		{"", ""},
		{"@x", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := NormalizeAddress(tt.in); got != tt.want {
				t.Errorf("NormalizeAddress(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestReadMessage(t *testing.T) {
	raw := "From: =?UTF-8?Q?J=C3=BCrgen?= <J.Wagner@Bau.example>\r\n" +
		"To: support@acme.example, \"Lena\" <lena@acme.example>\r\n" +
		"Cc: a@x.example; b@y.example\r\n" +
		"Subject: =?UTF-8?Q?AW:_Rechnung?=\r\n" +
		"Message-ID:\r\n <AM0PR07MB1@AM0PR07MB1.eurprd07.prod.outlook.com>\r\n" +
		"In-Reply-To: <x@y>\r\n" +
		"References: <r1@y>\r\n <r2@y>\r\n" +
		"Thread-Index: AdoBHLGUtaY+wvYtQv2Hq3qNQkYWnA==\r\n" +
		"Thread-Topic: Rechnung\r\n" +
		"Date: Tue, 17 Oct 2023 17:10:11 +0000\r\n\r\nbody\r\n"
	m, err := ReadMessage(strings.NewReader(raw), []string{"Support@Acme.example"})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"from", m.From == "j.wagner@bau.example"},
		{"to", slices.Equal(m.To, []string{"support@acme.example", "lena@acme.example"})},
		{"cc lax", slices.Equal(m.Cc, []string{"a@x.example", "b@y.example"})},
		{"message-id", m.MessageID == "AM0PR07MB1@AM0PR07MB1.eurprd07.prod.outlook.com"},
		{"in-reply-to", slices.Equal(m.InReplyTo, []string{"x@y"})},
		{"references", slices.Equal(m.References, []string{"r1@y", "r2@y"})},
		{"recipients", slices.Equal(m.Recipients, []string{"support@acme.example"})},
		{"thread-index", m.ThreadIndex == "AdoBHLGUtaY+wvYtQv2Hq3qNQkYWnA=="},
		{"date", m.Date.Year() == 2023},
		{"subject raw", m.Subject == "=?UTF-8?Q?AW:_Rechnung?="},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !c.ok {
				t.Errorf("%+v", m)
			}
		})
	}
	if _, err := ReadMessage(strings.NewReader("no header here"), nil); err == nil {
		t.Error("want an error for a mail without header")
	}
}
