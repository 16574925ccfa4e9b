package replytext

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seeds adds every testdata reply, as text and as raw bytes, and the
// talon fixtures when the corpus is present.
func seeds(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if more, _ := filepath.Glob(filepath.Join("..", "..", "..", "shared", "corpus", "talon", "*", "*.eml")); len(more) > 0 {
		files = append(files, more...)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("On Mon, Bob wrote:\n> q\n-- \n")
	f.Add("> a\nb\n> c\nd\n---------- Forwarded message ---------\n")
}

// FuzzExtract: never panics, never invents text (every output line is
// an input line), and leaves no stray blank lines or trailing spaces.
func FuzzExtract(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		got := Extract(s)
		in := strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
		for _, l := range strings.Split(got, "\n") {
			if l != "" && !strings.Contains(in, l) {
				t.Fatalf("output line %q not in input", l)
			}
		}
		if strings.HasPrefix(got, "\n") || strings.HasSuffix(got, "\n") || strings.Contains(got, "\n\n\n") {
			t.Fatalf("blank lines not tidied: %q", got)
		}
		for _, l := range strings.Split(got, "\n") {
			if strings.TrimRight(l, " \t") != l {
				t.Fatalf("trailing space kept: %q", l)
			}
		}
	})
}

// FuzzExtractHTML: never panics on arbitrary markup.
func FuzzExtractHTML(f *testing.F) {
	seeds(f)
	f.Add(`<div class="gmail_quote"><blockquote><div id="divRplyFwdMsg"><hr>`)
	f.Fuzz(func(t *testing.T, s string) {
		_ = ExtractHTML(s)
	})
}
