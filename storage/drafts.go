package storage

import (
	"context"
	"fmt"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tendhq/tend/vocab"
)

// Composed is what QueuedMail.Build returns for a new outbox row: the
// mail's Message-ID and envelope sender, which go into the rows at once,
// and Raw, which makes the bytes the relay gets.
//
// Raw runs on another goroutine, beside the rest of the transaction that
// queued the mail, and its bytes are stored just before that transaction
// commits (Tx.flushBodies): composing (quoted-printable and base64
// bodies, a DKIM signature) was a fifth of the processing transaction's
// time, and on SQLite that transaction is the one writer everything else
// waits for (issue 13). Raw must not use the transaction.
type Composed struct {
	MessageID, EnvFrom string
	Raw                func() ([]byte, error)
}

// bodyJob is one outbox row's bytes on their way: composed by a
// goroutine, stored by flushBodies.
type bodyJob struct {
	id     int64 // outbox row
	done   chan struct{}
	raw    []byte
	packed []byte // raw compressed, nil when not worth it (packer.packMail)
	err    error
}

// savepointMark is how many body jobs a transaction had when a savepoint
// was set: rolling back to it forgets the jobs queued since. Timeline
// entries are inserted before a savepoint is set (Tx.Savepoint): those
// held at a rollback were all taken since.
type savepointMark struct {
	name string
	jobs int
}

// startBody composes the bytes of outbox row id on another goroutine. At
// most GOMAXPROCS compose at once, whatever the number of transactions.
func (t *Tx) startBody(id int64, raw func() ([]byte, error)) {
	j := &bodyJob{id: id, done: make(chan struct{})}
	t.bodies = append(t.bodies, j)
	go func() {
		defer close(j.done)
		t.s.composers <- struct{}{}
		defer func() { <-t.s.composers }()
		defer func() {
			// A panic in a template's data must not take the server
			// down from a goroutine nobody waits on: it fails this mail.
			if r := recover(); r != nil {
				j.raw, j.err = nil, fmt.Errorf("compose panicked: %v", r)
			}
		}()
		j.raw, j.err = raw()
		if j.err == nil {
			// Most of what the pipeline writes to the database for each
			// message was its outgoing mail's bytes (two notifications
			// that quote it, the acknowledgement), written to the WAL
			// page by page, copied again at the checkpoint and, for
			// staff mail, freed a moment later: a third of them is
			// what the writer then copies.
			j.packed = t.s.pack.packMail(j.raw)
		}
	}()
}

// markSavepoint, rollbackMark and releaseMark keep the body jobs in step
// with the transaction's savepoints: what a rolled-back savepoint queued
// is not stored.
func (t *Tx) markSavepoint(name string) {
	t.marks = append(t.marks, savepointMark{name: name, jobs: len(t.bodies)})
}

func (t *Tx) rollbackMark(name string) {
	for i := len(t.marks) - 1; i >= 0; i-- {
		if t.marks[i].name == name {
			// ROLLBACK TO keeps the savepoint itself open.
			t.bodies = t.bodies[:t.marks[i].jobs]
			t.events = t.events[:0]
			t.parsedAttachments = nil
			t.marks = t.marks[:i+1]
			return
		}
	}
}

func (t *Tx) releaseMark(name string) {
	for i := len(t.marks) - 1; i >= 0; i-- {
		if t.marks[i].name == name {
			t.marks = t.marks[:i]
			return
		}
	}
}

// flushBodies waits for the transaction's composed bytes and stores them,
// with the sizes of their message rows, in one statement each. A row
// queued again (RequeueMail) keeps its last bytes. A mail whose bytes
// could not be made (Check has already passed its header, so this is
// not bad data but a fault) is marked failed, with the error on the
// ticket's timeline, instead of undoing the whole batch: the other mails
// of the transaction go out.
func (t *Tx) flushBodies(ctx context.Context) error {
	if len(t.bodies) == 0 {
		return nil
	}
	last := map[int64]*bodyJob{}
	var order []int64
	for _, j := range t.bodies {
		if _, ok := last[j.id]; !ok {
			order = append(order, j.id)
		}
		last[j.id] = j
	}
	t.bodies, t.marks = nil, nil
	rows := make([]OutboxBody, 0, len(order))
	var failed []*bodyJob
	for _, id := range order {
		j := last[id]
		select {
		case <-j.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if j.err != nil {
			failed = append(failed, j)
			continue
		}
		row := OutboxBody{OutboxID: id, Raw: j.raw}
		if j.packed != nil {
			row.Raw, row.Packed = j.packed, int64(len(j.raw))
		}
		rows = append(rows, row)
	}
	if err := t.insertBodies(ctx, rows); err != nil {
		return err
	}
	if len(rows) > 0 {
		if err := t.setOutboxSizes(ctx, rows); err != nil {
			return err
		}
	}
	for _, j := range failed {
		if err := t.failUncomposed(ctx, j); err != nil {
			return err
		}
	}
	return nil
}

// bodyStatementBytes bounds the bytes one statement of insertBodies
// carries. A database connection keeps the buffer of the largest
// statement it sent: a batch's bodies in one statement grew each of
// PostgreSQL's 20 connections a buffer of megabytes (tend bench, C=16:
// peak RSS from 80 to 180 MiB; 118 with 256 KiB, 101 with 64 KiB, where
// the bodies a batch holds until its commit are most of the rest).
const bodyStatementBytes = 64 << 10

// insertBodies upserts rows, bodyChunks at a time.
func (t *Tx) insertBodies(ctx context.Context, rows []OutboxBody) error {
	db := t.db.WithContext(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "outbox_id"}}, DoUpdates: clause.AssignmentColumns([]string{"raw", "packed"})})
	for _, chunk := range bodyChunks(rows) {
		if err := db.Create(&chunk).Error; err != nil {
			return fmt.Errorf("outbox bodies: %w", err)
		}
	}
	return nil
}

// bodyChunks cuts rows into runs of at most bodyStatementBytes of bytes
// (a larger body goes alone), in order.
func bodyChunks(rows []OutboxBody) [][]OutboxBody {
	var out [][]OutboxBody
	for len(rows) > 0 {
		n, size := 1, len(rows[0].Raw)
		for n < len(rows) && size+len(rows[n].Raw) <= bodyStatementBytes {
			size += len(rows[n].Raw)
			n++
		}
		out = append(out, rows[:n])
		rows = rows[n:]
	}
	return out
}

// setOutboxSizes records the size of each composed mail on its message
// row, in one statement.
func (t *Tx) setOutboxSizes(ctx context.Context, rows []OutboxBody) error {
	var b strings.Builder
	args := make([]any, 0, 2*len(rows))
	ids := make([]int64, len(rows))
	b.WriteString("CASE outbox_id")
	for i, r := range rows {
		b.WriteString(" WHEN ? THEN ?")
		args = append(args, r.OutboxID, r.size())
		ids[i] = r.OutboxID
	}
	b.WriteString(" ELSE size END")
	if err := t.db.WithContext(ctx).Model(&Message{}).Where("outbox_id IN ?", ids).
		Update("size", gorm.Expr(b.String(), args...)).Error; err != nil {
		return fmt.Errorf("outbox sizes: %w", err)
	}
	return nil
}

// size is the size of the mail r holds.
func (r OutboxBody) size() int64 {
	if r.Packed > 0 {
		return r.Packed
	}
	return int64(len(r.Raw))
}

// bytes returns the mail r holds, unpacked.
func (r OutboxBody) bytes(p *packer) ([]byte, error) {
	if r.Packed == 0 {
		return r.Raw, nil
	}
	b, err := p.unpack(r.Raw, r.Packed)
	if err != nil {
		return nil, fmt.Errorf("outbox %d: %w", r.OutboxID, err)
	}
	return b, nil
}

// failUncomposed marks the outbox row of a mail whose bytes could not be
// made as failed, and says so on its ticket.
func (t *Tx) failUncomposed(ctx context.Context, j *bodyJob) error {
	o, ok, err := t.FailOutbox(ctx, j.id, "compose: "+j.err.Error())
	if err != nil || !ok {
		return err
	}
	t.s.log.Error("outgoing mail could not be composed", "outbox", j.id, "err", j.err)
	if o.TicketID == nil {
		return nil
	}
	return t.AddEvent(ctx, *o.TicketID, vocab.EventOutboxFailed, "", fmt.Sprintf("%s to %s could not be composed: %v", o.Kind, o.EnvTo, j.err), nil)
}
