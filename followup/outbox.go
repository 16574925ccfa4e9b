package followup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tendhq/tend/internal/worker"
	"github.com/tendhq/tend/mail/relay"
	"github.com/tendhq/tend/rules"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/vocab"
)

// Sender delivers the outbox through the relay.
type Sender struct {
	store    *storage.Store
	exec     *Executor
	relay    *relay.Client
	owner    string
	clock    storage.Clock
	retryFor time.Duration
	lease    time.Duration
	loop     worker.Options
	wake     chan struct{}
	rnd      func() float64
	log      *slog.Logger
	// keepStaff keeps staff mail's composed bytes once relayed.
	keepStaff bool
}

// SenderOptions configure a Sender.
type SenderOptions struct {
	Owner    string
	Clock    storage.Clock
	RetryFor time.Duration // give up on temporary failures after this
	Period   time.Duration
	// Lease is how long a claimed mail stays this sender's without
	// renewal (default 10 minutes).
	Lease  time.Duration
	Logger *slog.Logger
	// KeepStaffBodies keeps the composed bytes of mail to staff once the
	// relay has taken it, for housekeeping to prune later
	// (retention.notification_bodies). By default they are dropped at
	// once: a notification copies what the ticket already holds, and
	// forwarded attachments made the outbox outweigh the mail received.
	KeepStaffBodies bool
}

// NewSender returns the outbox sender.
func NewSender(store *storage.Store, exec *Executor, rc *relay.Client, o SenderOptions) *Sender {
	if o.RetryFor <= 0 {
		o.RetryFor = 48 * time.Hour
	}
	if o.Clock == nil {
		o.Clock = storage.SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Period <= 0 {
		o.Period = 5 * time.Second
	}
	if o.Lease <= 0 {
		o.Lease = 10 * time.Minute
	}
	s := &Sender{store: store, exec: exec, relay: rc, owner: o.Owner, clock: o.Clock, retryFor: o.RetryFor, lease: o.Lease, rnd: rand.Float64, log: o.Logger, keepStaff: o.KeepStaffBodies}
	s.wake = make(chan struct{}, 1)
	s.loop = worker.Options{Name: "outbox", Log: o.Logger, Wake: s.wake, Period: o.Period}
	return s
}

// Wake tells the sender there may be mail to send.
func (s *Sender) Wake() { worker.Wake(s.wake) }

// Run sends until ctx ends.
func (s *Sender) Run(ctx context.Context) error { return worker.Loop(ctx, s.loop, s.RunOnce) }

// RunOnce sends the mail due now and returns how many rows it claimed.
// Rows are claimed with a lease, sent a few at a time, and their outcomes
// committed in one transaction (savepoint per row), not one each: on
// SQLite every transaction waits its turn for the one writer, and after a
// burst the processor's batches stood before each of them. A crash
// between the relay's 250 and that commit sends the batch's mail again
// after the lease (at least once: the same Message-ID lets mail clients
// drop the copy).
//
// When ctx ends (the server stops), no further mail of the batch is
// handed to the relay, but what was handed over is still recorded, within
// the relay's timeout: cut between the relay's 250 and the commit it
// would be sent again by whoever takes the lease over. The rest of the
// batch is left, its leases released by the stopping server.
func (s *Sender) RunOnce(ctx context.Context) (int, error) {
	rows, err := s.store.ClaimOutbox(ctx, s.owner, sendBatch, s.lease)
	if err != nil {
		return 0, err
	}
	if len(rows) == 0 {
		return 0, nil
	}
	sendCtx := context.WithoutCancel(ctx)
	results := make([]storage.OutboxResult, len(rows))
	tried := make([]bool, len(rows))
	// The bytes of a few rows at a time: the claim took many in one turn
	// of SQLite's writer, but forwarded attachments make a mail up to a
	// megabyte.
	var failed error
	for start := 0; start < len(rows) && ctx.Err() == nil; start += sendChunk {
		end := min(start+sendChunk, len(rows))
		chunk := rows[start:end]
		if err := s.store.LoadOutboxBodies(sendCtx, chunk); err != nil {
			// What was sent is recorded below; the rest waits for its
			// lease to run out, as when the claim itself failed.
			failed = err
			break
		}
		s.send(ctx, sendCtx, chunk, results[start:end], tried[start:end])
		for i := range chunk {
			chunk[i].Raw = nil
		}
	}
	err = s.store.InTx(sendCtx, func(tx *storage.Tx) error {
		batched, err := s.finishSent(sendCtx, tx, rows, tried, results)
		if err != nil {
			return err
		}
		for i, o := range rows {
			if !tried[i] {
				rows[i].ID = 0
				continue
			}
			if batched[i] {
				continue
			}
			res := results[i]
			sp := "o" + strconv.Itoa(i)
			if err := tx.Savepoint(sp); err != nil {
				return err
			}
			ok, err := tx.FinishOutbox(sendCtx, o.ID, s.owner, res)
			if err == nil && ok && res.Failed {
				err = s.exec.outboxFailed(sendCtx, tx, o, res.Error, res.Permanent)
			}
			if err != nil {
				// This row's lease runs out and it is tried again, as
				// when each row had a transaction of its own.
				if rerr := tx.RollbackTo(sp); rerr != nil {
					return rerr
				}
				failed = errors.Join(failed, fmt.Errorf("outbox %d: %w", o.ID, err))
				results[i] = storage.OutboxResult{}
				rows[i].ID = 0
			}
			// Released, not left open to the end: see storage.Tx.Release.
			if err := tx.Release(sp); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for i, o := range rows {
		if o.ID != 0 {
			s.logOutcome(o, results[i])
		}
	}
	if ctx.Err() != nil {
		return len(rows), ctx.Err()
	}
	return len(rows), failed
}

// send hands rows to the relay and notes each outcome in results and
// tried. Mail to one recipient leaves in the order it was claimed (an
// answer before the "is it solved?" that follows it); mail to different
// recipients in parallel. When ctx ends no further mail is handed over.
func (s *Sender) send(ctx, sendCtx context.Context, rows []storage.OutboxMail, results []storage.OutboxResult, tried []bool) {
	var order []string
	byTo := map[string][]int{}
	for i, o := range rows {
		if _, ok := byTo[o.EnvTo]; !ok {
			order = append(order, o.EnvTo)
		}
		byTo[o.EnvTo] = append(byTo[o.EnvTo], i)
	}
	// Each of up to sendConcurrency workers takes the recipients in turn
	// and keeps one relay session for all its mail of the chunk: a
	// session per mail cost a connection, a greeting and EHLO (and TLS
	// and AUTH with a real relay) per mail.
	next := make(chan string, len(order))
	for _, to := range order {
		next <- to
	}
	close(next)
	var g errgroup.Group
	for range min(sendConcurrency, len(order)) {
		g.Go(func() error {
			sess := s.relay.Session(sendCtx)
			defer sess.Close()
			for to := range next {
				for _, i := range byTo[to] {
					if ctx.Err() != nil {
						return nil // stopping: the rest waits for the next owner
					}
					o := rows[i]
					if o.RawErr != nil {
						results[i], tried[i] = storage.OutboxResult{Failed: true, Permanent: true, Error: "the stored mail cannot be read: " + o.RawErr.Error()}, true
						continue
					}
					err := sess.Send(o.EnvFrom, strings.Split(o.EnvTo, ","), o.Raw)
					results[i], tried[i] = s.outcome(o, err), true
					results[i].DropBody = results[i].Sent && o.Kind == storage.OutboxToStaff && !s.keepStaff
				}
			}
			return nil
		})
	}
	_ = g.Wait() // the sends report through results
}

// finishSent records the batch's sent mail, the bulk of every batch, in
// a few multi-row statements (storage.Tx.FinishSentOutbox) under one
// savepoint, and reports which rows it recorded. Should that fail, the
// savepoint is undone and nothing is reported, so each row goes the
// one-savepoint-per-row way and one bad row costs only itself.
func (s *Sender) finishSent(ctx context.Context, tx *storage.Tx, rows []storage.OutboxMail, tried []bool, results []storage.OutboxResult) ([]bool, error) {
	var keep, drop []int64
	batched := make([]bool, len(rows))
	for i, o := range rows {
		if !tried[i] || !results[i].Sent {
			continue
		}
		batched[i] = true
		if results[i].DropBody {
			drop = append(drop, o.ID)
		} else {
			keep = append(keep, o.ID)
		}
	}
	if len(keep)+len(drop) == 0 {
		return batched, nil
	}
	const sp = "sent"
	if err := tx.Savepoint(sp); err != nil {
		return nil, err
	}
	if _, err := tx.FinishSentOutbox(ctx, s.owner, keep, drop); err != nil {
		s.log.Warn("outbox: recording the batch's sent mail one by one", "err", err)
		if rerr := tx.RollbackTo(sp); rerr != nil {
			return nil, rerr
		}
		clear(batched)
	}
	// Released, not left open to the end: see storage.Tx.Release.
	return batched, tx.Release(sp)
}

// The sender claims up to sendBatch rows at a time, holds the bytes of
// sendChunk of them at once, and has up to sendConcurrency in flight to
// the relay: a relay answers each mail in a few round trips, which one at
// a time left the sender waiting on the network while mail queued. The
// claim and the outcomes each wait for SQLite's writer behind the
// processor's batches (a fifth of a second each in tend bench): claiming
// 32 at a time, the sender fell behind the processor by half the burst.
const (
	sendBatch       = 128
	sendChunk       = 32
	sendConcurrency = 4
)

// logOutcome says what became of one outgoing mail: an operator reads
// every delivery and every relay refusal in the log, not only on the
// ticket's timeline.
func (s *Sender) logOutcome(o storage.OutboxMail, res storage.OutboxResult) {
	var ticket int64
	if o.TicketID != nil {
		ticket = *o.TicketID
	}
	attrs := []any{"ticket", ticket, "outbox", o.ID, "to", o.EnvTo, "template", o.Template, "message_id", o.MessageID}
	switch {
	case res.Sent:
		s.log.Info("mail sent", attrs...)
	case res.Failed:
		s.log.Warn("mail failed", append(attrs, "permanent", res.Permanent, "err", res.Error)...)
	default:
		s.log.Warn("mail deferred by the relay", append(attrs, "retry_at", res.RetryAt, "err", res.Error)...)
	}
}

// outcome turns a relay error into what to record: sent, retry later with
// backoff and jitter, or failed for good.
func (s *Sender) outcome(o storage.OutboxMail, err error) storage.OutboxResult {
	if err == nil {
		return storage.OutboxResult{Sent: true}
	}
	var se *relay.SendError
	temporary := !errors.As(err, &se) || se.Temporary
	now := s.clock.Now()
	if temporary && now.Sub(o.CreatedAt) < s.retryFor {
		return storage.OutboxResult{RetryAt: now.Add(worker.Backoff(o.Attempts, 30*time.Second, time.Hour, s.rnd)), Error: err.Error()}
	}
	msg := err.Error()
	if temporary {
		msg = fmt.Sprintf("gave up after %s of temporary failures: %s", s.retryFor, msg)
	}
	// Permanent means the address's hard bounce (it pauses automatic mail
	// to it): a protocol refusal (5.5.x, 5.6.x, no SMTPUTF8) fails this
	// mail for good but is no verdict on the mailbox.
	return storage.OutboxResult{Failed: true, Permanent: !temporary && (se == nil || se.HardBounce()), Error: msg}
}

// outboxFailed tells the rules that a mail could not be delivered.
func (x *Executor) outboxFailed(ctx context.Context, tx *storage.Tx, o storage.OutboxMail, reason string, permanent bool) error {
	if o.TicketID == nil {
		return nil
	}
	sc, err := x.open(ctx, tx, *o.TicketID, nil)
	if err != nil {
		return err
	}
	if err := tx.AddEvent(ctx, sc.v.ID, vocab.EventMailFailed, "", fmt.Sprintf("not delivered to %s: %s", o.EnvTo, reason), nil); err != nil {
		return err
	}
	if o.Kind == storage.OutboxToStaff {
		// A notification that cannot reach an agent is on the timeline;
		// mailing staff about mail to staff failing could loop.
		return nil
	}
	ev, err := x.event(sc, vocab.EventOutboxFailed)
	if err != nil {
		return err
	}
	ev.Outbox = &rules.Outbox{To: o.EnvTo, Reason: reason, Permanent: permanent}
	return x.run(sc, ev)
}
