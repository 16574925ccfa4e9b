package imappoll

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// cursor is the in-memory position of a mailbox under one UIDVALIDITY. It
// lives on the Poller, not the session, so a reconnect resumes where the
// last connection stopped; a process restart resumes from the persisted
// checkpoint instead (and the Deliverer's dedup absorbs the overlap).
type cursor struct {
	uidValidity uint32
	// next is the highest UID looked at: everything at or below it was
	// delivered, found gone, or is in pending.
	next uint32
	// pending holds UIDs at or below next that could not be delivered
	// (Deliver or FETCH failed), with their attempt counts. They are
	// retried on every pass and hold the persisted checkpoint back, so a
	// crash cannot skip them.
	pending map[uint32]int
	// uncounted holds, in order, the backfill UIDs above the checkpoint
	// that the progress does not count yet: Synced counts only what the
	// persisted checkpoint covers, so a restart, which fetches everything
	// above it again, does not count those messages twice.
	uncounted []uint32
}

// checkpoint is the LastUID that is safe to persist: the highest UID below
// which nothing is pending.
func (c *cursor) checkpoint() uint32 {
	cp := c.next
	for uid := range c.pending {
		if uid-1 < cp {
			cp = uid - 1
		}
	}
	return cp
}

// syncPass delivers every message above the cursor, and retries pending
// ones, in batches of Options.BatchSize UIDs. It persists the checkpoint
// after each batch.
func (p *Poller) syncPass(ctx context.Context, s *session, sel *imap.SelectData) error {
	if err := p.checkUIDValidity(ctx, sel.UIDValidity); err != nil {
		return err
	}
	var fresh []imap.UID
	err := s.do(func() error {
		// "n:*" always includes the highest UID even when it is below n
		// (RFC 9051 section 6.4.8), hence the filter below.
		crit := &imap.SearchCriteria{UID: []imap.UIDSet{{imap.UIDRange{Start: imap.UID(p.cur.next + 1), Stop: 0}}}}
		data, err := s.c.UIDSearch(crit, nil).Wait()
		if err != nil {
			return err
		}
		for _, uid := range data.AllUIDs() {
			if uint32(uid) > p.cur.next {
				fresh = append(fresh, uid)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("uid search: %w", err)
	}
	slices.Sort(fresh)
	retry := make([]imap.UID, 0, len(p.cur.pending))
	for uid := range p.cur.pending {
		retry = append(retry, imap.UID(uid))
	}
	slices.Sort(retry)

	bulk := !p.state.BackfillDone
	if bulk {
		p.mu.Lock()
		p.state.Total = p.state.Synced + len(p.cur.uncounted) + len(fresh)
		p.mu.Unlock()
		if len(fresh) > 0 {
			p.log.Info("imap backfill", "found", len(fresh), "synced", p.state.Synced, "total", p.state.Total)
		}
	}
	// Pending UIDs go one per FETCH: a message the server cannot serve must
	// not take a whole batch down with it again.
	for _, uid := range retry {
		if err := p.finish(ctx, s, p.fetch(ctx, s, []imap.UID{uid}, false)); err != nil {
			return err
		}
	}
	// One FETCH streams while the messages of the one before commit: the
	// connection and the database work at the same time, and a batch's
	// flags and checkpoint follow its commit, in UID order.
	var prev *flight
	flush := func() error {
		f := prev
		prev = nil
		if f == nil {
			return nil
		}
		return p.finish(ctx, s, f)
	}
	for start := 0; start < len(fresh); start += p.opts.BatchSize {
		end := min(start+p.opts.BatchSize, len(fresh))
		if bulk && p.limiter != nil {
			// Throttled: the batch before is flagged and checkpointed
			// first rather than held while the limiter waits.
			if err := flush(); err != nil {
				return err
			}
			if err := p.throttle(ctx, end-start); err != nil {
				return err
			}
		}
		cur := p.fetch(ctx, s, fresh[start:end], bulk)
		if err := flush(); err != nil {
			cur.abandon()
			return err
		}
		prev = cur
		if cur.broken() {
			return flush()
		}
		if err := p.renewIfDue(ctx); err != nil {
			prev.abandon()
			return err
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if bulk {
		p.mu.Lock()
		p.state.BackfillDone = true
		p.mu.Unlock()
		if err := p.saveState(ctx); err != nil {
			return err
		}
		p.log.Info("imap backfill done", "synced", p.state.Synced)
	}
	return nil
}

// checkUIDValidity resets the cursor when the server's UIDVALIDITY differs
// from the checkpoint: every UID we knew is meaningless now (RFC 9051
// section 2.3.1.1), so the whole mailbox is read again and the Deliverer's
// dedup keeps it from being duplicated.
func (p *Poller) checkUIDValidity(ctx context.Context, v uint32) error {
	if p.cur.uidValidity == v {
		return nil
	}
	p.mu.Lock()
	if p.state.UIDValidity != v {
		if p.state.UIDValidity != 0 {
			p.log.Warn("imap uidvalidity changed: resynchronising the whole mailbox", "old", p.state.UIDValidity, "new", v)
			p.state.BackfillDone = false
			p.state.Synced, p.state.Total = 0, 0
		}
		p.state.UIDValidity = v
		p.state.LastUID = 0
	}
	p.cur = cursor{uidValidity: v, next: p.state.LastUID, pending: map[uint32]int{}}
	p.mu.Unlock()
	return p.saveState(ctx)
}

// flight is one UID FETCH whose messages were spooled as they streamed
// in and are being delivered, together and in UID order, so that the
// group committer stores them in few transactions while the next FETCH
// streams.
type flight struct {
	uids []imap.UID
	bulk bool
	// want holds the UIDs asked for and not returned (yet).
	want map[imap.UID]bool
	// bodiless are UIDs whose one response held no body: go-imap routes
	// only the first response per UID to the command, so when the server
	// sent a flag update first, the body went elsewhere and the message
	// must be fetched again, not judged expunged.
	bodiless map[imap.UID]bool
	// got are the spooled messages, in the order the server sent them,
	// with what the Deliverer is told of each.
	got []imap.UID
	sps []Spooled
	ds  []Delivery
	// done receives the verdicts once deliver ran (nil: nothing to wait for).
	done chan []error
	// fetchErr is the FETCH's own failure; deliverErr the last message
	// that could not be spooled.
	fetchErr, deliverErr error
}

// broken reports a FETCH that failed with the connection: what it did not
// return cannot be judged, and nothing more can be asked on it.
func (f *flight) broken() bool {
	var ierr *imap.Error
	return f.fetchErr != nil && !errors.As(f.fetchErr, &ierr)
}

// deliver hands the flight's spooled messages to the Deliverer in the
// background and closes the spools once it answered.
func (p *Poller) deliver(ctx context.Context, f *flight) {
	if len(f.sps) == 0 {
		return
	}
	f.done = make(chan []error, 1)
	go func() {
		res, errs := p.d.Deliver(ctx, f.sps, f.ds)
		for i, sp := range f.sps {
			_ = sp.Close()
			if errs[i] == nil {
				p.met.fetched.WithLabelValues(p.opts.Inbox, p.opts.Mailbox).Inc()
				p.log.Debug("imap message delivered", "uid", f.got[i], "duplicate", res[i].Duplicate, "imported", f.ds[i].Imported)
			}
		}
		f.done <- errs
	}()
}

// abandon waits for the flight's deliveries without acting on them: their
// messages are neither flagged nor checkpointed, so they are fetched
// again and the Deliverer's dedup absorbs whatever was stored.
func (f *flight) abandon() {
	if f != nil && f.done != nil {
		<-f.done
	}
}

// fetch asks for uids with one UID FETCH and spools each message as its
// literal streams in (BODY.PEEK[]: \Seen is ours to set, later), in the
// Deliverer's bounded buffers, then hands it to a delivery goroutine. It
// returns once the FETCH is complete; the deliveries go on.
func (p *Poller) fetch(ctx context.Context, s *session, uids []imap.UID, bulk bool) *flight {
	f := &flight{uids: uids, bulk: bulk, want: make(map[imap.UID]bool, len(uids))}
	for _, u := range uids {
		f.want[u] = true
	}
	if err := s.beginStream(ctx); err != nil {
		f.fetchErr = err
		return f
	}
	body := &imap.FetchItemBodySection{Peek: true}
	opts := &imap.FetchOptions{UID: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{body}}
	s.arm()
	cmd := s.c.Fetch(imap.UIDSetNum(uids...), opts)
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		p.take(ctx, msg, f)
		s.arm()
	}
	f.fetchErr = s.timeoutErr(cmd.Close())
	s.disarm()
	s.endStream()
	if err := ctx.Err(); err != nil && f.fetchErr == nil {
		// Stopped mid-batch: what was not delivered stays for next time.
		f.fetchErr = err
	}
	p.deliver(ctx, f)
	return f
}

// take reads one message of a FETCH: its UID and INTERNALDATE, and its
// body straight into a spool, and adds it to the flight. Whatever it does
// not read, go-imap discards.
func (p *Poller) take(ctx context.Context, msg *imapclient.FetchMessageData, f *flight) {
	var (
		uid      imap.UID
		internal time.Time
		sp       Spooled
		spErr    error
		body     bool
	)
	for {
		item := msg.Next()
		if item == nil {
			break
		}
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			uid = it.UID
		case imapclient.FetchItemDataInternalDate:
			internal = it.Time
		case imapclient.FetchItemDataBodySection:
			if body || ctx.Err() != nil {
				continue
			}
			body = true
			var r io.Reader = strings.NewReader("") // NIL: an empty message is still a message
			size := int64(0)
			if it.Literal != nil {
				r, size = it.Literal, it.Literal.Size()
			}
			sp, spErr = p.d.Spool(ctx, r, size)
		}
	}
	if !body {
		// Not the answer to our FETCH but an update the server slipped in
		// (flags another session changed): not a message, and not proof
		// that the message is gone either.
		if f.bodiless == nil {
			f.bodiless = map[imap.UID]bool{}
		}
		f.bodiless[uid] = true
		return
	}
	if !f.want[uid] || ctx.Err() != nil {
		if sp != nil {
			_ = sp.Close()
		}
		return
	}
	delete(f.want, uid)
	if spErr != nil {
		err := fmt.Errorf("spool uid %d: %w", uid, spErr)
		p.markPending(uint32(uid), err)
		f.deliverErr = err
		return
	}
	f.got, f.sps, f.ds = append(f.got, uid), append(f.sps, sp), append(f.ds, p.delivery(uint32(uid), internal))
}

// errNoBody is a FETCH answered for a UID without the body asked for.
var errNoBody = errors.New("the server's answer held no body; fetched again")

// finish waits until every message of f is durably stored or failed, then
// applies the after-action to the stored ones and persists the checkpoint:
// nothing is flagged, moved or checkpointed before it is stored.
func (p *Poller) finish(ctx context.Context, s *session, f *flight) error {
	var done []imap.UID
	deliverErr := f.deliverErr
	if f.done != nil {
		for i, err := range <-f.done {
			if err != nil {
				err = fmt.Errorf("deliver uid %d: %w", f.got[i], err)
				p.markPending(uint32(f.got[i]), err)
				deliverErr = err
				continue
			}
			done = append(done, f.got[i])
		}
	}
	// A tagged NO/BAD fails the FETCH but leaves the connection usable:
	// the messages not returned are retried later, the others go on. When
	// the connection broke, nothing not returned can be judged either.
	for u := range f.want {
		if f.fetchErr != nil {
			p.markPending(uint32(u), fmt.Errorf("fetch uid %d: %w", u, f.fetchErr))
			continue
		}
		if f.bodiless[u] {
			p.markPending(uint32(u), fmt.Errorf("fetch uid %d: %w", u, errNoBody))
			continue
		}
		// A FETCH that succeeded without this UID means it was expunged
		// meanwhile (by a person or another client): nothing is left to
		// take, and waiting for it would hold the checkpoint forever.
		p.mu.Lock()
		delete(p.cur.pending, uint32(u))
		p.mu.Unlock()
	}
	if len(done) > 0 {
		if err := p.after(s, done); err != nil {
			return fmt.Errorf("after-action: %w", err)
		}
	}
	p.advance(f.uids, done, f.bulk)
	if err := p.saveState(ctx); err != nil {
		return err
	}
	if f.broken() {
		return fmt.Errorf("fetch: %w", f.fetchErr)
	}
	if f.fetchErr != nil {
		p.recordError(fmt.Errorf("fetch: %w", f.fetchErr))
	}
	if deliverErr != nil {
		p.recordError(deliverErr)
	}
	return ctx.Err()
}

// advance moves the cursor over a finished batch and updates progress.
func (p *Poller) advance(uids, done []imap.UID, bulk bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range done {
		delete(p.cur.pending, uint32(u))
	}
	for _, u := range uids {
		if uint32(u) > p.cur.next {
			p.cur.next = uint32(u)
			if bulk {
				p.cur.uncounted = append(p.cur.uncounted, uint32(u))
			}
		}
	}
	p.state.LastUID = p.cur.checkpoint()
	n := 0
	for n < len(p.cur.uncounted) && p.cur.uncounted[n] <= p.state.LastUID {
		n++
	}
	p.state.Synced += n
	p.cur.uncounted = p.cur.uncounted[n:]
}

// markPending records a failed attempt at uid.
func (p *Poller) markPending(uid uint32, err error) {
	p.mu.Lock()
	p.cur.pending[uid]++
	n := p.cur.pending[uid]
	p.mu.Unlock()
	p.log.Warn("imap message left for the next pass", "uid", uid, "attempts", n, "err", err)
}
