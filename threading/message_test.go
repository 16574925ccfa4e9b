package threading

import (
	"slices"
	"testing"
)

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
	m := ReadMessage([]byte(raw), []string{"Support@Acme.example"})
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
	// A mail without a header block has no fields, and threading still
	// decides on it.
	if m := ReadMessage([]byte("no header here"), nil); m.MessageID != "" || m.From != "" || len(m.References) != 0 {
		t.Errorf("fields from a mail without header: %+v", m)
	}
}
