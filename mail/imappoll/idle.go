package imappoll

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// errConnClosed reports a connection the server (or the network) closed
// while we were waiting for mail.
var errConnClosed = errors.New("imappoll: connection closed")

// waitForMail returns when the mailbox should be read again: the server
// announced new mail, the poll interval passed, IDLE is due for its
// restart, or a failed message is due for a retry. It renews the lease
// while waiting.
//
// With IDLE (RFC 2177) new mail arrives within a round trip. RFC 2177
// section 3 asks clients to re-issue IDLE at least every 29 minutes; we
// end it every IdleRestart (25 minutes) or StaleAfter/2, whichever is
// shorter, and read the mailbox, which also proves it is still alive.
func (p *Poller) waitForMail(ctx context.Context, s *session) error {
	idleCap := s.caps.Has(imap.CapIdle) && !p.opts.DisableIdle
	period := p.opts.PollInterval
	if idleCap {
		period = min(p.opts.IdleRestart, p.opts.StaleAfter/2)
	}
	p.mu.Lock()
	if len(p.cur.pending) > 0 {
		period = min(period, p.opts.RetryInterval)
	}
	p.mu.Unlock()

	// Mail announced during the pass that just ended: read it now.
	select {
	case <-s.wake:
		return nil
	default:
	}

	var idle *imapclient.IdleCommand
	if idleCap {
		if err := s.do(func() error {
			var err error
			idle, err = s.c.Idle()
			return err
		}); err != nil {
			return fmt.Errorf("idle: %w", err)
		}
		// Idle only once the server has acknowledged it: before that, a
		// message delivered now may be reported to nobody.
		p.setState(StateIdle)
	} else {
		p.setState(StatePolling)
	}
	err := p.waitLoop(ctx, s, period)
	if idle != nil {
		stopErr := s.do(func() error {
			if err := idle.Close(); err != nil {
				return err
			}
			return idle.Wait()
		})
		if err == nil && stopErr != nil {
			err = fmt.Errorf("idle done: %w", stopErr)
		}
	}
	return err
}

func (p *Poller) waitLoop(ctx context.Context, s *session, period time.Duration) error {
	deadline := time.NewTimer(period)
	defer deadline.Stop()
	renew := time.NewTicker(max(p.opts.LeaseTTL/3, time.Millisecond))
	defer renew.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.c.Closed():
			return errConnClosed
		case <-s.wake:
			return nil
		case <-deadline.C:
			return nil
		case <-renew.C:
			if err := p.renew(ctx); err != nil {
				return err
			}
		}
	}
}
