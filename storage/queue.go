package storage

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// Attention ranks order the lead's queue: what needs a person first. They
// follow DESIGN.md's "Who uses it": SLA breaches, customers who wrote more
// than once without an answer, unconfirmed resolutions, then everything
// still open by how long the customer has waited.
const (
	// AttentionBreached: the promised response time passed and the ball
	// is still in our court (new, open or unconfirmed). A breach that was
	// answered since stays recorded on the ticket but no longer ranks.
	AttentionBreached = iota
	// AttentionRepeat: the customer wrote again while waiting for us.
	AttentionRepeat
	// AttentionUnconfirmed: the nudges ran out without a confirmation; a
	// lead decides.
	AttentionUnconfirmed
	// AttentionOpen: new, open or proposed, oldest wait first.
	AttentionOpen
	// AttentionWaiting: we answered; the customer has the ball.
	AttentionWaiting
	// AttentionDone: resolved or closed (listed only when asked for).
	AttentionDone
)

// attentionSQL computes a ticket's attention rank in the query itself, so
// that ordering and paging happen in the database, not per row in Go.
// The states are constants, never user input.
const attentionSQL = `CASE
	WHEN tickets.breached AND tickets.state IN ('new','open','unconfirmed') THEN 0
	WHEN tickets.repeat_contacts > 0 AND tickets.state IN ('new','open') THEN 1
	WHEN tickets.state = 'unconfirmed' THEN 2
	WHEN tickets.state IN ('new','open','proposed') THEN 3
	WHEN tickets.state = 'waiting' THEN 4
	ELSE 5 END`

// QueueFilter selects the lead's queue.
type QueueFilter struct {
	State string // "" = every open state; "all" = every state; else one state
	Inbox string // inbox address; "" = all
	// Visible, when not nil, keeps only tickets seen by one of these inbox
	// addresses (an agent's access, see Agent.VisibleInboxes); an empty
	// non-nil list keeps none.
	Visible []string
	Subject string // normalized subject (a cluster); "" = all
	Limit   int    // 1..200, default 50
	Offset  int    // rows to skip: the queue is re-ranked as tickets move, so it pages by position

	// Query is a full-text search (see SearchTerms); "" = all.
	Query string
}

// QueueRow is a ticket in the queue with its attention rank.
type QueueRow struct {
	TicketRow
	Attention int
}

// Queue returns one page of tickets in attention order (see the Attention
// constants; within a rank the customer who has waited longest comes
// first) and whether more follow. One query with joins: no query per row.
func (s *Store) Queue(ctx context.Context, f QueueFilter) ([]QueueRow, bool, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	f.Limit = min(f.Limit, 200)
	f.Offset = max(f.Offset, 0)
	q := s.ticketList(ctx, f.State, f.Inbox, f.Visible, ticketRowColumns+", "+attentionSQL+" AS attention")
	if f.Subject != "" {
		q = q.Where("tickets.norm_subject = ?", f.Subject)
	}
	q = s.searchWhere(q, f.Query)
	if f.State == "" {
		// The default view is what needs a person now; a ticket put
		// aside still shows under its state and "all", so it is never
		// out of sight.
		q = q.Where(notSnoozed, s.now())
	}
	var rows []QueueRow
	// COALESCE: a ticket opened by an agent has no customer message yet;
	// it has waited since it was created. (NULL ordering differs between
	// SQLite and PostgreSQL, so it must not decide the order.)
	err := q.Order("attention").Order("COALESCE(tickets.waiting_since, tickets.last_customer_at, tickets.created_at)").Order("tickets.id").
		Offset(f.Offset).Limit(f.Limit + 1).Scan(&rows).Error
	if err != nil {
		return nil, false, fmt.Errorf("queue: %w", err)
	}
	more := len(rows) > f.Limit
	if more {
		rows = rows[:f.Limit]
	}
	return rows, more, nil
}

// ticketRowColumns are the columns of a TicketRow, over the joins of
// ticketList.
const ticketRowColumns = `tickets.id AS number, tickets.subject, tickets.state, tickets.priority, tickets.breached,
	tickets.repeat_contacts, tickets.tags, contacts.email AS customer, contacts.name AS customer_name,
	COALESCE(agents.email, '') AS assignee, inboxes.address AS inbox, tickets.created_at, tickets.updated_at,
	tickets.last_customer_at, tickets.last_agent_at, tickets.merged_into, ` + ticketRowExtra

// ticketRowExtra are the TicketRow columns of the care features (history,
// follow-ups, language, satisfaction) and the mail fuse.
const ticketRowExtra = `tickets.waiting_since, tickets.snoozed_until, tickets.linked_to, tickets.language,
	tickets.satisfaction_score, tickets.satisfaction_comment, tickets.mail_held_since`

// ticketList is the base of every ticket listing: the joins that fill a
// TicketRow, no merged tickets, and the state ("" = open, "all", or one)
// and inbox filters. ListTickets in queries.go builds the same query and
// can be reduced to this.
func (s *Store) ticketList(ctx context.Context, state, inbox string, visible []string, columns string) *gorm.DB {
	q := s.db.WithContext(ctx).Table("tickets").Select(columns).
		Joins("JOIN contacts ON contacts.id = tickets.customer_id").
		Joins("JOIN inboxes ON inboxes.id = tickets.inbox_id").
		Joins("LEFT JOIN agents ON agents.id = tickets.assignee_id").
		Where("tickets.merged_into IS NULL")
	switch state {
	case "":
		q = q.Where("tickets.state IN ?", openStates())
	case "all":
	default:
		q = q.Where("tickets.state = ?", state)
	}
	if inbox != "" {
		q = q.Where(inboxExists, inbox)
	}
	return restrictVisible(q, visible)
}

// restrictVisible keeps the tickets seen by one of the visible inboxes;
// nil keeps every ticket, an empty list none.
func restrictVisible(q *gorm.DB, visible []string) *gorm.DB {
	if visible == nil {
		return q
	}
	if len(visible) == 0 {
		return q.Where("1 = 0")
	}
	return q.Where("EXISTS (SELECT 1 FROM ticket_inboxes ti JOIN inboxes i ON i.id = ti.inbox_id WHERE ti.ticket_id = tickets.id AND i.address IN ?)", visible)
}

// inboxExists restricts a tickets query to those an inbox sees.
const inboxExists = "EXISTS (SELECT 1 FROM ticket_inboxes ti JOIN inboxes i ON i.id = ti.inbox_id WHERE ti.ticket_id = tickets.id AND i.address = ?)"

// notSnoozed leaves out tickets an agent put aside until a later time
// (#waiting until, #remind, #snooze); the timer brings them back.
const notSnoozed = "(tickets.snoozed_until IS NULL OR tickets.snoozed_until <= ?)"

// AttentionCounts returns how many open tickets have each attention rank
// (index: the Attention constants), for the queue's summary line. One
// grouped query. visible restricts as QueueFilter.Visible does.
func (s *Store) AttentionCounts(ctx context.Context, inbox string, visible []string) ([AttentionDone + 1]int64, error) {
	var out [AttentionDone + 1]int64
	q := s.db.WithContext(ctx).Table("tickets").Select(attentionSQL+" AS attention, COUNT(*) AS n").
		Where("tickets.merged_into IS NULL AND tickets.state IN ?", openStates()).Where(notSnoozed, s.now())
	if inbox != "" {
		q = q.Where(inboxExists, inbox)
	}
	q = restrictVisible(q, visible)
	var rows []struct {
		Attention int
		N         int64
	}
	if err := q.Group("attention").Scan(&rows).Error; err != nil {
		return out, fmt.Errorf("attention counts: %w", err)
	}
	for _, r := range rows {
		if r.Attention >= 0 && r.Attention < len(out) {
			out[r.Attention] = r.N
		}
	}
	return out, nil
}

// Cluster is a group of open tickets with the same normalized subject:
// many customers reporting the same problem.
type Cluster struct {
	NormSubject string
	Subject     string // one of the tickets' subjects, as written
	Count       int64  `gorm:"column:n_tickets"`
	First       int64  `gorm:"column:first_number"` // the oldest ticket's number
}

// Clusters returns groups of at least minCount open tickets sharing a
// normalized subject, largest first, at most limit. One GROUP BY query.
// visible restricts as QueueFilter.Visible does.
func (s *Store) Clusters(ctx context.Context, inbox string, visible []string, minCount, limit int) ([]Cluster, error) {
	q := s.db.WithContext(ctx).Table("tickets").
		Select("tickets.norm_subject, MIN(tickets.subject) AS subject, COUNT(*) AS n_tickets, MIN(tickets.id) AS first_number").
		Where("tickets.merged_into IS NULL AND tickets.state IN ? AND tickets.norm_subject <> ''", openStates())
	if inbox != "" {
		q = q.Where(inboxExists, inbox)
	}
	q = restrictVisible(q, visible)
	var out []Cluster
	err := q.Group("tickets.norm_subject").Having("COUNT(*) >= ?", max(minCount, 2)).
		Order("n_tickets DESC").Order("first_number").Limit(max(limit, 1)).Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("clusters: %w", err)
	}
	return out, nil
}

// Inboxes returns every inbox, by address.
func (s *Store) Inboxes(ctx context.Context) ([]Inbox, error) {
	var out []Inbox
	if err := s.db.WithContext(ctx).Order("address").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("inboxes: %w", err)
	}
	return out, nil
}

// Agents returns every agent, by email, without password hashes: what a
// lead picks an assignee from.
func (s *Store) Agents(ctx context.Context) ([]Agent, error) {
	var out []Agent
	if err := s.db.WithContext(ctx).Select("id, email, name, role, inboxes, created_at").Order("email").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("agents: %w", err)
	}
	return out, nil
}
