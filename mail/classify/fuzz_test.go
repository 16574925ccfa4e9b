package classify

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tendhq/tend/mail/header"
	"github.com/tendhq/tend/vocab"
)

// testdataSeeds returns every testdata message.
func testdataSeeds(f *testing.F) [][]byte {
	f.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, n := range names {
		raw, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, raw)
	}
	return out
}

// FuzzClassify feeds arbitrary header blocks through header.Read and Classify,
// which run on untrusted input before the SMTP 250.
func FuzzClassify(f *testing.F) {
	for _, s := range testdataSeeds(f) {
		f.Add(s, "")
		f.Add(s, "someone@example.com")
	}
	f.Fuzz(func(t *testing.T, raw []byte, env string) {
		h, off := header.Read(raw)
		if off < 0 || off > len(raw) {
			t.Fatalf("body offset %d outside [0,%d]", off, len(raw))
		}
		r := Classify(h, env, testOwn)
		if r.Class != vocab.ClassHuman && !r.NoAutoReply {
			t.Fatalf("class %v without NoAutoReply", r.Class)
		}
		if !r.Class.Valid() {
			t.Fatalf("class %q is not in the vocabulary", r.Class)
		}
	})
}

// FuzzParseDSN feeds arbitrary bytes to ParseDSN: it must never panic, and
// must return a DSN or an error.
func FuzzParseDSN(f *testing.F) {
	for _, s := range testdataSeeds(f) {
		f.Add(s)
	}
	for _, s := range corpusBounceSeeds(40) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := ParseDSN(raw)
		if d == nil && err == nil {
			t.Fatal("nil DSN without an error")
		}
		if d != nil {
			for _, r := range d.Recipients {
				if r.Permanent && r.Action == "delayed" {
					t.Fatalf("delayed recipient marked permanent: %+v", r)
				}
			}
		}
	})
}
