package rules

import (
	"strings"
	"testing"
)

func TestParseRating(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in      string
		score   int
		comment string
	}{
		{"5", 5, ""},
		{"  4\n", 4, ""},
		{"\n\n3\r\n", 3, ""},
		{"5!", 5, ""},
		{"4/5", 4, ""},
		{"4 / 5", 4, ""},
		{"5 out of 5", 5, ""},
		{"5 stars", 5, ""},
		{"4 Sterne", 4, ""},
		{"5 étoiles !", 5, ""},
		{"3 - slow, but it works", 3, "slow, but it works"},
		{"4. Quick answer, thanks", 4, "Quick answer, thanks"},
		{"2: took a week\nand two reminders", 2, "took a week\nand two reminders"},
		{"**5**", 5, ""},
		{"1 von 5", 1, ""},
		{"1 more thing: the export is slow", 0, ""},
		{"6", 0, ""},
		{"0", 0, ""},
		{"10/10", 0, ""},
		{"45", 0, ""},
		{"five", 0, ""},
		{"Thanks!\n5", 0, ""},
		{"", 0, ""},
		{"2026-12-05 works for me", 0, ""},
		{"3.5", 0, ""},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			score, comment, ok := ParseRating(c.in)
			if ok != (c.score != 0) || score != c.score || comment != c.comment {
				t.Errorf("ParseRating(%q) = %d, %q, %v; want %d, %q", c.in, score, comment, ok, c.score, c.comment)
			}
		})
	}
}

// FuzzParseRating: never panics; a rating is 1..5 and its comment is
// text from the input.
func FuzzParseRating(f *testing.F) {
	for _, s := range []string{"5", "4/5 great", "3 - meh\nmore", "1 more thing", "\xff5", strings.Repeat("5", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		score, comment, ok := ParseRating(s)
		if !ok {
			if score != 0 || comment != "" {
				t.Fatalf("not a rating but %d %q", score, comment)
			}
			return
		}
		if score < 1 || score > 5 {
			t.Fatalf("score %d", score)
		}
		if len(comment) > len(s)+1 {
			t.Fatalf("comment longer than the input")
		}
	})
}
