package storage_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/mail/classify"
	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/threading"
	"github.com/tendhq/tend/threading/threadingtest"
	"github.com/tendhq/tend/vocab"
)

// BenchMessagesEnv sets how many messages BenchmarkThreadingDecision
// stores before measuring; the figure is for 1,000,000.
const BenchMessagesEnv = "TEND_BENCH_MESSAGES"

// benchCase is one reply the benchmark decides, with the ticket it must
// land on (0: a new ticket).
type benchCase struct {
	msg  *ingest.Message
	want int64
}

// benchThreadIndex is the Outlook Thread-Index that started ticket's
// conversation: a fixed time and a GUID made of the ticket number.
func benchThreadIndex(ticket int64) string {
	var guid [16]byte
	copy(guid[:], strconv.FormatInt(ticket, 16))
	guid[15] = 1
	return threading.NewThreadIndex(time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC), guid)
}

// BenchmarkThreadingDecision measures the placement the delivery
// transaction runs for every received message (ingest.DecisionThreader:
// threading.Decide through the real Tx lookups, plus its evidence) on a
// store holding TEND_BENCH_MESSAGES messages (default 20,000), for each
// kind of evidence and for a mix of them, on SQLite and PostgreSQL. Every
// decision is checked against the ticket it must find. ns/op is the mean;
// p50-ns and p99-ns are the median and the tail, measured per decision.
func BenchmarkThreadingDecision(b *testing.B) {
	n := benchSize(b, BenchMessagesEnv, 20_000)
	for _, be := range storagetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			ctx := context.Background()
			clock := storagetest.NewFakeClock(t0)
			s := be.Open(b, clock)
			specs := []storage.InboxSpec{{Address: threadingtest.CorpusInboxes[0], Name: "Support"}}
			if err := s.SyncInboxes(ctx, specs); err != nil {
				b.Fatal(err)
			}
			cfg := threadingtest.CorpusConfig()
			cfg.Clock = clock
			spec := storage.BenchSpec{
				Messages: n, Now: t0,
				OutboundID: func(ticket, k int64) string {
					return cfg.Signer.MessageID(ticket, ticket*1000+k, threadingtest.CorpusDomain)
				},
				ThreadRoot: func(ticket int64) string {
					if ticket%3 != 0 {
						return ""
					}
					root, _ := threading.ThreadIndexRoot(benchThreadIndex(ticket))
					return root
				},
			}
			start := time.Now()
			tickets, err := storage.BenchFill(ctx, s, spec)
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("%s: stored %d messages on %d tickets in %s", be.Name, n, len(tickets), time.Since(start).Round(time.Millisecond))
			th := ingest.DecisionThreader{Config: cfg}
			cases := benchCases(b, tickets, cfg)
			var mixed []benchCase
			for i := range 200 {
				for _, k := range benchKinds() {
					mixed = append(mixed, cases[k][i%len(cases[k])])
				}
			}
			for _, k := range append(benchKinds(), "mixed") {
				cs := cases[k]
				if k == "mixed" {
					cs = mixed
				}
				b.Run(k, func(b *testing.B) { runDecisions(b, s, th, cs) })
			}
		})
	}
}

// benchSize reads a benchmark's size from the environment variable env,
// def when it is unset.
func benchSize(b *testing.B, env string, def int) int {
	v := os.Getenv(env)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 100 {
		b.Fatalf("%s=%q: want a number of at least 100", env, v)
	}
	return n
}

// runDecisions decides cs in turn inside one transaction, as the group
// committer does, timing each.
func runDecisions(b *testing.B, s *storage.Store, th ingest.DecisionThreader, cs []benchCase) {
	ctx := context.Background()
	var took []time.Duration
	err := s.InTx(ctx, func(tx *storage.Tx) error {
		i := 0
		for b.Loop() {
			c := cs[i%len(cs)]
			i++
			start := time.Now()
			p, err := th.Place(ctx, c.msg, tx)
			took = append(took, time.Since(start))
			if err != nil {
				return err
			}
			if p.Ticket != c.want || p.NoTicket {
				return fmt.Errorf("%s: placed on #%d (no ticket %v), want #%d: %s", c.msg.MessageID, p.Ticket, p.NoTicket, c.want, p.Summary)
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(took[len(took)*99/100].Nanoseconds()), "p99-ns")
}

// benchKinds are the evidence kinds the benchmark exercises, one
// sub-benchmark each.
func benchKinds() []string {
	return []string{"in-reply-to", "references", "subject-tag", "thread-index", "subject", "new"}
}

// benchCases writes up to 500 replies of each kind to tickets spread over
// the whole history (the subject rule only to the recent open ones it
// may find).
func benchCases(b *testing.B, tickets []storage.BenchTicket, cfg threading.Config) map[string][]benchCase {
	out := map[string][]benchCase{}
	own := classify.Own{Addresses: threadingtest.CorpusInboxes, Domains: []string{threadingtest.CorpusDomain}, LoopHeader: "X-Tend-Loop"}
	add := func(kind, from string, want int64, headers ...string) {
		i := len(out[kind])
		raw := fmt.Sprintf("From: %s\r\nTo: Acme Support <support@acme.example>\r\nDate: %s\r\nMessage-ID: <%s.%d.%d@client.example>\r\nMIME-Version: 1.0\r\n%s\r\nContent-Type: text/plain\r\n\r\nThanks.\r\n",
			from, t0.Format(time.RFC1123Z), kind, want, i, strings.Join(headers, "\r\n"))
		h := ingest.ParseHeaders([]byte(raw))
		m := &ingest.Message{Headers: h, Env: ingest.Envelope{From: h.From, To: []string{"support@acme.example"}, Source: "smtp"}}
		m.Classified = classify.Classify(h.Header, h.From, own)
		m.Inboxes = []string{"support@acme.example"}
		out[kind] = append(out[kind], benchCase{m, want})
	}
	const per = 500
	step := max(len(tickets)/per, 1)
	for i := 0; i < len(tickets); i += step {
		t := tickets[i]
		if t.LastOutN == 0 {
			continue
		}
		ours := cfg.Signer.MessageID(t.ID, t.ID*1000+t.LastOutN, threadingtest.CorpusDomain)
		add("in-reply-to", t.Customer, t.ID, "Subject: Re: "+t.Subject, "In-Reply-To: <"+ours+">", "References: <"+t.FirstIn+"> <"+ours+">")
		add("references", t.Customer, t.ID, "Subject: RE: "+t.Subject, "References: <"+t.FirstIn+"> <"+ours+">")
		add("subject-tag", t.Customer, t.ID, fmt.Sprintf("Subject: Re: [Acme #%d] %s", t.ID, t.Subject))
		if t.ThreadRoot != "" {
			add("thread-index", t.Customer, t.ID, "Subject: RE: one more thing", "Thread-Topic: one more thing",
				"Thread-Index: "+threading.ContinueThreadIndex(benchThreadIndex(t.ID), t0))
		}
		add("new", fmt.Sprintf("newcomer%d@fresh%d.example", i, i%31), 0, fmt.Sprintf("Subject: Question %d about pricing", i),
			fmt.Sprintf("In-Reply-To: <unknown.%d@elsewhere.example>", i), "Thread-Index: "+benchThreadIndex(-int64(i)-1))
	}
	window := cfg.SubjectWindow
	for i := len(tickets) - 1; i >= 0 && len(out["subject"]) < per; i-- {
		t := tickets[i]
		if t0.Sub(t.UpdatedAt) > window {
			break
		}
		if t.State != vocab.StateClosed {
			add("subject", t.Customer, t.ID, "Subject: AW: "+t.Subject)
		}
	}
	for _, k := range benchKinds() {
		if len(out[k]) == 0 {
			b.Fatalf("no %s case: the history is too small", k)
		}
	}
	return out
}
