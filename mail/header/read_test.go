package header

import "testing"

func TestRead(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		subject string
		to      string
		body    string
	}{
		{"lf", "Subject: a\nTo: b@x\n\nbody", "a", "b@x", "body"},
		{"crlf", "Subject: a\r\nTo: b@x\r\n\r\nbody", "a", "b@x", "body"},
		{"cr only", "Subject: a\rTo: b@x\r\rbody", "a", "b@x", "body"},
		{"folded", "Subject: a\n  long\n\tvalue\nTo: b@x\n\nbody", "a long value", "b@x", "body"},
		{"mbox from line", "From someone@x Mon Jan  1 00:00:00 2024\nSubject: a\nTo: b@x\n\nbody", "a", "b@x", "body"},
		{"leading blank lines", "\n\n  \nSubject: a\nTo: b@x\n\nbody", "a", "b@x", "body"},
		{"space before colon", "Subject : a\nTo: b@x\n\nbody", "a", "b@x", "body"},
		{"stray line", "Subject: a\nthis is junk\nTo: b@x\n\nbody", "a", "b@x", "body"},
		{"no blank line", "Subject: a\nTo: b@x\nHello there.\nMore.", "a", "b@x", "Hello there.\nMore."},
		{"no header", "just text\nmore", "", "", "just text\nmore"},
		{"empty header", "\njust text", "", "", "just text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, off := Read([]byte(tt.raw))
			if h.Get("Subject") != tt.subject || h.Get("To") != tt.to {
				t.Errorf("Subject=%q To=%q, want %q %q", h.Get("Subject"), h.Get("To"), tt.subject, tt.to)
			}
			if got := tt.raw[off:]; got != tt.body {
				t.Errorf("body = %q, want %q", got, tt.body)
			}
		})
	}
}
