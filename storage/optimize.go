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

// analysisLimit bounds SQLite's ANALYZE to about this many index rows
// each, so that refreshing statistics on a large database takes
// milliseconds instead of a full read.
const analysisLimit = 1000

// Optimize brings the query planner's statistics up to date. On SQLite a
// database that has none (new, or written by a version that never ran
// ANALYZE) is analyzed, otherwise PRAGMA optimize refreshes what drifted:
// without statistics SQLite's planner can pick an index that makes an API
// list take seconds. On PostgreSQL autovacuum keeps statistics current
// (see README, "PostgreSQL"); Optimize runs ANALYZE, for after a bulk
// import that autovacuum would only notice later.
func (s *Store) Optimize(ctx context.Context) error {
	db := s.db.WithContext(ctx)
	if s.driver == DriverPostgres {
		if err := db.Exec("ANALYZE").Error; err != nil {
			return fmt.Errorf("analyze: %w", err)
		}
		return nil
	}
	var n int64
	if err := db.Raw("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'").Scan(&n).Error; err != nil {
		return fmt.Errorf("optimize: %w", err)
	}
	if n > 0 {
		if err := db.Raw("SELECT COUNT(*) FROM sqlite_stat1 WHERE tbl = 'tickets'").Scan(&n).Error; err != nil {
			return fmt.Errorf("optimize: %w", err)
		}
	}
	stmt := "PRAGMA optimize"
	if n == 0 {
		stmt = "ANALYZE"
	}
	if err := db.Exec(fmt.Sprintf("PRAGMA analysis_limit = %d", analysisLimit)).Error; err != nil {
		return fmt.Errorf("optimize: %w", err)
	}
	if err := db.Exec(stmt).Error; err != nil {
		return fmt.Errorf("optimize: %s: %w", stmt, err)
	}
	return nil
}
