package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/internal/testenv"
	"github.com/tendhq/tend/mail/ingest"
)

// corpusDir is the shared real-world corpus, read in place.
const corpusDir = "../../../shared/corpus"

// corpusFiles lists the corpus, or skips (fails under CI) when it is absent.
func corpusFiles(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(corpusDir, "index.tsv"))
	if err != nil {
		testenv.SkipOrFail(t, "corpus not found at "+corpusDir)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if path, _, ok := strings.Cut(sc.Text(), "\t"); ok {
			out = append(out, filepath.Join(corpusDir, path))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// wireForm is what an MTA would transmit: lone CRs (old Mac files) become
// line ends, as no SMTP client sends a bare CR line.
func wireForm(raw []byte) []byte {
	if bytes.Contains(raw, []byte("\r")) && !bytes.Contains(raw, []byte("\n")) {
		raw = bytes.ReplaceAll(raw, []byte("\r"), []byte("\n"))
	}
	return raw
}

// TestCorpusThroughSMTP sends every corpus message through the SMTP door:
// none may crash tend, none may be lost, each must be readable over the
// API afterwards.
func TestCorpusThroughSMTP(t *testing.T) {
	files := corpusFiles(t)
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) { corpusThroughSMTP(t, backend, files) })
	}
}

func corpusThroughSMTP(t *testing.T, backend string, files []string) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, backend, "")
	p := startTend(t, cfg, "TEND_SMTP_MAX_MESSAGE_BYTES=26214400")
	tok := p.token("lead")

	c, err := smtp.Dial(p.SMTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	// Distinct as tend deduplicates: by Message-ID and the content
	// without trace fields (the corpus holds RFC 5322's example message
	// with and without its Received fields: one message).
	sent := map[string]bool{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		raw = wireForm(raw)
		if err := c.Mail("sender@example.com"); err != nil {
			t.Fatalf("%s: MAIL: %v", f, err)
		}
		if err := c.Rcpt("support@acme.test"); err != nil {
			t.Fatalf("%s: RCPT: %v", f, err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatalf("%s: DATA: %v", f, err)
		}
		if _, err := w.Write(raw); err != nil {
			t.Fatalf("%s: write: %v", f, err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("%s: not accepted: %v", f, err)
		}
		// What the server stores is the CRLF form net/smtp transmits.
		h := ingest.ParseHeaders(crlf(raw))
		sent[h.MessageID+" "+h.ContentHash] = true
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}

	var total int
	waitFor(t, "every message to be parsed", 3*time.Minute, func() bool {
		var m struct {
			ID     int64 `json:"id"`
			Parsed bool  `json:"parsed"`
		}
		total = 0
		// Row ids have gaps (PostgreSQL's sequence keeps values a rolled
		// back insert took, such as a duplicate's retried savepoint): the
		// walk ends after a long run of ids that are not there.
		for id, missing := int64(1), 0; missing < 200; id++ {
			code := p.getJSON(tok, fmt.Sprintf("/api/messages/%d", id), &m)
			if code == http.StatusNotFound {
				missing++
				continue
			}
			if code != http.StatusOK || !m.Parsed {
				return false
			}
			missing = 0
			total++
		}
		return true
	})
	p.Stop()
	counts, _ := storeCounts(t, cfg)
	if int(counts.RawMessages) != len(sent) {
		t.Errorf("%d raw messages stored, %d distinct sent: mail was lost", counts.RawMessages, len(sent))
	}
	if total != int(counts.Messages) || total < len(sent) {
		t.Errorf("%d messages readable over the API, %d stored, %d sent", total, counts.Messages, len(sent))
	}
	t.Logf("%d corpus files sent, %d distinct, %d raw stored; %d messages (with tend's own acknowledgements) readable", len(files), len(sent), counts.RawMessages, total)
}

// crlf converts line ends to CRLF the way net/smtp's DATA writer does.
func crlf(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
}
