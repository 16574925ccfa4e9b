package rules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTranslationsComplete: every shipped language has every template
// that goes to the customer, each renders in that language (not the
// English text), and an override in <dir>/<lang>/ wins for that language
// only.
func TestTranslationsComplete(t *testing.T) {
	t.Parallel()
	tpl, err := LoadTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	greeting := map[string]string{"de": "Hallo", "fr": "Bonjour", "es": "Hola", "pt": "Olá", "nl": "Hallo"}
	for _, lang := range Languages()[1:] {
		for _, name := range TemplateNames() {
			if !customerFacing(name) {
				continue
			}
			if tpl.langs[lang][name] == nil {
				t.Errorf("%s/%s missing", lang, name)
				continue
			}
			en, _ := tpl.RenderIn(name, "", "en", SampleData())
			r, err := tpl.RenderIn(name, "", lang, SampleData())
			if err != nil {
				t.Fatal(err)
			}
			if r.Text == en.Text || !strings.HasPrefix(r.Text, greeting[lang]) {
				t.Errorf("%s/%s is not translated:\n%s", lang, name, r.Text)
			}
		}
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "de"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "de", "acknowledgement.txt.tmpl"), []byte("Subject: Eingang {{.Ticket.Tag}}\n\nServus!\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tpl, err = LoadTemplates(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := tpl.RenderIn("acknowledgement", "", "de", SampleData()); r.Text != "Servus!\n" {
		t.Errorf("de override ignored: %q", r.Text)
	}
	if r, _ := tpl.RenderIn("acknowledgement", "", "fr", SampleData()); !strings.HasPrefix(r.Text, "Bonjour") {
		t.Errorf("de override leaked into fr: %q", r.Text)
	}
}
