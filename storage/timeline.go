package storage

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tendhq/tend/vocab"
)

// Events returns ticket's timeline entries of the given kinds (all kinds
// when none is given), oldest first. The executor reads them to find what
// happened since a moment: who answered the customer, which reply is held,
// when resolution was proposed.
func (t *Tx) Events(ctx context.Context, ticket int64, kinds ...vocab.EventKind) ([]Event, error) {
	if err := t.flushEvents(ctx); err != nil {
		return nil, err
	}
	q := t.db.WithContext(ctx).Where("ticket_id = ?", ticket)
	if len(kinds) > 0 {
		q = q.Where("kind IN ?", kinds)
	}
	var evs []Event
	if err := q.Order("id").Find(&evs).Error; err != nil {
		return nil, fmt.Errorf("events of %d: %w", ticket, err)
	}
	return evs, nil
}

// OutboxMailByMessageID returns the outgoing mail that was sent with
// Message-ID msgID (without its raw bytes); ok is false when there is none.
func (t *Tx) OutboxMailByMessageID(ctx context.Context, msgID string) (OutboxMail, bool, error) {
	var os []OutboxMail
	if err := t.db.WithContext(ctx).Where("message_id = ?", msgID).Limit(1).Find(&os).Error; err != nil {
		return OutboxMail{}, false, fmt.Errorf("outbox by message id: %w", err)
	}
	if len(os) == 0 {
		return OutboxMail{}, false, nil
	}
	return os[0], true, nil
}

// LockTicket takes ticket's row lock on PostgreSQL until the transaction
// ends, so that two agents' replies to one ticket are decided one after the
// other: the second sees the first's answer. SQLite's write transactions
// are serialised already.
func (t *Tx) LockTicket(ctx context.Context, ticket int64) error {
	if t.s.driver != DriverPostgres {
		return nil
	}
	var ids []int64
	if err := t.db.WithContext(ctx).Model(&Ticket{}).Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate}).
		Where("id = ?", ticket).Pluck("id", &ids).Error; err != nil {
		return fmt.Errorf("lock ticket %d: %w", ticket, err)
	}
	return nil
}

// LockBatch takes, on PostgreSQL, a lock on each customer of tickets
// until the transaction ends: a processing batch decides about these
// customers' tickets and counts the automatic mail sent to them (the
// flood caps), and another batch doing the same at once (another worker,
// another replica) would count without seeing it. A customer another
// batch holds is left to it: busy are the tickets of such customers,
// which the caller must not process now (the processor hands their work
// back). Waiting for them instead made the workers queue behind one
// another, since a busy hour's batches share customers (three of four
// PostgreSQL workers stood in this lock in tend bench). Only when every
// customer is held does the batch wait, for all of them in id order, so
// that it makes progress and two waiting batches cannot both hold some;
// a batch that took its locks without waiting never waits for one.
// Advisory locks, not row locks: intake writes contacts and tickets (a
// reply reopens its ticket) and must not wait for whole batches. SQLite's
// write transactions are serialised already: nothing is busy there.
func (t *Tx) LockBatch(ctx context.Context, tickets []int64) (busy []int64, err error) {
	if t.s.driver != DriverPostgres || len(tickets) == 0 {
		return nil, nil
	}
	db := t.db.WithContext(ctx)
	// MATERIALIZED: each customer is tried once, whatever the join does.
	err = db.Raw("WITH c AS MATERIALIZED (SELECT customer_id, pg_try_advisory_xact_lock(? + customer_id) AS ok "+
		"FROM (SELECT DISTINCT customer_id FROM tickets WHERE id IN ? ORDER BY customer_id) d) "+
		"SELECT tickets.id FROM tickets JOIN c ON c.customer_id = tickets.customer_id WHERE tickets.id IN ? AND NOT c.ok ORDER BY tickets.id",
		customerLocks, tickets, tickets).Scan(&busy).Error
	if err != nil {
		return nil, fmt.Errorf("lock customers: %w", err)
	}
	if len(busy) < len(distinct(tickets)) {
		return busy, nil
	}
	// The ordered subquery hands the ids to the lock function in order.
	err = db.Exec("SELECT pg_advisory_xact_lock(? + c.customer_id) FROM "+
		"(SELECT DISTINCT customer_id FROM tickets WHERE id IN ? ORDER BY customer_id) c", customerLocks, tickets).Error
	if err != nil {
		return nil, fmt.Errorf("lock customers: %w", err)
	}
	return nil, nil
}

// distinct returns ids without repeats.
func distinct(ids []int64) map[int64]bool {
	m := make(map[int64]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// customerLocks is where LockBatch's advisory lock keys start (customer
// id added), apart from the schema migration's (migrate.go).
const customerLocks int64 = 0x74656e64 << 32 // "tend"

// AttachmentNames returns the file names of a message's attachments (not
// inline parts), in order, for the acknowledgement and notifications.
func (t *Tx) AttachmentNames(ctx context.Context, msgRowID int64) ([]string, error) {
	rows, err := t.Attachments(ctx, msgRowID)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, a := range rows {
		if !a.Inline {
			names = append(names, a.Filename)
		}
	}
	return names, nil
}

// Message returns one message with its body, read inside the transaction
// (so a message parsed earlier in the same batch is seen with its text).
func (t *Tx) Message(ctx context.Context, rowID int64) (Message, error) {
	var m Message
	err := t.db.WithContext(ctx).Where("id = ?", rowID).Take(&m).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Message{}, fmt.Errorf("message %d: %w", rowID, ErrNotFound)
	}
	if err != nil {
		return Message{}, fmt.Errorf("message %d: %w", rowID, err)
	}
	return m, nil
}
