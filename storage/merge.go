package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tendhq/tend/vocab"
)

// ErrConflict is returned when an operation contradicts the state of the
// rows it names: merging a ticket into itself or into a merged ticket,
// splitting off the only message of a ticket. Callers (the web layer)
// answer it with 409.
var ErrConflict = errors.New("conflict")

// lockedTicket is the part of a ticket merge and split read under lock.
type lockedTicket struct {
	ID         int64
	MergedInto *int64
	InboxID    int64
	Tags       string
}

// lockTickets reads tickets ids, locking their rows on PostgreSQL in id
// order so that two merges crossing each other (A into B, B into A) queue
// instead of both passing their checks. SQLite needs no row lock: its
// write transactions are serialised (BEGIN IMMEDIATE, see sqliteDSN).
func (t *Tx) lockTickets(ctx context.Context, ids ...int64) (map[int64]lockedTicket, error) {
	q := t.db.WithContext(ctx).Model(&Ticket{}).Select("id, merged_into, inbox_id, tags").Where("id IN ?", ids).Order("id")
	if t.s.driver == DriverPostgres {
		q = q.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate})
	}
	var rows []lockedTicket
	if err := q.Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("lock tickets: %w", err)
	}
	out := make(map[int64]lockedTicket, len(rows))
	for _, r := range rows {
		out[r.ID] = r
	}
	for _, id := range ids {
		if _, ok := out[id]; !ok {
			return nil, fmt.Errorf("ticket #%d: %w", id, ErrNotFound)
		}
	}
	return out, nil
}

// MergeTickets merges ticket from into ticket into in one transaction; see
// Tx.MergeTickets.
func (s *Store) MergeTickets(ctx context.Context, from, into int64, by string) error {
	return s.InTx(ctx, func(tx *Tx) error { return tx.MergeTickets(ctx, from, into, by) })
}

// MergeTickets merges ticket from into ticket into (issue 3 §4): its
// messages (with their attachments and threading rows), timeline, outgoing
// mail, participants, inboxes and pending timers move to into; tickets
// merged into from earlier now point at into directly; from is closed with
// the reason "merged into #into" and keeps its number as a redirect (Ticket,
// TicketView and GetTicket follow merged_into). Both timelines record the
// merge, with by as the actor. Where both tickets have a pending timer of
// the same name, the one due earlier is kept and the other cancelled: the
// earlier promise to the customer is the one to keep. The surviving ticket
// gains from's tags; its state, assignee and response-time fields stay as
// they are.
//
// It fails with ErrConflict when from == into or either ticket is already
// merged, and with ErrNotFound when either does not exist.
func (t *Tx) MergeTickets(ctx context.Context, from, into int64, by string) error {
	if from == into {
		return fmt.Errorf("merge #%d into itself: %w", from, ErrConflict)
	}
	rows, err := t.lockTickets(ctx, from, into)
	if err != nil {
		return fmt.Errorf("merge #%d into #%d: %w", from, into, err)
	}
	src, dst := rows[from], rows[into]
	for _, r := range []lockedTicket{src, dst} {
		if r.MergedInto != nil {
			return fmt.Errorf("merge #%d into #%d: %w: #%d is already merged into #%d", from, into, ErrConflict, r.ID, *r.MergedInto)
		}
	}
	if err := t.moveTicketRows(ctx, from, into); err != nil {
		return fmt.Errorf("merge #%d into #%d: %w", from, into, err)
	}
	// The merged ticket's customer, when it is another person, takes part
	// in into as a Cc: answers on into reach them too.
	if err := t.db.WithContext(ctx).Exec("UPDATE participants SET role = 'cc' WHERE ticket_id = ? AND role = 'customer' AND email <> "+
		"(SELECT contacts.email FROM tickets JOIN contacts ON contacts.id = tickets.customer_id WHERE tickets.id = ?)", into, into).Error; err != nil {
		return fmt.Errorf("merge #%d into #%d: participants: %w", from, into, err)
	}
	if err := t.mergeTimers(ctx, from, into); err != nil {
		return fmt.Errorf("merge #%d into #%d: %w", from, into, err)
	}
	now := t.s.now()
	db := t.db.WithContext(ctx)
	reason := fmt.Sprintf("merged into #%d", into)
	if err := db.Model(&Ticket{}).Where("merged_into = ?", from).Update("merged_into", into).Error; err != nil {
		return fmt.Errorf("merge #%d into #%d: redirects: %w", from, into, err)
	}
	if err := db.Model(&Ticket{}).Where("id = ?", from).Updates(map[string]any{
		"merged_into": into, "state": vocab.StateClosed, "close_reason": reason, "resolved_at": now, "updated_at": now,
	}).Error; err != nil {
		return fmt.Errorf("merge #%d into #%d: close: %w", from, into, err)
	}
	up := map[string]any{"tags": unionTags(dst.Tags, src.Tags), "updated_at": now}
	// A tripped mail fuse moves with the held mail: into holds it until a
	// lead releases into's mail (the redirect has no mail of its own).
	if err := db.Model(&Ticket{}).Where("id = ? AND mail_held_since IS NULL", into).
		Update("mail_held_since", db.Model(&Ticket{}).Select("mail_held_since").Where("id = ?", from)).Error; err != nil {
		return fmt.Errorf("merge #%d into #%d: mail fuse: %w", from, into, err)
	}
	if err := db.Model(&Ticket{}).Where("id = ?", into).Updates(up).Error; err != nil {
		return fmt.Errorf("merge #%d into #%d: %w", from, into, err)
	}
	evs := []Event{
		{TicketID: from, Kind: vocab.EventMerged, Actor: by, Detail: reason, CreatedAt: now},
		{TicketID: into, Kind: vocab.EventMerged, Actor: by, Detail: fmt.Sprintf("ticket #%d merged into this ticket", from), CreatedAt: now},
	}
	if err := db.Create(&evs).Error; err != nil {
		return fmt.Errorf("merge #%d into #%d: events: %w", from, into, err)
	}
	return nil
}

// moveTicketRows re-points everything that hangs off ticket from to into.
// Participants and inbox links are copied (skipping those into already
// has) and then removed from from, so that no address is a participant of
// the redirect: threading resolves from to into anyway.
func (t *Tx) moveTicketRows(ctx context.Context, from, into int64) error {
	if err := t.flushEvents(ctx); err != nil {
		return err
	}
	db := t.db.WithContext(ctx)
	for _, m := range []any{&Message{}, &Event{}, &OutboxMail{}} {
		if err := db.Model(m).Where("ticket_id = ?", from).Update("ticket_id", into).Error; err != nil {
			return fmt.Errorf("move %T: %w", m, err)
		}
	}
	// INSERT ... SELECT with ON CONFLICT: SQLite needs the WHERE on the
	// SELECT to parse the upsert, which it has.
	copies := []struct{ table, cols string }{
		{"participants", "email, role, created_at"},
		{"ticket_inboxes", "inbox_id"},
	}
	for _, c := range copies {
		err := db.Exec("INSERT INTO "+c.table+" (ticket_id, "+c.cols+") SELECT ?, "+c.cols+" FROM "+c.table+" WHERE ticket_id = ? ON CONFLICT DO NOTHING", into, from).Error
		if err != nil {
			return fmt.Errorf("move %s: %w", c.table, err)
		}
		if err := db.Exec("DELETE FROM "+c.table+" WHERE ticket_id = ?", from).Error; err != nil {
			return fmt.Errorf("move %s: %w", c.table, err)
		}
	}
	return nil
}

// mergeTimers re-points from's pending timers to into; of two pending
// timers of the same name, the one due earlier survives.
func (t *Tx) mergeTimers(ctx context.Context, from, into int64) error {
	db := t.db.WithContext(ctx)
	var ts []Timer
	if err := db.Where("ticket_id IN ? AND status = ?", []int64{from, into}, TimerPending).Order("due_at, id").Find(&ts).Error; err != nil {
		return fmt.Errorf("timers: %w", err)
	}
	// Sorted by due time, so the first timer of each name is the one to
	// keep; every later one of that name is cancelled.
	kept := map[string]bool{}
	var move, cancel []int64
	for _, tm := range ts {
		switch {
		case kept[tm.Name]:
			cancel = append(cancel, tm.ID)
		case tm.TicketID == from:
			move = append(move, tm.ID)
		}
		kept[tm.Name] = true
	}
	if len(cancel) > 0 {
		if err := db.Model(&Timer{}).Where("id IN ?", cancel).
			Updates(map[string]any{"status": TimerCancelled, "completed_at": t.s.now()}).Error; err != nil {
			return fmt.Errorf("timers: %w", err)
		}
	}
	if len(move) > 0 {
		if err := db.Model(&Timer{}).Where("id IN ?", move).Update("ticket_id", into).Error; err != nil {
			return fmt.Errorf("timers: %w", err)
		}
	}
	return nil
}

// unionTags adds the space-separated tags of b missing from a.
func unionTags(a, b string) string {
	tags := strings.Fields(a)
	for _, tg := range strings.Fields(b) {
		if !slices.Contains(tags, tg) {
			tags = append(tags, tg)
		}
	}
	return strings.Join(tags, " ")
}

// SplitOptions say who splits a message off and what the new ticket is.
type SplitOptions struct {
	// By is the actor on both timelines: a lead's address, or "system"
	// for the follow-through executor.
	By string
	// LinkedTo, when not 0, records the older ticket the new one comes
	// from (tickets.linked_to): the executor's "a late reply opens a
	// linked ticket".
	LinkedTo int64
	// NormSubject is the new ticket's subject key for threading's
	// same-sender-same-subject rule (threading.NormalizeSubject of the
	// message's subject). Storage cannot compute it: threading sits above
	// storage. Empty means the ticket is never found by subject alone,
	// which can split a conversation but never joins a wrong one.
	NormSubject string
}

// SplitMessage opens a new ticket for message msgRowID; see
// Tx.SplitMessage. The new ticket has no subject key: callers that want
// the subject rule to find it use Tx.SplitMessage with NormSubject.
func (s *Store) SplitMessage(ctx context.Context, msgRowID int64, by string) (int64, error) {
	var n int64
	err := s.InTx(ctx, func(tx *Tx) error {
		var err error
		n, err = tx.SplitMessage(ctx, msgRowID, SplitOptions{By: by})
		return err
	})
	return n, err
}

// SplitMessage moves received message msgRowID off its ticket onto a new
// ticket (issue 3 §4) and returns the new ticket's number. The new
// ticket's customer is the message's sender, its subject the message's,
// its inboxes those of the old ticket; the message keeps its row (and so
// its attachments and threading rows) and takes its "received" timeline
// entry along. Both timelines record the split.
//
// It fails with ErrNotFound for an unknown message and with ErrConflict
// for mail we sent, a message on no ticket or without a sender, or the
// only message of its ticket (splitting it would leave an empty ticket).
func (t *Tx) SplitMessage(ctx context.Context, msgRowID int64, o SplitOptions) (int64, error) {
	db := t.db.WithContext(ctx)
	var m Message
	err := db.Select("id, ticket_id, direction, message_id, from_addr, from_name, subject").Where("id = ?", msgRowID).Take(&m).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return 0, fmt.Errorf("split message %d: %w", msgRowID, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("split message %d: %w", msgRowID, err)
	}
	switch {
	case m.TicketID == nil:
		return 0, fmt.Errorf("split message %d: %w: it is on no ticket", msgRowID, ErrConflict)
	case m.Direction != DirectionIn:
		return 0, fmt.Errorf("split message %d: %w: only received mail can open a ticket", msgRowID, ErrConflict)
	case m.FromAddr == "":
		return 0, fmt.Errorf("split message %d: %w: it has no sender to be the customer", msgRowID, ErrConflict)
	}
	old := *m.TicketID
	rows, err := t.lockTickets(ctx, old)
	if err != nil {
		return 0, fmt.Errorf("split message %d: %w", msgRowID, err)
	}
	var count int64
	if err := db.Model(&Message{}).Where("ticket_id = ?", old).Count(&count).Error; err != nil {
		return 0, fmt.Errorf("split message %d: %w", msgRowID, err)
	}
	if count <= 1 {
		return 0, fmt.Errorf("split message %d: %w: it is the only message of #%d", msgRowID, ErrConflict, old)
	}
	now := t.s.now()
	n, err := t.openSplitTicket(ctx, m, rows[old].InboxID, o, now)
	if err != nil {
		return 0, fmt.Errorf("split message %d: %w", msgRowID, err)
	}
	if err := t.moveMessage(ctx, m.ID, old, n, o, now); err != nil {
		return 0, fmt.Errorf("split message %d: %w", msgRowID, err)
	}
	return n, nil
}

// openSplitTicket creates the ticket a split message moves to, the way
// delivery opens one (customer, participant, "ticket opened" entry), with
// the inboxes of the old ticket.
func (t *Tx) openSplitTicket(ctx context.Context, m Message, inboxID int64, o SplitOptions, now time.Time) (int64, error) {
	db := t.db.WithContext(ctx)
	in := &Incoming{From: m.FromAddr, FromName: m.FromName, Subject: m.Subject, NormSubject: o.NormSubject}
	n, err := t.s.openTicket(db, in, inboxID, Placement{LinkedTo: o.LinkedTo}, now, nil)
	if err != nil {
		return 0, err
	}
	err = db.Exec("INSERT INTO ticket_inboxes (ticket_id, inbox_id) SELECT ?, inbox_id FROM ticket_inboxes WHERE ticket_id = ? ON CONFLICT DO NOTHING", n, *m.TicketID).Error
	if err != nil {
		return 0, fmt.Errorf("ticket inboxes: %w", err)
	}
	return n, nil
}

// moveMessage moves message id and its timeline entries from ticket old to
// the split ticket n and records the split on both timelines.
func (t *Tx) moveMessage(ctx context.Context, id, old, n int64, o SplitOptions, now time.Time) error {
	if err := t.flushEvents(ctx); err != nil {
		return err
	}
	db := t.db.WithContext(ctx)
	if err := db.Model(&Message{}).Where("id = ?", id).Update("ticket_id", n).Error; err != nil {
		return fmt.Errorf("move message: %w", err)
	}
	if err := db.Model(&Event{}).Where("message_row_id = ? AND ticket_id = ?", id, old).Update("ticket_id", n).Error; err != nil {
		return fmt.Errorf("move events: %w", err)
	}
	evs := []Event{
		{TicketID: n, Kind: vocab.EventSplit, Actor: o.By, Detail: fmt.Sprintf("message split off #%d into this ticket", old), MessageRowID: &id, CreatedAt: now},
		{TicketID: old, Kind: vocab.EventSplit, Actor: o.By, Detail: fmt.Sprintf("message split off into #%d", n), MessageRowID: &id, CreatedAt: now},
	}
	if err := db.Create(&evs).Error; err != nil {
		return fmt.Errorf("events: %w", err)
	}
	return nil
}
