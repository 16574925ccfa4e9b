package compose

import (
	"mime"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestEncodeTextWordLength holds every encoded word within RFC 2047's 75
// characters (section 2) and whole characters per word (section 5), for
// subjects that mix ASCII with multi-byte runes. U+FFFD is what ingest
// stores for invalid bytes, so any reply to such a ticket carries it; it
// was once counted as one byte and produced words of 83 characters.
func TestEncodeTextWordLength(t *testing.T) {
	for _, tc := range []struct{ name, subject string }{
		{"replacement char (fuzz reproducer)", strings.Repeat("abcdefg\uFFFD", 6)},
		{"replacement chars only", strings.Repeat("\uFFFD", 40)},
		{"replacement before ASCII", "\uFFFD" + strings.Repeat("x", 90)},
		{"invalid bytes become U+FFFD", strings.Repeat("abcdefg\xff", 6)},
		{"umlauts", strings.Repeat("Grüße ", 20)},
		{"emoji", strings.Repeat("ok 👍", 30)},
		{"cyrillic", strings.Repeat("Привет", 15)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := encodeText(tc.subject)
			dec := mime.WordDecoder{}
			for _, w := range strings.Fields(enc) {
				if len(w) > 75 {
					t.Errorf("encoded word of %d characters (> 75): %q", len(w), w)
				}
				got, err := dec.Decode(w)
				if err != nil {
					t.Errorf("word %q: %v", w, err)
					continue
				}
				if !utf8.ValidString(got) {
					t.Errorf("word %q splits a character: %q", w, got)
				}
			}
			back, err := dec.DecodeHeader(enc)
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.ToValidUTF8(tc.subject, "\uFFFD"); back != want {
				t.Errorf("round trip = %q, want %q", back, want)
			}
		})
	}
}

// TestBuildIDNDomainAsALabels: an internationalised domain is written in
// the header as its A-labels, so only a non-ASCII local part needs
// SMTPUTF8 and a relay without it can take the signed message unchanged.
func TestBuildIDNDomainAsALabels(t *testing.T) {
	m := autoAck()
	m.To = []Address{{Name: "José", Email: "jose@bücher.example"}, {Email: "josé@example.es"}}
	raw := string(mustBuild(t, m))
	if !strings.Contains(raw, "<jose@xn--bcher-kva.example>") {
		t.Errorf("IDN domain not as A-labels:\n%s", raw)
	}
	if !strings.Contains(raw, "josé@example.es") {
		t.Errorf("non-ASCII local part changed (it has no ASCII form):\n%s", raw)
	}
}
