package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"gorm.io/gorm"
)

// The live feed (WatchChanges) tells every replica which tickets changed,
// through the database that the replicas share: database triggers record
// each change as it is written, whatever code path or process writes it,
// so no write can forget to announce itself. On PostgreSQL the triggers
// NOTIFY a channel (delivered at commit, in commit order, never for a
// rolled-back transaction); on SQLite they append to ticket_changes, which
// one goroutine per process reads by primary key. SQLite has one writer at
// a time, so ids commit in order and "id > last" misses nothing.

// Change kinds, most telling first: a change that is several at once is
// reported by the first of them.
const (
	ChangeMessage  = "message"  // a message arrived, was parsed or moved
	ChangeState    = "state"    // the ticket's state changed
	ChangeDelivery = "delivery" // an outgoing mail was sent, failed or held
	ChangeEvent    = "event"    // a timeline entry: a note, a command, a reply queued
	ChangeTicket   = "ticket"   // another field: assignee, priority, tags, timers' marks
)

var changeOrder = []string{ChangeMessage, ChangeState, ChangeDelivery, ChangeEvent, ChangeTicket}

// Change is what the live feed says about one ticket in one batch.
type Change struct {
	// Ticket is the ticket's number; 0 with Reset.
	Ticket int64
	// Kinds are what changed, most telling first (see ChangeMessage).
	Kinds []string
	// Inboxes see the ticket: what an agent restricted to some inboxes
	// may be told about.
	Inboxes []string
	// Reset says the feed may have missed changes (the PostgreSQL
	// connection was lost and is back): every view must reload.
	Reset bool
}

// Kind is the change's most telling kind.
func (c Change) Kind() string {
	if len(c.Kinds) == 0 {
		return ChangeTicket
	}
	return c.Kinds[0]
}

// TicketChange is one row of the SQLite change log. It holds numbers and
// a kind only, nothing a customer wrote, and is pruned to the newest
// changeKeep rows.
type TicketChange struct {
	ID       int64  `gorm:"primaryKey"`
	TicketID int64  `gorm:"not null"`
	Kind     string `gorm:"size:20;not null"`
}

const (
	// changeChannel is the PostgreSQL NOTIFY channel.
	changeChannel = "tend_live"
	// changePoll is how often SQLite's change log is read: well inside
	// the two seconds a lead may wait, and one indexed query each time.
	changePoll = 200 * time.Millisecond
	// changeKeep rows of the SQLite log survive pruning; changeBatch is
	// the most read at once.
	changeKeep  = 1000
	changeBatch = 1000
)

// sqliteChangeTriggers record every change a lead's view shows. Created
// if missing on every start (not a schema step), so an older binary that
// does not know them still runs on the database.
var sqliteChangeTriggers = []string{
	`CREATE TRIGGER IF NOT EXISTS tend_live_message_insert AFTER INSERT ON messages WHEN NEW.ticket_id IS NOT NULL
	BEGIN INSERT INTO ticket_changes(ticket_id, kind) VALUES (NEW.ticket_id, 'message'); END`,
	`CREATE TRIGGER IF NOT EXISTS tend_live_message_update AFTER UPDATE OF parsed, ticket_id ON messages
	WHEN NEW.parsed IS NOT OLD.parsed OR NEW.ticket_id IS NOT OLD.ticket_id
	BEGIN
		INSERT INTO ticket_changes(ticket_id, kind) SELECT NEW.ticket_id, 'message' WHERE NEW.ticket_id IS NOT NULL;
		INSERT INTO ticket_changes(ticket_id, kind) SELECT OLD.ticket_id, 'message' WHERE OLD.ticket_id IS NOT NULL AND OLD.ticket_id IS NOT NEW.ticket_id;
	END`,
	`CREATE TRIGGER IF NOT EXISTS tend_live_ticket_insert AFTER INSERT ON tickets
	BEGIN INSERT INTO ticket_changes(ticket_id, kind) VALUES (NEW.id, 'ticket'); END`,
	`CREATE TRIGGER IF NOT EXISTS tend_live_ticket_update AFTER UPDATE ON tickets
	BEGIN INSERT INTO ticket_changes(ticket_id, kind) VALUES (NEW.id, CASE WHEN NEW.state IS NOT OLD.state THEN 'state' ELSE 'ticket' END); END`,
	`CREATE TRIGGER IF NOT EXISTS tend_live_event_insert AFTER INSERT ON events
	BEGIN INSERT INTO ticket_changes(ticket_id, kind) VALUES (NEW.ticket_id, 'event'); END`,
	`CREATE TRIGGER IF NOT EXISTS tend_live_outbox_update AFTER UPDATE OF status ON outbox_mails
	WHEN NEW.ticket_id IS NOT NULL AND NEW.status IS NOT OLD.status
	BEGIN INSERT INTO ticket_changes(ticket_id, kind) VALUES (NEW.ticket_id, 'delivery'); END`,
}

// postgresChangeFunction is the trigger function of every table the feed
// watches; pg_notify drops a payload repeated within one transaction, so
// a batch of a hundred events on one ticket is one notification.
const postgresChangeFunction = `CREATE OR REPLACE FUNCTION tend_live_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	t bigint;
	k text;
BEGIN
	IF TG_TABLE_NAME = 'messages' THEN
		IF TG_OP = 'UPDATE' AND OLD.ticket_id IS NOT NULL AND OLD.ticket_id IS DISTINCT FROM NEW.ticket_id THEN
			PERFORM pg_notify('` + changeChannel + `', OLD.ticket_id::text || ' message');
		END IF;
		IF NEW.ticket_id IS NULL OR (TG_OP = 'UPDATE' AND OLD.parsed = NEW.parsed AND OLD.ticket_id IS NOT DISTINCT FROM NEW.ticket_id) THEN
			RETURN NULL;
		END IF;
		t := NEW.ticket_id; k := 'message';
	ELSIF TG_TABLE_NAME = 'tickets' THEN
		t := NEW.id;
		k := CASE WHEN TG_OP = 'UPDATE' AND OLD.state IS DISTINCT FROM NEW.state THEN 'state' ELSE 'ticket' END;
	ELSIF TG_TABLE_NAME = 'events' THEN
		t := NEW.ticket_id; k := 'event';
	ELSIF TG_TABLE_NAME = 'outbox_mails' THEN
		IF NEW.ticket_id IS NULL OR OLD.status IS NOT DISTINCT FROM NEW.status THEN
			RETURN NULL;
		END IF;
		t := NEW.ticket_id; k := 'delivery';
	ELSE
		RETURN NULL;
	END IF;
	PERFORM pg_notify('` + changeChannel + `', t::text || ' ' || k);
	RETURN NULL;
END $$`

// postgresChangeTriggers name each watched table's trigger and when it
// fires.
var postgresChangeTriggers = []struct{ name, table, when string }{
	{"tend_live_messages", "messages", "AFTER INSERT OR UPDATE OF parsed, ticket_id"},
	{"tend_live_tickets", "tickets", "AFTER INSERT OR UPDATE"},
	{"tend_live_events", "events", "AFTER INSERT"},
	{"tend_live_outbox", "outbox_mails", "AFTER UPDATE OF status"},
}

// ensureChangeFeed creates the live feed's table and triggers when they
// are missing.
func (s *Store) ensureChangeFeed(db *gorm.DB) error {
	if s.driver != DriverPostgres {
		if err := db.AutoMigrate(&TicketChange{}); err != nil {
			return fmt.Errorf("change log: %w", err)
		}
		for _, q := range sqliteChangeTriggers {
			if err := db.Exec(q).Error; err != nil {
				return fmt.Errorf("change trigger: %w", err)
			}
		}
		return nil
	}
	if err := db.Exec(postgresChangeFunction).Error; err != nil {
		return fmt.Errorf("change function: %w", err)
	}
	for _, t := range postgresChangeTriggers {
		var n int64
		// Created only when missing: CREATE TRIGGER locks its table,
		// which a replica starting beside busy ones should not do.
		if err := db.Raw("SELECT COUNT(*) FROM pg_trigger WHERE tgname = ? AND tgrelid = ?::regclass", t.name, t.table).Scan(&n).Error; err != nil {
			return fmt.Errorf("change trigger %s: %w", t.name, err)
		}
		if n > 0 {
			continue
		}
		q := fmt.Sprintf("CREATE TRIGGER %s %s ON %s FOR EACH ROW EXECUTE FUNCTION tend_live_notify()", t.name, t.when, t.table)
		if err := db.Exec(q).Error; err != nil {
			return fmt.Errorf("change trigger %s: %w", t.name, err)
		}
	}
	return nil
}

// WatchChanges reports changes to tickets, made by this process or any
// other on the same database, until ctx ends. fn is called from one
// goroutine with each batch: one Change per ticket, Inboxes resolved by
// one query for the whole batch, so the cost is per change and not per
// viewer. Its first batch is a Reset once the feed is listening (and
// another after each reconnect on PostgreSQL): what was written before
// it is not reported. It returns nil when ctx ends.
func (s *Store) WatchChanges(ctx context.Context, fn func([]Change)) error {
	if s.driver == DriverPostgres {
		return s.listenChanges(ctx, fn)
	}
	return s.pollChanges(ctx, fn)
}

// pollChanges reads SQLite's change log from where it stood at the start.
func (s *Store) pollChanges(ctx context.Context, fn func([]Change)) error {
	db := s.db.WithContext(ctx)
	var last int64
	if err := db.Model(&TicketChange{}).Select("COALESCE(MAX(id), 0)").Scan(&last).Error; err != nil {
		return fmt.Errorf("change log: %w", err)
	}
	// What piled up while no server read the log (an import run with the
	// server stopped) is history: only the newest rows are kept.
	if err := db.Where("id <= ?", last-changeKeep).Delete(&TicketChange{}).Error; err != nil {
		return fmt.Errorf("change log pruning: %w", err)
	}
	t := time.NewTicker(changePoll)
	defer t.Stop()
	pruned := last
	fn([]Change{{Reset: true}})
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		var rows []TicketChange
		if err := db.Where("id > ?", last).Order("id").Limit(changeBatch).Find(&rows).Error; err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Warn("change log", "err", err)
			continue
		}
		if len(rows) == 0 {
			continue
		}
		last = rows[len(rows)-1].ID
		seen := make([]changeRef, len(rows))
		for i, r := range rows {
			seen[i] = changeRef{r.TicketID, r.Kind}
		}
		if err := s.deliverChanges(ctx, seen, fn); err != nil && ctx.Err() == nil {
			s.log.Warn("change log", "err", err)
		}
		if last-pruned > 4*changeKeep {
			// The log only has to outlive one poll; keeping the newest
			// rows also keeps ids growing (SQLite reuses the rowid of an
			// emptied table).
			if err := db.Where("id <= ?", last-changeKeep).Delete(&TicketChange{}).Error; err != nil && ctx.Err() == nil {
				s.log.Warn("change log pruning", "err", err)
			}
			pruned = last
		}
	}
}

// changeRef is one recorded change: a ticket and a kind.
type changeRef struct {
	ticket int64
	kind   string
}

// deliverChanges folds a batch of (ticket, kind) pairs into one Change
// per ticket, in the order tickets first changed, with their inboxes.
func (s *Store) deliverChanges(ctx context.Context, batch []changeRef, fn func([]Change)) error {
	idx := map[int64]int{}
	var out []Change
	for _, p := range batch {
		n, kind := p.ticket, p.kind
		i, ok := idx[n]
		if !ok {
			i = len(out)
			idx[n] = i
			out = append(out, Change{Ticket: n})
		}
		if !slices.Contains(out[i].Kinds, kind) {
			out[i].Kinds = append(out[i].Kinds, kind)
		}
	}
	ids := make([]int64, len(out))
	for i := range out {
		ids[i] = out[i].Ticket
		slices.SortFunc(out[i].Kinds, func(a, b string) int { return slices.Index(changeOrder, a) - slices.Index(changeOrder, b) })
	}
	var rows []struct {
		TicketID int64
		Address  string
	}
	if err := s.db.WithContext(ctx).Table("ticket_inboxes ti").Select("ti.ticket_id, inboxes.address").
		Joins("JOIN inboxes ON inboxes.id = ti.inbox_id").Where("ti.ticket_id IN ?", ids).Order("inboxes.id").Scan(&rows).Error; err != nil {
		return fmt.Errorf("change inboxes: %w", err)
	}
	for _, r := range rows {
		c := &out[idx[r.TicketID]]
		c.Inboxes = append(c.Inboxes, r.Address)
	}
	fn(out)
	return nil
}

// listenChanges LISTENs on PostgreSQL, on a connection of its own, and
// reconnects when it is lost; after each (re)connect it reports a Reset,
// since what was notified in between is gone.
func (s *Store) listenChanges(ctx context.Context, fn func([]Change)) error {
	cfg, err := pgconn.ParseConfig(s.dsn)
	if err != nil {
		return fmt.Errorf("change feed: %w", err)
	}
	notes := make(chan string, 4*changeBatch)
	// reset asks the consumer for a Reset: fn is only ever called from
	// the consumer's goroutine.
	reset := make(chan struct{}, 1)
	askReset := func() {
		select {
		case reset <- struct{}{}:
		default:
		}
	}
	cfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) {
		select {
		case notes <- n.Payload:
		default:
			// The consumer fell behind: rather than block the
			// connection, tell every view to reload.
			askReset()
		}
	}
	// Ending the wait by a deadline, not by a cancel request that opens a
	// connection of its own.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	consumed := make(chan struct{})
	go func() {
		defer close(consumed)
		s.consumeChanges(ctx, notes, reset, fn)
	}()
	// fn is not called after WatchChanges returns.
	defer func() { <-consumed }()
	backoff := time.Second
	for {
		err := s.listenOnce(ctx, cfg, func() {
			backoff = time.Second
			askReset()
		})
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("change feed: connection lost, reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// listenOnce connects, LISTENs and waits for notifications until the
// connection fails or ctx ends.
func (s *Store) listenOnce(ctx context.Context, cfg *pgconn.Config, up func()) error {
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close(context.WithoutCancel(ctx)) }()
	if _, err := c.Exec(ctx, "LISTEN "+changeChannel).ReadAll(); err != nil {
		return err
	}
	up()
	for {
		if err := c.WaitForNotification(ctx); err != nil {
			return err
		}
	}
}

// consumeChanges turns notifications into batches: whatever arrived
// while the previous batch was being resolved is one batch.
func (s *Store) consumeChanges(ctx context.Context, notes <-chan string, reset <-chan struct{}, fn func([]Change)) {
	for {
		var first string
		select {
		case <-ctx.Done():
			return
		case <-reset:
			fn([]Change{{Reset: true}})
			continue
		case first = <-notes:
		}
		batch := []changeRef{}
		add := func(p string) {
			num, kind, ok := strings.Cut(p, " ")
			n, err := strconv.ParseInt(num, 10, 64)
			if ok && err == nil {
				batch = append(batch, changeRef{n, kind})
			}
		}
		add(first)
	drain:
		for len(batch) < changeBatch {
			select {
			case p := <-notes:
				add(p)
			default:
				break drain
			}
		}
		if len(batch) == 0 {
			continue
		}
		if err := s.deliverChanges(ctx, batch, fn); err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
			s.log.Warn("change feed", "err", err)
		}
	}
}
