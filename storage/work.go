package storage

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// A claimSpec says which rows of a queue table are due and in which
// order they are claimed. The order is the due index's own (the due time,
// then the row id, which SQLite keeps in every index and PostgreSQL sorts
// incrementally), so a claim reads the first limit due rows through the
// index and stops: ordered by id alone, every claim read and sorted all
// due rows (USE TEMP B-TREE FOR ORDER BY), thousands after a burst.
type claimSpec struct {
	table string
	due   string // a condition with one placeholder: now
	order string
}

// The queues' claim specs: outgoing mail, the processor's work, timers.
var (
	outboxClaim = claimSpec{table: "outbox_mails", due: "status = '" + OutboxPending + "' AND next_attempt_at <= ?", order: "next_attempt_at, id"}
	workClaim   = claimSpec{table: "works", due: "not_before <= ?", order: "not_before, id"}
	timerClaim  = claimSpec{table: "timers", due: "status = '" + TimerPending + "' AND due_at <= ?", order: "due_at, id"}
)

// claimQuery selects up to limit ids of c's rows due at due and not leased
// at now.
func claimQuery(tx *gorm.DB, driver string, c claimSpec, due, now time.Time, limit int) *gorm.DB {
	q := tx.Table(c.table).Where(c.due, due).Where("(lease_until IS NULL OR lease_until < ?)", now).Order(c.order).Limit(limit)
	if driver == DriverPostgres {
		q = q.Clauses(clauseSkipLocked())
	}
	return q
}

// claim leases up to limit rows of c due at due to owner and returns
// them, sorted by order (the queue's). The conditional UPDATE re-checks
// the lease, so two replicas that select the same rows never both win
// one: on PostgreSQL
// the second UPDATE waits for the first and then finds the lease taken; on
// SQLite writers are serialised. Its RETURNING (SQLite 3.35, PostgreSQL)
// names the rows it leased, whole: a claim was a lookup of the leased IDs
// and a read of their rows after the UPDATE, two statements more for
// every turn of the processor and the sender. Leases are judged by
// leaseNow; whether a row is due, by the process clock that scheduled it.
func claim[T any](ctx context.Context, s *Store, c claimSpec, due time.Time, owner string, lease time.Duration, limit int, order func(a, b T) int) ([]T, error) {
	var rows []T
	err := s.write(ctx, false, func(tx *gorm.DB) error {
		rows = nil
		now, err := s.leaseNow(tx)
		if err != nil {
			return err
		}
		var cand []int64
		if err := claimQuery(tx, s.driver, c, due, now, limit).Pluck("id", &cand).Error; err != nil {
			return err
		}
		if len(cand) == 0 {
			return nil
		}
		return tx.Raw("UPDATE "+c.table+" SET lease_owner = ?, lease_until = ? WHERE id IN ? AND (lease_until IS NULL OR lease_until < ?) RETURNING *",
			owner, now.Add(lease), cand, now).Scan(&rows).Error
	})
	if err != nil {
		return nil, fmt.Errorf("claim %s: %w", c.table, err)
	}
	slices.SortFunc(rows, order)
	return rows, nil
}

// leaseNow is the time leases are started and judged by. With
// Options.DatabaseClock on PostgreSQL it is the database server's clock
// (now(): the start of tx, so every statement of one claim sees the same
// instant), which every replica shares however wrong its own clock is.
// Otherwise it is the store's Clock: on SQLite the one process's clock is
// the database's clock, and tests move a fake one.
func (s *Store) leaseNow(tx *gorm.DB) (time.Time, error) {
	if !s.dbClock {
		return s.now(), nil
	}
	var now time.Time
	if err := tx.Raw("SELECT now()").Row().Scan(&now); err != nil {
		return time.Time{}, fmt.Errorf("database clock: %w", err)
	}
	return now.UTC().Truncate(time.Microsecond), nil
}

// WorkQueue is the store's queue of post-commit work as its consumers
// (the ingest processor) use it, and as wrappers of the store (a fault
// injector in tests) must keep it: storagetest.WorkQueueContract is its
// contract.
type WorkQueue interface {
	ClaimWork(ctx context.Context, owner string, limit int, lease time.Duration) ([]Work, error)
	RetryWork(ctx context.Context, id int64, cause error, retryAt time.Time) error
	ReleaseWork(ctx context.Context, ids []int64) error
	MessagesByID(ctx context.Context, ids []int64) (map[int64]Message, error)
	Raw(ctx context.Context, hash string) ([]byte, error)
	InTx(ctx context.Context, fn func(tx *Tx) error) error
}

var _ WorkQueue = (*Store)(nil)

// ClaimWork leases up to limit due work items to owner.
func (s *Store) ClaimWork(ctx context.Context, owner string, limit int, lease time.Duration) ([]Work, error) {
	return claim(ctx, s, workClaim, s.now(), owner, lease, limit, func(a, b Work) int { return cmp.Compare(a.ID, b.ID) })
}

// CompleteWork removes a finished work item.
func (t *Tx) CompleteWork(ctx context.Context, id int64) error {
	if err := t.db.WithContext(ctx).Delete(&Work{}, id).Error; err != nil {
		return fmt.Errorf("complete work %d: %w", id, err)
	}
	return nil
}

// RetryWork releases a work item that failed, to be tried again at retryAt.
func (s *Store) RetryWork(ctx context.Context, id int64, cause error, retryAt time.Time) error {
	err := s.db.WithContext(ctx).Model(&Work{}).Where("id = ?", id).Updates(map[string]any{
		"lease_owner": "", "lease_until": nil, "not_before": retryAt,
		"attempts": gorm.Expr("attempts + 1"), "last_error": cause.Error(),
	}).Error
	if err != nil {
		return fmt.Errorf("retry work %d: %w", id, err)
	}
	return nil
}

// Savepoint marks a point in the transaction that RollbackTo returns to,
// so one item of a batch can fail without undoing the others.
func (t *Tx) Savepoint(name string) error {
	// The entries taken before the savepoint are inserted before it, so
	// that rolling back to it cannot take them with it.
	if err := t.flushEvents(t.db.Statement.Context); err != nil {
		return err
	}
	if err := savepoint(t.db, name); err != nil {
		return err
	}
	t.markSavepoint(name)
	return nil
}

// RollbackTo undoes everything since Savepoint(name).
func (t *Tx) RollbackTo(name string) error {
	if err := rollbackTo(t.db, name); err != nil {
		return err
	}
	t.rollbackMark(name)
	return nil
}

// Release ends Savepoint(name) (and those set since), keeping what was
// done. Savepoints left open nest until the commit, and SQLite journals
// each page a savepoint touches for as long as it is open: a batch's
// journal would grow with the batch instead of one message's.
func (t *Tx) Release(name string) error {
	if err := release(t.db, name); err != nil {
		return err
	}
	t.releaseMark(name)
	return nil
}

// The savepoint statements, run here rather than through gorm's SavePoint
// and RollbackTo: the dialects run them on a copy of the session and drop
// the error, so a failed ROLLBACK TO went unnoticed (and gorm has no
// RELEASE at all).
func savepoint(db *gorm.DB, name string) error {
	return db.Exec("SAVEPOINT " + db.Statement.Quote(name)).Error
}

func rollbackTo(db *gorm.DB, name string) error {
	return db.Exec("ROLLBACK TO SAVEPOINT " + db.Statement.Quote(name)).Error
}

func release(db *gorm.DB, name string) error {
	return db.Exec("RELEASE SAVEPOINT " + db.Statement.Quote(name)).Error
}

// MessagesByID returns message rows by id, with OpensTicket set.
func (s *Store) MessagesByID(ctx context.Context, ids []int64) (map[int64]Message, error) {
	var ms []Message
	if err := s.db.WithContext(ctx).Where("id IN ?", ids).Find(&ms).Error; err != nil {
		return nil, fmt.Errorf("messages: %w", err)
	}
	out := make(map[int64]Message, len(ms))
	var tickets []int64
	for _, m := range ms {
		if m.TicketID != nil {
			tickets = append(tickets, *m.TicketID)
		}
	}
	first := map[int64]int64{}
	if len(tickets) > 0 {
		var rows []struct{ TicketID, First int64 }
		if err := s.db.WithContext(ctx).Model(&Message{}).Select("ticket_id, MIN(id) AS first").
			Where("ticket_id IN ?", tickets).Group("ticket_id").Find(&rows).Error; err != nil {
			return nil, fmt.Errorf("messages: first of their tickets: %w", err)
		}
		for _, r := range rows {
			first[r.TicketID] = r.First
		}
	}
	for _, m := range ms {
		m.OpensTicket = m.TicketID != nil && first[*m.TicketID] == m.ID
		out[m.ID] = m
	}
	return out, nil
}

// ParsedAttachment is one attachment found by the full parse.
type ParsedAttachment struct {
	Part        int
	Filename    string
	ContentType string
	Size        int64
	Hash        string
	Inline      bool
}

// Prepared is what ingest's processor computes of a message before its
// batch's transaction, on every core at once, so that the after-parse
// hooks, which run inside the transaction while it holds SQLite's one
// writer, need not: on SQLite one batch's transaction at a time is what
// bounds the processing rate. Each part says whether it was computed; a
// hook computes what was not itself.
type Prepared struct {
	// Attachments are the message's attachments with their bytes, as
	// header.ParseMIME cuts them, when HasAttachments: kept only for a
	// message whose attachments are small enough to forward.
	Attachments    []PreparedAttachment
	HasAttachments bool
	// Language is the language of the message's new text ("" when it
	// cannot be told), when HasLanguage.
	Language    string
	HasLanguage bool
	// Stems and Bands are what content clustering compares and looks
	// look-alikes up by (ingest.Clusterer.Prepare), when HasStems.
	Stems    []string
	Bands    []int64
	HasStems bool
}

// PreparedAttachment is one attachment of a Prepared message.
type PreparedAttachment struct {
	Filename, ContentType string
	Data                  []byte
}

// Parsed is the outcome of the full MIME parse of a message.
type Parsed struct {
	Text, HTML  string
	Attachments []ParsedAttachment
	Error       string // what the parser complained about; the message is kept either way
}

// SaveParsed stores the full parse of message rowID. It may run more than
// once for a message (a worker crashed after saving): it replaces what an
// earlier run saved. Its statements run in the caller's transaction with
// no savepoint of their own (a nested gorm Transaction opened one and
// left it open to the transaction's end, see Release): a caller that goes
// on after an error rolls back to its own savepoint, as the processor
// does.
func (t *Tx) SaveParsed(ctx context.Context, rowID int64, p Parsed) error {
	err := func(tx *gorm.DB) error {
		if err := tx.Model(&Message{}).Where("id = ?", rowID).Updates(map[string]any{
			"text": p.Text, "html": p.HTML, "parsed": true, "parse_error": p.Error,
		}).Error; err != nil {
			return err
		}
		if err := tx.Where("message_row_id = ?", rowID).Delete(&Attachment{}).Error; err != nil {
			return err
		}
		rows := make([]Attachment, len(p.Attachments))
		for i, a := range p.Attachments {
			rows[i] = Attachment{MessageRowID: rowID, Part: a.Part, Filename: a.Filename, ContentType: a.ContentType, Size: a.Size, Hash: a.Hash, Inline: a.Inline}
		}
		if len(rows) > 0 {
			// One INSERT of every row binds eight variables per attachment:
			// a mail with thousands of parts passed SQLite's limit (32,766)
			// and PostgreSQL's (65,535), and its parse could never be saved.
			if err := insertRows(ctx, t.s, tx, rows, false); err != nil {
				return err
			}
		}
		slices.SortStableFunc(rows, func(a, b Attachment) int { return cmp.Compare(a.Part, b.Part) })
		if t.parsedAttachments == nil {
			t.parsedAttachments = map[int64][]Attachment{}
		}
		t.parsedAttachments[rowID] = rows
		return nil
	}(t.db.WithContext(ctx))
	if err != nil {
		delete(t.parsedAttachments, rowID)
		return fmt.Errorf("save parsed %d: %w", rowID, err)
	}
	return nil
}

// insertChunk is the most rows one multi-row INSERT carries: at eight
// columns well under SQLite's and PostgreSQL's bound-variable limits.
const insertChunk = 500

// ReleaseWork gives claimed work items back without counting an attempt:
// the processor claimed more than one batch's byte budget and leaves the
// rest for the next batch.
func (s *Store) ReleaseWork(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.db.WithContext(ctx).Model(&Work{}).Where("id IN ?", ids).
		Updates(map[string]any{"lease_owner": "", "lease_until": nil}).Error
	if err != nil {
		return fmt.Errorf("release work: %w", err)
	}
	return nil
}

// Attachments returns the attachment rows of message rowID as this
// transaction sees them (the parse saved earlier in the same batch
// included).
func (t *Tx) Attachments(ctx context.Context, rowID int64) ([]Attachment, error) {
	if rows, ok := t.parsedAttachments[rowID]; ok {
		return slices.Clone(rows), nil
	}
	var rows []Attachment
	if err := t.db.WithContext(ctx).Where("message_row_id = ?", rowID).Order("part").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("attachments %d: %w", rowID, err)
	}
	return rows, nil
}

// Attachments returns the attachments of the given messages, by message.
func (s *Store) Attachments(ctx context.Context, rowIDs []int64) (map[int64][]Attachment, error) {
	out := map[int64][]Attachment{}
	if len(rowIDs) == 0 {
		return out, nil
	}
	var rows []Attachment
	if err := s.db.WithContext(ctx).Where("message_row_id IN ?", rowIDs).Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("attachments: %w", err)
	}
	for _, a := range rows {
		out[a.MessageRowID] = append(out[a.MessageRowID], a)
	}
	return out, nil
}

// clauseSkipLocked makes a PostgreSQL SELECT skip rows another replica is
// claiming instead of waiting for them.
func clauseSkipLocked() clause.Locking {
	return clause.Locking{Strength: clause.LockingStrengthUpdate, Options: clause.LockingOptionsSkipLocked}
}

// ReclaimLeases frees every lease in the database (work items, outbox,
// timers and named leases such as an IMAP mailbox's) and returns how many
// it freed. Only a process that knows it is the database's one user may
// call it: serve on SQLite, holding the data directory's lock, whose
// leases can only be those of an earlier run of itself that died. Without
// it a restart waits each lease out (a mailbox's for a minute). On
// PostgreSQL other replicas may be alive, so it refuses.
func (s *Store) ReclaimLeases(ctx context.Context) (int64, error) {
	if s.driver != DriverSQLite {
		return 0, fmt.Errorf("reclaim leases: only on SQLite, whose one process holds the lock (this is %s)", s.driver)
	}
	var n int64
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, table := range []string{"works", "outbox_mails", "timers"} {
			res := tx.Table(table).Where("lease_owner <> '' OR lease_until IS NOT NULL").
				Updates(map[string]any{"lease_owner": "", "lease_until": nil})
			if res.Error != nil {
				return fmt.Errorf("%s: %w", table, res.Error)
			}
			n += res.RowsAffected
		}
		res := tx.Where("1 = 1").Delete(&Lease{})
		n += res.RowsAffected
		return res.Error
	})
	if err != nil {
		return 0, fmt.Errorf("reclaim leases: %w", err)
	}
	return n, nil
}
