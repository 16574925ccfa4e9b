package agentcmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: never panics; the customer text never contains a line the
// parser counted as a command or problem; every reported line number is
// in range.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.txt"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("#close duplicate of #99999999999999\n#assign a@b\n#tag ä")
	f.Add("#\n#-\n#1\n# resolve\n#résolve")
	f.Fuzz(func(t *testing.T, s string) {
		res, _ := Parse(s)
		n := strings.Count(strings.ReplaceAll(s, "\r\n", "\n"), "\n") + 1
		lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
		check := func(line int) {
			if line < 1 || line > n {
				t.Fatalf("line %d out of range 1..%d", line, n)
			}
		}
		for _, c := range res.Commands {
			check(c.Line)
		}
		for _, p := range res.Problems {
			check(p.Line)
		}
		if strings.HasPrefix(res.Text, "\n") || strings.HasSuffix(res.Text, "\n") {
			t.Fatalf("text not tidied: %q", res.Text)
		}
		for _, c := range res.Commands {
			l := strings.TrimSpace(lines[c.Line-1])
			if l != "" && strings.Contains("\n"+res.Text+"\n", "\n"+l+"\n") && countLine(lines, l) == 1 {
				t.Fatalf("command line %q left in text", l)
			}
		}
	})
}

func countLine(lines []string, l string) int {
	n := 0
	for _, x := range lines {
		if strings.TrimSpace(x) == l {
			n++
		}
	}
	return n
}
