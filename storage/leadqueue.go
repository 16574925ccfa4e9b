package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Attention ranks order the lead's queue: what needs a person first. They
// follow docs/design.md's "Who uses it": SLA breaches, customers who wrote more
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

// attentionSQL is a ticket's attention rank as an expression over its
// own row. It defines the generated column tickets.attention (migration
// step 5), so the database keeps the rank current on every write of
// state, breached or repeat_contacts, whichever code path makes it, and
// the queue's indexes can serve its order. The states are constants.
// openAttention is true exactly for the open states (openStates).
const attentionSQL = `CASE
	WHEN breached AND state IN ('new','open','unconfirmed') THEN 0
	WHEN repeat_contacts > 0 AND state IN ('new','open') THEN 1
	WHEN state = 'unconfirmed' THEN 2
	WHEN state IN ('new','open','proposed') THEN 3
	WHEN state = 'waiting' THEN 4
	ELSE 5 END`

// queueSinceSQL defines the generated column tickets.queue_since, the
// key the queue sorts a rank by: the oldest unanswered customer message,
// else the last one, else (a ticket an agent opened) its creation.
const queueSinceSQL = "COALESCE(waiting_since, last_customer_at, created_at)"

// openAttention selects the open states through the attention column. It
// is a literal, not a parameter, so that SQLite and PostgreSQL can use
// the partial indexes whose WHERE clause it is.
const openAttention = "tickets.attention < 5"

// QueueFilter selects the lead's queue and the API's list. Every field
// narrows the list; the zero value is the default queue. New filters go
// here and in (QueueFilter).where.
type QueueFilter struct {
	State string // "" = every open state; "all" = every state; else one state
	Inbox string // an inbox address that sees the ticket; "" = all
	// Visible, when not nil, keeps only tickets seen by one of these inbox
	// addresses (an agent's access, see Agent.VisibleInboxes); an empty
	// non-nil list keeps none.
	Visible  []string
	Subject  string // normalized subject (a cluster); "" = all
	Assignee string // the assignee's address; AssigneeNone = unassigned; "" = all
	Customer string // the customer's address; "" = all
	Tag      string // one tag the ticket carries; "" = all
	// Snoozed keeps tickets put aside in the default view (the API
	// lists them; the queue leaves them out until they are due).
	Snoozed bool
	Limit   int // 1..500, default 50
	// After and Before are keyset cursors: the page starts after the
	// row After names, or ends before the row Before names (a previous
	// page). The order is stable under inserts; a ticket that moves
	// while a lead pages shows at its new place.
	After, Before *Cursor
	// Query is a full-text search (see SearchTerms); "" = all.
	Query string
}

// AssigneeNone as QueueFilter.Assignee keeps the unassigned tickets.
const AssigneeNone = "none"

// Cursor is a position in the queue's order: the attention rank, the
// wait key and the ticket number of one row.
type Cursor struct {
	Attention int
	Since     time.Time
	Number    int64
}

// String encodes the cursor for a URL: "rank.unixnano.number".
func (c Cursor) String() string {
	return fmt.Sprintf("%d.%d.%d", c.Attention, c.Since.UnixNano(), c.Number)
}

// ParseCursor decodes a Cursor.String.
func ParseCursor(s string) (Cursor, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return Cursor{}, fmt.Errorf("cursor %q: %w", s, ErrBadCursor)
	}
	var n [3]int64
	for i, p := range parts {
		v, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return Cursor{}, fmt.Errorf("cursor %q: %w", s, ErrBadCursor)
		}
		n[i] = v
	}
	if n[0] < AttentionBreached || n[0] > AttentionDone || n[2] < 1 {
		return Cursor{}, fmt.Errorf("cursor %q: %w", s, ErrBadCursor)
	}
	return Cursor{Attention: int(n[0]), Since: time.Unix(0, n[1]).UTC(), Number: n[2]}, nil
}

// ErrBadCursor is returned for a cursor token tend did not write.
var ErrBadCursor = errors.New("bad cursor")

// QueueRow is a ticket in the queue with its attention rank.
type QueueRow struct {
	TicketRow
	Attention  int
	QueueSince time.Time
}

// Cursor is the row's position, for the next or the previous page.
func (r QueueRow) Cursor() Cursor {
	return Cursor{Attention: r.Attention, Since: r.QueueSince, Number: r.Number}
}

// Queue returns one page of tickets in attention order (see the Attention
// constants; within a rank the customer who has waited longest comes
// first) and whether more follow in the direction of travel (after the
// page, or before it when f.Before is set). One query with joins, read in
// index order and stopped at the page: no sort, no OFFSET, no query per
// row (TestQueryPlans).
func (s *Store) Queue(ctx context.Context, f QueueFilter) ([]QueueRow, bool, error) {
	rows, more, _, err := s.QueueFound(ctx, f, 0)
	return rows, more, err
}

// queueLimit is the page size Queue serves for a filter's Limit.
func queueLimit(n int) int {
	if n <= 0 {
		return 50
	}
	return min(n, 500)
}

// queuePage reads Queue's page of f under the search plan p, walked.
func (s *Store) queuePage(ctx context.Context, f QueueFilter, p searchPlan, now time.Time) ([]QueueRow, bool, error) {
	q := s.db.WithContext(ctx).Table("tickets").Select(ticketRowColumns + ", tickets.attention, tickets.queue_since")
	q = queueOrder(p.where(f.where(q, now), s.driver), f, nil)
	var rows []QueueRow
	if err := q.Limit(f.Limit + 1).Scan(&rows).Error; err != nil {
		return nil, false, fmt.Errorf("queue: %w", err)
	}
	more := len(rows) > f.Limit
	if more {
		rows = rows[:f.Limit]
	}
	if f.Before != nil {
		slices.Reverse(rows)
	}
	return rows, more, nil
}

// queueWalk is the queue of f as walkSearch reads it, without the
// search.
func (s *Store) queueWalk(ctx context.Context, f QueueFilter, now time.Time) walkFunc {
	return func(last *walkKey, n int) *gorm.DB {
		q := f.where(s.db.WithContext(ctx).Table("tickets").Select("tickets.id, tickets.attention, tickets.queue_since"), now)
		return queueOrder(q, f, last).Limit(n)
	}
}

// queueOrder orders a queue query in f's direction from f's cursor, or
// from last (a search's walk: see walkSearch) when it is not nil.
func queueOrder(q *gorm.DB, f QueueFilter, last *walkKey) *gorm.DB {
	after, before := f.After, f.Before
	if last != nil {
		c := &Cursor{Attention: last.Attention, Since: last.QueueSince, Number: last.ID}
		if before != nil {
			before = c
		} else {
			after = c
		}
	}
	dir := ""
	switch {
	case before != nil:
		q = q.Where("(tickets.attention, tickets.queue_since, tickets.id) < (?, ?, ?)", before.Attention, before.Since, before.Number)
		dir = " DESC"
	case after != nil:
		q = q.Where("(tickets.attention, tickets.queue_since, tickets.id) > (?, ?, ?)", after.Attention, after.Since, after.Number)
	}
	return q.Order("tickets.attention" + dir).Order("tickets.queue_since" + dir).Order("tickets.id" + dir)
}

// where adds the filter's conditions to a tickets query.
func (f QueueFilter) where(q *gorm.DB, now time.Time) *gorm.DB {
	q = q.Where("tickets.merged_into IS NULL")
	switch f.State {
	case "":
		q = q.Where(openAttention)
		if !f.Snoozed {
			// The default view is what needs a person now; a ticket
			// put aside still shows under its state and "all", so it
			// is never out of sight.
			q = q.Where(notSnoozed, now)
		}
	case "all":
	default:
		q = q.Where("tickets.state = ?", f.State)
	}
	if f.Inbox != "" {
		q = q.Where(inboxExists, f.Inbox)
	}
	if f.Subject != "" {
		q = q.Where("tickets.norm_subject = ?", f.Subject)
	}
	switch f.Assignee {
	case "":
	case AssigneeNone:
		q = q.Where("tickets.assignee_id IS NULL")
	default:
		// A scalar subquery: the planner sees one id and walks the
		// assignee's index in queue order.
		q = q.Where("tickets.assignee_id = (SELECT id FROM agents WHERE email = ?)", f.Assignee)
	}
	if f.Customer != "" {
		q = q.Where("tickets.customer_id = (SELECT id FROM contacts WHERE email = ?)", f.Customer)
	}
	if f.Tag != "" {
		q = tagCondition(q, f.Tag)
	}
	return restrictVisible(q, f.Visible)
}

// pgTagArray is a ticket's tags as a PostgreSQL array, the expression of
// the GIN index idx_tickets_tags (migration step 11): tags are joined by
// single spaces (UpdateTicket, unionTags), so the elements are the tags.
const pgTagArray = "string_to_array(tags, ' ')"

// sqliteTagList is a ticket's tags between spaces, so that " tag "
// matches one whole tag: an expression of SQLite's idx_tickets_queue
// (migration step 11).
const sqliteTagList = "(' ' || tags || ' ')"

// tagCondition keeps the tickets carrying tag. On PostgreSQL it is the
// containment idx_tickets_tags serves, on SQLite a LIKE over the
// expression idx_tickets_queue holds (tagIndexes): each must be written
// as its index's expression for the planner to read it from the index.
//
// On PostgreSQL the tag is a literal, not a parameter: pgx prepares each
// statement once per connection, and after five runs PostgreSQL plans a
// parameter once for every value, guessing 0.5 % of the tickets; that
// plan gathered all of a common tag's tickets to sort them (28 ms for
// tag=vip at a million tickets, 0.8 ms planned for "vip" itself). As a
// literal, each tag is planned with its own frequency. pgEscapeString
// makes it safe whatever standard_conforming_strings says.
func tagCondition(q *gorm.DB, tag string) *gorm.DB {
	if q.Dialector.Name() == DriverPostgres {
		return q.Where(pgTagArray + " @> ARRAY[" + pgEscapeString(tag) + "]::text[]")
	}
	return q.Where(sqliteTagList+` LIKE ? ESCAPE '\'`, "% "+likeEscaper.Replace(tag)+" %")
}

// pgEscapeString quotes s as a PostgreSQL escape string literal (E'…'),
// whose meaning does not depend on standard_conforming_strings. A NUL,
// which no PostgreSQL text can hold, is dropped.
func pgEscapeString(s string) string {
	return "E'" + pgEscaper.Replace(s) + "'"
}

var pgEscaper = strings.NewReplacer(`\`, `\\`, "'", "''", "\x00", "")

// likeEscaper escapes LIKE's wildcards in a literal.
var likeEscaper = strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`)

// ticketRowColumns are the columns of a TicketRow from tickets alone:
// the customer, the assignee and the inbox come from correlated
// subqueries by primary key, evaluated only for the rows of the page. As
// joins, PostgreSQL's planner hash-joins the whole of contacts whenever it
// expects few tickets, a plan that turns slow as contacts grow.
const ticketRowColumns = `tickets.id AS number, tickets.subject, tickets.state, tickets.priority, tickets.breached,
	tickets.repeat_contacts, tickets.tags,
	(SELECT c.email FROM contacts c WHERE c.id = tickets.customer_id) AS customer,
	(SELECT c.name FROM contacts c WHERE c.id = tickets.customer_id) AS customer_name,
	COALESCE((SELECT a.email FROM agents a WHERE a.id = tickets.assignee_id), '') AS assignee,
	(SELECT i.address FROM inboxes i WHERE i.id = tickets.inbox_id) AS inbox,
	tickets.created_at, tickets.updated_at,
	tickets.last_customer_at, tickets.last_agent_at, tickets.merged_into, ` + ticketRowExtra

// ticketRowExtra are the TicketRow columns of the care features (history,
// follow-ups, language, satisfaction) and the mail fuse.
const ticketRowExtra = `tickets.waiting_since, tickets.snoozed_until, tickets.linked_to, tickets.language,
	tickets.satisfaction_score, tickets.satisfaction_comment, tickets.mail_held_since`

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

// inboxExists restricts a tickets query to those an inbox sees. It is a
// scalar subquery by primary key, not EXISTS: PostgreSQL turns an EXISTS
// into a hash semi-join that reads all of ticket_inboxes, where the queue
// needs one probe for each ticket it walks in order.
const inboxExists = "(SELECT ti.inbox_id FROM ticket_inboxes ti WHERE ti.ticket_id = tickets.id AND ti.inbox_id = (SELECT i.id FROM inboxes i WHERE i.address = ?)) IS NOT NULL"

// notSnoozed leaves out tickets an agent put aside until a later time
// (#waiting until, #remind, #snooze); the timer brings them back.
const notSnoozed = "(tickets.snoozed_until IS NULL OR tickets.snoozed_until <= ?)"

// AttentionCounts returns how many open tickets have each attention rank
// (index: the Attention constants), for the queue's summary line. One
// grouped query. visible restricts as QueueFilter.Visible does.
func (s *Store) AttentionCounts(ctx context.Context, inbox string, visible []string) ([AttentionDone + 1]int64, error) {
	var out [AttentionDone + 1]int64
	q := s.db.WithContext(ctx).Table("tickets").Select("tickets.attention, COUNT(*) AS n").
		Where("tickets.merged_into IS NULL AND "+openAttention).Where(notSnoozed, s.now())
	if inbox != "" {
		q = q.Where(inboxExists, inbox)
	}
	q = restrictVisible(q, visible)
	var rows []struct {
		Attention int
		N         int64
	}
	if err := q.Group("tickets.attention").Scan(&rows).Error; err != nil {
		return out, fmt.Errorf("attention counts: %w", err)
	}
	for _, r := range rows {
		if r.Attention >= 0 && r.Attention < len(out) {
			out[r.Attention] = r.N
		}
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
