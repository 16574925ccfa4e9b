package ingest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseUndeclaredCharset checks that a body with no declared charset
// is read as UTF-8 when it is valid UTF-8 (scripts, old clients and
// hand-written mail send raw UTF-8 with no MIME header at all), and only
// otherwise through charset detection.
func TestParseUndeclaredCharset(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string
	}{
		{"raw-utf8-no-mime.eml", []string{"Grüße aus Köln!", "„Datei zu groß“ – bitte prüfen.", "Привет, 東京, 🙂"}},
		{"mime-no-charset-utf8.eml", []string{"Ärger mit dem Größenlimit: 25 MiB überschritten."}},
		// Not UTF-8: detection still reads it as Latin-1.
		{"raw-latin1-no-mime.eml", []string{"précédent est arrivée", "« frais de port »", "dès que possible"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "charset", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			p := Parse(raw)
			for _, w := range tc.want {
				if !strings.Contains(p.Text, w) {
					t.Errorf("text lacks %q:\n%s", w, p.Text)
				}
			}
		})
	}
}
