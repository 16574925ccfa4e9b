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
