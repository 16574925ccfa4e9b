package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/tendhq/tend/vocab"
)

// TicketFilter selects tickets for the queue and the API.
type TicketFilter struct {
	State string // "" = every open state; "all" = every state; else one state
	Inbox string // inbox address; "" = all
	// Visible restricts as QueueFilter.Visible does.
	Visible []string
	Limit   int   // 1..500, default 50
	Before  int64 // cursor: only tickets with a number below this
}

// TicketRow is a ticket as listed, with its customer, assignee and inbox.
type TicketRow struct {
	Number         int64
	Subject        string
	State          vocab.State
	Priority       string
	Breached       bool
	RepeatContacts int
	Tags           string
	Customer       string
	CustomerName   string
	Assignee       string
	Inbox          string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	LastCustomerAt *time.Time
	LastAgentAt    *time.Time
	MergedInto     *int64
	// MailHeldSince is when the ticket's mail fuse tripped (nil: not).
	MailHeldSince *time.Time
	// WaitingSince is the oldest unanswered customer message (nil when
	// the customer has an answer); SnoozedUntil hides the ticket from
	// the queue until then.
	WaitingSince *time.Time
	SnoozedUntil *time.Time
	LinkedTo     *int64
	Language     string
	// SatisfactionScore is the customer's 1..5 rating (0: none);
	// SatisfactionComment what they added.
	SatisfactionScore   int
	SatisfactionComment string
}

// openStates are the states a ticket needs attention in.
func openStates() []vocab.State {
	return []vocab.State{vocab.StateNew, vocab.StateOpen, vocab.StateWaiting, vocab.StateProposed, vocab.StateUnconfirmed}
}

// ListTickets returns one page of tickets, newest first, and the cursor for
// the next page (0 when there is none). One query, joins instead of a
// query per row.
func (s *Store) ListTickets(ctx context.Context, f TicketFilter) ([]TicketRow, int64, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	if f.Limit > 500 {
		f.Limit = 500
	}
	q := s.db.WithContext(ctx).Table("tickets").
		Select(`tickets.id AS number, tickets.subject, tickets.state, tickets.priority, tickets.breached,
			tickets.repeat_contacts, tickets.tags, contacts.email AS customer, contacts.name AS customer_name,
			COALESCE(agents.email, '') AS assignee, inboxes.address AS inbox, tickets.created_at, tickets.updated_at,
			tickets.last_customer_at, tickets.last_agent_at, tickets.merged_into, ` + ticketRowExtra).
		Joins("JOIN contacts ON contacts.id = tickets.customer_id").
		Joins("JOIN inboxes ON inboxes.id = tickets.inbox_id").
		Joins("LEFT JOIN agents ON agents.id = tickets.assignee_id").
		Where("tickets.merged_into IS NULL")
	switch f.State {
	case "":
		q = q.Where("tickets.state IN ?", openStates())
	case "all":
	default:
		q = q.Where("tickets.state = ?", f.State)
	}
	if f.Inbox != "" {
		q = q.Where("EXISTS (SELECT 1 FROM ticket_inboxes ti JOIN inboxes i ON i.id = ti.inbox_id WHERE ti.ticket_id = tickets.id AND i.address = ?)", f.Inbox)
	}
	q = restrictVisible(q, f.Visible)
	if f.Before > 0 {
		q = q.Where("tickets.id < ?", f.Before)
	}
	q = q.Order("tickets.id DESC")
	var rows []TicketRow
	if err := q.Limit(f.Limit + 1).Scan(&rows).Error; err != nil {
		return nil, 0, fmt.Errorf("list tickets: %w", err)
	}
	var next int64
	if len(rows) > f.Limit {
		rows = rows[:f.Limit]
		next = rows[len(rows)-1].Number
	}
	return rows, next, nil
}

// TicketDetail is a ticket with its messages and timeline.
type TicketDetail struct {
	TicketRow
	Inboxes  []string
	Messages []Message
	Events   []Event
}

// GetTicket returns ticket number with its messages and events. A merged
// ticket's number returns the ticket it was merged into.
func (s *Store) GetTicket(ctx context.Context, number int64) (TicketDetail, error) {
	info, ok, err := ticketInfo(ctx, s.db, number)
	if err != nil {
		return TicketDetail{}, err
	}
	if !ok {
		return TicketDetail{}, fmt.Errorf("ticket %d: %w", number, ErrNotFound)
	}
	var d TicketDetail
	row, err := s.ticketRow(ctx, info.Number)
	if err != nil {
		return TicketDetail{}, err
	}
	d.TicketRow = row
	db := s.db.WithContext(ctx)
	if d.Inboxes, err = ticketInboxes(ctx, s.db, info.Number); err != nil {
		return TicketDetail{}, err
	}
	if err := db.Where("ticket_id = ?", info.Number).Order("id").Find(&d.Messages).Error; err != nil {
		return TicketDetail{}, fmt.Errorf("ticket %d messages: %w", number, err)
	}
	if err := db.Where("ticket_id = ?", info.Number).Order("id").Find(&d.Events).Error; err != nil {
		return TicketDetail{}, fmt.Errorf("ticket %d events: %w", number, err)
	}
	return d, nil
}

func (s *Store) ticketRow(ctx context.Context, number int64) (TicketRow, error) {
	rows, _, err := s.ListTickets(ctx, TicketFilter{State: "all", Before: number + 1, Limit: 1})
	if err != nil {
		return TicketRow{}, err
	}
	if len(rows) == 0 || rows[0].Number != number {
		return TicketRow{}, fmt.Errorf("ticket %d: %w", number, ErrNotFound)
	}
	return rows[0], nil
}

// GetMessage returns one message row.
func (s *Store) GetMessage(ctx context.Context, id int64) (Message, error) {
	var m Message
	err := s.db.WithContext(ctx).Where("id = ?", id).Take(&m).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Message{}, fmt.Errorf("message %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Message{}, fmt.Errorf("message %d: %w", id, err)
	}
	return m, nil
}

// Raw returns the exact bytes stored under hash.
func (s *Store) Raw(ctx context.Context, hash string) ([]byte, error) {
	return s.rawVia(ctx, s.db, hash)
}

// Raw is Store.Raw inside the transaction, on its connection: code running
// in a batch's transaction that read through the Store took a second
// connection from the pool while holding one, and enough batches at once
// (processing workers on PostgreSQL) could hold every connection, each
// waiting for another.
func (t *Tx) Raw(ctx context.Context, hash string) ([]byte, error) {
	return t.s.rawVia(ctx, t.db, hash)
}

func (s *Store) rawVia(ctx context.Context, db *gorm.DB, hash string) ([]byte, error) {
	b, err := s.raw(ctx, db, hash)
	if err != nil && s.segs != nil && !errors.Is(err, ErrNotFound) {
		// Compaction may have moved the bytes between the lookup and
		// the read: look again.
		b, err = s.raw(ctx, db, hash)
	}
	return b, err
}

func (s *Store) raw(ctx context.Context, db *gorm.DB, hash string) ([]byte, error) {
	var r RawMessage
	err := db.WithContext(ctx).Where("hash = ?", hash).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("raw %s: %w", hash, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("raw %s: %w", hash, err)
	}
	if r.Data == nil && r.Segment == chunkSegment {
		return readChunks(ctx, db, hash, r.Size)
	}
	if r.Data == nil && r.Segment == fileSegment && s.segs != nil {
		return s.segs.readFile(hash)
	}
	if r.Data == nil && r.Segment > 0 {
		if s.segs == nil {
			return nil, fmt.Errorf("raw %s: stored in segment %d but no segment store is open", hash, r.Segment)
		}
		b, err := s.segs.read(r.Segment, r.Offset, r.stored())
		if err != nil || r.Packed == 0 {
			return b, err
		}
		return s.pack.unpack(b, r.Size)
	}
	if r.Packed > 0 {
		return s.pack.unpack(r.Data, r.Size)
	}
	return r.Data, nil
}

// Counts are the figures the metrics endpoint reports.
type Counts struct {
	TicketsByState map[vocab.State]int64
	RawMessages    int64
	Messages       int64
	PendingWork    int64
	PendingOutbox  int64
	// DeferredOutbox are the pending mails not due yet: retries after a
	// relay's 4xx, and notifications coalescing in notify_window.
	DeferredOutbox int64
	// SentOutbox are the mails the relay accepted.
	SentOutbox int64
}

// Backlog is what is left to do: work items not yet done and outgoing
// mail due now, each counted through its claim index, so that it costs
// what the backlog holds. tend bench polls it until a round has drained:
// it polled Counts, which reads every table, twenty times a second, and
// on PostgreSQL those reads took 2.7 s of the server's CPU in a round of
// 2,000 messages, from the two cores tend was measured on.
func (s *Store) Backlog(ctx context.Context) (work, dueOutbox int64, err error) {
	db := s.db.WithContext(ctx)
	if err := db.Model(&Work{}).Count(&work).Error; err != nil {
		return 0, 0, fmt.Errorf("backlog: %w", err)
	}
	if err := db.Model(&OutboxMail{}).Where("status = ? AND next_attempt_at <= ?", OutboxPending, s.now()).Count(&dueOutbox).Error; err != nil {
		return 0, 0, fmt.Errorf("backlog: %w", err)
	}
	return work, dueOutbox, nil
}

// Counts returns current totals, a few grouped queries.
func (s *Store) Counts(ctx context.Context) (Counts, error) {
	c := Counts{TicketsByState: map[vocab.State]int64{}}
	db := s.db.WithContext(ctx)
	var rows []struct {
		State vocab.State
		N     int64
	}
	if err := db.Model(&Ticket{}).Select("state, COUNT(*) AS n").Where("merged_into IS NULL").Group("state").Scan(&rows).Error; err != nil {
		return c, fmt.Errorf("counts: %w", err)
	}
	for _, r := range rows {
		c.TicketsByState[r.State] = r.N
	}
	for _, q := range []struct {
		model any
		where string
		dst   *int64
	}{
		{&RawMessage{}, "", &c.RawMessages},
		{&Message{}, "", &c.Messages},
		{&Work{}, "", &c.PendingWork},
		{&OutboxMail{}, "status = 'pending'", &c.PendingOutbox},
		{&OutboxMail{}, "status = 'pending' AND next_attempt_at > ?", &c.DeferredOutbox},
		{&OutboxMail{}, "status = 'sent'", &c.SentOutbox},
	} {
		tx := db.Model(q.model)
		if q.where != "" && strings.Contains(q.where, "?") {
			tx = tx.Where(q.where, s.now())
		} else if q.where != "" {
			tx = tx.Where(q.where)
		}
		if err := tx.Count(q.dst).Error; err != nil {
			return c, fmt.Errorf("counts: %w", err)
		}
	}
	return c, nil
}
