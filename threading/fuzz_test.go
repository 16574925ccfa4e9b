package threading_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tendhq/tend/internal/testenv"
	"github.com/tendhq/tend/threading"
	"github.com/tendhq/tend/threading/threadingtest"
)

// sharedCorpus is the real-world mail corpus, read in place.
const sharedCorpus = "../../shared/corpus"

// corpusHeaders returns the given header fields of every message in the
// shared corpus, or nil when the corpus is absent. Only the header block
// is read, laxly: broken files yield what they have.
func corpusHeaders(tb testing.TB, fields ...string) []string {
	tb.Helper()
	index, err := os.ReadFile(filepath.Join(sharedCorpus, "index.tsv"))
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(index), "\n") {
		path, _, _ := strings.Cut(line, "\t")
		if path == "" {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(sharedCorpus, path))
		if err != nil {
			tb.Fatalf("corpus index names %s: %v", path, err)
		}
		h, _ := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw))).ReadMIMEHeader()
		for _, f := range fields {
			out = append(out, h.Values(f)...)
		}
	}
	return out
}

// requireCorpus skips without the shared corpus, except in CI.
func requireCorpus(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(sharedCorpus, "index.tsv")); err != nil {
		testenv.SkipOrFail(t, fmt.Sprintf("shared corpus not found at %s: %v", sharedCorpus, err))
	}
}

// testdataSubjects are the Subject fields of our own conversation corpus.
func testdataSubjects(tb testing.TB) []string {
	convs, err := threadingtest.LoadConversations("testdata/conversations")
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, c := range convs {
		for _, s := range c.Steps {
			if m, err := threading.ReadMessage(bytes.NewReader(s.Raw), nil); err == nil {
				out = append(out, m.Subject, m.ThreadIndex)
			}
		}
	}
	return out
}

func TestSharedCorpusHeaders(t *testing.T) {
	requireCorpus(t)
	subjects := corpusHeaders(t, "Subject")
	if len(subjects) < 500 {
		t.Fatalf("only %d subjects in the shared corpus", len(subjects))
	}
	for _, s := range subjects {
		n := threading.NormalizeSubject(s)
		if !utf8.ValidString(n) || threading.NormalizeSubject(n) != n {
			t.Errorf("subject %q: key %q not stable", s, n)
		}
	}
	roots := 0
	for _, h := range corpusHeaders(t, "Thread-Index") {
		if _, ok := threading.ThreadIndexRoot(h); ok {
			roots++
		}
	}
	ids := 0
	for _, h := range corpusHeaders(t, "Message-Id", "References", "In-Reply-To") {
		ids += len(threading.ParseIDList(h))
	}
	t.Logf("shared corpus: %d subjects normalized, %d Thread-Index roots, %d ids", len(subjects), roots, ids)
	if roots == 0 || ids == 0 {
		t.Errorf("expected Thread-Index roots and ids in the shared corpus")
	}
}

func FuzzNormalizeSubject(f *testing.F) {
	for _, s := range append(testdataSubjects(f), corpusHeaders(f, "Subject")...) {
		f.Add(s)
	}
	f.Add("ＲＥ：Re[2]: [list] =?UTF-8?B?5Zue5aSN?= (fwd)")
	f.Fuzz(func(t *testing.T, s string) {
		n := threading.NormalizeSubject(s)
		if !utf8.ValidString(n) {
			t.Fatalf("invalid UTF-8 from %q", s)
		}
		if again := threading.NormalizeSubject(n); again != n {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, n, again)
		}
	})
}

func FuzzSubjectTag(f *testing.F) {
	for _, s := range testdataSubjects(f) {
		f.Add(s, "Acme")
	}
	f.Add("Re: [Acme #12] x", "")
	f.Fuzz(func(t *testing.T, s, prefix string) {
		n, ok := threading.SubjectTag(s, prefix)
		if ok && n <= 0 {
			t.Fatalf("tag %d from %q", n, s)
		}
		if strings.ContainsAny(prefix, "[]#") || !utf8.ValidString(prefix) {
			return
		}
		tagged := threading.TagSubject(s, 4711, prefix)
		if got, ok := threading.SubjectTag(tagged, prefix); !ok || got != 4711 {
			t.Fatalf("TagSubject(%q) = %q, tag %d %v", s, tagged, got, ok)
		}
	})
}

func FuzzVerify(f *testing.F) {
	// A fixed clock: the issue day is in the address, and the round trip
	// below must not depend on the day the fuzzer runs.
	s := threadingtest.CorpusSigner().WithReplyLifetime(0, testenv.NewFakeClock(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)))
	f.Add(s.Sign(threading.PurposeReply, 1, 2), uint8(0), uint8(0))
	f.Add("reply+1.2.20423.b", uint8(3), uint8('1'))
	f.Add(s.Sign(threading.PurposeNote, 123456789, 42), uint8(10), uint8('x'))
	f.Add("reply+1.2.b", uint8(3), uint8('1'))
	f.Add("support", uint8(0), uint8(0))
	f.Fuzz(func(t *testing.T, lp string, pos, c uint8) {
		tok, err := s.Verify(lp)
		if err == nil {
			if again := s.Sign(tok.Purpose, tok.Ticket, tok.Agent); tok.KeyID == "b" && strings.Count(lp, ".") == 3 && again != strings.ToLower(lp) {
				t.Fatalf("verified %q but signing gives %q", lp, again)
			}
			// Anything changed in a verified address must fail, unless the
			// change only alters case.
			b := []byte(lp)
			i := int(pos) % len(b)
			b[i] = c
			if mutated := string(b); !strings.EqualFold(mutated, lp) {
				if _, err := s.Verify(mutated); err == nil {
					t.Fatalf("changed %q to %q and it still verifies", lp, mutated)
				}
			}
		}
		if id, err := s.ParseBounceAddress(lp); err == nil && id <= 0 {
			t.Fatalf("bounce id %d", id)
		}
	})
}

func FuzzSignVerify(f *testing.F) {
	s := threadingtest.CorpusSigner()
	f.Add(int64(1), int64(1), true)
	f.Add(int64(1<<40), int64(99), false)
	f.Fuzz(func(t *testing.T, ticket, agent int64, note bool) {
		if ticket <= 0 || agent <= 0 {
			return
		}
		p := threading.PurposeReply
		if note {
			p = threading.PurposeNote
		}
		tok, err := s.Verify(s.Sign(p, ticket, agent))
		if err != nil || tok.Ticket != ticket || tok.Agent != agent || tok.Purpose != p {
			t.Fatalf("sign/verify %d %d: %+v %v", ticket, agent, tok, err)
		}
		if got, ok := s.ParseMessageID(s.MessageID(ticket, agent, "x.example")); !ok || got != ticket {
			t.Fatalf("message id round trip: %d %v", got, ok)
		}
		if got, err := s.ParseBounceAddress(s.BounceAddress(agent)); err != nil || got != agent {
			t.Fatalf("bounce round trip: %d %v", got, err)
		}
	})
}

func FuzzParseMessageID(f *testing.F) {
	s := threadingtest.CorpusSigner()
	f.Add(s.MessageID(5, 6, "tend.acme.example"))
	for _, h := range corpusHeaders(f, "Message-Id") {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if n, ok := s.ParseMessageID(id); ok && n <= 0 {
			t.Fatalf("ticket %d from %q", n, id)
		}
		for _, x := range threading.ParseIDList(id) {
			if !threading.ValidID(x) {
				t.Fatalf("ParseIDList returned invalid %q", x)
			}
		}
	})
}

func FuzzVerifyLinkToken(f *testing.F) {
	s := threadingtest.CorpusSigner()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Add(s.LinkToken("confirm", 9, now.Add(time.Hour)))
	f.Add("b.Y29uZmlybQ.9.1767229200.AAAA")
	f.Fuzz(func(t *testing.T, tok string) {
		p, n, err := s.VerifyLinkToken(tok, now)
		if err == nil && s.LinkToken(p, n, time.Unix(mustExpiry(t, tok), 0)) != tok {
			t.Fatalf("verified %q but it is not what LinkToken makes", tok)
		}
	})
}

func mustExpiry(t *testing.T, tok string) int64 {
	parts := strings.Split(tok, ".")
	e, err := strconv.ParseInt(parts[3], 10, 64)
	if err != nil {
		t.Fatalf("verified token %q has expiry %q", tok, parts[3])
	}
	return e
}

func FuzzThreadIndexRoot(f *testing.F) {
	for _, s := range append(testdataSubjects(f), corpusHeaders(f, "Thread-Index")...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		root, ok := threading.ThreadIndexRoot(h)
		if !ok {
			return
		}
		again, ok2 := threading.ThreadIndexRoot(root)
		if !ok2 || again != root {
			t.Fatalf("root %q of %q is not its own root", root, h)
		}
		child := threading.ContinueThreadIndex(h, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		if r, _ := threading.ThreadIndexRoot(child); r != root {
			t.Fatalf("child of %q has root %q", h, r)
		}
	})
}

// FuzzDecide feeds arbitrary header blocks through ReadMessage and Decide
// against a small store: no panic, and a decision always has evidence.
func FuzzDecide(f *testing.F) {
	convs, err := threadingtest.LoadConversations("testdata/conversations")
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range convs[:10] {
		for _, s := range c.Steps {
			f.Add(s.Raw)
		}
	}
	w := newWorld(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		msg, err := threading.ReadMessage(bytes.NewReader(raw), nil)
		if err != nil {
			return
		}
		d, err := threading.Decide(context.Background(), w.cfg, msg, w.fake)
		if err != nil {
			t.Fatal(err)
		}
		if len(d.Evidence) == 0 || d.Via() == "" {
			t.Fatalf("decision without accepted evidence: %+v", d)
		}
	})
}
