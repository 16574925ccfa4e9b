package web

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tendhq/tend/internal/testenv"
	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

func TestDownloads(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	maria := e.deliverFile("outlook_attachment.eml", billing)
	tom := e.deliverFile("gmail_alternative.eml")
	reply := e.deliverFile("thunderbird_reply.eml")
	ts := e.serve()
	b := newBrowser(t, ts.URL)
	b.login("alice@acme.test", agentPW)

	att := func(d storage.Delivered, ticket int64, part string) string {
		return fmt.Sprintf("/tickets/%d/messages/%d/attachments/%s", ticket, d.MessageRowID, part)
	}
	for _, tc := range []struct {
		name, path  string
		code        int
		ctype, disp string
		body        string // a substring of the body
	}{
		{"pdf keeps its type and its UTF-8 name", att(maria, maria.Ticket, "0"), http.StatusOK,
			"application/pdf", "attachment; filename*=utf-8''Kontoauszug%20M%C3%A4rz.pdf", "%PDF-1.4"},
		{"html is never served as html", att(reply, tom.Ticket, "0"), http.StatusOK,
			"application/octet-stream", `attachment; filename="login page.html"`, "<script>alert('from attachment')"},
		{"path and bidi override stripped", att(reply, tom.Ticket, "1"), http.StatusOK,
			"text/plain", `attachment; filename=consolegol.exe`, "TypeError: token is undefined"},
		{"raw message", fmt.Sprintf("/tickets/%d/messages/%d/raw", maria.Ticket, maria.MessageRowID), http.StatusOK,
			"message/rfc822", fmt.Sprintf("attachment; filename=ticket-%d-message-%d.eml", maria.Ticket, maria.MessageRowID), "Thread-Index: AdqLq0V2nQ4v2H6bQ0OQ8cWl1q7m2A=="},
		{"part out of range", att(reply, tom.Ticket, "2"), http.StatusNotFound, "", "", ""},
		{"negative part", att(reply, tom.Ticket, "-1"), http.StatusBadRequest, "", "", ""},
		{"message of another ticket", att(maria, tom.Ticket, "0"), http.StatusNotFound, "", "", ""},
		{"raw of another ticket", fmt.Sprintf("/tickets/%d/messages/%d/raw", tom.Ticket, maria.MessageRowID), http.StatusNotFound, "", "", ""},
		{"unknown message", fmt.Sprintf("/tickets/%d/messages/9999/raw", tom.Ticket), http.StatusNotFound, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, res := b.do(http.MethodGet, tc.path, nil)
			if code != tc.code {
				t.Fatalf("GET %s = %d, want %d", tc.path, code, tc.code)
			}
			if code != http.StatusOK {
				return
			}
			h := res.Header
			if h.Get("Content-Type") != tc.ctype || h.Get("Content-Disposition") != tc.disp {
				t.Errorf("Content-Type %q, Content-Disposition %q; want %q, %q", h.Get("Content-Type"), h.Get("Content-Disposition"), tc.ctype, tc.disp)
			}
			if h.Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(h.Get("Content-Security-Policy"), "sandbox") {
				t.Errorf("headers %v: want nosniff and a sandbox CSP", h)
			}
			if !strings.Contains(body, tc.body) {
				t.Errorf("body lacks %q", tc.body)
			}
		})
	}

	t.Run("raw is the exact bytes", func(t *testing.T) {
		_, body, _ := b.do(http.MethodGet, fmt.Sprintf("/tickets/%d/messages/%d/raw", tom.Ticket, reply.MessageRowID), nil)
		want, _ := os.ReadFile(filepath.Join("testdata", "thunderbird_reply.eml"))
		if body != string(want) {
			t.Error("raw download differs from the received bytes")
		}
	})

	t.Run("needs login", func(t *testing.T) {
		anon := newBrowser(t, ts.URL)
		code, _, res := anon.do(http.MethodGet, att(maria, maria.Ticket, "0"), nil)
		if code != http.StatusSeeOther || res.Header.Get("Location") != "/login" {
			t.Errorf("anonymous download = %d", code)
		}
	})
}

func TestSafeFilename(t *testing.T) {
	long := strings.Repeat("ä", 200) + ".pdf"
	for _, tc := range []struct{ in, want string }{
		{"report.pdf", "report.pdf"},
		{`C:\Users\maria\Desktop\report.pdf`, "report.pdf"},
		{"../../etc/passwd", "passwd"},
		{"invoice\u202efdp.exe", "invoicefdp.exe"},
		{"a\x00b\r\nc.txt", "ab  c.txt"},
		{`quote"d:name?.txt`, "quote_d_name_.txt"},
		{"...hidden", "hidden"},
		{"trailing. . ", "trailing"},
		{"tab\tname.txt", "tab name.txt"},
		{"", "fallback"},
		{"../", "fallback"},
		{"\xff\xfe.txt", "_.txt"},
		{long, strings.Repeat("ä", 88) + ".pdf"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := safeFilename(tc.in, "fallback"); got != tc.want {
				t.Errorf("safeFilename(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestDownloadType(t *testing.T) {
	for in, want := range map[string]string{
		"application/pdf":                   "application/pdf",
		"IMAGE/PNG; name=x.png":             "image/png",
		"text/plain; charset=utf-8":         "text/plain",
		"text/html":                         "application/octet-stream",
		"image/svg+xml":                     "application/octet-stream",
		"application/xhtml+xml":             "application/octet-stream",
		"text/xml":                          "application/octet-stream",
		"application/javascript":            "application/octet-stream",
		"":                                  "application/octet-stream",
		"garbage/;;;":                       "application/octet-stream",
		"application/x-unknown-vendor-type": "application/octet-stream",
	} {
		if got := downloadType(in); got != want {
			t.Errorf("downloadType(%q) = %q, want %q", in, got, want)
		}
	}
}

// corpusDir is the shared real-world corpus, relative to this package
// (worktree/web → /work/shared/corpus).
const corpusDir = "../../shared/corpus"

// corpusFiles lists the corpus's messages, skipping (or failing under CI)
// when it is absent.
func corpusFiles(t testing.TB) []string {
	t.Helper()
	index, err := os.ReadFile(filepath.Join(corpusDir, "index.tsv"))
	if err != nil {
		testenv.SkipOrFail(t, fmt.Sprintf("corpus not found at %s: %v", corpusDir, err))
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(index)), "\n") {
		if path, _, ok := strings.Cut(line, "\t"); ok {
			out = append(out, filepath.Join(corpusDir, path))
		}
	}
	return out
}

// TestCorpusAttachments checks, for every real message, that each
// attachment the ingest path lists is the part the download serves: the
// same bytes (by hash) at the same index. It also renders each message's
// HTML through the sanitizer.
func TestCorpusAttachments(t *testing.T) {
	files := corpusFiles(t)
	fm := funcs(storagetest.NewFakeClock(t0).Now)
	sanitize := fm["safeHTML"].(func(string) template.HTML)
	var atts, mismatched int
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		p := ingest.Parse(raw)
		_ = sanitize(p.HTML)
		if len(p.Attachments) == 0 {
			continue
		}
		parts, err := attachmentParts(raw)
		if err != nil {
			t.Errorf("%s: %d parts listed, none served: %v", f, len(p.Attachments), err)
			continue
		}
		if len(parts) != len(p.Attachments) {
			t.Errorf("%s: %d parts listed, %d served", f, len(p.Attachments), len(parts))
			continue
		}
		for _, a := range p.Attachments {
			atts++
			sum := sha256.Sum256(parts[a.Part].Content)
			if hex.EncodeToString(sum[:]) != a.Hash {
				// Only the charset-detection fallback may decode a text
				// part differently.
				mismatched++
				if !strings.HasPrefix(a.ContentType, "text/") {
					t.Errorf("%s: part %d (%s, %s) differs from its listing", f, a.Part, a.Filename, a.ContentType)
				}
			}
		}
	}
	t.Logf("%d messages, %d attachments, %d text parts decoded differently by the charset fallback", len(files), atts, mismatched)
	if atts == 0 {
		t.Fatal("no attachments in the corpus: the test tested nothing")
	}
}
