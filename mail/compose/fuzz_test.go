package compose

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzBuild checks that arbitrary names, subjects and bodies never make
// Build panic, and that whatever it returns is well-formed on the wire and
// parses back with enmime to the same subject and display name.
func FuzzBuild(f *testing.F) {
	for _, m := range []Message{plainReply(), htmlReply(), autoAck()} {
		f.Add(m.From.Name, m.To[0].Name, m.Subject, m.Text, m.HTML, "a.txt")
	}
	f.Add("", "\r\n", "=?utf-8?q?x?=", "\r\r\n.\r\n", "<p>", "\x00\xff")
	// A U+FFFD once counted as one byte made an 83-character word.
	f.Add("", "", strings.Repeat("abcdefg\uFFFD", 6), "", "", "")
	f.Add(strings.Repeat("ä", 200), `"\`, strings.Repeat("a", 2000), strings.Repeat("b", 5000), "", "")
	f.Fuzz(func(t *testing.T, fromName, toName, subject, text, html, filename string) {
		m := autoAck()
		m.From.Name, m.To[0].Name, m.Subject, m.Text, m.HTML = fromName, toName, subject, text, html
		m.Attachments = []Attachment{{Filename: filename, ContentType: "text/plain", Data: []byte(text)}}
		env := parse(t, mustBuild(t, m))
		if got, want := norm(env.GetHeader("Subject")), norm(subject); got != want {
			t.Errorf("Subject = %q, want %q", got, want)
		}
		to, err := env.AddressList("To")
		if err != nil || len(to) != 1 || to[0].Address != "anna@example.ru" {
			t.Fatalf("To = %v, %v", to, err)
		}
		if got, want := norm(to[0].Name), norm(toName); got != want {
			t.Errorf("To name = %q, want %q", got, want)
		}
	})
}

// norm compares values the way a reader sees them: invalid UTF-8 replaced
// as Build does, runs of whitespace collapsed (unfolding may do that).
func norm(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.Join(strings.Fields(s), " ")
}
