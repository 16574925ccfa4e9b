package storage

import (
	"context"
	"errors"
	"fmt"
	"gorm.io/gorm/clause"
	"os"
	"path/filepath"
	"slices"
	"time"

	"gorm.io/gorm"
)

// This file exports internals to the external tests of package storage
// (storage_test): they exist only in the test binary.

// RawTicket reads ticket id as stored, without following merges, so tests
// can see the redirect row itself.
func RawTicket(ctx context.Context, s *Store, id int64) (Ticket, error) {
	var t Ticket
	if err := s.db.WithContext(ctx).Where("id = ?", id).Take(&t).Error; err != nil {
		return Ticket{}, fmt.Errorf("raw ticket %d: %w", id, err)
	}
	return t, nil
}

// RawEvents returns the timeline rows stored on ticket id, without
// following merges.
func RawEvents(ctx context.Context, s *Store, id int64) ([]Event, error) {
	var evs []Event
	if err := s.db.WithContext(ctx).Where("ticket_id = ?", id).Order("id").Find(&evs).Error; err != nil {
		return nil, fmt.Errorf("raw events %d: %w", id, err)
	}
	return evs, nil
}

// Query is one SQL statement as gorm sends it to the driver: the dialect's
// placeholders and the bound values.
type Query struct {
	SQL  string
	Vars []any
}

type captureKey struct{}

// capture appends the statement gorm just built to the sink in its
// context, if any. It runs after gorm's query and row callbacks, which in
// a dry run build the SQL and stop short of the driver.
func capture(db *gorm.DB) {
	sink, ok := db.Statement.Context.Value(captureKey{}).(*[]Query)
	if ok && db.Statement.SQL.Len() > 0 {
		*sink = append(*sink, Query{SQL: db.Statement.SQL.String(), Vars: slices.Clone(db.Statement.Vars)})
	}
}

// CaptureSQL runs fn against a dry-run Tx of s and returns the statements
// the real Tx methods build, without running them. A dry run cannot
// return rows, so a method that needs the result of one query to build
// the next stops after the first; its error is expected and ignored.
func CaptureSQL(ctx context.Context, s *Store, fn func(ctx context.Context, tx *Tx) error) []Query {
	if s.db.Callback().Query().Get("tend:capture") == nil {
		_ = s.db.Callback().Query().After("gorm:query").Register("tend:capture", capture)
		_ = s.db.Callback().Row().After("gorm:row").Register("tend:capture", capture)
		_ = s.db.Callback().Update().After("gorm:update").Register("tend:capture", capture)
	}
	var sink []Query
	ctx = context.WithValue(ctx, captureKey{}, &sink)
	_ = fn(ctx, &Tx{db: s.db.Session(&gorm.Session{DryRun: true, NewDB: true}), s: s})
	return sink
}

// Explain returns the plan of q, one line per plan node: EXPLAIN QUERY
// PLAN on SQLite, EXPLAIN on PostgreSQL.
func Explain(ctx context.Context, s *Store, q Query) ([]string, error) {
	sqlDB, err := s.db.DB()
	if err != nil {
		return nil, err
	}
	prefix := "EXPLAIN "
	if s.driver == DriverSQLite {
		prefix = "EXPLAIN QUERY PLAN "
	}
	rows, err := sqlDB.QueryContext(ctx, prefix+q.SQL, q.Vars...)
	if err != nil {
		return nil, fmt.Errorf("explain %s: %w", q.SQL, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		// The plan text is the last column (SQLite's "detail", PostgreSQL's
		// "QUERY PLAN").
		switch v := vals[len(vals)-1].(type) {
		case []byte:
			out = append(out, string(v))
		default:
			out = append(out, fmt.Sprint(v))
		}
	}
	return out, rows.Err()
}

// ExecForTest runs a statement directly, to put a database in a state
// only an older binary or an accident could leave.
func ExecForTest(ctx context.Context, s *Store, stmt string) error {
	return s.db.WithContext(ctx).Exec(stmt).Error
}

// HoldSnapshot opens a read transaction and reads from it, so that it
// keeps its view of the database (and, on SQLite, its place in the
// write-ahead log) until release is called.
func HoldSnapshot(ctx context.Context, s *Store) (release func(), err error) {
	sqlDB, err := s.db.DB()
	if err != nil {
		return nil, err
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return nil, err
	}
	// A deferred BEGIN by hand: the DSN makes the driver's own
	// transactions take the writer's lock at once.
	if _, err := conn.ExecContext(ctx, "BEGIN DEFERRED"); err != nil {
		_ = conn.Close()
		return nil, err
	}
	var n int64
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM tickets").Scan(&n); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return func() {
		_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
		_ = conn.Close()
	}, nil
}

// CountForTest runs a query that returns one number.
func CountForTest(ctx context.Context, s *Store, query string) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Raw(query).Scan(&n).Error
	return n, err
}

// SetFaults makes the group commit of s call fn at each phase (FaultBegin,
// FaultDeliver, FaultCommit) and fail there with what it returns.
func SetFaults(s *Store, fn func(phase string) error) { s.faults = fn }

// OutboxRaw returns the stored bytes of outbox row id (nil once pruned).
func OutboxRaw(ctx context.Context, s *Store, id int64) ([]byte, error) { return s.OutboxRaw(ctx, id) }

// SetOutboxSizes exposes the size update of the message rows of mail
// whose bytes were just stored (flushBodies), for TestQueryPlans.
func (t *Tx) SetOutboxSizes(ctx context.Context, ids ...int64) error {
	rows := make([]OutboxBody, len(ids))
	for i, id := range ids {
		rows[i] = OutboxBody{OutboxID: id, Raw: []byte("x")}
	}
	return t.setOutboxSizes(ctx, rows)
}

// DroppedTextRows exposes the lookup of the message rows whose text goes
// with dropped outgoing mail, for TestDroppedTextPlan.
func (t *Tx) DroppedTextRows(ctx context.Context, outboxIDs []int64) error {
	var ids []int64
	return droppedTextRows(t.db.WithContext(ctx), outboxIDs).Pluck("messages.id", &ids).Error
}

// ClaimCandidates exposes the query a claim of the outbox, the work
// queue or the timers ("outbox", "work", "timers") selects its rows with,
// for TestQueryPlans.
func (t *Tx) ClaimCandidates(ctx context.Context, queue string) error {
	c, ok := map[string]claimSpec{"outbox": outboxClaim, "work": workClaim, "timers": timerClaim}[queue]
	if !ok {
		return fmt.Errorf("no queue %q", queue)
	}
	var ids []int64
	now := t.s.now()
	return claimQuery(t.db.WithContext(ctx), t.s.driver, c, now, now, 16).Pluck("id", &ids).Error
}

// NewestOpenTicket exposes the lookup that links a new ticket to the
// customer's open one, for TestQueryPlans.
func (t *Tx) NewestOpenTicket(ctx context.Context, email string) (int64, error) {
	var id int64
	if err := t.db.WithContext(ctx).Model(&Contact{}).Where("email = ?", email).Limit(1).Pluck("id", &id).Error; err != nil {
		return 0, err
	}
	return newestOpenTicket(t.db.WithContext(ctx), id)
}

// RawLayout returns where the bytes of hash are kept (its Segment: 0 in
// the row, chunkSegment in raw_chunks, …) and how many chunk rows hash
// has.
func RawLayout(ctx context.Context, s *Store, hash string) (segment int, chunks int64, err error) {
	var r RawMessage
	if err := s.db.WithContext(ctx).Select("segment").Where("hash = ?", hash).Take(&r).Error; err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return 0, 0, err
	}
	err = s.db.WithContext(ctx).Model(&RawChunk{}).Where("hash = ?", hash).Count(&chunks).Error
	return r.Segment, chunks, err
}

// PutRawInline stores data under hash in the raw row itself, as releases
// before raw_chunks stored every message on PostgreSQL.
func PutRawInline(ctx context.Context, s *Store, hash string, data []byte) error {
	return s.db.WithContext(ctx).Create(&RawMessage{Hash: hash, Data: data, Size: int64(len(data)), CreatedAt: s.now()}).Error
}

// ChunkSize is the bytes of one raw chunk row.
const ChunkSize = chunkSize

// SetAfterSnapshot makes Backup call fn between its database copy and the
// copy of the raw files.
func SetAfterSnapshot(s *Store, fn func()) { s.afterSnapshot = fn }

// TablesContaining (PostgreSQL) returns the tables of the public schema
// with a row whose text form holds needle, as text or, in a bytea column,
// as its hex: the check that an erasure left no row behind, whatever
// table the bytes live in.
func TablesContaining(ctx context.Context, s *Store, needle string) ([]string, error) {
	var tables []string
	if err := s.db.WithContext(ctx).Raw("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1").
		Scan(&tables).Error; err != nil {
		return nil, err
	}
	var found []string
	for _, tbl := range tables {
		var n int64
		q := fmt.Sprintf(`SELECT COUNT(*) FROM %q t WHERE t::text LIKE '%%' || ? || '%%' OR t::text LIKE '%%' || encode(convert_to(?, 'UTF8'), 'hex') || '%%'`, tbl)
		if err := s.db.WithContext(ctx).Raw(q, needle, needle).Scan(&n).Error; err != nil {
			return nil, fmt.Errorf("%s: %w", tbl, err)
		}
		if n > 0 {
			found = append(found, tbl)
		}
	}
	return found, nil
}

// OutboxMessageText is the text of the message row recording outgoing
// mail id.
func OutboxMessageText(ctx context.Context, s *Store, id int64) (string, error) {
	var m Message
	if err := s.db.WithContext(ctx).Where("outbox_id = ?", id).Take(&m).Error; err != nil {
		return "", fmt.Errorf("outbox message %d: %w", id, err)
	}
	return m.Text + m.HTML, nil
}

// Pragma returns the value of SQLite pragma name on one of s's
// connections.
func Pragma(ctx context.Context, s *Store, name string) (string, error) {
	var v string
	err := s.db.WithContext(ctx).Raw("PRAGMA " + name).Row().Scan(&v)
	return v, err
}

// QueueCursorAt returns the cursor of the row at offset in f's order,
// for a benchmark to start a page deep in the queue (it pages with
// OFFSET once; Queue never does).
func QueueCursorAt(ctx context.Context, s *Store, f QueueFilter, offset int) (Cursor, error) {
	var c struct {
		Attention  int
		QueueSince time.Time
		ID         int64
	}
	q := f.where(s.db.WithContext(ctx).Table("tickets").Select("tickets.attention, tickets.queue_since, tickets.id"), s.now())
	err := q.Order("tickets.attention").Order("tickets.queue_since").Order("tickets.id").Offset(offset).Limit(1).Scan(&c).Error
	return Cursor{Attention: c.Attention, Since: c.QueueSince, Number: c.ID}, err
}

// CaptureRun runs fn against s and returns the statements it ran.
func CaptureRun(ctx context.Context, s *Store, fn func(ctx context.Context) error) ([]Query, error) {
	if s.db.Callback().Query().Get("tend:capture") == nil {
		_ = s.db.Callback().Query().After("gorm:query").Register("tend:capture", capture)
		_ = s.db.Callback().Row().After("gorm:row").Register("tend:capture", capture)
	}
	var sink []Query
	err := fn(context.WithValue(ctx, captureKey{}, &sink))
	return sink, err
}

// QueryInt runs a query that returns one number.
func QueryInt(ctx context.Context, s *Store, query string) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Raw(query).Scan(&n).Error
	return n, err
}

// QueryStrings runs a query that returns one column of text.
func QueryStrings(ctx context.Context, s *Store, query string) ([]string, error) {
	var out []string
	err := s.db.WithContext(ctx).Raw(query).Scan(&out).Error
	return out, err
}

// RawLocation is where the raw bytes of hash are: their segment (or
// fileSegment, chunkSegment, 0 for the row), the offset of the body in it
// and its size.
func RawLocation(ctx context.Context, s *Store, hash string) (segment int, offset, size int64, err error) {
	var r RawMessage
	err = s.db.WithContext(ctx).Select("segment, \"offset\", size").Where("hash = ?", hash).Take(&r).Error
	return r.Segment, r.Offset, r.Size, err
}

// SegmentPath is the file of segment id.
func SegmentPath(s *Store, id int) string { return s.segs.path(id) }

// RecordHeaderLen is the bytes of a segment record's header.
const RecordHeaderLen = recHdrLen

// MakeLegacySegments rewrites every segment file's referenced bodies into
// one file of the format before record headers (bodies back to back, no
// file header) and points the rows at it, as a data directory written by
// an older binary looks. The store must be closed and opened again after.
func MakeLegacySegments(ctx context.Context, s *Store) error {
	var rows []RawMessage
	if err := s.db.WithContext(ctx).Select("hash, segment, \"offset\", size").Where("segment > 0").Order("segment, \"offset\"").Find(&rows).Error; err != nil {
		return err
	}
	var legacy []byte
	offsets := make([]int64, len(rows))
	for i, r := range rows {
		b, err := s.segs.read(r.Segment, r.Offset, r.Size)
		if err != nil {
			return err
		}
		offsets[i] = int64(len(legacy))
		legacy = append(legacy, b...)
	}
	paths, err := filepath.Glob(filepath.Join(s.segs.dir, "seg-*.dat"))
	if err != nil {
		return err
	}
	for _, p := range paths {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	if err := os.WriteFile(s.segs.path(1), legacy, 0o640); err != nil {
		return err
	}
	for i, r := range rows {
		if err := s.db.WithContext(ctx).Model(&RawMessage{}).Where("hash = ?", r.Hash).
			Updates(map[string]any{"segment": 1, "offset": offsets[i]}).Error; err != nil {
			return err
		}
	}
	return nil
}

// Queued is how many deliveries wait for c's next batch.
func Queued(c *Committer) int { return len(c.reqs) }

// SetPacking turns the compression of raw messages on or off, so that a
// test can store mail as a binary from before packing did.
func SetPacking(s *Store, on bool) { s.pack.off.Store(!on) }

// RawPacked returns the stored and packed sizes of raw message hash.
func RawPacked(ctx context.Context, s *Store, hash string) (size, packed int64, err error) {
	var r RawMessage
	err = s.db.WithContext(ctx).Select("size, packed").Where("hash = ?", hash).Take(&r).Error
	return r.Size, r.Packed, err
}

// SetMaxConns bounds s's connection pool.
func SetMaxConns(s *Store, n int) error {
	db, err := s.db.DB()
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(n)
	return nil
}

// SearchFold runs PostgreSQL's tend_search_fold on each of in.
func SearchFold(ctx context.Context, s *Store, in []string) ([]string, error) {
	out := make([]string, len(in))
	for i, v := range in {
		if err := s.db.WithContext(ctx).Raw("SELECT tend_search_fold(?)", v).Scan(&out[i]).Error; err != nil {
			return nil, err
		}
	}
	return out, nil
}

// SearchFoldTable is the list of letters migration step 8's
// tend_search_fold translated, as pairs.
func SearchFoldTable() (from, to []rune) {
	f, t := searchFold()
	return []rune(f), []rune(t)
}

// Search plans SetSearchPlan can force (see searchPlan).
const (
	SearchDefault = "default" // chosen by the terms' hits and shares
	SearchListed  = "listed"  // every term listed
	SearchChecked = "checked" // every term checked on each ticket, unbounded
	SearchWalked  = "walked"  // every term walked (walkSearch)
	SearchSeeded  = "seeded"  // the rarest term listed, the others checked
	// SearchWalkedShort walks 25 tickets at most, then lists: a page
	// is found across chunks, or the walk gives up.
	SearchWalkedShort = "walked-short"
)

// MergeSearch is Optimize's merge of the search index, with budget; it
// reports whether the index is merged.
func MergeSearch(ctx context.Context, s *Store, budget time.Duration) (bool, error) {
	return s.mergeSearch(ctx, budget)
}

// SearchPlanOf names the plan s chooses for query: SearchSeeded,
// SearchWalked or SearchListed.
func SearchPlanOf(ctx context.Context, s *Store, query string) (string, error) {
	p, err := s.planSearch(ctx, query)
	switch {
	case err != nil:
		return "", err
	case p.walk:
		return SearchWalked, nil
	case p.seed >= 0:
		return SearchSeeded, nil
	}
	return SearchListed, nil
}

// SearchTermsOf is the terms of the plan s chooses for query, in the
// order its checks run.
func SearchTermsOf(ctx context.Context, s *Store, query string) ([]string, error) {
	p, err := s.planSearch(ctx, query)
	return p.terms, err
}

// SearchDefaultSeedHits is searchSeedHits.
const SearchDefaultSeedHits = searchSeedHits

// SetSearchSeedHits sets how many hits a term may have to seed a plan
// (searchSeedHits), so that a small store has terms too common to seed.
func SetSearchSeedHits(s *Store, hits int) { s.search.seedHits = hits }

// SetSearchPlan forces one search plan on s, so that a test can run one
// query through each.
func SetSearchPlan(s *Store, plan string) {
	s.search = searchTuning{seedHits: searchSeedHits, walkTickets: searchWalkTickets}
	switch plan {
	case SearchDefault:
	case SearchListed:
		s.search.force = searchList
	case SearchChecked:
		s.search.force = searchCheck
	case SearchWalked:
		s.search.force = searchWalkAll
	case SearchSeeded:
		s.search.force = searchSeedRarest
	case SearchWalkedShort:
		s.search.force, s.search.walkTickets = searchWalkAll, 25
	default:
		panic("unknown search plan " + plan)
	}
}

// AnalyzeIfGrown is RunMaintenance's minute check of the statistics.
func AnalyzeIfGrown(ctx context.Context, s *Store) (bool, error) { return s.analyzeIfGrown(ctx) }

// GroupedClustersForTest is what ContentClusters returned before
// migration step 14: every open or recent ticket grouped by cluster, in
// SQL, the oracle of TestContentClustersAsGrouped.
func GroupedClustersForTest(ctx context.Context, s *Store, inbox string, visible []string, since time.Time, minCount, limit int) ([]ContentCluster, error) {
	base := func() *gorm.DB {
		q := s.db.WithContext(ctx).Table("tickets").
			Where("tickets.id IN (SELECT o.id FROM tickets o WHERE o.attention < ? AND o.merged_into IS NULL "+
				"UNION ALL SELECT r.id FROM tickets r WHERE r.created_at >= ? AND r.merged_into IS NULL)", AttentionDone, since).
			Where("tickets.merged_into IS NULL AND tickets.cluster_id IS NOT NULL")
		if inbox != "" {
			q = q.Where(inboxExists, inbox)
		}
		return restrictVisible(q, visible)
	}
	var groups []struct {
		ClusterID int64
		N         int64
		Customers int64
		OpenN     int64
		First     int64
	}
	err := base().Select("tickets.cluster_id, COUNT(*) AS n, COUNT(DISTINCT tickets.customer_id) AS customers, "+
		"SUM(CASE WHEN tickets.state IN ? THEN 1 ELSE 0 END) AS open_n, MIN(tickets.id) AS first", openStates()).
		Group("tickets.cluster_id").Having("COUNT(*) >= ?", max(minCount, 2)).
		Order("n DESC").Order("first").Limit(max(limit, 1)).Scan(&groups).Error
	if err != nil || len(groups) == 0 {
		return nil, err
	}
	ids := make([]int64, len(groups))
	for i, g := range groups {
		ids[i] = g.ClusterID
	}
	var members []struct {
		ID, ClusterID int64
		Subject       string
	}
	if err := base().Select("tickets.id, tickets.cluster_id, tickets.subject").Where("tickets.cluster_id IN ?", ids).
		Order("tickets.id").Scan(&members).Error; err != nil {
		return nil, err
	}
	out := make([]ContentCluster, len(groups))
	at := map[int64]int{}
	for i, g := range groups {
		out[i] = ContentCluster{ID: g.ClusterID, Customers: g.Customers, Open: g.OpenN}
		at[g.ClusterID] = i
	}
	for _, m := range members {
		c := &out[at[m.ClusterID]]
		if len(c.Tickets) == 0 {
			c.Label = m.Subject
		}
		c.Tickets = append(c.Tickets, m.ID)
	}
	return out, nil
}

// InsertRows runs insertRows of rows outside a transaction.
func InsertRows[T any](ctx context.Context, s *Store, rows []T, doNothing bool) error {
	return insertRows(ctx, s, s.db.WithContext(ctx), rows, doNothing)
}

// GormCreate is gorm's Create of rows, what InsertRows stands for.
func GormCreate[T any](ctx context.Context, s *Store, rows []T, doNothing bool) error {
	db := s.db.WithContext(ctx)
	if doNothing {
		db = db.Clauses(clause.OnConflict{DoNothing: true})
	}
	return db.Create(&rows).Error
}

// ReadAll reads every row of T's table in order.
func ReadAll[T any](ctx context.Context, s *Store, order string) ([]T, error) {
	var rows []T
	err := s.db.WithContext(ctx).Order(order).Find(&rows).Error
	return rows, err
}

// SelectRows is selectRows of T from s, outside a transaction.
func SelectRows[T any](ctx context.Context, s *Store, omit []string, tail string, args ...any) ([]T, error) {
	return selectRows[T](ctx, s, s.db.WithContext(ctx), omit, tail, args...)
}

// GormFind is gorm's Find of T without omit, where and ordered: what
// SelectRows stands for.
func GormFind[T any](ctx context.Context, s *Store, omit []string, order, where string, args ...any) ([]T, error) {
	var rows []T
	db := s.db.WithContext(ctx)
	if len(omit) > 0 {
		db = db.Omit(omit...)
	}
	err := db.Where(where, args...).Order(order).Find(&rows).Error
	return rows, err
}
