package storage_test

import (
	"context"
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
