package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/tendhq/tend/vocab"
)

// InTx runs fn in one transaction: everything the rules decide for an
// event (state, outbox rows, timers, timeline) commits together or not at
// all. The bytes of the mail fn queued are stored last (flushBodies).
func (s *Store) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	return s.write(ctx, false, func(db *gorm.DB) error {
		tx := &Tx{db: db, s: s}
		if err := fn(tx); err != nil {
			return err
		}
		if err := tx.flushBodies(ctx); err != nil {
			return err
		}
		return tx.flushEvents(ctx)
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

// IngestWaiting reports whether the group commit waits, so that a long
// transaction (a processing batch) should end soon and senders waiting
// for their 250 are not held up by background work. On SQLite it waits
// for the one writer. On PostgreSQL it is a commit running longer than
// ingestPatience: most likely it waits for a row lock a batch holds (the
// ticket a reply arrives on, updated by the batch that processes the
// message before it), which only that batch's commit releases; tend bench
// at C=4 saw 1 s for a 250 that way.
func (s *Store) IngestWaiting() bool {
	if s.driver == DriverSQLite {
		return s.gate.urgentWaiting()
	}
	start := s.committing.Load()
	return start != 0 && time.Since(time.Unix(0, start)) > ingestPatience
}

// ingestPatience is how long a PostgreSQL group commit runs before
// IngestWaiting says it waits: a commit of a few messages takes a few
// milliseconds. This is scheduling, not business time: the real clock.
const ingestPatience = 20 * time.Millisecond

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
	db := t.db.WithContext(ctx)
	var v TicketView
	asked := number
	for hops := 0; ; hops++ {
		if hops == maxMergeHops {
			return TicketView{}, fmt.Errorf("ticket %d: merge chain too long", asked)
		}
		// The executor reads a ticket like this for every message: a
		// merged ticket is followed by reading the one it went into
		// (rare), not by a lookup before every read.
		ok, err := t.ticketParts(ctx, db, number, &v)
		if err != nil {
			return TicketView{}, fmt.Errorf("ticket %d: %w", asked, err)
		}
		if !ok {
			return TicketView{}, fmt.Errorf("ticket %d: %w", asked, ErrNotFound)
		}
		if v.Ticket.MergedInto == nil {
			break
		}
		number = *v.Ticket.MergedInto
	}
	v.Ticket.Customer, v.Ticket.Inbox = &v.Customer, &v.Inbox
	if id := v.Ticket.AssigneeID; id != nil {
		as, err := selectRows[Agent](ctx, t.s, db, nil, "WHERE id = ?", *id)
		if err != nil {
			return TicketView{}, fmt.Errorf("ticket %d assignee: %w", asked, err)
		}
		if len(as) > 0 {
			v.Assignee, v.Ticket.Assignee = &as[0], &as[0]
		}
	}
	var err error
	if v.Participants, err = selectRows[Participant](ctx, t.s, db, nil, "WHERE ticket_id = ? ORDER BY created_at, email", number); err != nil {
		return TicketView{}, fmt.Errorf("ticket %d participants: %w", asked, err)
	}
	if v.Inboxes, err = ticketInboxes(ctx, t.db, number); err != nil {
		return TicketView{}, err
	}
	return v, nil
}

// ticketParts reads ticket number (without the stems, which only
// clustering reads), its customer and its inbox into v in one joined
// statement, each column scanned straight into its field (selectRows'
// plans): gorm's joined Find of the three was 3.6% of tend bench's CPU,
// and one statement a part cost PostgreSQL two more round trips a
// message. ok is false when there is no such ticket.
func (t *Tx) ticketParts(ctx context.Context, db *gorm.DB, number int64, v *TicketView) (ok bool, err error) {
	tp, err := planSelect[Ticket](t.s, db, []string{"stems"})
	if err != nil {
		return false, err
	}
	cp, err := planSelect[Contact](t.s, db, nil)
	if err != nil {
		return false, err
	}
	ip, err := planSelect[Inbox](t.s, db, nil)
	if err != nil {
		return false, err
	}
	q := "SELECT " + tp.columns("t") + ", " + cp.columns("c") + ", " + ip.columns("i") +
		" FROM tickets t JOIN contacts c ON c.id = t.customer_id JOIN inboxes i ON i.id = t.inbox_id WHERE t.id = ?"
	if db.DryRun {
		// CaptureSQL records the statement; nothing runs.
		return false, db.Raw(q, number).Scan(&struct{}{}).Error
	}
	rs, err := queryRows(ctx, db, tp.postgres, q, number)
	if err != nil {
		return false, err
	}
	defer rs.Close()
	if !rs.Next() {
		return false, rs.Err()
	}
	v.Ticket, v.Customer, v.Inbox = Ticket{}, Contact{}, Inbox{}
	dest := tp.fields(&v.Ticket, nil)
	dest = cp.fields(&v.Customer, dest)
	dest = ip.fields(&v.Inbox, dest)
	if err := rs.Scan(dest...); err != nil {
		return false, err
	}
	return true, rs.Err()
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
	State           *vocab.State
	CloseReason     *string
	Priority        *string
	AssigneeID      *int64
	AddTags         []string
	RepeatContacts  int // added
	Breached        *bool
	FirstResponseAt *time.Time
	LastAgentAt     *time.Time
	Language        *string // the customer's language (ISO 639-1)
}

// Merge adds v to u, as if v were applied after u: v's fields replace
// u's, its repeat contacts add to u's, its tags join u's.
func (u *TicketUpdate) Merge(v TicketUpdate) {
	if v.State != nil {
		u.State = v.State
	}
	if v.CloseReason != nil {
		u.CloseReason = v.CloseReason
	}
	if v.Priority != nil {
		u.Priority = v.Priority
	}
	if v.AssigneeID != nil {
		u.AssigneeID = v.AssigneeID
	}
	if v.Breached != nil {
		u.Breached = v.Breached
	}
	if v.FirstResponseAt != nil && u.FirstResponseAt == nil {
		// The first one stands (COALESCE in UpdateTicket).
		u.FirstResponseAt = v.FirstResponseAt
	}
	if v.LastAgentAt != nil {
		u.LastAgentAt = v.LastAgentAt
	}
	if v.Language != nil {
		u.Language = v.Language
	}
	u.RepeatContacts += v.RepeatContacts
	u.AddTags = append(u.AddTags, v.AddTags...)
}

// UpdateTicket applies u to ticket number.
func (t *Tx) UpdateTicket(ctx context.Context, number int64, u TicketUpdate) error {
	now := t.s.now()
	upd := map[string]any{"updated_at": now}
	if u.State != nil {
		upd["state"] = *u.State
		switch *u.State {
		case vocab.StateResolved, vocab.StateClosed:
			upd["resolved_at"] = now
			upd["waiting_since"] = nil
		case vocab.StateOpen, vocab.StateNew, vocab.StateWaiting, vocab.StateProposed:
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
	if u.Language != nil {
		upd["language"] = *u.Language
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

// AddEvent puts an entry on a ticket's timeline. It is inserted with the
// transaction's others (flushEvents): a message's handling puts three or
// four on its timeline, each an INSERT of its own before.
func (t *Tx) AddEvent(ctx context.Context, ticket int64, kind vocab.EventKind, actor, detail string, msgRow *int64) error {
	t.events = append(t.events, Event{TicketID: ticket, Kind: kind, Actor: safeText(actor), Detail: safeText(detail), MessageRowID: msgRow, CreatedAt: t.s.now()})
	return nil
}

// flushEvents inserts the timeline entries AddEvent took, in order.
func (t *Tx) flushEvents(ctx context.Context) error {
	if len(t.events) == 0 {
		return nil
	}
	if err := insertRows(ctx, t.s, t.db, t.events, false); err != nil {
		return fmt.Errorf("events: %w", err)
	}
	t.events = t.events[:0]
	return nil
}

// AddParticipants lets addresses take part in a ticket.
func (t *Tx) AddParticipants(ctx context.Context, ticket int64, emails []string, role string) error {
	return addParticipants(t.s, t.db.WithContext(ctx), ticket, emails, role, t.s.now())
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
	if t.agents == nil {
		var as []Agent
		if err := t.db.WithContext(ctx).Order("id").Find(&as).Error; err != nil {
			return nil, fmt.Errorf("agents: %w", err)
		}
		if as == nil {
			as = []Agent{}
		}
		t.agents = as
	}
	return slices.Clone(t.agents), nil
}

// Messages returns a ticket's messages in order, their headers only: the
// bodies (text, HTML, evidence) are left out, as the rules never read
// earlier messages' bodies and a long ticket's would be costly.
func (t *Tx) Messages(ctx context.Context, ticket int64) ([]Message, error) {
	ms, err := selectRows[Message](ctx, t.s, t.db.WithContext(ctx), []string{"text", "html", "evidence"}, "WHERE ticket_id = ? ORDER BY id", ticket)
	if err != nil {
		return nil, fmt.Errorf("messages of %d: %w", ticket, err)
	}
	return ms, nil
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

// safeText makes text from the outside (a remote server's diagnostic, a
// subject) storable in every backend: valid UTF-8, no NUL.
func safeText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// Snooze keeps ticket out of the queue until until (nil: back now).
func (t *Tx) Snooze(ctx context.Context, ticket int64, until *time.Time) error {
	if until != nil {
		u := until.UTC() // compared with the clock as text on SQLite
		until = &u
	}
	err := t.db.WithContext(ctx).Model(&Ticket{}).Where("id = ?", ticket).
		Updates(map[string]any{"snoozed_until": until, "updated_at": t.s.now()}).Error
	if err != nil {
		return fmt.Errorf("snooze %d: %w", ticket, err)
	}
	return nil
}
