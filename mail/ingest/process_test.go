package ingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

var p0 = time.Date(2026, 5, 4, 8, 0, 0, 0, time.UTC)

// procInstall is a store with a running group committer, for the
// processor's tests.
type procInstall struct {
	store *storage.Store
	clock *storagetest.FakeClock
	c     *storage.Committer
}

func newProcInstall(t testing.TB, b storagetest.Backend) *procInstall {
	t.Helper()
	clock := storagetest.NewFakeClock(p0)
	s := b.Open(t, clock)
	if err := s.SyncInboxes(context.Background(), []storage.InboxSpec{{Address: "support@acme.test", Name: "Acme Support"}}); err != nil {
		t.Fatal(err)
	}
	return &procInstall{store: s, clock: clock, c: storagetest.StartCommitter(t, s, 16)}
}

// deliver commits raw as a new ticket's first message, the way the
// pipeline would after its cheap header parse.
func (pi *procInstall) deliver(t testing.TB, subject, raw string) storage.Delivered {
	t.Helper()
	h := sha256.Sum256([]byte(raw))
	in := &storage.Incoming{
		Raw: []byte(raw), Hash: hex.EncodeToString(h[:]), MessageID: hex.EncodeToString(h[:8]) + "@example.com",
		From: "ann@example.com", Subject: subject, NormSubject: subject, Class: "human", Role: "customer",
		Inboxes: []string{"support@acme.test"}, Source: "test",
	}
	d, err := pi.c.Deliver(context.Background(), in)
	if err != nil {
		t.Fatalf("deliver %q: %v", subject, err)
	}
	return d
}

// plainMail is a small mail as a mail client writes it.
func plainMail(subject, body string) string {
	return "From: Ann <ann@example.com>\r\nTo: support@acme.test\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@example.com>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n"
}

// manyParts is a mail with n small attachments (a mailer's "attach the
// whole folder").
func manyParts(n int) string {
	var b strings.Builder
	b.WriteString("From: ann@example.com\r\nTo: support@acme.test\r\nSubject: many parts\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee the files\r\n")
	for i := range n {
		fmt.Fprintf(&b, "--b\r\nContent-Type: text/plain; name=\"f%d.txt\"\r\nContent-Disposition: attachment; filename=\"f%d.txt\"\r\n\r\nfile %d\r\n", i, i, i)
	}
	b.WriteString("--b--\r\n")
	return b.String()
}

// deeplyNested nests multipart/mixed depth levels deep.
func deeplyNested(depth int) string {
	var b strings.Builder
	b.WriteString("From: ann@example.com\r\nTo: support@acme.test\r\nSubject: nested\r\nMIME-Version: 1.0\r\n")
	for i := range depth {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"n%d\"\r\n\r\n--n%d\r\n", i, i)
	}
	b.WriteString("Content-Type: text/plain\r\n\r\nthe bottom\r\n")
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--n%d--\r\n", i)
	}
	return b.String()
}

// drain runs the processor until no work is due, then moves the clock
// past the longest backoff and runs it again, until no work is left.
func drain(t testing.TB, pi *procInstall, p *ingest.Processor, rounds int) {
	t.Helper()
	ctx := context.Background()
	for range rounds {
		for {
			n, err := p.RunOnce(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
		c, err := pi.store.Counts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c.PendingWork == 0 {
			return
		}
		pi.clock.Advance(2 * time.Hour)
	}
	t.Fatalf("work still pending after %d rounds", rounds)
}

// TestPoisonMessagesNeverStick feeds a 10,000-part mail, a deeply nested
// one and one whose after-work always fails (an injected failing hook)
// among ordinary mail: every other message is processed in the first
// round, before any retry is due (no head-of-line blocking); the big one
// is saved whole (its attachment rows are inserted in chunks); the failing
// one is tried MaxAttempts times, then given up, marked "could not be
// processed" with the error, and its work is gone.
func TestPoisonMessagesNeverStick(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			pi := newProcInstall(t, b)
			var mu sync.Mutex
			handled := map[string]int{}
			var gaveUp []string
			failing := errors.New("rules exploded")
			p := ingest.NewProcessor(pi.store, ingest.ProcessorOptions{
				Owner: "test", Clock: pi.clock, MaxAttempts: 3, RetryBackoff: time.Minute,
				AfterParse: func(ctx context.Context, tx *storage.Tx, m storage.Message) error {
					mu.Lock()
					defer mu.Unlock()
					handled[m.Subject]++
					if m.Subject == "poison" {
						return failing
					}
					return nil
				},
				GiveUp: func(ctx context.Context, tx *storage.Tx, m storage.Message, cause error) error {
					if !errors.Is(cause, failing) {
						t.Errorf("gave up on %q with %v, want the hook's error", m.Subject, cause)
					}
					gaveUp = append(gaveUp, m.Subject)
					return tx.AddEvent(ctx, *m.TicketID, "message.unprocessable", "", cause.Error(), &m.ID)
				},
			})
			d := map[string]storage.Delivered{}
			d["before"] = pi.deliver(t, "before", plainMail("before", "first"))
			d["poison"] = pi.deliver(t, "poison", plainMail("poison", "always fails"))
			d["many parts"] = pi.deliver(t, "many parts", manyParts(10000))
			d["nested"] = pi.deliver(t, "nested", deeplyNested(2000))
			d["after"] = pi.deliver(t, "after", plainMail("after", "behind the poison"))

			// The first round, before any retry is due.
			for {
				n, err := p.RunOnce(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					break
				}
			}
			for _, s := range []string{"before", "many parts", "nested", "after"} {
				if handled[s] != 1 {
					t.Errorf("%q handled %d times in the first round, want 1", s, handled[s])
				}
			}
			drain(t, pi, p, 10)
			if handled["poison"] != 3 || len(gaveUp) != 1 || gaveUp[0] != "poison" {
				t.Errorf("poison tried %d times, given up %v; want 3 tries and one give-up", handled["poison"], gaveUp)
			}
			m, err := pi.store.GetMessage(ctx, d["poison"].MessageRowID)
			if err != nil {
				t.Fatal(err)
			}
			if !m.Parsed || !strings.Contains(m.ParseError, "could not be processed: after parse: rules exploded") {
				t.Errorf("poison message: parsed %v, error %q", m.Parsed, m.ParseError)
			}
			atts, err := pi.store.Attachments(ctx, []int64{d["many parts"].MessageRowID})
			if err != nil {
				t.Fatal(err)
			}
			if n := len(atts[d["many parts"].MessageRowID]); n != 10000 {
				t.Errorf("10,000-part mail has %d attachment rows", n)
			}
			nested, err := pi.store.GetMessage(ctx, d["nested"].MessageRowID)
			if err != nil {
				t.Fatal(err)
			}
			if !nested.Parsed {
				t.Error("nested mail not parsed")
			}
		})
	}
}

// bigMail is a mail of about size bytes, as a customer sends a log: a
// plain text body of half the size and an attachment of the other half.
func bigMail(i, size int) string {
	line := strings.Repeat("x", 70) + "\r\n"
	text := strings.Repeat(line, size/2/len(line))
	att := strings.Repeat(strings.Repeat("QUJD", 19)+"\r\n", size/2/78)
	return fmt.Sprintf("From: ann@example.com\r\nTo: support@acme.test\r\nSubject: big %d\r\nMessage-ID: <big%d@example.com>\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s--b\r\n"+
		"Content-Type: application/octet-stream; name=\"log%d.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n%s--b--\r\n", i, i, text, i, att)
}

// TestLargeMailBurstKeepsTransactionsSmall stores 20 mails of 5 MB (the
// benchmark uses 24 MB) and then, while the processor works through them,
// delivers small mail through the committer: not one small mail may fail
// (a 451 from SQLITE_BUSY or a lock wait), and no processor transaction
// may carry more than processing.batch_bytes of mail (or one message) or
// more than processing.max_body_text of text per message. The bound is
// asserted on size; the times are logged.
func TestLargeMailBurstKeepsTransactionsSmall(t *testing.T) {
	const (
		size       = 5 << 20
		batchBytes = 8 << 20
		maxText    = 256 << 10
	)
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			pi := newProcInstall(t, b)
			for i := range 20 {
				pi.deliver(t, fmt.Sprintf("big %d", i), bigMail(i, size))
			}
			var mu sync.Mutex
			var batches []ingest.BatchStats
			p := ingest.NewProcessor(pi.store, ingest.ProcessorOptions{
				Owner: "test", Clock: pi.clock, BatchBytes: batchBytes, MaxText: maxText, Period: 10 * time.Millisecond,
				OnBatch: func(s ingest.BatchStats) { mu.Lock(); batches = append(batches, s); mu.Unlock() },
			})
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			p.Wake()
			start := time.Now()
			var small []time.Duration
			for i := 0; ; i++ {
				t0 := time.Now()
				pi.deliver(t, fmt.Sprintf("small %d", i), plainMail(fmt.Sprintf("small %d", i), "a small question"))
				small = append(small, time.Since(t0))
				c, err := pi.store.Counts(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if c.PendingWork == 0 {
					break
				}
				if time.Since(start) > 5*time.Minute {
					t.Fatalf("processing did not finish: %d items left", c.PendingWork)
				}
			}
			elapsed := time.Since(start)
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			var longest time.Duration
			var items int
			for _, s := range batches {
				items += s.Items
				longest = max(longest, s.Duration)
				if s.Items > 1 && s.RawBytes > batchBytes {
					t.Errorf("a batch of %d items carried %d bytes of mail, over batch_bytes %d", s.Items, s.RawBytes, batchBytes)
				}
				if s.TextBytes > int64(s.Items)*(2*maxText+512) {
					t.Errorf("a batch of %d items wrote %d bytes of text, over max_body_text %d each", s.Items, s.TextBytes, maxText)
				}
			}
			var worst time.Duration
			for _, d := range small {
				worst = max(worst, d)
			}
			m, err := pi.store.GetMessage(context.Background(), 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Text) > maxText+512 || !strings.Contains(m.Text, "/tickets/1/messages/1/raw") {
				t.Errorf("stored text of a 5 MB mail: %d bytes, pointer to the raw: %v", len(m.Text), strings.Contains(m.Text, "/raw"))
			}
			t.Logf("%d batches, %d items in %v; longest processor transaction %v; %d small mails during the burst, slowest commit %v",
				len(batches), items, elapsed, longest, len(small), worst)
		})
	}
}

// TestStoredBodiesAreCapped: the database keeps at most MaxText bytes of
// a body's text, cut at a character boundary with a pointer to the raw
// message; an HTML body over the cap is not kept (cut HTML is broken
// HTML) and the parse error says so; a small body is stored as it came.
// An HTML body beside a text part of its own is not kept either: only
// the text is ever shown or read (the raw message still has both); an
// HTML-only mail keeps it, with the text made from it.
func TestStoredBodiesAreCapped(t *testing.T) {
	const max = 2048
	long := strings.Repeat("Grüße aus Köln, der Drucker druckt nicht.\r\n", 200) // ~9 KB, multi-byte characters
	html := "<html><body>" + strings.Repeat("<p>Grüße aus Köln</p>\r\n", 400) + "</body></html>"
	alt := func(text, html string) string {
		return "From: ann@example.com\r\nTo: support@acme.test\r\nSubject: alt\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"a\"\r\n\r\n" +
			"--a\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + text + "\r\n" +
			"--a\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + html + "\r\n--a--\r\n"
	}
	htmlMail := func(html string) string {
		return "From: ann@example.com\r\nTo: support@acme.test\r\nSubject: html\r\nMIME-Version: 1.0\r\n" +
			"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + html + "\r\n"
	}
	cases := []struct {
		name, raw           string
		cut, htmlKept       bool
		wantText, wantError string
	}{
		{name: "small", raw: plainMail("small", "just a question"), wantText: "just a question"},
		{name: "long text", raw: plainMail("long", long), cut: true, wantText: "more bytes not stored here"},
		{name: "long text and html", raw: alt(long, html), cut: true, wantText: "more bytes not stored here"},
		{name: "short text, long html", raw: alt("see below", html), wantText: "see below"},
		{name: "long html only", raw: htmlMail(html), wantText: "Grüße aus Köln", wantError: "HTML body of"},
		{name: "short both", raw: alt("see below", "<p>see below</p>"), wantText: "see below"},
		{name: "html only", raw: htmlMail("<html><body><p>see <b>below</b></p></body></html>"), htmlKept: true, wantText: "see"},
	}
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			pi := newProcInstall(t, b)
			p := ingest.NewProcessor(pi.store, ingest.ProcessorOptions{Owner: "test", Clock: pi.clock, MaxText: max})
			ds := make([]storage.Delivered, len(cases))
			for i, c := range cases {
				ds[i] = pi.deliver(t, c.name, c.raw)
			}
			drain(t, pi, p, 1)
			for i, c := range cases {
				m, err := pi.store.GetMessage(context.Background(), ds[i].MessageRowID)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(m.Text, c.wantText) || !utf8.ValidString(m.Text) {
					t.Errorf("%s: text %q", c.name, m.Text[:min(len(m.Text), 200)])
				}
				if c.cut && (len(m.Text) > max+200 || !strings.Contains(m.Text, fmt.Sprintf("/tickets/%d/messages/%d/raw", ds[i].Ticket, ds[i].MessageRowID))) {
					t.Errorf("%s: %d bytes of text stored, over the cap or without a pointer to the raw", c.name, len(m.Text))
				}
				if (m.HTML != "") != c.htmlKept {
					t.Errorf("%s: %d bytes of HTML stored", c.name, len(m.HTML))
				}
				if !strings.Contains(m.ParseError, c.wantError) {
					t.Errorf("%s: parse error %q, want %q", c.name, m.ParseError, c.wantError)
				}
			}
		})
	}
}

// TestInterruptCutsTheBatch: when Interrupt says a writer waits, the batch
// commits after the message in hand and the rest is released, not lost:
// every message is still processed, each in a batch of its own, and
// parsed once.
func TestInterruptCutsTheBatch(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			pi := newProcInstall(t, b)
			const n = 5
			for i := range n {
				pi.deliver(t, fmt.Sprintf("q %d", i), plainMail(fmt.Sprintf("q %d", i), "a question"))
			}
			var batches []ingest.BatchStats
			var mu sync.Mutex
			prepared := map[string]int{}
			p := ingest.NewProcessor(pi.store, ingest.ProcessorOptions{
				Owner: "test", Clock: pi.clock, Interrupt: func() bool { return true },
				OnBatch: func(s ingest.BatchStats) { batches = append(batches, s) },
				Prepare: func(m *storage.Message) {
					mu.Lock()
					prepared[m.Subject]++
					mu.Unlock()
				},
			})
			for range n + 1 {
				if _, err := p.RunOnce(ctx); err != nil {
					t.Fatal(err)
				}
			}
			c, err := pi.store.Counts(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if c.PendingWork != 0 {
				t.Errorf("%d work items left after %d rounds", c.PendingWork, n+1)
			}
			if len(batches) != n {
				t.Fatalf("%d batches, want %d (one message each)", len(batches), n)
			}
			for i, s := range batches {
				if s.Items != 1 {
					t.Errorf("batch %d: %d items, want 1", i, s.Items)
				}
			}
			// The messages a cut batch handed back were parsed once: the
			// next batch takes their parse (each was parsed by every
			// batch that claimed it, up to n times).
			for i := range n {
				if got := prepared[fmt.Sprintf("q %d", i)]; got != 1 {
					t.Errorf("q %d parsed and prepared %d times, want once", i, got)
				}
			}
			for id := int64(1); id <= n; id++ {
				m, err := pi.store.GetMessage(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if !m.Parsed || !strings.Contains(m.Text, "a question") {
					t.Errorf("message %d not processed: parsed %v, text %q", id, m.Parsed, m.Text)
				}
			}
		})
	}
}

// withAttachment is a customer's mail with one attachment of data.
func withAttachment(subject string, data []byte) string {
	return "From: Ann <ann@example.com>\r\nTo: support@acme.test\r\nSubject: " + subject + "\r\n" +
		"Message-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@example.com>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe export is attached.\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"export.bin\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString(data) + "\r\n--b--\r\n"
}

// TestPrepareBeforeTheTransaction: Prepare sees each message parsed, and
// what it and the parse worked out reaches AfterParse in msg.Prepared:
// the attachments' bytes of a message under KeepAttachments, none of one
// over it (the hooks then read the message themselves).
func TestPrepareBeforeTheTransaction(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			pi := newProcInstall(t, b)
			small, large := bytes.Repeat([]byte{1, 2, 3}, 100), bytes.Repeat([]byte{4}, 5000)
			pi.deliver(t, "small", withAttachment("small one", small))
			pi.deliver(t, "large", withAttachment("large one", large))
			pi.deliver(t, "plain", plainMail("plain one", "no attachment here"))
			var mu sync.Mutex
			prepared := map[string]string{}
			seen := map[string]*storage.Prepared{}
			p := ingest.NewProcessor(pi.store, ingest.ProcessorOptions{
				Owner: "test", Clock: pi.clock, KeepAttachments: 1000,
				Prepare: func(m *storage.Message) {
					mu.Lock()
					defer mu.Unlock()
					prepared[m.Subject] = m.Text
					m.Prepared.Language, m.Prepared.HasLanguage = "xx", true
				},
				AfterParse: func(_ context.Context, _ *storage.Tx, m storage.Message) error {
					seen[m.Subject] = m.Prepared
					return nil
				},
			})
			drain(t, pi, p, 3)
			for _, subj := range []string{"small", "large", "plain"} {
				if !strings.Contains(prepared[subj], "attached") && !strings.Contains(prepared[subj], "no attachment") {
					t.Errorf("%s: Prepare saw text %q, want the parsed text", subj, prepared[subj])
				}
				pre := seen[subj]
				if pre == nil || !pre.HasLanguage || pre.Language != "xx" {
					t.Fatalf("%s: AfterParse got Prepared %+v, want what Prepare set", subj, pre)
				}
			}
			if pre := seen["small"]; !pre.HasAttachments || len(pre.Attachments) != 1 || !bytes.Equal(pre.Attachments[0].Data, small) || pre.Attachments[0].Filename != "export.bin" {
				t.Errorf("small attachment: Prepared %+v, want its bytes kept", pre)
			}
			if pre := seen["large"]; pre.HasAttachments || len(pre.Attachments) != 0 {
				t.Errorf("large attachment: kept %d attachments over KeepAttachments", len(pre.Attachments))
			}
			if pre := seen["plain"]; !pre.HasAttachments || len(pre.Attachments) != 0 {
				t.Errorf("no attachment: Prepared %+v, want known to have none", pre)
			}
		})
	}
}
