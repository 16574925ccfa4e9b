package threading_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/tendhq/tend/threading"
	"github.com/tendhq/tend/threading/threadingtest"
)

// BenchmarkDecide measures one decision against a Fake holding 10,000
// tickets of 5 messages each. The fake's cost is small; the figure to
// watch is allocations and the number of lookups (reported per op).
func BenchmarkDecide(b *testing.B) {
	w := newWorld(b)
	own := func(a string) bool { return threading.Domain(a) == threadingtest.CorpusDomain }
	for i := range 10_000 {
		m := threading.Message{MessageID: fmt.Sprintf("m%d@bench.example", i), From: fmt.Sprintf("c%d@bench.example", i), Subject: fmt.Sprintf("Problem number %d", i)}
		n := w.fake.Open(m, t0)
		w.fake.Record(m, n, false, own, t0)
		for j := range 4 {
			w.fake.Record(threading.Message{MessageID: w.cfg.Signer.MessageID(n, int64(j), threadingtest.CorpusDomain)}, n, true, own, t0)
		}
	}
	msgs := map[string]threading.Message{
		"references": {From: "c42@bench.example", Subject: "Re: Problem number 42", InReplyTo: []string{w.cfg.Signer.MessageID(43, 2, threadingtest.CorpusDomain)},
			References: []string{"m42@bench.example", "x1@elsewhere.example", "x2@elsewhere.example"}},
		"signed-address": {From: "lena@acme.example", Recipients: []string{w.cfg.Signer.Sign(threading.PurposeReply, w.ticket, 7) + "@tend.acme.example"}},
		"subject":        {From: "c42@bench.example", Subject: "AW: Problem number 42"},
		"new":            {From: "someone@new.example", Subject: "A completely new question", ThreadIndex: threading.NewThreadIndex(t0, [16]byte{3})},
	}
	for name, m := range msgs {
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			before := totalCalls(w.fake)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := threading.Decide(ctx, w.cfg, m, w.fake); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(totalCalls(w.fake)-before)/float64(b.N), "lookups/op")
		})
	}
}

func totalCalls(f *threadingtest.Fake) int {
	n := 0
	for _, c := range f.Calls {
		n += c
	}
	return n
}

func BenchmarkNormalizeSubject(b *testing.B) {
	subjects := []string{
		"Re: AW: [Acme #123] Printer on floor 3 is offline",
		"=?UTF-8?B?5Zue5aSN77ya5peg5rOV55m75b2V5oiR55qE6LSm5oi3?=",
		"RE: RE: RE: RE: Fwd: Quarterly numbers (fwd)",
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, s := range subjects {
			threading.NormalizeSubject(s)
		}
	}
}

// TestDecideLookupBudget pins how many lookups the common decisions cost,
// so that a change that adds queries to the hot path shows up.
func TestDecideLookupBudget(t *testing.T) {
	w := newWorld(t)
	tests := []struct {
		name string
		msg  threading.Message
		max  int
	}{
		{"reply to our mail", threading.Message{From: "cust@customer.example", InReplyTo: []string{w.ours}}, 2},
		{"signed address", threading.Message{From: "lena@acme.example", Recipients: []string{w.cfg.Signer.Sign(threading.PurposeReply, w.ticket, 7) + "@tend.acme.example"}}, 1},
		{"new ticket, all rules tried", threading.Message{From: "new@x.example", Subject: "[#" + itoa(w.ticket) + "] brand new question", InReplyTo: []string{"a@b"}, ThreadIndex: w.root}, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := totalCalls(w.fake)
			if _, err := threading.Decide(context.Background(), w.cfg, tt.msg, w.fake); err != nil {
				t.Fatal(err)
			}
			if n := totalCalls(w.fake) - before; n > tt.max {
				t.Errorf("%d lookups, budget %d", n, tt.max)
			}
		})
	}
}
