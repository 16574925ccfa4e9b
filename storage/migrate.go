package storage

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// SchemaVersion records one applied schema step.
type SchemaVersion struct {
	Version   int    `gorm:"primaryKey;autoIncrement:false"`
	Name      string `gorm:"size:200;not null"`
	AppliedAt time.Time
}

// step is one versioned change of the schema. Additive changes (a new
// table, column or index) are made by AutoMigrate from the models, which
// never drops anything; a step carries what AutoMigrate cannot do: data
// moves, backfills, renames. Steps run in order, each in its own
// transaction, and are recorded so they run once.
type step struct {
	version int
	name    string
	up      func(tx *gorm.DB) error
}

// steps returns the schema's history. Append only: never edit or reorder
// a step that has shipped.
func steps() []step {
	return []step{
		{1, "initial schema", func(*gorm.DB) error { return nil }},
		// AutoMigrate added messages.no_auto_reply, suspect and
		// class_reasons. Rows stored before them kept only their class:
		// every non-human one was never to be answered automatically,
		// so a retried or replayed row must still fail closed.
		{2, "message classification flags", func(tx *gorm.DB) error {
			return tx.Exec("UPDATE messages SET no_auto_reply = ? WHERE class <> ?", true, "human").Error
		}},
		// The auth_* columns of messages are added by AutoMigrate; the
		// step raises the version so that an older binary, which would
		// store mail without a verdict, refuses this database.
		{3, "sender authentication verdict on messages", func(*gorm.DB) error { return nil }},
		// raw_chunks is added by AutoMigrate; an older binary would read
		// a large message stored there as empty, so it must refuse.
		{4, "large raw bodies in raw_chunks (PostgreSQL)", func(*gorm.DB) error { return nil }},
		// The search index (search.go), filled from the stored rows.
		{5, "full-text search", searchSchema},
	}
}

// LatestSchemaVersion is the schema version this binary writes.
func LatestSchemaVersion() int { s := steps(); return s[len(s)-1].version }

// migrate brings the schema up to date. On PostgreSQL an advisory lock
// keeps two replicas starting together from migrating at once.
func (s *Store) migrate(ctx context.Context) error {
	db := s.db.WithContext(ctx)
	if s.driver == DriverPostgres {
		conn, err := s.db.DB()
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		c, err := conn.Conn(ctx)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		defer c.Close()
		const lockID = 7_363_656_110 // "tend" schema lock
		if _, err := c.ExecContext(ctx, "SELECT pg_advisory_lock($1)", lockID); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
		defer func() { _, _ = c.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockID) }()
	}
	if err := db.AutoMigrate(&SchemaVersion{}); err != nil {
		return fmt.Errorf("migrate: versions table: %w", err)
	}
	var current int
	if err := db.Model(&SchemaVersion{}).Select("COALESCE(MAX(version), 0)").Scan(&current).Error; err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	if latest := LatestSchemaVersion(); current > latest {
		return fmt.Errorf("migrate: database schema version %d is newer than this binary's %d: upgrade tend", current, latest)
	}
	if err := db.AutoMigrate(allModels()...); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, st := range steps() {
		if st.version <= current {
			continue
		}
		err := db.Transaction(func(tx *gorm.DB) error {
			if err := st.up(tx); err != nil {
				return err
			}
			return tx.Create(&SchemaVersion{Version: st.version, Name: st.name, AppliedAt: s.now()}).Error
		})
		if err != nil {
			return fmt.Errorf("migrate: step %d (%s): %w", st.version, st.name, err)
		}
		s.log.Info("schema upgraded", "version", st.version, "step", st.name)
	}
	return nil
}

// SchemaVersion returns the database's schema version.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.WithContext(ctx).Model(&SchemaVersion{}).Select("COALESCE(MAX(version), 0)").Scan(&v).Error
	return v, err
}
