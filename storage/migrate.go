package storage

import (
	"context"
	"fmt"
	"slices"
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
		// Deduplication looks a copy up by Message-ID and content hash
		// before it stores one; on PostgreSQL two replicas storing two
		// copies of one message at the same instant both missed the
		// other, so the index makes the second wait and fail, and the
		// committer then finds the first (dedupConflict). Copies stored
		// twice before the index keep their rows; all but the first lose
		// the content hash (their raw hash still deduplicates them).
		{5, "one message per Message-ID and content hash", func(tx *gorm.DB) error {
			err := tx.Exec(`UPDATE messages SET content_hash = '' WHERE content_hash <> '' AND id NOT IN
				(SELECT MIN(id) FROM messages WHERE content_hash <> '' GROUP BY message_id, content_hash)`).Error
			if err != nil {
				return err
			}
			return tx.Exec("CREATE UNIQUE INDEX IF NOT EXISTS " + contentIndex + " ON messages (message_id, content_hash) WHERE content_hash <> ''").Error
		}},
		// The queue's order becomes two generated columns with the
		// indexes that serve each filter's ORDER BY: existing rows get
		// their values from the expression itself (PostgreSQL computes
		// a stored column as it adds it; SQLite computes a virtual one
		// as it builds the index), and every later write of the row
		// keeps them current.
		{6, "queue order as indexed columns (attention, queue_since)", queueOrderColumns},
		// AutoMigrate added the claim indexes, which end in the row id
		// so that a claim reads due rows in order without a sort; the
		// due indexes they replace only cost writes now.
		{7, "claim indexes in claim order", func(tx *gorm.DB) error {
			for _, idx := range []string{"idx_outbox_due", "idx_work_due", "idx_timers_due"} {
				if err := tx.Exec("DROP INDEX IF EXISTS " + idx).Error; err != nil {
					return err
				}
			}
			return nil
		}},
		// The search index (search.go), filled from the stored rows.
		{8, "full-text search", searchSchema},
		// AutoMigrate added raw_messages.packed: a message may now be
		// stored zstd-compressed (packing.go), which an older binary
		// would hand out as its bytes, so it must refuse. On PostgreSQL
		// the packed bytes are kept out of line without pglz, which
		// would only spend CPU failing to shrink them.
		{9, "compressed raw messages (raw_messages.packed)", func(tx *gorm.DB) error {
			if tx.Dialector.Name() != "postgres" {
				return nil
			}
			return tx.Exec("ALTER TABLE raw_messages ALTER COLUMN data SET STORAGE EXTERNAL").Error
		}},
		// PostgreSQL's GIN search indexes (step 8) without their pending
		// list (searchIndexesDirect).
		{10, "search indexes without a pending list (PostgreSQL)", searchIndexesDirect},
		// The tag filter read from an index (tagIndexes).
		{11, "tag filter by index", tagIndexes},
		// PostgreSQL's search folding by normalize() (searchFoldNormalize).
		{12, "search folding by Unicode normalization (PostgreSQL)", searchFoldNormalize},
		// AutoMigrate added outbox_bodies; the bytes move there.
		{13, "outgoing mail's bytes in outbox_bodies", outboxBodies},
		// The clusters' side panel read from two small indexes
		// (groupedIndexes).
		{14, "content clusters by index", groupedIndexes},
		// outbox_mails' index of ticket_id alone goes: the index of
		// (ticket_id, created_at) serves every query by ticket, and each
		// outgoing mail wrote both.
		{15, "one index of outgoing mail by ticket", dropOutboxTicketIndex},
		// SQLite's search index keyed by ticket (searchByTicket).
		{16, "search index by ticket (SQLite)", searchByTicket},
		// PostgreSQL's search index keyed by ticket too; SQLite's
		// message triggers mended (searchDocs).
		{17, "search documents by ticket", searchDocs},
		// PostgreSQL's search folding at once for ASCII text
		// (searchFoldASCII).
		{18, "search folding at once for ASCII text (PostgreSQL)", searchFoldASCII},
		// AutoMigrate added outbox_bodies.packed: an outgoing mail's
		// bytes may now be stored zstd-compressed, which an older binary
		// would relay as they are, so it must refuse. As for step 9,
		// PostgreSQL keeps them out of line without pglz.
		{19, "compressed outgoing mail (outbox_bodies.packed)", func(tx *gorm.DB) error {
			if tx.Dialector.Name() != "postgres" {
				return nil
			}
			return tx.Exec("ALTER TABLE outbox_bodies ALTER COLUMN raw SET STORAGE EXTERNAL").Error
		}},
	}
}

// dropOutboxTicketIndex is migration step 15 (see steps).
func dropOutboxTicketIndex(tx *gorm.DB) error {
	if err := tx.Exec("DROP INDEX IF EXISTS idx_outbox_mails_ticket_id").Error; err != nil {
		return fmt.Errorf("drop idx_outbox_mails_ticket_id: %w", err)
	}
	return nil
}

// grouped is what groupedIndexes hold: live tickets that joined another
// ticket's cluster (a cluster's first ticket has its own number as
// cluster_id), with its columns under prefix ("o." for a query's alias;
// a query must say it in these words for the planner to take the
// indexes). A cluster of two or more open or recent tickets has at least
// one such ticket among them, so ContentClusters starts from these few
// instead of every open and recent ticket.
func grouped(prefix string) string {
	return prefix + "merged_into IS NULL AND " + prefix + "cluster_id IS NOT NULL AND " + prefix + "cluster_id <> " + prefix + "id"
}

// groupedIndexes is migration step 14: the open and the recent tickets
// that joined a cluster, each set by its own index (see
// Store.ContentClusters).
func groupedIndexes(tx *gorm.DB) error {
	for _, st := range []string{
		"CREATE INDEX IF NOT EXISTS idx_tickets_grouped_open ON tickets (attention, cluster_id) WHERE " + grouped(""),
		"CREATE INDEX IF NOT EXISTS idx_tickets_grouped_recent ON tickets (created_at, cluster_id) WHERE " + grouped(""),
	} {
		if err := tx.Exec(st).Error; err != nil {
			return fmt.Errorf("%s: %w", st, err)
		}
	}
	return nil
}

// outboxBodies is migration step 13: the composed bytes of outgoing mail
// move from outbox_mails.raw into outbox_bodies, and the column goes.
// Every claim and outcome of a mail rewrites its outbox row, and on
// SQLite a row whose size changes is written again whole, blob and
// overflow pages included, and reading a column stored after the blob
// walks its overflow chain (4% of the pipeline's CPU in pread and 4% in
// pwrite). The column is dropped rather than left NULL, so that no later
// code can write it and no reader pays for it: SQLite (3.35) rewrites
// the table without it, once; PostgreSQL only hides a dropped column,
// whose values stay in each row until the row is written again, so the
// rows are written with it NULL first (the old versions are dead tuples
// that vacuum frees) and the bytes are not kept twice.
func outboxBodies(tx *gorm.DB) error {
	if !hasColumn(tx, "outbox_mails", "raw") {
		return nil // a database created without it
	}
	stmts := []string{
		"INSERT INTO outbox_bodies (outbox_id, raw) SELECT id, raw FROM outbox_mails WHERE raw IS NOT NULL ON CONFLICT (outbox_id) DO NOTHING",
		"ALTER TABLE outbox_mails DROP COLUMN raw",
	}
	if tx.Dialector.Name() == "postgres" {
		stmts = slices.Insert(stmts, 1, "UPDATE outbox_mails SET raw = NULL WHERE raw IS NOT NULL")
	}
	for _, st := range stmts {
		if err := tx.Exec(st).Error; err != nil {
			return fmt.Errorf("%s: %w", st, err)
		}
	}
	return nil
}

// tagIndexes is migration step 11. The tag filter was checked on every
// ticket the queue walked in order: a tag on one ticket in a thousand
// had the walk read some 50,000 tickets for a page (37-70 ms at a
// million tickets, BenchmarkQueue "tag=rare state=all"). On SQLite the
// queue's main index carries the tag list as the expression the filter
// matches (tagCondition), which SQLite then reads from the index: the
// walk tests the tags there and reads a ticket's row only for the rows it
// lists (a plain tags column would not do: SQLite reads a column of a
// non-covering index's table from the table). On PostgreSQL,
// whose index scans read the row before filtering, a GIN index over the
// tags as an array finds a rare tag's tickets directly (tagCondition);
// the planner's element statistics tell it when a common tag is cheaper
// checked along the ordered walk. Without a pending list, as step 10.
func tagIndexes(tx *gorm.DB) error {
	stmts := []string{
		"DROP INDEX IF EXISTS idx_tickets_queue",
		"CREATE INDEX idx_tickets_queue ON tickets (attention, queue_since, id, snoozed_until, " + sqliteTagList + ") WHERE merged_into IS NULL",
	}
	if tx.Dialector.Name() == "postgres" {
		// Not partial, unlike the queue's indexes: PostgreSQL takes an
		// expression's statistics only from a whole-table index, and
		// without them it guesses every tag at 0.5 % of the tickets
		// and would gather a common tag's hundreds of thousands to
		// sort them.
		stmts = []string{"CREATE INDEX IF NOT EXISTS idx_tickets_tags ON tickets USING gin (" + pgTagArray + ") WITH (fastupdate = off)"}
	}
	for _, st := range stmts {
		if err := tx.Exec(st).Error; err != nil {
			return fmt.Errorf("%s: %w", st, err)
		}
	}
	return nil
}

// searchIndexesDirect is migration step 10: on PostgreSQL the GIN search
// indexes insert each row's words into the index itself (fastupdate off)
// instead of first appending them to a pending list of up to
// gin_pending_list_limit (4 MB), which is merged only by a vacuum or once
// full and whose pages the index keeps after: on a day of small mail the
// pending list of idx_search_messages was 1.0 of its 1.2 MB, the index
// rebuilt 0.14 MB (issue 10: disk at most 1.5× the mail). A direct
// insert costs the processor's transaction little beside computing the
// row's tsvector, which it does either way, and no insert is the one
// that pays for merging 4 MB. The existing pending lists are merged now.
func searchIndexesDirect(tx *gorm.DB) error {
	if tx.Dialector.Name() != "postgres" {
		return nil
	}
	old, err := pgOldSearchIndexes(tx)
	if err != nil {
		return err
	}
	for _, idx := range old {
		if err := tx.Exec("ALTER INDEX " + idx + " SET (fastupdate = off)").Error; err != nil {
			return err
		}
		if err := tx.Exec("SELECT gin_clean_pending_list(?::regclass)", idx).Error; err != nil {
			return err
		}
	}
	return nil
}

// queueOrderColumns is migration step 6.
func queueOrderColumns(tx *gorm.DB) error {
	kind, since := "INTEGER", "DATETIME"
	gen := "VIRTUAL" // SQLite cannot add a STORED column to a table
	if tx.Dialector.Name() == "postgres" {
		kind, since, gen = "smallint", "timestamptz", "STORED"
	}
	var stmts []string
	// A step runs again when the version records were lost: the columns
	// may be there already.
	for _, c := range []struct{ name, typ, expr string }{{"attention", kind, attentionSQL}, {"queue_since", since, queueSinceSQL}} {
		if !hasColumn(tx, "tickets", c.name) {
			stmts = append(stmts, fmt.Sprintf("ALTER TABLE tickets ADD COLUMN %s %s GENERATED ALWAYS AS (%s) %s", c.name, c.typ, c.expr, gen))
		}
	}
	for _, ix := range queueIndexes() {
		stmts = append(stmts, "CREATE INDEX IF NOT EXISTS "+ix)
	}
	for _, st := range stmts {
		if err := tx.Exec(st).Error; err != nil {
			return fmt.Errorf("%s: %w", st, err)
		}
	}
	return nil
}

// hasColumn reports whether table has column name, generated columns
// included: the SQLite dialect's HasColumn reads pragma_table_info, which
// leaves generated columns out, so a step adding one would add it twice.
func hasColumn(tx *gorm.DB, table, name string) bool {
	if tx.Dialector.Name() != DriverSQLite {
		return tx.Migrator().HasColumn(table, name)
	}
	var n int
	if err := tx.Raw("SELECT COUNT(*) FROM pragma_table_xinfo(?) WHERE name = ?", table, name).Row().Scan(&n); err != nil {
		return false
	}
	return n > 0
}

// queueIndexes serve the queue's and the API's order, one per filter that
// the planner should seek to (the others, inbox, tag and an agent's
// access, are checked on the rows walked in order). Merged tickets are
// never listed, so they are left out of every index.
func queueIndexes() []string {
	const live = " WHERE merged_into IS NULL"
	return []string{
		// The default view, "all", and the attention counts (covering:
		// snoozed_until is the counts' only other column).
		"idx_tickets_queue ON tickets (attention, queue_since, id, snoozed_until)" + live,
		"idx_tickets_queue_state ON tickets (state, attention, queue_since, id)" + live,
		"idx_tickets_queue_assignee ON tickets (assignee_id, attention, queue_since, id)" + live,
		"idx_tickets_queue_customer ON tickets (customer_id, attention, queue_since, id)" + live,
		"idx_tickets_queue_subject ON tickets (norm_subject, attention, queue_since, id)" + live,
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
	if err := s.ensureChangeFeed(db); err != nil {
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
