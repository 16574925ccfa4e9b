package storage

import (
	"context"
	"fmt"
	"time"
)

// optimizeEvery is how often RunMaintenance refreshes the planner's
// statistics. PRAGMA optimize is cheap when nothing changed much (it
// analyzes only the tables whose statistics drifted), so hourly keeps
// plans current without a chore anyone has to remember.
const optimizeEvery = time.Hour

// growthEvery is how often RunMaintenance asks whether the tickets
// outgrew their statistics (two index probes when they did not).
const growthEvery = time.Minute

// analysisLimit bounds SQLite's ANALYZE to about this many index rows
// each, so that refreshing statistics on a large database takes
// milliseconds instead of a full read.
const analysisLimit = 1000

// analyzeMin is the fewest tickets SQLite's statistics are gathered for.
// Statistics of an empty or nearly empty database are worse than none:
// ANALYZE at the first start recorded "tickets: 0 rows", and for the hour
// until the next refresh the planner believed it while thousands of
// tickets arrived (content clustering walked every ticket and sorted
// them, 4 ms a new ticket in tend bench, where without statistics it
// looks the few it needs up by key).
const analyzeMin = 100

// Optimize brings the query planner's statistics up to date. On SQLite a
// database whose statistics are missing or were taken when it held less
// than half its tickets is analyzed, otherwise PRAGMA optimize refreshes
// what drifted: without statistics SQLite's planner can pick an index that
// makes an API list take seconds, and with an empty table's it scans what
// it thinks is nothing. A database of fewer than analyzeMin tickets is
// left to SQLite's defaults. On PostgreSQL autovacuum keeps statistics
// current (see README, "PostgreSQL"), and its planner scales them by the
// table's size now; Optimize runs ANALYZE, for after a bulk import that
// autovacuum would only notice later. On SQLite it also merges the
// search index's segments (mergeSearch).
func (s *Store) Optimize(ctx context.Context) error {
	if s.driver == DriverPostgres {
		if err := s.db.WithContext(ctx).Exec("ANALYZE").Error; err != nil {
			return fmt.Errorf("analyze: %w", err)
		}
		return nil
	}
	if _, err := s.refreshStats(ctx, true); err != nil {
		return err
	}
	_, err := s.mergeSearch(ctx, searchMergeBudget)
	return err
}

// searchMergeBudget bounds the search index's merge in one Optimize
// (mergeSearch): what is left, the next round merges.
const searchMergeBudget = 5 * time.Second

// analyzeIfGrown analyzes a SQLite database whose tickets outgrew their
// statistics (Optimize's rule) and reports whether it did: RunMaintenance
// asks every minute, so that a new installation's plans follow its first
// hour of mail instead of waiting for the hourly refresh. It does nothing
// on PostgreSQL.
func (s *Store) analyzeIfGrown(ctx context.Context) (bool, error) {
	if s.driver != DriverSQLite {
		return false, nil
	}
	return s.refreshStats(ctx, false)
}

// refreshStats runs ANALYZE when the tickets' statistics are missing or
// stale (see Optimize) and have at least doubled since this process last
// analyzed, else PRAGMA optimize when routine is set, and reports whether
// it analyzed.
func (s *Store) refreshStats(ctx context.Context, routine bool) (bool, error) {
	db := s.db.WithContext(ctx)
	// The highest ticket number stands for the count: it is one index
	// probe, and tickets are never deleted in numbers that matter here.
	var tickets int64
	if err := db.Raw("SELECT COALESCE(MAX(id), 0) FROM tickets").Scan(&tickets).Error; err != nil {
		return false, fmt.Errorf("optimize: %w", err)
	}
	if tickets < analyzeMin {
		return false, nil
	}
	recorded := int64(-1) // no statistics
	var n int64
	if err := db.Raw("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'").Scan(&n).Error; err != nil {
		return false, fmt.Errorf("optimize: %w", err)
	}
	if n > 0 {
		// Each stat row begins with the rows its index had.
		var rows []int64
		if err := db.Raw("SELECT CAST(stat AS INTEGER) FROM sqlite_stat1 WHERE tbl = 'tickets'").Scan(&rows).Error; err != nil {
			return false, fmt.Errorf("optimize: %w", err)
		}
		for _, r := range rows {
			recorded = max(recorded, r)
		}
	}
	stmt := "PRAGMA optimize"
	// The row count ANALYZE records under analysis_limit is an estimate
	// (121,954 for 200,000 rows in one trial): once this process has
	// analyzed, only real growth since then counts, or an estimate under
	// half would have it analyze every minute.
	analyze := (recorded < 0 || tickets > 2*recorded) && tickets > 2*s.analyzedAt.Load()
	if analyze {
		stmt = "ANALYZE"
	} else if !routine {
		return false, nil
	}
	if err := db.Exec(fmt.Sprintf("PRAGMA analysis_limit = %d", analysisLimit)).Error; err != nil {
		return false, fmt.Errorf("optimize: %w", err)
	}
	if err := db.Exec(stmt).Error; err != nil {
		return false, fmt.Errorf("optimize: %s: %w", stmt, err)
	}
	if analyze {
		s.analyzedAt.Store(tickets)
	}
	return analyze, nil
}
