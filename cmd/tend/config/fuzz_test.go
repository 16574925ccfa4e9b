package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes (seeded with the example, the testdata
// files and the shapes that stress the decoder: aliases, merge keys, tags,
// nulls) to Parse. It must never panic; on failure it returns Errors whose
// entries all say something, and on success the config holds validated,
// normalized values.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	seeds = append(seeds, "tend.example.yaml")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"a: &a [*a]\n",
		"x-a: &a {<<: *a}\nsmtp: *a\n",
		"smtp: !!map {listen: !!str 1}\n",
		"inboxes: [~, {address: ~}, {imap: ~}, {imap: {after: {move: ~}}}]\n",
		"follow_through: {nudges: [[1d]]}\n",
		"? [a]\n: b\n",
		"data_dir: |\n  multi\n  line\n",
		"\xff\xfe\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data, []string{"TEND_LOG_LEVEL=debug"})
		if err != nil {
			var es Errors
			if !errors.As(err, &es) || len(es) == 0 {
				t.Fatalf("error is not a non-empty Errors: %v", err)
			}
			for _, e := range es {
				if e.Msg == "" {
					t.Fatalf("empty message in %+v", e)
				}
				if e.Env == "" && e.File != "fuzz.yaml" {
					t.Fatalf("error not attributed to the file: %+v", e)
				}
			}
			return
		}
		if c.Log.Level != "debug" {
			t.Fatalf("environment not applied: %q", c.Log.Level)
		}
		if len(c.Inboxes) == 0 {
			t.Fatal("valid config without an inbox")
		}
		for _, in := range c.Inboxes {
			if in.Address != strings.ToLower(in.Address) || in.ResponseTime <= 0 {
				t.Fatalf("inbox not normalized or validated: %+v", in)
			}
		}
		_ = c.Redacted()
		_ = c.Notes()
	})
}
