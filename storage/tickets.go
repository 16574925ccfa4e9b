package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
)

// InTx runs fn in one transaction: everything the rules decide for an
// event (state, outbox rows, timers, timeline) commits together or not at
// all.
func (s *Store) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	return s.write(ctx, false, func(db *gorm.DB) error {
		return fn(&Tx{db: db, s: s})
	})
}

// write runs fn in a write transaction; on SQLite it first takes the
// write gate (writeGate), urgent for the group commit. Code inside fn
// must not start another write: it would wait for itself.
func (s *Store) write(ctx context.Context, urgent bool, fn func(tx *gorm.DB) error) error {
	if s.driver == DriverSQLite {
		if err := s.gate.lock(ctx, urgent); err != nil {
			return fmt.Errorf("write: %w: %w", ErrUnavailable, err)
		}
		defer s.gate.unlock()
	}
	return s.db.WithContext(ctx).Transaction(fn)
}

// IngestWaiting reports whether the group commit waits for SQLite's
// writer: a long transaction (a processing batch) should end soon, so
// that senders waiting for their 250 are not held up by background work.
// Always false on PostgreSQL, whose writers do not queue for one lock.
func (s *Store) IngestWaiting() bool { return s.driver == DriverSQLite && s.gate.urgentWaiting() }

// Now is the store's clock, for callers that stamp rows inside a Tx.
func (t *Tx) Now() time.Time { return t.s.now() }

// TicketView is a ticket with everything the rules look at.
type TicketView struct {
	Ticket
	Customer Contact
	Assignee *Agent
	Inbox    Inbox
	// Inboxes are the addresses of every inbox that sees the ticket (its
	// own and each inbox a message of it was addressed to).
	Inboxes      []string
	Participants []Participant
}

// TicketView loads ticket number (following merges) for the rules.
func (t *Tx) TicketView(ctx context.Context, number int64) (TicketView, error) {
	info, ok, err := ticketInfo(ctx, t.db, number)
	if err != nil {
		return TicketView{}, err
	}
	if !ok {
		return TicketView{}, fmt.Errorf("ticket %d: %w", number, ErrNotFound)
	}
	db := t.db.WithContext(ctx)
	var v TicketView
	if err := db.Preload("Customer").Preload("Assignee").Preload("Inbox").Where("id = ?", info.Number).Take(&v.Ticket).Error; err != nil {
		return TicketView{}, fmt.Errorf("ticket %d: %w", number, err)
	}
	v.Customer = *v.Ticket.Customer
	v.Inbox = *v.Ticket.Inbox
	v.Assignee = v.Ticket.Assignee
	if err := db.Where("ticket_id = ?", info.Number).Order("created_at, email").Find(&v.Participants).Error; err != nil {
		return TicketView{}, fmt.Errorf("ticket %d participants: %w", number, err)
	}
	if v.Inboxes, err = ticketInboxes(ctx, t.db, info.Number); err != nil {
		return TicketView{}, err
	}
	return v, nil
}

// ticketInboxes are the addresses of the inboxes that see a ticket.
func ticketInboxes(ctx context.Context, db *gorm.DB, number int64) ([]string, error) {
	var out []string
	if err := db.WithContext(ctx).Table("inboxes").Joins("JOIN ticket_inboxes ti ON ti.inbox_id = inboxes.id").
		Where("ti.ticket_id = ?", number).Order("inboxes.id").Pluck("inboxes.address", &out).Error; err != nil {
		return nil, fmt.Errorf("ticket %d inboxes: %w", number, err)
	}
	return out, nil
}

// TicketInboxes returns the addresses of the inboxes that see ticket number
// (following merges), for access checks; ErrNotFound when there is none.
func (s *Store) TicketInboxes(ctx context.Context, number int64) ([]string, error) {
	info, ok, err := ticketInfo(ctx, s.db, number)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("ticket %d: %w", number, ErrNotFound)
	}
	return ticketInboxes(ctx, s.db, info.Number)
}

// AgentByID returns one agent; ErrNotFound when there is none.
func (s *Store) AgentByID(ctx context.Context, id int64) (Agent, error) {
	var a Agent
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&a).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Agent{}, fmt.Errorf("agent %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Agent{}, fmt.Errorf("agent %d: %w", id, err)
	}
	return a, nil
}

// TicketUpdate changes a ticket's fields; nil fields stay as they are.
type TicketUpdate struct {
	State           *string
	CloseReason     *string
	Priority        *string
	AssigneeID      *int64
	AddTags         []string
	RepeatContacts  int // added
	Breached        *bool
	FirstResponseAt *time.Time
	LastAgentAt     *time.Time
}

// UpdateTicket applies u to ticket number.
func (t *Tx) UpdateTicket(ctx context.Context, number int64, u TicketUpdate) error {
	now := t.s.now()
	upd := map[string]any{"updated_at": now}
	if u.State != nil {
		upd["state"] = *u.State
		switch *u.State {
		case StateResolved, StateClosed:
			upd["resolved_at"] = now
			upd["waiting_since"] = nil
		case StateOpen, StateNew, StateWaiting, StateProposed:
			upd["resolved_at"] = nil
		}
	}
	if u.CloseReason != nil {
		upd["close_reason"] = *u.CloseReason
	}
	if u.Priority != nil {
		upd["priority"] = *u.Priority
	}
	if u.AssigneeID != nil {
		upd["assignee_id"] = *u.AssigneeID
	}
	if u.RepeatContacts != 0 {
		upd["repeat_contacts"] = gorm.Expr("repeat_contacts + ?", u.RepeatContacts)
	}
	if u.Breached != nil {
		upd["breached"] = *u.Breached
	}
	if u.FirstResponseAt != nil {
		upd["first_response_at"] = gorm.Expr("COALESCE(first_response_at, ?)", *u.FirstResponseAt)
	}
	if u.LastAgentAt != nil {
		upd["last_agent_at"] = *u.LastAgentAt
		// Answered: nothing the customer wrote is waiting any more.
		upd["waiting_since"] = nil
	}
	db := t.db.WithContext(ctx)
	if len(u.AddTags) > 0 {
		var cur string
		if err := db.Model(&Ticket{}).Where("id = ?", number).Pluck("tags", &cur).Error; err != nil {
			return fmt.Errorf("ticket %d tags: %w", number, err)
		}
		tags := strings.Fields(cur)
		for _, tg := range u.AddTags {
			if !slices.Contains(tags, tg) {
				tags = append(tags, tg)
			}
		}
		upd["tags"] = strings.Join(tags, " ")
	}
	if err := db.Model(&Ticket{}).Where("id = ?", number).Updates(upd).Error; err != nil {
		return fmt.Errorf("update ticket %d: %w", number, err)
	}
	return nil
}

// AddEvent puts an entry on a ticket's timeline.
func (t *Tx) AddEvent(ctx context.Context, ticket int64, kind, actor, detail string, msgRow *int64) error {
	ev := Event{TicketID: ticket, Kind: kind, Actor: safeText(actor), Detail: safeText(detail), MessageRowID: msgRow, CreatedAt: t.s.now()}
	if err := t.db.WithContext(ctx).Create(&ev).Error; err != nil {
		return fmt.Errorf("event on %d: %w", ticket, err)
	}
	return nil
}

// AddParticipants lets addresses take part in a ticket.
func (t *Tx) AddParticipants(ctx context.Context, ticket int64, emails []string, role string) error {
	return addParticipants(t.db.WithContext(ctx), ticket, emails, role, t.s.now())
}

// MarkHandled records that the rules ran for message rowID. It returns
// false when they already had: the caller must then do nothing.
func (t *Tx) MarkHandled(ctx context.Context, rowID int64) (bool, error) {
	res := t.db.WithContext(ctx).Model(&Message{}).Where("id = ? AND handled = ?", rowID, false).Update("handled", true)
	if res.Error != nil {
		return false, fmt.Errorf("mark handled %d: %w", rowID, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// Agents returns every agent, by id.
func (t *Tx) Agents(ctx context.Context) ([]Agent, error) {
	var as []Agent
	if err := t.db.WithContext(ctx).Order("id").Find(&as).Error; err != nil {
		return nil, fmt.Errorf("agents: %w", err)
	}
	return as, nil
}

// Messages returns a ticket's messages in order, their headers only: the
// bodies (text, HTML, evidence) are left out, as the rules never read
// earlier messages' bodies and a long ticket's would be costly.
func (t *Tx) Messages(ctx context.Context, ticket int64) ([]Message, error) {
	var ms []Message
	if err := t.db.WithContext(ctx).Omit("text", "html", "evidence").Where("ticket_id = ?", ticket).Order("id").Find(&ms).Error; err != nil {
		return nil, fmt.Errorf("messages of %d: %w", ticket, err)
	}
	return ms, nil
}

// QueueMail commits an outgoing mail: the outbox row, and a message row on
// the ticket so that replies to it thread. build is called with the new
// row's ID (for the Message-ID and the VERP return path) and returns the
// raw message, its Message-ID and envelope sender.
func (t *Tx) QueueMail(ctx context.Context, o OutboxMail, m Message, build func(id int64) (raw []byte, messageID, envFrom string, err error)) (int64, error) {
	now := t.s.now()
	// A row may be queued held (the ticket's fuse) or deferred (a
	// not-before time in NextAttemptAt); by default it is due now.
	if o.Status == "" {
		o.Status = OutboxPending
	}
	if o.NextAttemptAt.IsZero() || o.NextAttemptAt.Before(now) {
		o.NextAttemptAt = now
	}
	o.CreatedAt = now
	db := t.db.WithContext(ctx)
	if err := db.Create(&o).Error; err != nil {
		return 0, fmt.Errorf("outbox: %w", err)
	}
	raw, msgID, envFrom, err := build(o.ID)
	if err != nil {
		return 0, fmt.Errorf("outbox %d: compose: %w", o.ID, err)
	}
	if err := db.Model(&OutboxMail{}).Where("id = ?", o.ID).Updates(map[string]any{
		"raw": raw, "message_id": msgID, "env_from": envFrom,
	}).Error; err != nil {
		return 0, fmt.Errorf("outbox %d: %w", o.ID, err)
	}
	m.Direction, m.MessageID, m.RawHash, m.OutboxID, m.ReceivedAt, m.Parsed, m.Handled = DirectionOut, msgID, outboxRawHash(o.ID), &o.ID, now, true, true
	m.Size = int64(len(raw))
	if err := db.Create(&m).Error; err != nil {
		return 0, fmt.Errorf("outbox %d message: %w", o.ID, err)
	}
	return o.ID, nil
}

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

// AutoMailCounts counts automatic mail sent to addr in the last hour and
// on ticket since the start of the day (UTC), for flood protection.
func (t *Tx) AutoMailCounts(ctx context.Context, addr string, ticket int64) (toAddrLastHour, onTicketToday int, err error) {
	now := t.s.now()
	db := t.db.WithContext(ctx)
	var a, b int64
	if err := db.Model(&OutboxMail{}).Where("auto = ? AND env_to = ? AND created_at >= ?", true, addr, now.Add(-time.Hour)).Count(&a).Error; err != nil {
		return 0, 0, fmt.Errorf("auto mail counts: %w", err)
	}
	day := now.Truncate(24 * time.Hour)
	if err := db.Model(&OutboxMail{}).Where("auto = ? AND ticket_id = ? AND created_at >= ? AND kind = ?", true, ticket, day, "customer").Count(&b).Error; err != nil {
		return 0, 0, fmt.Errorf("auto mail counts: %w", err)
	}
	return int(a), int(b), nil
}

// Suppress stops automatic mail to addr until a time, with the reason
// shown to agents.
func (t *Tx) Suppress(ctx context.Context, addr string, until time.Time, reason string) error {
	err := t.db.WithContext(ctx).Model(&Contact{}).Where("email = ?", addr).
		Updates(map[string]any{"suppressed_until": until, "suppress_reason": reason}).Error
	if err != nil {
		return fmt.Errorf("suppress %s: %w", addr, err)
	}
	return nil
}

// Schedule arms timer name on ticket at due, replacing a pending one of
// the same name.
func (t *Tx) Schedule(ctx context.Context, ticket int64, name string, due time.Time) error {
	if err := t.Cancel(ctx, ticket, name); err != nil {
		return err
	}
	// Stored in UTC: SQLite compares times as text, so a due time in the
	// inbox's zone would sort wrong against the clock's UTC.
	tm := Timer{TicketID: ticket, Name: name, DueAt: due.UTC(), Status: TimerPending, CreatedAt: t.s.now()}
	if err := t.db.WithContext(ctx).Create(&tm).Error; err != nil {
		return fmt.Errorf("schedule %s on %d: %w", name, ticket, err)
	}
	return nil
}

// Cancel disarms pending timer name on ticket; no-op when none is.
func (t *Tx) Cancel(ctx context.Context, ticket int64, name string) error {
	now := t.s.now()
	err := t.db.WithContext(ctx).Model(&Timer{}).Where("ticket_id = ? AND name = ? AND status = ?", ticket, name, TimerPending).
		Updates(map[string]any{"status": TimerCancelled, "completed_at": now}).Error
	if err != nil {
		return fmt.Errorf("cancel %s on %d: %w", name, ticket, err)
	}
	return nil
}

// Timer statuses.
const (
	TimerPending   = "pending"
	TimerFired     = "fired"
	TimerCancelled = "cancelled"
)

// ClaimTimers leases up to limit due timers to owner.
func (s *Store) ClaimTimers(ctx context.Context, owner string, limit int, lease time.Duration) ([]Timer, error) {
	ids, err := s.claim(ctx, timerClaim, s.now(), owner, lease, limit)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	var ts []Timer
	if err := s.db.WithContext(ctx).Where("id IN ?", ids).Order("due_at, id").Find(&ts).Error; err != nil {
		return nil, fmt.Errorf("claim timers: %w", err)
	}
	return ts, nil
}

// FireTimer marks a claimed timer fired inside tx. It returns false when
// the timer is no longer pending or no longer leased to owner (cancelled
// meanwhile, or taken over after a lease expiry): the caller must then do
// nothing, so a timer fires once.
func (t *Tx) FireTimer(ctx context.Context, id int64, owner string) (bool, error) {
	res := t.db.WithContext(ctx).Model(&Timer{}).Where("id = ? AND status = ? AND lease_owner = ?", id, TimerPending, owner).
		Updates(map[string]any{"status": TimerFired, "completed_at": t.s.now()})
	if res.Error != nil {
		return false, fmt.Errorf("fire timer %d: %w", id, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// PendingTimers lists a ticket's pending timers (for tests and the web).
func (s *Store) PendingTimers(ctx context.Context, ticket int64) ([]Timer, error) {
	var ts []Timer
	err := s.db.WithContext(ctx).Where("ticket_id = ? AND status = ?", ticket, TimerPending).Order("due_at").Find(&ts).Error
	if err != nil {
		return nil, fmt.Errorf("timers of %d: %w", ticket, err)
	}
	return ts, nil
}

// ClaimOutbox leases up to limit due outbox rows to owner.
func (s *Store) ClaimOutbox(ctx context.Context, owner string, limit int, lease time.Duration) ([]OutboxMail, error) {
	ids, err := s.claim(ctx, outboxClaim, s.now(), owner, lease, limit)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	var os []OutboxMail
	if err := s.db.WithContext(ctx).Where("id IN ?", ids).Order("id").Find(&os).Error; err != nil {
		return nil, fmt.Errorf("claim outbox: %w", err)
	}
	return os, nil
}

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
		if r.DropBody {
			if err := t.s.countDropped(t.db.WithContext(ctx), []int64{id}); err != nil {
				return false, fmt.Errorf("finish outbox %d: %w", id, err)
			}
			upd["raw"] = nil
		}
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
		if err := t.s.droppedOutbox(t.db.WithContext(ctx), []int64{id}); err != nil {
			return false, fmt.Errorf("finish outbox %d: %w", id, err)
		}
	}
	return res.RowsAffected == 1, nil
}

// droppedOutbox finishes dropping the bodies of outgoing mails ids (their
// raw is already NULL): the text of their message rows goes too (see
// dropOutboxText), and on SQLite both kinds of rows are repacked.
func (s *Store) droppedOutbox(db *gorm.DB, ids []int64) error {
	msgRows, err := dropOutboxText(db, ids)
	if err != nil {
		return err
	}
	if err := s.repackRows(db, "outbox_mails", ids); err != nil {
		return err
	}
	return s.repackRows(db, "messages", msgRows)
}

// dropOutboxText empties the text of the message rows that record the
// outgoing mails ids when they are on no ticket (staff mail: copies made
// for agents), and returns those rows' ids. Customer mail keeps its
// text: it is the ticket's record of what was sent. The rows are found
// through the dedup index (Message-ID, and the raw_hash QueueMail gives
// them), not by a scan.
func dropOutboxText(db *gorm.DB, ids []int64) ([]int64, error) {
	var msgIDs []string
	if err := db.Model(&OutboxMail{}).Where("id IN ?", ids).Pluck("message_id", &msgIDs).Error; err != nil {
		return nil, err
	}
	hashes := make([]string, len(ids))
	for i, id := range ids {
		hashes[i] = outboxRawHash(id)
	}
	var rows []int64
	q := db.Model(&Message{}).Where("message_id IN ? AND raw_hash IN ? AND ticket_id IS NULL", msgIDs, hashes)
	if err := q.Pluck("id", &rows).Error; err != nil || len(rows) == 0 {
		return nil, err
	}
	return rows, db.Model(&Message{}).Where("id IN ?", rows).Updates(map[string]any{"text": "", "html": ""}).Error
}

// repackRows (SQLite) moves rows ids of table to another rowid and back,
// in the caller's transaction, after their large values were dropped.
// SQLite rebalances a b-tree page only when a row is deleted or a page
// overflows, never when an UPDATE shrinks a row: an outbox row whose
// composed mail was dropped kept a leaf page of its own (the mail's
// first 4 KB had lived there), three quarters of the outbox table's
// pages were empty space (issue 10: disk at most 1.5× the mail). A
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

// countDropped adds the composed bytes of outgoing mails ids, about to
// be dropped, to what Checkpoint's outbox vacuum waits for (PostgreSQL:
// SQLite reuses the pages itself).
func (s *Store) countDropped(db *gorm.DB, ids []int64) error {
	if s.driver == DriverSQLite {
		return nil
	}
	var n int64
	if err := db.Model(&OutboxMail{}).Where("id IN ?", ids).Select("COALESCE(SUM(LENGTH(raw)), 0)").Scan(&n).Error; err != nil {
		return err
	}
	s.dropped.Add(n)
	return nil
}

// outboxRawHash is the raw_hash of the message row recording outgoing
// mail id: its bytes live in the outbox row, and the column only needs
// to be unique per message.
func outboxRawHash(id int64) string { return fmt.Sprintf("outbox-%d", id) }

// FailOutbox marks an outbox row failed after the fact (a bounce came
// back for it) and returns it. ok is false when there is no such row.
func (t *Tx) FailOutbox(ctx context.Context, id int64, reason string) (OutboxMail, bool, error) {
	var o OutboxMail
	err := t.db.WithContext(ctx).Omit("raw").Where("id = ?", id).Take(&o).Error
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
	q := s.db.WithContext(ctx).Omit("raw").Order("id")
	if ticket != 0 {
		q = q.Where("ticket_id = ?", ticket)
	}
	if err := q.Find(&os).Error; err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	return os, nil
}

// safeText makes text from the outside (a remote server's diagnostic, a
// subject) storable in every backend: valid UTF-8, no NUL.
func safeText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}
