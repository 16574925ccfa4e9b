package storage

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"gorm.io/gorm"
)

// Committer is the one writer of the ingest path. Sessions hand it a
// message and wait; it takes every message that arrived while the previous
// batch was committing, applies each inside a savepoint of one transaction
// and answers them all once the transaction is durable (group commit). A
// durable commit costs one fsync, so batching is what lets many concurrent
// SMTP sessions each wait for durability without queueing behind each
// other's fsyncs.
type Committer struct {
	s        *Store
	reqs     chan *commitReq
	maxBatch int
	onCommit func(Delivered)
	stopped  chan struct{} // closed when Run returns

	// lastBig is when a batch of busyBatch or more messages last
	// committed (unix nanoseconds): the sign of a burst.
	lastBig atomic.Int64

	retries   int           // conflicts retried before a 451
	retryBase time.Duration // the first pause; doubled, with jitter
	retried   atomic.Int64  // transactions run again, for tests and metrics
}

// Defaults of the committer's retries of conflicting transactions.
const (
	DefaultCommitRetries   = 5
	DefaultCommitRetryBase = 10 * time.Millisecond
)

// SetRetries sets how many times a transaction that failed on a conflict
// (see Retryable) is run again before its messages are answered 451, and
// the first pause between tries (doubled each time, with full jitter).
// Call it before Run.
func (c *Committer) SetRetries(n int, base time.Duration) {
	c.retries = max(n, 0)
	if base > 0 {
		c.retryBase = base
	}
}

// Retried returns how many times a transaction or a message was run again
// after a conflict.
func (c *Committer) Retried() int64 { return c.retried.Load() }

// pause waits before try attempt+2: a random time up to retryBase·2^attempt
// (full jitter, so that two writers that conflicted do not meet again).
// This is scheduling, not business time: it uses the real clock.
func (c *Committer) pause(ctx context.Context, attempt int) {
	d := time.Duration(rand.Int64N(int64(c.retryBase<<min(attempt, 10)) + 1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// busyBatch is the batch size from which ingest counts as busy: at a
// trickle of mail every batch holds one message.
const busyBatch = 4

type commitReq struct {
	ctx  context.Context
	in   *Incoming
	done chan commitRes
}

type commitRes struct {
	d   Delivered
	err error
}

// NewCommitter returns a Committer for s. onCommit, when not nil, is called
// after each committed message (outside the transaction), for example to
// wake the worker that processes it.
func (s *Store) NewCommitter(maxBatch int, onCommit func(Delivered)) *Committer {
	if maxBatch <= 0 {
		maxBatch = 128
	}
	return &Committer{s: s, reqs: make(chan *commitReq, maxBatch), maxBatch: maxBatch, onCommit: onCommit, stopped: make(chan struct{}),
		retries: DefaultCommitRetries, retryBase: DefaultCommitRetryBase}
}

// Deliver commits in and returns once it is durable. An error means the
// message is not stored; errors that mean "try again later" wrap
// ErrUnavailable.
func (c *Committer) Deliver(ctx context.Context, in *Incoming) (Delivered, error) {
	r, err := c.submit(ctx, in)
	if err != nil {
		return Delivered{}, err
	}
	return c.wait(r)
}

// DeliverAll commits ins in their order (a message is placed on its
// ticket after the ones before it, as if delivered one after another) and
// returns once each is durable or failed: the results and errors are
// ins's, index for index. The messages join the batches of the
// committer like concurrent deliveries, so a batch of them costs one
// transaction, not one each.
func (c *Committer) DeliverAll(ctx context.Context, ins []*Incoming) ([]Delivered, []error) {
	out, errs := make([]Delivered, len(ins)), make([]error, len(ins))
	reqs := make([]*commitReq, len(ins))
	for i, in := range ins {
		reqs[i], errs[i] = c.submit(ctx, in)
	}
	for i, r := range reqs {
		if r != nil {
			out[i], errs[i] = c.wait(r)
		}
	}
	return out, errs
}

// submit prepares in and hands it to the committer.
func (c *Committer) submit(ctx context.Context, in *Incoming) (*commitReq, error) {
	if in.MessageID == "" || in.Hash == "" {
		return nil, errors.New("deliver: message id and hash are required")
	}
	// A Body may have the methods of a file and none behind it (a spool
	// made from bytes the IMAP poller or an import already held): only a
	// named file is moved into place.
	if fb, ok := in.Body.(FileBody); ok && fb.Name() != "" && c.s.segs != nil && fb.Size() >= fileMin {
		// Made durable here, on the caller's goroutine, so that the
		// committer only moves it into place.
		if err := fb.Sync(); err != nil {
			return nil, fmt.Errorf("deliver: %w: spool fsync: %w", ErrUnavailable, err)
		}
		in.file = fb
	}
	if c.s.usesChunks(in.body().Size()) {
		// Written here, on the caller's goroutine and in transactions
		// of their own, so that the batch only points at them.
		if err := c.s.writeChunks(ctx, in.Hash, in.body()); err != nil {
			return nil, fmt.Errorf("deliver: %w: %w", ErrUnavailable, err)
		}
		in.chunked = true
	}
	if in.file == nil && !in.chunked {
		// Compressed here too, on the caller's goroutine, never on the
		// committer's.
		var err error
		if in.packed, err = c.s.pack.pack(in.body()); err != nil {
			return nil, fmt.Errorf("deliver: %w: %w", ErrUnavailable, err)
		}
	}
	r := &commitReq{ctx: ctx, in: in, done: make(chan commitRes, 1)}
	select {
	case c.reqs <- r:
		return r, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("deliver: %w: %w", ErrUnavailable, ctx.Err())
	case <-c.stopped:
		return nil, fmt.Errorf("deliver: %w: shutting down", ErrUnavailable)
	}
}

// wait returns the verdict on a submitted request.
func (c *Committer) wait(r *commitReq) (Delivered, error) {
	// Once handed over, wait for the verdict even if ctx ends: the
	// committer may already have stored the message, and the caller must
	// not answer "not stored" for a stored message. Run answers every
	// batch before it stops, so a request still unanswered once it has
	// stopped was never committed.
	select {
	case res := <-r.done:
		return res.d, res.err
	case <-c.stopped:
		select {
		case res := <-r.done:
			return res.d, res.err
		default:
			return Delivered{}, fmt.Errorf("deliver: %w: shutting down", ErrUnavailable)
		}
	}
}

// Run commits batches until ctx ends.
func (c *Committer) Run(ctx context.Context) error {
	defer func() {
		close(c.stopped)
		c.drain(ctx.Err())
	}()
	for {
		var batch []*commitReq
		select {
		case <-ctx.Done():
			return nil
		case r := <-c.reqs:
			batch = append(batch, r)
		}
	fill:
		for len(batch) < c.maxBatch {
			select {
			case r := <-c.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		c.commit(ctx, batch)
		if len(batch) >= busyBatch {
			c.lastBig.Store(time.Now().UnixNano())
		}
	}
}

// Busy reports whether a burst of mail is being ingested right now, so
// that background work can step aside for the senders waiting on 250s:
// many messages queued or just committed together, or a large body being
// written to raw_chunks (PostgreSQL), which reaches the queue only once
// its bytes are stored.
func (c *Committer) Busy() bool {
	return len(c.reqs) >= busyBatch || c.s.chunking.Load() > 0 || time.Since(time.Unix(0, c.lastBig.Load())) < 200*time.Millisecond
}

// drain answers whatever is queued when the committer stops.
func (c *Committer) drain(cause error) {
	for {
		select {
		case r := <-c.reqs:
			r.done <- commitRes{err: fmt.Errorf("deliver: %w: shutting down: %w", ErrUnavailable, cause)}
		default:
			return
		}
	}
}

// syncMoved makes the names of large files moved in by the batch durable
// before the transaction that points at them commits.
func (c *Committer) syncMoved(batch []*commitReq) error {
	for _, r := range batch {
		if r.in.moved {
			return c.s.segs.syncDir()
		}
	}
	return nil
}

// errSavepoints makes applyAll give a batch back to the savepoint path.
var errSavepoints = errors.New("storage: batch applied again, one message per savepoint")

// applyAll stores the whole batch in one transaction with no savepoint
// per message, and its events and work rows in one statement each: a
// savepoint journals every page its message touches again, which costs
// about as much as the message's own writes. When a message fails, or
// the transaction does, nothing is stored and applyAll reports false:
// the batch is then applied message by message in savepoints (commit),
// which keeps a failing message from taking the others with it and
// retries conflicts.
func (c *Committer) applyAll(ctx context.Context, batch []*commitReq, results []commitRes) bool {
	var l later
	err := c.s.write(ctx, true, func(tx *gorm.DB) error {
		l = later{}
		if err := c.s.fault(FaultBegin); err != nil {
			return err
		}
		for i, r := range batch {
			if r.ctx.Err() != nil {
				return errSavepoints
			}
			d, err := c.s.deliver(r.ctx, tx, r.in, &l)
			if err == nil {
				err = c.s.fault(FaultDeliver)
			}
			if err != nil {
				return fmt.Errorf("%w: %w", errSavepoints, err)
			}
			results[i] = commitRes{d: d}
		}
		if err := l.flush(c.s, tx); err != nil {
			return err
		}
		if err := c.s.fault(FaultCommit); err != nil {
			return err
		}
		return c.syncMoved(batch)
	})
	if err != nil {
		clear(results)
		return false
	}
	return true
}

func (c *Committer) commit(ctx context.Context, batch []*commitReq) {
	results := make([]commitRes, len(batch))
	if c.s.segs != nil {
		// The raw bytes are durable in their segment before the
		// transaction that points at them commits.
		var recs []segRecord
		var segIn []*Incoming
		for _, r := range batch {
			if r.in.file == nil {
				rec := segRecord{hash: r.in.Hash, body: r.in.body()}
				if r.in.packed != nil {
					rec.body, rec.packed = packedBody(r.in.packed), true
				}
				recs, segIn = append(recs, rec), append(segIn, r.in)
			}
		}
		refs, err := c.s.segs.append(recs)
		if err != nil {
			for _, r := range batch {
				r.done <- commitRes{err: fmt.Errorf("deliver: %w: %w", ErrUnavailable, err)}
			}
			return
		}
		for i, in := range segIn {
			in.seg = &refs[i]
		}
		if len(refs) > 0 {
			defer c.s.segs.release(refs[0].id)
		}
	}
	// The transaction must outlive a cancelled caller: it is cancelled only
	// by shutdown, and then nothing in it is answered 250. A transaction
	// that fails on a conflict another writer caused (SQLITE_BUSY, a
	// PostgreSQL serialization failure or deadlock) is run again, with
	// jitter, a bounded number of times before any message hears 451;
	// so is one message whose savepoint hit such a conflict.
	pending := make([]int, len(batch))
	for i := range pending {
		pending[i] = i
	}
	c.s.committing.Store(time.Now().UnixNano())
	defer c.s.committing.Store(0)
	if len(batch) > 1 && c.applyAll(ctx, batch, results) {
		pending = nil
	}
	for attempt := 0; len(pending) > 0; attempt++ {
		last := attempt >= c.retries
		var again []int
		err := c.s.write(ctx, true, func(tx *gorm.DB) error {
			again = again[:0]
			if err := c.s.fault(FaultBegin); err != nil {
				return err
			}
			for _, i := range pending {
				r := batch[i]
				results[i] = commitRes{}
				if r.ctx.Err() != nil {
					results[i].err = fmt.Errorf("deliver: %w: %w", ErrUnavailable, r.ctx.Err())
					continue
				}
				sp := "m" + strconv.Itoa(i)
				if err := savepoint(tx, sp); err != nil {
					return err
				}
				d, err := c.s.deliver(r.ctx, tx, r.in, nil)
				if dedupConflict(err) {
					// Another replica stored the same message since
					// the lookup: looked up again, it is a duplicate.
					if rerr := rollbackTo(tx, sp); rerr != nil {
						return rerr
					}
					d, err = c.s.deliver(r.ctx, tx, r.in, nil)
				}
				if err == nil {
					err = c.s.fault(FaultDeliver)
				}
				if err != nil {
					if rerr := rollbackTo(tx, sp); rerr != nil {
						return rerr
					}
					if rerr := release(tx, sp); rerr != nil {
						return rerr
					}
					if !last && Retryable(err) {
						again = append(again, i)
						continue
					}
					results[i].err = fmt.Errorf("deliver: %w", err)
					if Retryable(err) {
						results[i].err = fmt.Errorf("deliver: %w: %w", ErrUnavailable, err)
					}
					continue
				}
				results[i].d = d
				if err := release(tx, sp); err != nil {
					return err
				}
			}
			if err := c.s.fault(FaultCommit); err != nil {
				return err
			}
			return c.syncMoved(batch)
		})
		if err != nil {
			if !last && Retryable(err) {
				c.retried.Add(1)
				c.pause(ctx, attempt)
				continue
			}
			for _, i := range pending {
				results[i] = commitRes{err: fmt.Errorf("deliver: %w: %w", ErrUnavailable, err)}
			}
			break
		}
		pending = append(pending[:0], again...)
		if len(pending) > 0 {
			c.retried.Add(1)
			c.pause(ctx, attempt)
		}
	}
	// The commit is over before anyone hears of it: a sender answered
	// must not find IngestWaiting still saying a commit runs (on a busy
	// machine the batch took longer than ingestPatience, and
	// TestIngestWaitingForABatch saw it between its 250 and the defer).
	c.s.committing.Store(0)
	for i, r := range batch {
		r.done <- results[i]
		if results[i].err == nil && c.onCommit != nil {
			c.onCommit(results[i].d)
		}
	}
}
