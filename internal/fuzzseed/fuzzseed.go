// Package fuzzseed seeds fuzz targets with real mail: the repository's
// testdata and a sample of the shared corpus beside the repository. It
// is test support, a leaf that imports nothing of tend's but testenv.
package fuzzseed

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tendhq/tend/internal/testenv"
)

// MaxSeed bounds a seed: the fuzzer mutates every seed many times, and a
// megabyte of mail costs as much per execution as a thousand small ones.
const MaxSeed = 64 << 10

// Files returns the contents of the files matching globs, in order, those
// over MaxSeed left out. They are the repository's own: one that cannot be
// read fails f.
func Files(f *testing.F, globs ...string) [][]byte {
	f.Helper()
	var out [][]byte
	for _, g := range globs {
		names, err := filepath.Glob(g)
		if err != nil {
			f.Fatal(err)
		}
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				f.Fatal(err)
			}
			if len(b) <= MaxSeed {
				out = append(out, b)
			}
		}
	}
	return out
}

// Corpus returns every nth message of dir/index.tsv (the shared corpus),
// those over MaxSeed left out. Without the corpus it returns none, so that
// a target still runs on its other seeds, except under CI (TEND_CI set),
// where the corpus is required and its absence fails f.
func Corpus(f *testing.F, dir string, every int) [][]byte {
	f.Helper()
	index, err := os.ReadFile(filepath.Join(dir, "index.tsv"))
	if err != nil {
		if testenv.CI() {
			f.Fatalf("the shared corpus is missing (%v) and %s is set", err, testenv.CIEnv)
		}
		return nil
	}
	var out [][]byte
	for i, line := range strings.Split(strings.TrimSpace(string(index)), "\n") {
		path, _, ok := strings.Cut(line, "\t")
		if !ok || i%every != 0 {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, path))
		if err != nil {
			f.Fatal(err)
		}
		if len(b) <= MaxSeed {
			out = append(out, b)
		}
	}
	return out
}
