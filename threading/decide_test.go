package threading_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/internal/testenv"
	"github.com/tendhq/tend/threading"
	"github.com/tendhq/tend/threading/threadingtest"
	"github.com/tendhq/tend/vocab"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// world is one store with a customer ticket on it, the starting point of
// the per-rule scenarios.
type world struct {
	cfg    threading.Config
	fake   *threadingtest.Fake
	clock  *testenv.FakeClock
	ticket int64
	first  threading.Message
	ours   string // Message-ID of our acknowledgement
	root   string // the customer's Outlook Thread-Index
}

func newWorld(t testing.TB) *world {
	t.Helper()
	w := &world{fake: threadingtest.NewFake(500), clock: testenv.NewFakeClock(t0)}
	w.cfg = threadingtest.CorpusConfig()
	w.cfg.Clock = w.clock
	w.root = threading.NewThreadIndex(t0, [16]byte{9, 8, 7, 6, 5, 4, 3, 2, 1, 1, 2, 3, 4, 5, 6, 7})
	w.first = threading.Message{
		MessageID: "first@customer.example", Subject: "Printer on floor 3 is offline",
		From: "cust@customer.example", To: []string{"support@acme.example"}, Cc: []string{"boss@customer.example"},
		ThreadIndex: w.root,
	}
	w.ticket = w.fake.Open(w.first, t0)
	w.fake.Record(w.first, w.ticket, false, func(a string) bool { return strings.HasSuffix(a, "acme.example") }, t0)
	w.ours = w.cfg.Signer.MessageID(w.ticket, 1, threadingtest.CorpusDomain)
	w.fake.Record(threading.Message{MessageID: w.ours, ThreadIndex: threading.ContinueThreadIndex(w.root, t0)}, w.ticket, true, nil, t0)
	return w
}

func TestDecideRules(t *testing.T) {
	w := newWorld(t)
	tag := "Re: [Acme #" + itoa(w.ticket) + "] Printer on floor 3 is offline"
	forgedID := "tend." + itoa(w.ticket) + ".1.b" + strings.Repeat("q", 20) + "@tend.acme.example"
	lostID := w.cfg.Signer.MessageID(w.ticket, 99, threadingtest.CorpusDomain)
	otherRoot := threading.NewThreadIndex(t0, [16]byte{1})
	tests := []struct {
		name     string
		msg      threading.Message
		ticket   int64
		noTicket bool
		via      threading.EvidenceKind
		rejected string // a rejected evidence detail must contain this
	}{
		{name: "signed reply address", msg: threading.Message{From: "lena@acme.example", Recipients: []string{w.cfg.Signer.Sign(threading.PurposeReply, w.ticket, 7) + "@tend.acme.example"}},
			ticket: w.ticket, via: threading.EvidenceSignedAddress},
		{name: "signed address in To without envelope (IMAP)", msg: threading.Message{From: "lena@acme.example", To: []string{w.cfg.Signer.Sign(threading.PurposeNote, w.ticket, 7) + "@tend.acme.example"}},
			ticket: w.ticket, via: threading.EvidenceSignedAddress},
		{name: "forged signed address", msg: threading.Message{From: "x@evil.example", Subject: "hello there", Recipients: []string{"reply+" + itoa(w.ticket) + ".7.b" + strings.Repeat("a", 20) + "@tend.acme.example"}},
			via: threading.EvidenceNew, rejected: "forged or stale"},
		{name: "signed address for a missing ticket", msg: threading.Message{From: "lena@acme.example", Subject: "x y z w", Recipients: []string{w.cfg.Signer.Sign(threading.PurposeReply, 99999, 7) + "@tend.acme.example"}},
			via: threading.EvidenceNew, rejected: "no longer exists"},
		{name: "in-reply-to our mail from anyone", msg: threading.Message{From: "stranger@elsewhere.example", InReplyTo: []string{w.ours}},
			ticket: w.ticket, via: threading.EvidenceInReplyTo},
		{name: "our signed id without row", msg: threading.Message{From: "cust@customer.example", References: []string{lostID}},
			ticket: w.ticket, via: threading.EvidenceReferences},
		{name: "forged id on our domain", msg: threading.Message{From: "stranger@elsewhere.example", Subject: "something specific", InReplyTo: []string{forgedID}},
			via: threading.EvidenceNew, rejected: "does not verify"},
		{name: "customer id from participant", msg: threading.Message{From: "boss@customer.example", References: []string{"first@customer.example"}},
			ticket: w.ticket, via: threading.EvidenceReferences},
		{name: "customer id from stranger", msg: threading.Message{From: "stranger@elsewhere.example", Subject: "something specific", References: []string{"first@customer.example"}},
			via: threading.EvidenceNew, rejected: "sender is not on ticket"},
		{name: "tag from participant", msg: threading.Message{From: "cust@customer.example", Subject: tag},
			ticket: w.ticket, via: threading.EvidenceSubjectTag},
		{name: "tag from stranger", msg: threading.Message{From: "stranger@elsewhere.example", Subject: tag},
			via: threading.EvidenceNew, rejected: "subject tag ignored: sender not on ticket " + itoa(w.ticket)},
		{name: "tag from stranger with participant in Cc", msg: threading.Message{From: "new@customer.example", Cc: []string{"cust@customer.example"}, Subject: tag},
			ticket: w.ticket, via: threading.EvidenceSubjectTag},
		{name: "tag for missing ticket", msg: threading.Message{From: "cust@customer.example", Subject: "[#99999] Printer on floor 3 is offline"},
			ticket: w.ticket, via: threading.EvidenceSubject, rejected: "there is no ticket 99999"},
		{name: "thread index from participant", msg: threading.Message{From: "cust@customer.example", Subject: "new words", ThreadIndex: threading.ContinueThreadIndex(w.root, t0.Add(time.Hour))},
			ticket: w.ticket, via: threading.EvidenceThreadIndex},
		{name: "thread index from stranger", msg: threading.Message{From: "stranger@elsewhere.example", Subject: "new words", ThreadIndex: w.root},
			via: threading.EvidenceNew, rejected: "Outlook conversation matches"},
		{name: "malformed thread index", msg: threading.Message{From: "cust@customer.example", Subject: "other words", ThreadIndex: "!!!"},
			via: threading.EvidenceNew, rejected: "malformed Thread-Index"},
		{name: "unknown thread index", msg: threading.Message{From: "cust@customer.example", Subject: "other words", ThreadIndex: otherRoot},
			via: threading.EvidenceNew},
		{name: "same sender same subject", msg: threading.Message{From: "cust@customer.example", Subject: "AW: printer ON floor 3 is offline"},
			ticket: w.ticket, via: threading.EvidenceSubject},
		{name: "same subject other sender", msg: threading.Message{From: "boss@customer.example", Subject: "Printer on floor 3 is offline"},
			via: threading.EvidenceNew},
		{name: "generic subject", msg: threading.Message{From: "cust@customer.example", Subject: "Re: help"},
			via: threading.EvidenceNew, rejected: "too generic"},
		{name: "loop from inbox", msg: threading.Message{From: "support@acme.example", InReplyTo: []string{w.ours}},
			noTicket: true, via: threading.EvidenceLoop},
		{name: "loop from our domain", msg: threading.Message{From: "anything@tend.acme.example"},
			noTicket: true, via: threading.EvidenceLoop},
		{name: "bounce matching nothing", msg: threading.Message{From: "mailer-daemon@mx.example", Subject: "Undelivered Mail Returned to Sender", IsBounce: true},
			noTicket: true, via: threading.EvidenceBounce},
		{name: "bounce referencing our mail", msg: threading.Message{From: "mailer-daemon@googlemail.com", InReplyTo: []string{w.ours}, IsBounce: true},
			ticket: w.ticket, via: threading.EvidenceInReplyTo},
		{name: "bounce to VERP address", msg: threading.Message{From: "mailer-daemon@mx.example", Recipients: []string{w.cfg.Signer.BounceAddress(1) + "@tend.acme.example"}},
			noTicket: true, via: threading.EvidenceBounce},
		{name: "empty and junk ids", msg: threading.Message{From: "x@y.example", Subject: "unique words here", InReplyTo: []string{""}, References: []string{"", "<>", "a b@c", "noat"}},
			via: threading.EvidenceNew},
		{name: "own message id only", msg: threading.Message{From: "cust2@customer.example", Subject: "unique words here", MessageID: "first@customer.example", References: []string{"first@customer.example"}},
			via: threading.EvidenceNew},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := threading.Decide(context.Background(), w.cfg, tt.msg, w.fake)
			if err != nil {
				t.Fatal(err)
			}
			if d.Ticket != tt.ticket || d.NoTicket != tt.noTicket || d.Via() != tt.via {
				t.Errorf("got ticket %d no-ticket %v via %q; want %d %v %q\n%+v", d.Ticket, d.NoTicket, d.Via(), tt.ticket, tt.noTicket, tt.via, d.Evidence)
			}
			if tt.rejected != "" && !hasRejected(d, tt.rejected) {
				t.Errorf("no rejected evidence containing %q: %+v", tt.rejected, d.Evidence)
			}
			if (d.Reply != nil) != (tt.via == threading.EvidenceSignedAddress) {
				t.Errorf("reply token %+v with via %q", d.Reply, tt.via)
			}
		})
	}
}

func hasRejected(d threading.Decision, s string) bool {
	for _, e := range d.Evidence {
		if !e.Accepted && strings.Contains(e.Detail, s) {
			return true
		}
	}
	return false
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestDecideSubjectWindow(t *testing.T) {
	w := newWorld(t)
	msg := threading.Message{From: "cust@customer.example", Subject: "Re: Printer on floor 3 is offline"}
	tests := []struct {
		name    string
		advance time.Duration
		state   vocab.State
		want    int64
	}{
		{"within window", 6 * 24 * time.Hour, "", w.ticket},
		{"recently resolved", 24 * time.Hour, vocab.StateResolved, w.ticket},
		{"after window", 8 * 24 * time.Hour, "", 0},
		{"closed", time.Hour, vocab.StateClosed, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			if tt.state != "" {
				w.fake.SetState(w.ticket, tt.state, t0)
			}
			w.clock.Advance(tt.advance)
			d, err := threading.Decide(context.Background(), w.cfg, msg, w.fake)
			if err != nil {
				t.Fatal(err)
			}
			if d.Ticket != tt.want {
				t.Errorf("ticket %d, want %d: %+v", d.Ticket, tt.want, d.Evidence)
			}
		})
	}
	w.cfg.SubjectWindow = 0
	if d, _ := threading.Decide(context.Background(), w.cfg, msg, w.fake); d.Ticket != 0 {
		t.Errorf("zero window must disable the subject rule")
	}
}

func TestDecideMergedAndAmbiguous(t *testing.T) {
	w := newWorld(t)
	second := threading.Message{MessageID: "second@customer.example", Subject: "Other thing entirely", From: "cust@customer.example"}
	other := w.fake.Open(second, t0)
	w.fake.Record(second, other, false, nil, t0)
	w.fake.Merge(other, w.ticket)
	d, err := threading.Decide(context.Background(), w.cfg, threading.Message{From: "cust@customer.example", Subject: "[Acme #" + itoa(other) + "] more"}, w.fake)
	if err != nil || d.Ticket != w.ticket || !strings.Contains(d.Evidence[len(d.Evidence)-1].Detail, "merged into") {
		t.Errorf("merged tag: %d %v %+v", d.Ticket, err, d.Evidence)
	}
	// The same id stored on two tickets (a broken client) is ambiguous.
	third := threading.Message{MessageID: "first@customer.example", Subject: "Third", From: "x@other.example"}
	n3 := w.fake.Open(third, t0)
	w.fake.Record(third, n3, false, nil, t0)
	d, err = threading.Decide(context.Background(), w.cfg, threading.Message{From: "cust@customer.example", Subject: "zzz qqq", InReplyTo: []string{"first@customer.example"}}, w.fake)
	if err != nil || d.Ticket != 0 || !hasRejected(d, "ambiguous") {
		t.Errorf("ambiguous id: %d %v %+v", d.Ticket, err, d.Evidence)
	}
}

func TestDecideErrors(t *testing.T) {
	w := newWorld(t)
	if _, err := threading.Decide(context.Background(), threading.Config{}, threading.Message{}, w.fake); !errors.Is(err, threading.ErrConfig) {
		t.Errorf("empty config: %v", err)
	}
	boom := errors.New("database is down")
	w.fake.Err = boom
	msgs := []threading.Message{
		{From: "lena@acme.example", Recipients: []string{w.cfg.Signer.Sign(threading.PurposeReply, w.ticket, 7) + "@tend.acme.example"}},
		{From: "cust@customer.example", InReplyTo: []string{"first@customer.example"}},
		{From: "cust@customer.example", Subject: "[#1] x"},
		{From: "cust@customer.example", Subject: "x", ThreadIndex: w.root},
		{From: "cust@customer.example", Subject: "Printer on floor 3 is offline"},
	}
	for i, m := range msgs {
		if _, err := threading.Decide(context.Background(), w.cfg, m, w.fake); !errors.Is(err, boom) {
			t.Errorf("message %d: error %v, want the lookup error wrapped", i, err)
		}
	}
}

// TestDecideStrong: only a signed address or a reference to our own mail
// is strong evidence (who may bring new people onto a ticket); a subject
// tag, the subject, a Thread-Index and a reference to a customer's mail
// are weak, since strangers can know them.
func TestDecideStrong(t *testing.T) {
	w := newWorld(t)
	tag := "Re: [Acme #" + itoa(w.ticket) + "] Printer on floor 3 is offline"
	tests := []struct {
		name   string
		msg    threading.Message
		strong bool
	}{
		{"signed reply address", threading.Message{From: "lena@acme.example", Recipients: []string{w.cfg.Signer.Sign(threading.PurposeReply, w.ticket, 7) + "@tend.acme.example"}}, true},
		{"in-reply-to our mail", threading.Message{From: "stranger@elsewhere.example", InReplyTo: []string{w.ours}}, true},
		{"our signed id without row", threading.Message{From: "cust@customer.example", References: []string{w.cfg.Signer.MessageID(w.ticket, 99, threadingtest.CorpusDomain)}}, true},
		{"customer id from participant", threading.Message{From: "boss@customer.example", References: []string{"first@customer.example"}}, false},
		{"subject tag", threading.Message{From: "cust@customer.example", Subject: tag}, false},
		{"thread index", threading.Message{From: "cust@customer.example", Subject: "new words", ThreadIndex: threading.ContinueThreadIndex(w.root, t0.Add(time.Hour))}, false},
		{"same sender same subject", threading.Message{From: "cust@customer.example", Subject: "AW: printer ON floor 3 is offline"}, false},
		{"new ticket", threading.Message{From: "x@y.example", Subject: "unique words here"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := threading.Decide(context.Background(), w.cfg, tt.msg, w.fake)
			if err != nil {
				t.Fatal(err)
			}
			if d.Strong() != tt.strong {
				t.Errorf("Strong() = %v, want %v: %+v", d.Strong(), tt.strong, d.Evidence)
			}
		})
	}
}
