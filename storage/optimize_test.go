package storage_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestOptimizeGathersStatistics: a store that never had statistics has
// them for the tickets' indexes after Optimize (SQLite's planner, without
// them, picked plans that made the API list take seconds), and a second
// Optimize (PRAGMA optimize on SQLite) keeps them. (On PostgreSQL the
// fill has analyzed already; Optimize must just run.)
func TestOptimizeGathersStatistics(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		if _, err := storage.BenchFill(ctx, s, planSpec(clock.Now(), 600)); err != nil {
			t.Fatal(err)
		}
		stats := "SELECT COUNT(*) FROM sqlite_stat1 WHERE tbl = 'tickets'"
		if s.Driver() == storage.DriverPostgres {
			stats = "SELECT COUNT(*) FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'tickets'"
		}
		for i := range 2 {
			if err := s.Optimize(ctx); err != nil {
				t.Fatal(err)
			}
			n, err := storage.QueryInt(ctx, s, stats)
			if err != nil || n == 0 {
				t.Fatalf("after Optimize %d: %d statistics rows for tickets, %v", i+1, n, err)
			}
		}
	})
}

// TestStatisticsFollowGrowth: an empty SQLite database is not analyzed
// (its statistics said "no tickets" for the hour until the next refresh,
// while thousands arrived, and the planner believed them), and once the
// tickets outgrow their statistics the minute check analyzes again, and
// only then.
func TestStatisticsFollowGrowth(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		if s.Driver() != storage.DriverSQLite {
			return // PostgreSQL: autovacuum, and a planner that scales its statistics by the table's size
		}
		ctx := context.Background()
		recorded := func() int {
			t.Helper()
			n, err := storage.QueryInt(ctx, s, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
			if err != nil || n == 0 {
				return -1
			}
			n, err = storage.QueryInt(ctx, s, "SELECT COALESCE(MAX(CAST(stat AS INTEGER)), -1) FROM sqlite_stat1 WHERE tbl = 'tickets'")
			if err != nil {
				t.Fatal(err)
			}
			return int(n)
		}
		if err := s.Optimize(ctx); err != nil {
			t.Fatal(err)
		}
		if r := recorded(); r != -1 {
			t.Fatalf("an empty database was analyzed: statistics for %d tickets", r)
		}
		// What the start of an earlier version left: an empty table's
		// statistics.
		if err := storage.ExecForTest(ctx, s, "ANALYZE"); err != nil {
			t.Fatal(err)
		}
		if r := recorded(); r != 0 {
			t.Fatalf("statistics for %d tickets in an empty database", r)
		}
		tickets, err := storage.BenchFill(ctx, s, planSpec(clock.Now(), 600))
		if err != nil {
			t.Fatal(err)
		}
		grown, err := storage.AnalyzeIfGrown(ctx, s)
		if err != nil || !grown {
			t.Fatalf("analyzeIfGrown on %d tickets with an empty table's statistics = %v, %v; want analyzed", len(tickets), grown, err)
		}
		if r := recorded(); r < len(tickets)/2 {
			t.Fatalf("statistics for %d tickets after analyzing %d", r, len(tickets))
		}
		if grown, err := storage.AnalyzeIfGrown(ctx, s); err != nil || grown {
			t.Fatalf("analyzeIfGrown with current statistics = %v, %v; want nothing done", grown, err)
		}
		// ANALYZE under analysis_limit records an estimate of the rows,
		// which may be under half of them: the same process must not
		// take that for growth and analyze every minute.
		if err := storage.ExecForTest(ctx, s, fmt.Sprintf("UPDATE sqlite_stat1 SET stat = '%d' || substr(stat, instr(stat, ' ')) WHERE tbl = 'tickets'", len(tickets)/3)); err != nil {
			t.Fatal(err)
		}
		if grown, err := storage.AnalyzeIfGrown(ctx, s); err != nil || grown {
			t.Fatalf("analyzeIfGrown with an estimate of a third and no growth since = %v, %v; want nothing done", grown, err)
		}
		// Real growth: twice the tickets it analyzed.
		c := committer(t, s)
		for i := range len(tickets) + 10 {
			deliver(t, c, incoming(fmt.Sprintf("g%d@example.com", i), fmt.Sprintf("grow%d@example.com", i), "Growth", ""))
		}
		if grown, err := storage.AnalyzeIfGrown(ctx, s); err != nil || !grown {
			t.Fatalf("analyzeIfGrown after the tickets doubled = %v, %v; want analyzed", grown, err)
		}
		if r := recorded(); r < len(tickets) {
			t.Errorf("statistics for %d tickets after growing past %d", r, 2*len(tickets))
		}
	})
}
