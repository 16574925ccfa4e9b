package storage

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// reclaimAbove is how many free pages (4 KiB each) a SQLite file may
// carry before Reclaim returns them: below it, new writes reuse them
// soon enough and a vacuum step is not worth its write transaction.
const reclaimAbove = 2048

// reclaimStep bounds the pages one Reclaim frees: each step is a write
// transaction, and intake must not wait behind a long one.
const reclaimStep = 4096

// Reclaim returns a SQLite file's free pages to the file system, at most
// reclaimStep at a time, when more than reclaimAbove are free and the
// database frees incrementally (auto_vacuum INCREMENTAL, which tend sets
// on every database it creates). It does nothing on PostgreSQL, whose
// vacuum keeps the outbox's space for reuse (Checkpoint).
func (s *Store) Reclaim(ctx context.Context) error {
	if s.driver != DriverSQLite {
		return nil
	}
	db := s.db.WithContext(ctx)
	var mode, free int64
	if err := db.Raw("PRAGMA auto_vacuum").Row().Scan(&mode); err != nil {
		return fmt.Errorf("auto_vacuum: %w", err)
	}
	if mode != 2 { // 2 = INCREMENTAL; an older database stays as it was
		return nil
	}
	if err := db.Raw("PRAGMA freelist_count").Row().Scan(&free); err != nil {
		return fmt.Errorf("freelist_count: %w", err)
	}
	if free <= reclaimAbove {
		return nil
	}
	// incremental_vacuum returns no rows but must run as a query to
	// step through its pages; through the gate, like every writer.
	return s.write(ctx, false, func(tx *gorm.DB) error {
		rows, err := tx.Raw(fmt.Sprintf("PRAGMA incremental_vacuum(%d)", min(free, reclaimStep))).Rows()
		if err != nil {
			return fmt.Errorf("incremental vacuum: %w", err)
		}
		for rows.Next() {
		}
		return rows.Close()
	})
}
