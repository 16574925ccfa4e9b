package storage

import (
	"context"
	"errors"
	"fmt"
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
	return &Committer{s: s, reqs: make(chan *commitReq, maxBatch), maxBatch: maxBatch, onCommit: onCommit, stopped: make(chan struct{})}
}

// Deliver commits in and returns once it is durable. An error means the
// message is not stored; errors that mean "try again later" wrap
// ErrUnavailable.
func (c *Committer) Deliver(ctx context.Context, in *Incoming) (Delivered, error) {
	if in.MessageID == "" || in.Hash == "" {
		return Delivered{}, errors.New("deliver: message id and hash are required")
	}
	if fb, ok := in.Body.(FileBody); ok && c.s.segs != nil && fb.Size() >= fileMin {
		// Made durable here, on the caller's goroutine, so that the
		// committer only moves it into place.
		if err := fb.Sync(); err != nil {
			return Delivered{}, fmt.Errorf("deliver: %w: spool fsync: %w", ErrUnavailable, err)
		}
		in.file = fb
	}
	r := &commitReq{ctx: ctx, in: in, done: make(chan commitRes, 1)}
	select {
	case c.reqs <- r:
	case <-ctx.Done():
		return Delivered{}, fmt.Errorf("deliver: %w: %w", ErrUnavailable, ctx.Err())
	case <-c.stopped:
		return Delivered{}, fmt.Errorf("deliver: %w: shutting down", ErrUnavailable)
	}
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
// that background work can step aside for the senders waiting on 250s.
func (c *Committer) Busy() bool {
	return len(c.reqs) >= busyBatch || time.Since(time.Unix(0, c.lastBig.Load())) < 200*time.Millisecond
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

func (c *Committer) commit(ctx context.Context, batch []*commitReq) {
	results := make([]commitRes, len(batch))
	if c.s.segs != nil {
		// The raw bytes are durable in their segment before the
		// transaction that points at them commits.
		var bodies []Body
		var segIn []*Incoming
		for _, r := range batch {
			if r.in.file == nil {
				bodies, segIn = append(bodies, r.in.body()), append(segIn, r.in)
			}
		}
		refs, err := c.s.segs.append(bodies)
		if err != nil {
			for _, r := range batch {
				r.done <- commitRes{err: fmt.Errorf("deliver: %w: %w", ErrUnavailable, err)}
			}
			return
		}
		for i, in := range segIn {
			in.seg = &refs[i]
		}
	}
	// The transaction must outlive a cancelled caller: it is cancelled only
	// by shutdown, and then nothing in it is answered 250.
	err := c.s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for i, r := range batch {
			if r.ctx.Err() != nil {
				results[i].err = fmt.Errorf("deliver: %w: %w", ErrUnavailable, r.ctx.Err())
				continue
			}
			sp := "m" + strconv.Itoa(i)
			if err := tx.SavePoint(sp).Error; err != nil {
				return err
			}
			d, err := c.s.deliver(r.ctx, tx, r.in)
			if err != nil {
				if rerr := tx.RollbackTo(sp).Error; rerr != nil {
					return rerr
				}
				results[i].err = fmt.Errorf("deliver: %w", err)
				continue
			}
			results[i].d = d
		}
		return c.syncMoved(batch)
	})
	if err != nil {
		for i := range results {
			results[i] = commitRes{err: fmt.Errorf("deliver: %w: %w", ErrUnavailable, err)}
		}
	}
	for i, r := range batch {
		r.done <- results[i]
		if results[i].err == nil && c.onCommit != nil {
			c.onCommit(results[i].d)
		}
	}
}
