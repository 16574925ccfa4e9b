package storage_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestSimilarCandidates: a burst of look-alikes shares its bands; the
// candidates are the newest tickets in the window that share a band,
// never the asking ticket, a merged one or one before the window, and a
// band deeper than the limit still yields the newest of all the bands.
func TestSimilarCandidates(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		open := func(i int) int64 {
			return deliver(t, c, incoming(fmt.Sprintf("c%d@example.com", i), fmt.Sprintf("m%d@example.com", i), fmt.Sprintf("Outage %d", i), "")).Ticket
		}
		old := open(0)
		inTx(t, s, func(ctx context.Context, tx *storage.Tx) error {
			return tx.SetCluster(ctx, old, old, []string{"outag"}, []int64{7})
		})
		clock.Advance(8 * 24 * time.Hour)
		since := clock.Now().Add(-7 * 24 * time.Hour)
		// 30 tickets in band 7, every third also in band 9, and ticket
		// 20 in band 9 alone.
		var burst []int64
		for i := 1; i <= 30; i++ {
			tk := open(i)
			bands := []int64{7}
			if i%3 == 0 {
				bands = append(bands, 9)
			}
			if i == 20 {
				bands = []int64{9}
			}
			inTx(t, s, func(ctx context.Context, tx *storage.Tx) error {
				return tx.SetCluster(ctx, tk, burst0(burst, tk), []string{"outag"}, bands)
			})
			burst = append(burst, tk)
			clock.Advance(time.Second)
		}
		if err := s.MergeTickets(ctx, burst[28], burst[27], "lead@acme.test"); err != nil {
			t.Fatal(err)
		}
		asking := open(31)
		cases := []struct {
			name  string
			bands []int64
			limit int
			want  []int64
		}{
			{"newest first, the merged one left out", []int64{7}, 4, []int64{burst[29], burst[27], burst[26], burst[25]}},
			{"every band's newest", []int64{9, 7}, 3, []int64{burst[29], burst[27], burst[26]}},
			{"a shallow band", []int64{9}, 5, []int64{burst[29], burst[26], burst[23], burst[20], burst[19]}},
			{"all of them, but none before the window", []int64{7, 9}, 100, slices.Concat(reversed(burst[29:30]), reversed(burst[:28]))},
			{"no band", []int64{42}, 5, nil},
		}
		for _, tc := range cases {
			var got []storage.SimilarTicket
			inTx(t, s, func(ctx context.Context, tx *storage.Tx) error {
				var err error
				got, err = tx.SimilarCandidates(ctx, asking, tc.bands, since, tc.limit)
				return err
			})
			ids := make([]int64, len(got))
			for i, g := range got {
				ids[i] = g.Ticket
				if g.Cluster != burst[0] || !slices.Equal(g.Stems, []string{"outag"}) {
					t.Errorf("%s: candidate %+v", tc.name, g)
				}
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("%s: candidates %v, want %v", tc.name, ids, tc.want)
			}
		}
	})
}

// burst0 is the cluster of a burst's ticket: the first one's.
func burst0(burst []int64, tk int64) int64 {
	if len(burst) == 0 {
		return tk
	}
	return burst[0]
}

func reversed(s []int64) []int64 {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

// TestSimilarCandidatesPlan: a young installation has fewer tickets than
// 32 bands' lists hold. Once ANALYZE had run, SQLite then walked every
// ticket of the window by created_at against the list and sorted them
// (4 ms a new ticket in tend bench, a quarter of its processing) instead
// of looking the list's tickets up by key, in key order.
func TestSimilarCandidatesPlan(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		// Statistics of the empty database, as a first start took them
		// (SQLite); PostgreSQL's autovacuum has not yet looked either.
		if err := storage.ExecForTest(ctx, s, "ANALYZE"); err != nil {
			t.Fatal(err)
		}
		tickets, err := storage.BenchFill(ctx, s, planSpec(clock.Now(), 3000))
		if err != nil {
			t.Fatal(err)
		}
		// 32 bands a ticket, as similar.Sign makes them, from few keys:
		// a burst of look-alikes puts hundreds of tickets in each.
		if err := storage.ExecForTest(ctx, s, `WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < 31)
			INSERT INTO ticket_bands (band, ticket_id) SELECT k.i * 100 + tickets.id % 3, tickets.id FROM tickets CROSS JOIN k`); err != nil {
			t.Fatal(err)
		}
		asking := tickets[len(tickets)-1].ID
		bands := make([]int64, 32)
		for i := range bands {
			bands[i] = int64(i*100) + asking%3
		}
		since := clock.Now().Add(-365 * 24 * time.Hour)
		qs := storage.CaptureSQL(ctx, s, func(ctx context.Context, tx *storage.Tx) error {
			_, err := tx.SimilarCandidates(ctx, asking, bands, since, 50)
			return err
		})
		if len(qs) != 1 {
			t.Fatalf("SimilarCandidates built %d queries, want 1", len(qs))
		}
		plan, err := storage.Explain(ctx, s, qs[0])
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%d tickets:\n\t%s", len(tickets), strings.Join(plan, "\n\t"))
		if problem := planProblem(s.Driver(), plan); problem != "" {
			t.Error(problem)
		}
		if s.Driver() == storage.DriverSQLite {
			if problem := sortProblem(plan); problem != "" {
				t.Error(problem)
			}
			// A bound LIMIT makes SQLite compile the statement again at
			// every execution (see similarQuerySQLite).
			if strings.Contains(qs[0].SQL, "LIMIT ?") {
				t.Errorf("the query binds a LIMIT, and is compiled again each time: %s", qs[0].SQL)
			}
		}
		for _, line := range plan {
			if ticketsWhole.MatchString(line) {
				t.Errorf("reads the window's tickets rather than the candidates' by key: %s", strings.TrimSpace(line))
			}
		}
	})
}

// ticketsWhole matches a plan line that reads tickets other than by key:
// a bitmap or sequential scan on PostgreSQL, SQLite's walk of an index
// range or of the table.
var ticketsWhole = regexp.MustCompile(`(Bitmap Heap Scan|Seq Scan) on tickets\b|^\s*(SCAN|SEARCH) tickets USING (COVERING )?INDEX`)
