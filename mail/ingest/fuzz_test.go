package ingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tendhq/tend/internal/fuzzseed"
	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/threading"
)

// sharedCorpus is the real-world corpus beside the repository.
const sharedCorpus = "../../../shared/corpus"

var fuzzInboxes = []string{"support@acme.test", "billing@acme.test"}

// placeRecorder is a Threader that keeps the message it was asked to place.
type placeRecorder struct{ got *ingest.Message }

func (p *placeRecorder) Place(_ context.Context, m *ingest.Message, _ *storage.Tx) (storage.Placement, error) {
	p.got = m
	return storage.Placement{}, nil
}

// storable: what PostgreSQL's text columns take (valid UTF-8, no NUL).
func storable(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// FuzzDeliver: whatever the bytes and the envelope, Pipeline.Deliver hands
// the committer the message byte for byte (with its SHA-256), a non-empty
// Message-ID without brackets, storable text, a known class and at least
// one inbox, each a configured one the envelope named (or the first
// inbox); and the threader places that same message.
func FuzzDeliver(f *testing.F) {
	seeds := fuzzseed.Files(f, "testdata/charset/*.eml", "../../threading/testdata/conversations/*/*.eml")
	seeds = append(seeds, fuzzseed.Corpus(f, sharedCorpus, 40)...)
	for i, raw := range seeds {
		f.Add(raw, "ann@example.com", fuzzInboxes[i%2], i%3 == 0)
	}
	f.Add([]byte("From: a@b\r\n\r\n"), "", "Billing@Acme.Test", false)
	f.Add([]byte("Subject: \xff\x00\r\nMessage-ID: <>\r\n"), "<>", "nobody@elsewhere.example", true)
	f.Fuzz(func(t *testing.T, raw []byte, from, rcpt string, unknown bool) {
		c, th := &keepCommitter{}, &placeRecorder{}
		p, err := ingest.New(ingest.Options{Committer: c, Threader: th, Inboxes: fuzzInboxes})
		if err != nil {
			t.Fatal(err)
		}
		env := ingest.Envelope{From: from, To: []string{strings.ToLower(rcpt)}, Source: "smtp", Unknown: unknown}
		if _, err := p.Deliver(context.Background(), raw, env); err != nil {
			t.Fatalf("a committer that never fails, yet Deliver says %v", err)
		}
		if len(c.got) != 1 {
			t.Fatalf("committed %d times", len(c.got))
		}
		in := c.got[0]
		body, err := io.ReadAll(io.NewSectionReader(in.Body, 0, in.Body.Size()))
		if err != nil || !bytes.Equal(body, raw) {
			t.Fatalf("body differs from the bytes received (%v)", err)
		}
		if sum := sha256.Sum256(raw); in.Hash != hex.EncodeToString(sum[:]) {
			t.Fatalf("hash %s is not the bytes' SHA-256", in.Hash)
		}
		if in.MessageID == "" || strings.ContainsAny(in.MessageID, "<>") {
			t.Fatalf("Message-ID %q", in.MessageID)
		}
		texts := []string{in.MessageID, in.InReplyTo, in.ThreadRoot, in.ThreadTopic, in.From, in.FromName, in.Subject, in.NormSubject}
		texts = append(append(append(texts, in.References...), in.To...), in.Cc...)
		for _, s := range texts {
			if !storable(s) {
				t.Fatalf("unstorable text %q", s)
			}
		}
		if !in.Class.Valid() {
			t.Fatalf("class %q", in.Class)
		}
		// Mail addressed to no inbox (a signed reply address) is filed
		// under the default inbox only if it opens a ticket.
		if len(in.Inboxes) == 0 && !slices.Contains(fuzzInboxes, in.DefaultInbox) {
			t.Fatalf("filed under no inbox (default %q)", in.DefaultInbox)
		}
		for _, ib := range in.Inboxes {
			if !slices.Contains(fuzzInboxes, ib) || ib != fuzzInboxes[0] && !slices.Contains(env.To, ib) {
				t.Fatalf("filed under %q; envelope %v", ib, env.To)
			}
		}
		if th.got == nil {
			// Place runs inside the committer's transaction; this one
			// runs it by hand.
			if _, err := in.Place(context.Background(), nil); err != nil {
				t.Fatal(err)
			}
		}
		if th.got.MessageID != in.MessageID || !slices.Equal(th.got.Inboxes, in.Inboxes) || th.got.Classified.Class != in.Class {
			t.Fatalf("threader saw %q %v %q, committer %q %v %q", th.got.MessageID, th.got.Inboxes, th.got.Classified.Class, in.MessageID, in.Inboxes, in.Class)
		}
		// The whole classification reaches storage, and from there the
		// rules gate: no flag is lost on the way.
		if cl := th.got.Classified; cl.NoAutoReply != in.NoAutoReply || cl.Suspect != in.Suspect || !slices.Equal(cl.Reasons, in.ClassReasons) {
			t.Fatalf("classified %+v, committed NoAutoReply=%v Suspect=%v reasons %q", cl, in.NoAutoReply, in.Suspect, in.ClassReasons)
		}
	})
}

// FuzzAccept: RCPT TO acceptance is never a relay. An accepted address is
// a configured inbox or on our domain; whatever the fuzzed address, the
// signed reply and bounce addresses for the fuzzed numbers are accepted
// (the reply one only while MayReply allows it, and MayReply is asked
// about exactly the ticket and agent signed), and the same address with
// any one character of its token changed is refused.
func FuzzAccept(f *testing.F) {
	for _, s := range []string{"support@acme.test", "SUPPORT@ACME.TEST", "nobody@acme.test", "reply+1.2.3.a@acme.test", "bounce+9.aaaa@acme.test",
		"support@acme.test@evil.example", "@acme.test", "", "reply+@mail.acme.test", "note+1.1.1.axxxxxxxxxxxxxxxxxxxx@mail.acme.test"} {
		f.Add(s, int64(7), int64(3), int64(11), true, 0)
	}
	signer, err := threading.NewSigner("a", threading.Key{ID: "a", Secret: []byte("fuzz-accept-secret-0123456789")},
		threading.Key{ID: "b", Secret: []byte("fuzz-accept-other-secret-0123")})
	if err != nil {
		f.Fatal(err)
	}
	p, err := ingest.New(ingest.Options{Committer: &keepCommitter{}, Threader: noThreader{}, Inboxes: fuzzInboxes})
	if err != nil {
		f.Fatal(err)
	}
	const domain = "mail.acme.test"
	f.Fuzz(func(t *testing.T, addr string, ticket, agent, outbox int64, may bool, flip int) {
		ctx := context.Background()
		var asked [][2]int64
		r := ingest.Recipients{Pipeline: p, Signer: signer, Domain: domain, MayReply: func(_ context.Context, tk, ag int64) (bool, error) {
			asked = append(asked, [2]int64{tk, ag})
			return may, nil
		}}
		ok, err := r.Accept(ctx, addr)
		if err != nil {
			t.Fatalf("Accept(%q): %v", addr, err)
		}
		if ok && !p.IsInbox(addr) && threading.Domain(addr) != domain {
			t.Fatalf("%q accepted: a relay", addr)
		}
		if ticket < 1 || agent < 1 || outbox < 1 {
			return
		}
		asked = nil
		reply := signer.Sign(threading.PurposeReply, ticket, agent)
		if ok, err := r.Accept(ctx, reply+"@"+domain); err != nil || ok != may || !slices.Equal(asked, [][2]int64{{ticket, agent}}) {
			t.Fatalf("signed %s: accepted %v, %v, MayReply asked %v; want %v", reply, ok, err, asked, may)
		}
		bounce := signer.BounceAddress(outbox)
		if ok, err := r.Accept(ctx, strings.ToUpper(bounce)+"@"+domain); err != nil || !ok {
			t.Fatalf("bounce address %s refused: %v", bounce, err)
		}
		for _, signed := range []string{reply, bounce} {
			// The token is the last dot-separated part: key id and MAC.
			dot := strings.LastIndexByte(signed, '.')
			i := dot + 1 + int(uint(flip)%uint(len(signed)-dot-1))
			b := []byte(signed)
			b[i] = "ab"[boolInt(b[i] == 'a')]
			if ok, _ := r.Accept(ctx, string(b)+"@"+domain); ok {
				t.Fatalf("%s (from %s) accepted with its token changed", b, signed)
			}
		}
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
