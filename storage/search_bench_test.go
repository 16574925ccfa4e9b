package storage_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

// searchBenchTickets is the default size of BenchmarkSearch's history;
// TEND_BENCH_SEARCH_TICKETS changes it (1000000 for the size).
const searchBenchTickets = 100_000

// searchBenchText gives every message a text: "hello" in all of them, one
// of ten topic words in a tenth each, an order number shared by a few
// messages, and a word of its own (w<id>).
const searchBenchText = `'Hello, I have a ' || CASE id % 10 WHEN 0 THEN 'invoice' WHEN 1 THEN 'login' WHEN 2 THEN 'refund'
	WHEN 3 THEN 'printer' WHEN 4 THEN 'vpn' WHEN 5 THEN 'delivery' WHEN 6 THEN 'password' WHEN 7 THEN 'export'
	WHEN 8 THEN 'subscription' ELSE 'shipping' END || ' problem with order ' || CAST((id * 7) % 50000 AS TEXT)
	|| '. Regards, code w' || CAST(id AS TEXT)`

// BenchmarkSearch builds a history of TEND_BENCH_SEARCH_TICKETS tickets
// (three messages each, every message with text) on each backend and
// reports the p50 and p95 of one search as the queue runs it (the page
// with its count, QueueFound) and as /api/tickets does (the page alone,
// Queue), from rare words to one in every message. Run it with a fixed count, e.g. -bench Search -benchtime 40x.
func BenchmarkSearch(b *testing.B) {
	n := searchBenchTickets
	if v := os.Getenv("TEND_BENCH_SEARCH_TICKETS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1000 {
			b.Fatalf("TEND_BENCH_SEARCH_TICKETS=%q: want a number ≥ 1000", v)
		}
	}
	for _, backend := range storagetest.Backends() {
		b.Run(backend.Name, func(b *testing.B) {
			ctx := context.Background()
			clock := storagetest.NewFakeClock(t0)
			s := backend.Open(b, clock)
			if err := s.SyncInboxes(ctx, []storage.InboxSpec{{Address: "support@acme.test"}}); err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			spec := planSpec(clock.Now(), 3*n)
			spec.PerTicket = 3
			if _, err := storage.BenchFill(ctx, s, spec); err != nil {
				b.Fatal(err)
			}
			filled := time.Since(start)
			if err := storage.ExecForTest(ctx, s, "UPDATE messages SET text = "+searchBenchText); err != nil {
				b.Fatal(err)
			}
			// Statistics and the search index as a maintained database
			// has them (autovacuum; Optimize's ANALYZE and its merge of
			// the index, which a bulk update leaves in many segments).
			if err := storage.ExecForTest(ctx, s, "ANALYZE"); err != nil {
				b.Fatal(err)
			}
			for merged := false; !merged; {
				var err error
				if merged, err = storage.MergeSearch(ctx, s, time.Minute); err != nil {
					b.Fatal(err)
				}
			}
			b.Logf("%s: %d tickets, %d messages: filled in %v, text indexed in %v", backend.Name, n, 3*n,
				filled.Round(time.Second), (time.Since(start) - filled).Round(time.Second))
			mid := strconv.Itoa(3 * n / 2)
			for _, q := range []struct {
				name string
				f    storage.QueueFilter
			}{
				{"unique word, all states", storage.QueueFilter{Query: "w" + mid, State: "all"}},
				{"order number phrase, open", storage.QueueFilter{Query: `"order 1234"`}},
				{"customer name, all states", storage.QueueFilter{Query: `"Customer 4242"`, State: "all"}},
				{"customer address, all states", storage.QueueFilter{Query: "c4242@cust254.example", State: "all"}},
				{"topic word (10%), open", storage.QueueFilter{Query: "refund"}},
				{"topic word (10%), closed", storage.QueueFilter{Query: "refund", State: string(vocab.StateClosed)}},
				{"two words, open", storage.QueueFilter{Query: "refund damaged"}},
				{"word in every message, all states", storage.QueueFilter{Query: "hello", State: "all"}},
				{"word in every message, one inbox", storage.QueueFilter{Query: "hello", Inbox: "support@acme.test"}},
			} {
				b.Run(q.name, func(b *testing.B) {
					times := make([]time.Duration, 0, b.N)
					api := make([]time.Duration, 0, b.N)
					for b.Loop() {
						t := time.Now()
						if _, _, _, err := s.QueueFound(ctx, q.f, storage.SearchCountLimit); err != nil {
							b.Fatal(err)
						}
						times = append(times, time.Since(t))
						t = time.Now()
						if _, _, err := s.Queue(ctx, q.f); err != nil {
							b.Fatal(err)
						}
						api = append(api, time.Since(t))
					}
					ms := func(d []time.Duration, p float64) float64 {
						slices.Sort(d)
						return float64(d[min(len(d)-1, int(p*float64(len(d))))].Microseconds()) / 1000
					}
					b.ReportMetric(ms(times, 0.50), "p50-ms")
					b.ReportMetric(ms(times, 0.95), "p95-ms")
					b.ReportMetric(ms(api, 0.50), "api-p50-ms")
					b.ReportMetric(ms(api, 0.95), "api-p95-ms")
				})
			}
		})
	}
}
