package storage_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

// BenchTicketsEnv sets how many tickets BenchmarkQueue fills (three
// messages each): TEND_BENCH_TICKETS=1000000 is the lead's million.
const BenchTicketsEnv = "TEND_BENCH_TICKETS"

// queueEndpoint is one web or API request as the store sees it: the
// queries its handler runs.
type queueEndpoint struct {
	name string
	run  func(ctx context.Context, s *storage.Store) error
}

// queuePage is what GET / runs: the page, the counts, the clusters, the
// inboxes and the agents of the assignee filter.
func queuePage(f storage.QueueFilter) func(ctx context.Context, s *storage.Store) error {
	return func(ctx context.Context, s *storage.Store) error {
		f.Limit = 50
		if _, _, err := s.Queue(ctx, f); err != nil {
			return err
		}
		if _, err := s.AttentionCounts(ctx, f.Inbox, f.Visible); err != nil {
			return err
		}
		if _, err := s.ContentClusters(ctx, f.Inbox, f.Visible, time.Now().Add(-7*24*time.Hour), 2, 8); err != nil {
			return err
		}
		if _, err := s.Inboxes(ctx); err != nil {
			return err
		}
		_, err := s.Agents(ctx)
		return err
	}
}

// apiList is what GET /api/tickets runs.
func apiList(f storage.QueueFilter) func(ctx context.Context, s *storage.Store) error {
	return func(ctx context.Context, s *storage.Store) error {
		f.Limit, f.Snoozed = 50, true
		_, _, err := s.Queue(ctx, f)
		return err
	}
}

// BenchmarkQueue fills a store with TEND_BENCH_TICKETS tickets (default
// 20,000) and three messages each, in tend's schema, with what the queue
// ranks and filters by, then times each queue and API request and the
// ticket page on SQLite and PostgreSQL: p50-ms and p95-ms per endpoint.
//
//	TEND_BENCH_TICKETS=1000000 go test ./storage -run '^$' -bench BenchmarkQueue -benchtime 100x -timeout 3h
func BenchmarkQueue(b *testing.B) {
	n := benchSize(b, BenchTicketsEnv, 20_000)
	for _, be := range storagetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			ctx := context.Background()
			clock := storagetest.NewFakeClock(t0)
			s := be.Open(b, clock)
			if err := s.SyncInboxes(ctx, []storage.InboxSpec{
				{Address: "support@acme.test", Name: "Support"}, {Address: "billing@acme.test", Name: "Billing"},
			}); err != nil {
				b.Fatal(err)
			}
			spec := planSpec(clock.Now(), 3*n)
			spec.PerTicket, spec.Queue = 3, true
			start := time.Now()
			tickets, err := storage.BenchFill(ctx, s, spec)
			if err != nil {
				b.Fatal(err)
			}
			filled := time.Since(start)
			if err := s.Optimize(ctx); err != nil {
				b.Fatal(err)
			}
			b.Logf("%s: %d tickets, %d messages filled in %s, statistics in %s", be.Name, len(tickets), 3*n,
				filled.Round(time.Second), (time.Since(start) - filled).Round(time.Millisecond))
			deep := func(f storage.QueueFilter, at int) *storage.Cursor {
				c, err := storage.QueueCursorAt(ctx, s, f, at)
				if err != nil {
					b.Fatal(err)
				}
				return &c
			}
			mid := tickets[len(tickets)/2]
			all := storage.QueueFilter{State: "all"}
			// Page 10,000 of 50 is row 500,000: as deep as the store is,
			// at most.
			depth := min(500_000, len(tickets)-60)
			endpoints := []queueEndpoint{
				{"queue first page", queuePage(storage.QueueFilter{})},
				{"queue inbox=billing", queuePage(storage.QueueFilter{Inbox: "billing@acme.test"})},
				{"queue state=all", queuePage(all)},
				{"queue state=closed", queuePage(storage.QueueFilter{State: string(vocab.StateClosed)})},
				{"queue state=waiting", queuePage(storage.QueueFilter{State: string(vocab.StateWaiting)})},
				{"queue assignee=", queuePage(storage.QueueFilter{Assignee: "agent3@acme.example"})},
				{"queue assignee=none state=all", queuePage(storage.QueueFilter{Assignee: storage.AssigneeNone, State: "all"})},
				{"queue customer=", queuePage(storage.QueueFilter{Customer: mid.Customer, State: "all"})},
				{"queue tag=vip", queuePage(storage.QueueFilter{Tag: "vip"})},
				{"queue tag=rare state=all", queuePage(storage.QueueFilter{Tag: "rare", State: "all"})},
				{"queue state=all page 10,000", queuePage(storage.QueueFilter{State: "all", After: deep(all, depth)})},
				{"queue state=closed deep", queuePage(storage.QueueFilter{State: string(vocab.StateClosed), After: deep(storage.QueueFilter{State: string(vocab.StateClosed)}, depth)})},
				{"api open", apiList(storage.QueueFilter{})},
				{"api state=all", apiList(all)},
				{"api state=closed", apiList(storage.QueueFilter{State: string(vocab.StateClosed)})},
				{"api state=resolved", apiList(storage.QueueFilter{State: string(vocab.StateResolved)})},
				{"api state=new", apiList(storage.QueueFilter{State: string(vocab.StateNew)})},
				{"api state=unconfirmed", apiList(storage.QueueFilter{State: string(vocab.StateUnconfirmed)})},
				{"api inbox=billing state=all", apiList(storage.QueueFilter{Inbox: "billing@acme.test", State: "all"})},
				{"api state=all deep", apiList(storage.QueueFilter{State: "all", After: deep(all, depth)})},
				{"ticket page", func(ctx context.Context, s *storage.Store) error {
					if _, err := s.GetTicket(ctx, mid.ID); err != nil {
						return err
					}
					_, err := s.CustomerHistory(ctx, mid.Customer, 10)
					return err
				}},
			}
			for _, ep := range endpoints {
				b.Run(ep.name, func(b *testing.B) {
					times := make([]time.Duration, 0, b.N)
					for b.Loop() {
						t := time.Now()
						if err := ep.run(ctx, s); err != nil {
							b.Fatal(err)
						}
						times = append(times, time.Since(t))
					}
					slices.Sort(times)
					p := func(q float64) float64 {
						return float64(times[min(len(times)-1, int(q*float64(len(times))))].Microseconds()) / 1000
					}
					b.ReportMetric(p(0.50), "p50-ms")
					b.ReportMetric(p(0.95), "p95-ms")
					b.Logf("| %s | %s | %.2f | %.2f |", be.Name, ep.name, p(0.50), p(0.95))
				})
			}
		})
	}
}
