package storage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"gorm.io/gorm"
)

// Outbox statuses.
const (
	OutboxPending = "pending"
	OutboxSent    = "sent"
	OutboxFailed  = "failed"
	// OutboxHeld is mail the ticket's fuse holds back: kept, never sent
	// until a lead releases the ticket's mail (ReleaseHeldMail).
	OutboxHeld = "held"
)

// Outbox kinds: mail to the customer (counted for flood protection) and
// mail to staff.
const (
	OutboxToCustomer = "customer"
	OutboxToStaff    = "staff"
)

// MailCounts are the counts of a ticket's outgoing mail an event is
// judged by: flood protection's (automatic mail to the customer's
// address in the last hour, and on the ticket since the start of the
// day, UTC) and the mail fuse's (TicketMailCounts).
type MailCounts struct {
	ToAddrLastHour, OnTicketToday int
	// Burst and Day are TicketMailCounts' n1 and n2.
	Burst, Day int
}

// MailCounts counts what MailCounts holds for mail to addr on ticket,
// the fuse's since burstSince and daySince. One statement of four
// subqueries, each served by its own index (TestQueryPlans): the executor
// asks for every customer mail, and the fuse's two were another
// statement.
func (t *Tx) MailCounts(ctx context.Context, addr string, ticket int64, burstSince, daySince time.Time) (MailCounts, error) {
	now := t.s.now()
	var row struct{ A, B, N1, N2 int64 }
	if err := t.db.WithContext(ctx).Raw(`SELECT
		(SELECT COUNT(*) FROM outbox_mails WHERE auto = ? AND env_to = ? AND created_at >= ?) AS a,
		(SELECT COUNT(*) FROM outbox_mails WHERE auto = ? AND ticket_id = ? AND created_at >= ? AND kind = ?) AS b, `+fuseCounts,
		true, addr, now.Add(-time.Hour), true, ticket, now.Truncate(24*time.Hour), OutboxToCustomer,
		ticket, burstSince, OutboxHeld, ticket, daySince, OutboxHeld).Scan(&row).Error; err != nil {
		return MailCounts{}, fmt.Errorf("mail counts of ticket %d: %w", ticket, err)
	}
	return MailCounts{ToAddrLastHour: int(row.A), OnTicketToday: int(row.B), Burst: int(row.N1), Day: int(row.N2)}, nil
}

// ClaimOutbox leases up to limit due outbox rows to owner, without their
// bytes (see LoadOutboxBodies).
func (s *Store) ClaimOutbox(ctx context.Context, owner string, limit int, lease time.Duration) ([]OutboxMail, error) {
	return claim(ctx, s, outboxClaim, s.now(), owner, lease, limit, func(a, b OutboxMail) int { return cmp.Compare(a.ID, b.ID) })
}

// LoadOutboxBodies fills the Raw of each of rows, claimed mail, with its
// composed bytes, in one query. It is a read: on SQLite it does not wait
// for the writer, so a sender claims many rows in one turn of the writer
// and holds the bytes of a few at a time.
func (s *Store) LoadOutboxBodies(ctx context.Context, rows []OutboxMail) error {
	if len(rows) == 0 {
		return nil
	}
	ids := make([]int64, len(rows))
	for i, o := range rows {
		ids[i] = o.ID
	}
	var raws []OutboxBody
	if err := s.db.WithContext(ctx).Select("outbox_id, raw, packed").Where("outbox_id IN ?", ids).Find(&raws).Error; err != nil {
		return fmt.Errorf("outbox bodies: %w", err)
	}
	byID := make(map[int64]OutboxBody, len(raws))
	for _, r := range raws {
		byID[r.OutboxID] = r
	}
	for i := range rows {
		r, ok := byID[rows[i].ID]
		if !ok {
			// Nothing prunes or drops the bytes of mail still to send;
			// should a row have lost them anyway, it must fail, not go
			// out empty.
			rows[i].Raw, rows[i].RawErr = nil, errNoBody
			continue
		}
		// One mail whose bytes do not unpack fails on its own; failing
		// the load would hold back every mail claimed with it, claim
		// after claim.
		rows[i].Raw, rows[i].RawErr = r.bytes(s.pack)
	}
	return nil
}

// errNoBody is the RawErr of a mail to send whose bytes are not stored.
var errNoBody = errors.New("no stored bytes")

// OutboxResult is the outcome of one delivery attempt.
type OutboxResult struct {
	Sent      bool
	Failed    bool      // permanent: give up
	RetryAt   time.Time // temporary: try again then
	Error     string
	Permanent bool
	// DropBody, with Sent, drops the composed bytes at once and keeps the
	// row's metadata, as PruneOutbox does later: for staff mail, a copy
	// of what the ticket already holds (its text and attachments), whose
	// bytes would otherwise outweigh the mail received.
	DropBody bool
}

// FinishOutbox records a delivery attempt of row id by owner. It returns
// false when the row was not leased to owner any more.
func (t *Tx) FinishOutbox(ctx context.Context, id int64, owner string, r OutboxResult) (bool, error) {
	now := t.s.now()
	upd := map[string]any{"attempts": gorm.Expr("attempts + 1"), "lease_owner": "", "lease_until": nil, "last_error": safeText(r.Error)}
	switch {
	case r.Sent:
		upd["status"], upd["sent_at"] = OutboxSent, now
	case r.Failed:
		upd["status"] = OutboxFailed
	default:
		upd["next_attempt_at"] = r.RetryAt
	}
	res := t.db.WithContext(ctx).Model(&OutboxMail{}).Where("id = ? AND lease_owner = ? AND status = ?", id, owner, OutboxPending).Updates(upd)
	if res.Error != nil {
		return false, fmt.Errorf("finish outbox %d: %w", id, res.Error)
	}
	if res.RowsAffected == 1 && r.Sent && r.DropBody {
		if err := t.s.dropBodies(t.db.WithContext(ctx), []int64{id}); err != nil {
			return false, fmt.Errorf("finish outbox %d: %w", id, err)
		}
	}
	return res.RowsAffected == 1, nil
}

// FinishSentOutbox records that the relay took the outbox rows keep and
// drop, leased to owner, as FinishOutbox does with Sent (drop: with
// DropBody), in one multi-row statement instead of one FinishOutbox per
// mail, and drops the bodies of drop (dropBodies) once for all of them.
// It returns the rows that were still leased to owner; the others are
// left as they are.
func (t *Tx) FinishSentOutbox(ctx context.Context, owner string, keep, drop []int64) (map[int64]bool, error) {
	db := t.db.WithContext(ctx)
	ids := append(slices.Clip(keep), drop...)
	if len(ids) == 0 {
		return map[int64]bool{}, nil
	}
	// RETURNING (SQLite 3.35, PostgreSQL) names the rows the lease check
	// let through, as FinishOutbox's RowsAffected does for one. The bytes
	// are in outbox_bodies: the rows updated here are small.
	var got []int64
	err := db.Raw("UPDATE outbox_mails SET attempts = attempts + 1, lease_owner = '', lease_until = NULL, last_error = '', status = ?, sent_at = ? WHERE id IN ? AND lease_owner = ? AND status = ? RETURNING id",
		OutboxSent, t.s.now(), ids, owner, OutboxPending).Scan(&got).Error
	if err != nil {
		return nil, fmt.Errorf("finish sent outbox: %w", err)
	}
	done := make(map[int64]bool, len(got))
	for _, id := range got {
		done[id] = true
	}
	dropped := slices.DeleteFunc(slices.Clone(drop), func(id int64) bool { return !done[id] })
	if len(dropped) > 0 {
		if err := t.s.dropBodies(db, dropped); err != nil {
			return nil, fmt.Errorf("finish sent outbox: %w", err)
		}
	}
	return done, nil
}

// dropBodies drops the composed bytes of outgoing mails ids, keeping
// their rows: their outbox_bodies rows are deleted (counted for
// Checkpoint's vacuum, see vacuumDropped), the text of their message
// rows goes too (see dropOutboxText), and on SQLite those message rows
// are repacked. The outbox rows need no repacking: their bytes never
// lived in them, and deleting the outbox_bodies rows (not updating them)
// lets SQLite merge the pages they leave.
func (s *Store) dropBodies(db *gorm.DB, ids []int64) error {
	if err := s.deleteBodies(db, ids); err != nil {
		return fmt.Errorf("drop outbox bodies: %w", err)
	}
	msgRows, err := dropOutboxText(db, ids)
	if err != nil {
		return err
	}
	return s.repackRows(db, "messages", msgRows)
}

// dropOutboxText empties the text of the message rows that record the
// outgoing mails ids when they are on no ticket (staff mail: copies made
// for agents), and returns those rows' ids. Customer mail keeps its
// text: it is the ticket's record of what was sent. Staff mail is now
// queued without its text (followup's queue), so only rows stored by
// earlier versions hold any; rows without are neither written nor
// repacked (each sent batch of notifications cost four statements that
// changed nothing).
func dropOutboxText(db *gorm.DB, ids []int64) ([]int64, error) {
	var rows []int64
	if err := droppedTextRows(db, ids).Pluck("messages.id", &rows).Error; err != nil || len(rows) == 0 {
		return nil, err
	}
	return rows, db.Model(&Message{}).Where("id IN ?", rows).Updates(map[string]any{"text": "", "html": ""}).Error
}

// droppedTextRows selects the message rows of outgoing mails ids, when
// on no ticket and holding text: each outbox row's own, by its
// Message-ID and the raw hash QueueMails gave it (outboxRawHash), through
// the dedup index. The unary plus keeps ticket_id's index out of it: for
// more than one Message-ID SQLite chose that index for "ticket_id IS
// NULL", which is every notification ever sent, over the dedup index
// (TestDroppedTextPlan).
func droppedTextRows(db *gorm.DB, ids []int64) *gorm.DB {
	return db.Table("outbox_mails").Joins("JOIN messages ON messages.message_id = outbox_mails.message_id AND messages.raw_hash = '"+outboxHashPrefix+"' || outbox_mails.id").
		Where("outbox_mails.id IN ? AND +messages.ticket_id IS NULL AND (messages.text <> '' OR messages.html <> '')", ids)
}

// repackRows (SQLite) moves rows ids of table to another rowid and back,
// in the caller's transaction, after their large values were dropped.
// SQLite rebalances a b-tree page only when a row is deleted or a page
// overflows, never when an UPDATE shrinks a row: an outbox row whose
// composed mail was dropped kept a leaf page of its own (the mail's
// first 4 KB had lived there, before outbox_bodies), three quarters of
// the outbox table's pages were empty space (issue 10: disk at most
// 1.5× the mail), and so does a message row whose text is dropped. A
// change of rowid is a delete and an insert, so the emptied pages merge
// and go to the free list, which Reclaim gives back. Negative rowids are
// never used otherwise, and the rows are back before the commit;
// nothing refers to these ids through a foreign key, and no trigger
// watches the id column.
func (s *Store) repackRows(db *gorm.DB, table string, ids []int64) error {
	if s.driver != DriverSQLite || len(ids) == 0 {
		return nil
	}
	neg := make([]int64, len(ids))
	for i, id := range ids {
		neg[i] = -id
	}
	if err := db.Exec("UPDATE "+table+" SET id = -id WHERE id IN ?", ids).Error; err != nil {
		return fmt.Errorf("repack %s: %w", table, err)
	}
	if err := db.Exec("UPDATE "+table+" SET id = -id WHERE id IN ?", neg).Error; err != nil {
		return fmt.Errorf("repack %s: %w", table, err)
	}
	return nil
}

// deleteBodies deletes the outbox_bodies rows of ids. On PostgreSQL their
// sizes are added to what Checkpoint's vacuum waits for (vacuumDropped);
// SQLite reuses the pages itself.
func (s *Store) deleteBodies(db *gorm.DB, ids []int64) error {
	if s.driver == DriverSQLite {
		return db.Exec("DELETE FROM outbox_bodies WHERE outbox_id IN ?", ids).Error
	}
	var sizes []int64
	if err := db.Raw("DELETE FROM outbox_bodies WHERE outbox_id IN ? RETURNING LENGTH(raw)", ids).Scan(&sizes).Error; err != nil {
		return err
	}
	var n int64
	for _, size := range sizes {
		n += size
	}
	s.dropped.Add(n)
	return nil
}

// outboxRawHash is the raw_hash of the message row recording outgoing
// mail id: its bytes live in outbox_bodies, and the column only needs
// to be unique per message. droppedTextRows makes it in SQL.
func outboxRawHash(id int64) string { return outboxHashPrefix + strconv.FormatInt(id, 10) }

// outboxHashPrefix starts every outboxRawHash.
const outboxHashPrefix = "outbox-"

// FailOutbox marks an outbox row failed after the fact (a bounce came
// back for it) and returns it. ok is false when there is no such row.
func (t *Tx) FailOutbox(ctx context.Context, id int64, reason string) (OutboxMail, bool, error) {
	var o OutboxMail
	err := t.db.WithContext(ctx).Where("id = ?", id).Take(&o).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return OutboxMail{}, false, nil
	}
	if err != nil {
		return OutboxMail{}, false, fmt.Errorf("outbox %d: %w", id, err)
	}
	if err := t.db.WithContext(ctx).Model(&OutboxMail{}).Where("id = ?", id).
		Updates(map[string]any{"status": OutboxFailed, "last_error": safeText(reason)}).Error; err != nil {
		return OutboxMail{}, false, fmt.Errorf("outbox %d: %w", id, err)
	}
	o.Status, o.LastError = OutboxFailed, reason
	return o, true, nil
}

// OutboxByMessageID finds the outbox row that sent msgID.
func (t *Tx) OutboxByMessageID(ctx context.Context, msgID string) (int64, bool, error) {
	var ids []int64
	if err := t.db.WithContext(ctx).Model(&OutboxMail{}).Where("message_id = ?", msgID).Limit(1).Pluck("id", &ids).Error; err != nil {
		return 0, false, fmt.Errorf("outbox by message id: %w", err)
	}
	if len(ids) == 0 {
		return 0, false, nil
	}
	return ids[0], true, nil
}

// Outbox lists outgoing mail in order, without the raw bytes (for the web
// and tests); ticket 0 lists all.
func (s *Store) Outbox(ctx context.Context, ticket int64) ([]OutboxMail, error) {
	var os []OutboxMail
	q := s.db.WithContext(ctx).Order("id")
	if ticket != 0 {
		q = q.Where("ticket_id = ?", ticket)
	}
	if err := q.Find(&os).Error; err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	return os, nil
}

// RequeueMail replaces the content of an outbox row that has not been
// sent yet (a coalesced notification standing for one more event): its
// raw bytes (made by raw, as Composed.Raw is, and the size of its message
// row with them) and its count. It reports whether the row was still
// waiting. The message row of staff mail keeps no text (the ticket holds
// it), so there is none to rewrite.
func (t *Tx) RequeueMail(ctx context.Context, id int64, raw func() ([]byte, error), count int) (bool, error) {
	db := t.db.WithContext(ctx)
	res := db.Model(&OutboxMail{}).Where("id = ? AND status IN ? AND lease_owner = ''", id, []string{OutboxPending, OutboxHeld}).
		Update("count", count)
	if res.Error != nil {
		return false, fmt.Errorf("requeue outbox %d: %w", id, res.Error)
	}
	if res.RowsAffected == 0 {
		return false, nil
	}
	// Stored as an upsert (flushBodies): a waiting mail has its bytes,
	// but a row that lost them would otherwise be sent empty.
	t.startBody(id, raw)
	return true, nil
}
