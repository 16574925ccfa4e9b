package imappoll

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/emersion/go-imap/v2"
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
		p.state.Total = p.state.Synced + len(fresh)
		p.mu.Unlock()
		if len(fresh) > 0 {
			p.log.Info("imap backfill", "found", len(fresh), "synced", p.state.Synced, "total", p.state.Total)
		}
	}
	// Pending UIDs go one per FETCH: a message the server cannot serve must
	// not take a whole batch down with it again.
	for _, uid := range retry {
		if err := p.batch(ctx, s, []imap.UID{uid}, false); err != nil {
			return err
		}
	}
	for start := 0; start < len(fresh); start += p.opts.BatchSize {
		end := min(start+p.opts.BatchSize, len(fresh))
		if err := p.batch(ctx, s, fresh[start:end], bulk); err != nil {
			return err
		}
		if err := p.renewIfDue(ctx); err != nil {
			return err
		}
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

// batch fetches uids with one UID FETCH, delivers each message as it
// streams in (only one message body is held at a time), applies the
// after-action to the committed ones and persists the checkpoint.
func (p *Poller) batch(ctx context.Context, s *session, uids []imap.UID, bulk bool) error {
	body := &imap.FetchItemBodySection{Peek: true} // BODY.PEEK[]: \Seen is ours to set, later
	opts := &imap.FetchOptions{UID: true, Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{body}}
	want := make(map[imap.UID]bool, len(uids))
	for _, u := range uids {
		want[u] = true
	}
	var done []imap.UID
	var deliverErr error
	if err := s.beginStream(ctx); err != nil {
		return err
	}
	s.arm()
	cmd := s.c.Fetch(imap.UIDSetNum(uids...), opts)
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		buf, err := msg.Collect()
		s.disarm()
		if err == nil && want[buf.UID] && ctx.Err() == nil {
			delete(want, buf.UID)
			raw := buf.FindBodySection(body)
			if raw == nil {
				raw = []byte{} // an empty message is still a message
			}
			if err := p.deliver(ctx, uint32(buf.UID), raw, buf.InternalDate, bulk); err != nil {
				p.markPending(uint32(buf.UID), err)
				deliverErr = err
			} else {
				done = append(done, buf.UID)
			}
		}
		s.arm()
	}
	fetchErr := s.timeoutErr(cmd.Close())
	s.disarm()
	s.endStream()
	if err := ctx.Err(); err != nil && fetchErr == nil {
		// Stopped mid-batch: what was not delivered stays for next time.
		fetchErr = err
	}
	// A tagged NO/BAD fails the FETCH but leaves the connection usable:
	// the messages not returned are retried later, the others go on. When
	// the connection broke, nothing not returned can be judged either.
	var ierr *imap.Error
	soft := fetchErr == nil || errors.As(fetchErr, &ierr)
	for u := range want {
		if fetchErr != nil {
			p.markPending(uint32(u), fmt.Errorf("fetch uid %d: %w", u, fetchErr))
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
	p.advance(uids, done, bulk)
	if err := p.saveState(ctx); err != nil {
		return err
	}
	if !soft {
		return fmt.Errorf("fetch: %w", fetchErr)
	}
	if fetchErr != nil {
		p.recordError(fmt.Errorf("fetch: %w", fetchErr))
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
				p.state.Synced++
			}
		}
	}
	p.state.LastUID = p.cur.checkpoint()
}

// markPending records a failed attempt at uid.
func (p *Poller) markPending(uid uint32, err error) {
	p.mu.Lock()
	p.cur.pending[uid]++
	n := p.cur.pending[uid]
	p.mu.Unlock()
	p.log.Warn("imap message left for the next pass", "uid", uid, "attempts", n, "err", err)
}
