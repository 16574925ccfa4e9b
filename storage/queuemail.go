package storage

import (
	"context"
	"fmt"
)

// QueuedMail is one outgoing mail for QueueMails: its outbox row, the
// message row that puts it on the ticket, and Build, called with the
// row's new ID (for the Message-ID and the VERP return path), which
// returns the mail's Message-ID, envelope sender and the maker of its
// bytes (Composed).
type QueuedMail struct {
	Outbox  OutboxMail
	Message Message
	Build   func(id int64) (Composed, error)
}

// QueueMail commits an outgoing mail: the outbox row, and a message row on
// the ticket so that replies to it thread. build is called with the new
// row's ID, as QueuedMail.Build is.
func (t *Tx) QueueMail(ctx context.Context, o OutboxMail, m Message, build func(id int64) (Composed, error)) (int64, error) {
	ids, err := t.QueueMails(ctx, []QueuedMail{{Outbox: o, Message: m, Build: build}})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// QueueMails commits outgoing mails as QueueMail does, in three
// statements whatever their number: their IDs are taken first, so each
// outbox row is inserted whole, with its Message-ID, instead of being
// inserted and then updated (a second write of the row and its Message-ID
// index entry), and all rows go in one multi-row INSERT per table (the
// outbox rows, the message rows). Their bytes are composed meanwhile and
// stored with the transaction's others when it ends (flushBodies).
// It returns the outbox IDs in the order of mails.
func (t *Tx) QueueMails(ctx context.Context, mails []QueuedMail) ([]int64, error) {
	if len(mails) == 0 {
		return nil, nil
	}
	now := t.s.now()
	db := t.db.WithContext(ctx)
	ids, err := t.outboxIDs(ctx, len(mails))
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	outs := make([]OutboxMail, len(mails))
	msgs := make([]Message, len(mails))
	made := make([]Composed, len(mails))
	for i, q := range mails {
		o, m, id := q.Outbox, q.Message, ids[i]
		// A row may be queued held (the ticket's fuse) or deferred (a
		// not-before time in NextAttemptAt); by default it is due now.
		if o.Status == "" {
			o.Status = OutboxPending
		}
		if o.NextAttemptAt.IsZero() || o.NextAttemptAt.Before(now) {
			o.NextAttemptAt = now
		}
		o.ID, o.CreatedAt = id, now
		c, err := q.Build(id)
		if err != nil {
			return nil, fmt.Errorf("outbox %d: compose: %w", id, err)
		}
		o.MessageID, o.EnvFrom = c.MessageID, c.EnvFrom
		// Size is set with the bytes (setOutboxSizes).
		m.Direction, m.MessageID, m.RawHash, m.OutboxID, m.ReceivedAt, m.Parsed, m.Handled = DirectionOut, c.MessageID, outboxRawHash(id), &ids[i], now, true, true
		outs[i], msgs[i], made[i] = o, m, c
	}
	if err := insertRows(ctx, t.s, db, outs, false); err != nil {
		return nil, fmt.Errorf("outbox %d: %w", ids[0], err)
	}
	if err := insertRows(ctx, t.s, db, msgs, false); err != nil {
		return nil, fmt.Errorf("outbox %d message: %w", ids[0], err)
	}
	for i, c := range made {
		t.startBody(ids[i], c.Raw)
	}
	return ids, nil
}

// outboxIDs takes n new outbox row IDs in the transaction. On PostgreSQL
// they come from the column's sequence, as an INSERT's default would. On
// SQLite, whose writers take turns, they follow the highest ever handed
// out: the table is AUTOINCREMENT, so an ID is never used again, even
// after its row was deleted (a bounce names its outbox row by ID in the
// VERP address, and must never find a newer mail), and SQLite raises
// sqlite_sequence to an ID inserted explicitly.
func (t *Tx) outboxIDs(ctx context.Context, n int) ([]int64, error) {
	db := t.db.WithContext(ctx)
	ids := make([]int64, 0, n)
	if db.Dialector.Name() == DriverPostgres {
		if err := db.Raw(`SELECT nextval(pg_get_serial_sequence('outbox_mails', 'id')) FROM generate_series(1, ?)`, n).Scan(&ids).Error; err != nil {
			return nil, err
		}
		if len(ids) != n {
			return nil, fmt.Errorf("took %d of %d IDs", len(ids), n)
		}
		return ids, nil
	}
	// Looked up once per transaction: a savepoint rolled back after
	// taking IDs leaves a gap, which is allowed; an ID used twice is not,
	// and none can be, as nothing else inserts outbox rows.
	if t.nextOutbox == 0 {
		var last int64
		if err := db.Raw(`SELECT COALESCE(MAX(n), 0) FROM (SELECT seq AS n FROM sqlite_sequence WHERE name = 'outbox_mails' UNION ALL SELECT MAX(id) FROM outbox_mails)`).Scan(&last).Error; err != nil {
			return nil, err
		}
		t.nextOutbox = last + 1
	}
	for range n {
		ids = append(ids, t.nextOutbox)
		t.nextOutbox++
	}
	return ids, nil
}
