package web

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/tendhq/tend/mail/ingest"
)

// seedMail adds testdata's mails and, when present, a sample of the
// corpus (every 25th file, to keep the seed corpus quick to replay).
func seedMail(f *testing.F) {
	names, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if index, err := os.ReadFile(filepath.Join(corpusDir, "index.tsv")); err == nil {
		for i, line := range strings.Split(strings.TrimSpace(string(index)), "\n") {
			if path, _, ok := strings.Cut(line, "\t"); ok && i%25 == 0 {
				names = append(names, filepath.Join(corpusDir, path))
			}
		}
	}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzAttachmentParts: whatever the bytes, serving attachments never
// panics and agrees with the ingest path's listing: the same number of
// parts and the same bytes for every part (both parse with
// header.ParseMIME).
func FuzzAttachmentParts(f *testing.F) {
	seedMail(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		parts, err := attachmentParts(raw)
		listed := ingest.Parse(raw)
		if err != nil {
			if len(listed.Attachments) != 0 {
				t.Fatalf("ingest lists %d attachments, the download parse failed: %v", len(listed.Attachments), err)
			}
			return
		}
		if len(parts) != len(listed.Attachments) {
			t.Fatalf("ingest lists %d attachments, the download finds %d", len(listed.Attachments), len(parts))
		}
		for i, a := range listed.Attachments {
			if a.Part != i {
				t.Fatalf("listing out of order: %d at %d", a.Part, i)
			}
			sum := sha256.Sum256(parts[i].Content)
			if hex.EncodeToString(sum[:]) != a.Hash {
				t.Fatalf("part %d (%s) differs from its listing", i, a.ContentType)
			}
		}
	})
}

// FuzzSafeFilename: a sanitized name is never empty, is valid UTF-8, has
// no path, control or invisible formatting characters, no leading dot, is
// bounded, and sanitizing it again changes nothing.
func FuzzSafeFilename(f *testing.F) {
	for _, s := range []string{"report.pdf", `C:\x\y.doc`, "../../etc/passwd", "invoice\u202efdp.exe", "\x00", "...", strings.Repeat("é", 300) + ".txt", "a\tb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got := safeFilename(name, "fallback")
		if got == "" || !utf8.ValidString(got) || len(got) > maxFilenameBytes || strings.HasPrefix(got, ".") || strings.ContainsAny(got, `/\"`) {
			t.Fatalf("safeFilename(%q) = %q", name, got)
		}
		for _, r := range got {
			if (unicode.IsControl(r) || unicode.Is(unicode.Cf, r)) && r != ' ' {
				t.Fatalf("safeFilename(%q) = %q keeps %U", name, got, r)
			}
		}
		if again := safeFilename(got, "fallback"); again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q", name, got, again)
		}
	})
}

// FuzzCloseReason: an accepted reason is one of the three recorded forms
// and reads back as itself.
func FuzzCloseReason(f *testing.F) {
	for _, s := range []string{"spam", "no response", "duplicate", "duplicate of #12", "Duplicate #7", "duplicate of #-1", "duplicate of #99999999999999999999"} {
		f.Add(s, int64(0))
		f.Add(s, int64(12))
	}
	f.Fuzz(func(t *testing.T, reason string, dup int64) {
		got, n, err := closeReason(reason, dup)
		if err != nil {
			return
		}
		if got != reasonSpam && got != reasonNoResponse && (n < 1 || !strings.HasPrefix(got, "duplicate of #")) {
			t.Fatalf("closeReason(%q, %d) = %q, %d", reason, dup, got, n)
		}
		again, n2, err := closeReason(got, 0)
		if err != nil || again != got || n2 != n {
			t.Fatalf("%q does not read back: %q, %d, %v", got, again, n2, err)
		}
	})
}

// FuzzParseEvidence: stored evidence is always shown one way or the other,
// never lost and never a panic.
func FuzzParseEvidence(f *testing.F) {
	for _, s := range []string{"", `[{"Kind":"references","Ticket":1,"Detail":"d","Accepted":true}]`, `[{"kind":"new"}]`, `{"a":1}`, "text", `[null]`, `[{"Kind":{"x":1}}]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ev, raw := parseEvidence(s)
		var list []any
		none := strings.TrimSpace(s) == "" || json.Unmarshal([]byte(s), &list) == nil && len(list) == 0
		if !none && len(ev) == 0 && raw == "" {
			t.Fatalf("evidence %q vanished", s)
		}
		if len(ev) > 0 && raw != "" {
			t.Fatalf("evidence %q shown twice", s)
		}
	})
}

// FuzzQueueQuery: any URL the queue accepts renders links that parse back
// to the same filter.
func FuzzQueueQuery(f *testing.F) {
	for _, s := range []string{"", "state=open", "state=all&inbox=Support@Acme.test&page=3", "subject=login+fails", "page=0", "state=x", "q=%22password+reset%22&state=all", "q=+"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := parseQueueQuery(v)
		if err != nil {
			return
		}
		u, err := url.Parse(q.url("/"))
		if err != nil {
			t.Fatalf("bad link %q: %v", q.url("/"), err)
		}
		back, err := parseQueueQuery(u.Query())
		if err != nil || back != q {
			t.Fatalf("%q -> %+v -> %q -> %+v, %v", raw, q, q.url("/"), back, err)
		}
	})
}
