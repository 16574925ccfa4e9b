package imappoll

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/tendhq/tend/internal/worker"
)

// Poller takes mail from one IMAP mailbox into one inbox, exactly once:
// nothing is flagged, moved or deleted before the Deliverer committed it,
// and the Deliverer's dedup absorbs every redelivery.
type Poller struct {
	opts    Options
	d       Deliverer
	st      StateStore
	log     *slog.Logger
	met     *metrics
	limiter *rate.Limiter

	mu           sync.Mutex
	state        MailboxState // the checkpoint, as last loaded or saved
	loaded       bool
	cur          cursor
	status       State
	lastSuccess  time.Time
	lastErr      string
	lastErrAt    time.Time
	failingSince time.Time
	started      time.Time
	nextRenew    time.Time
}

// New validates opts and returns a Poller; it does no I/O.
func New(opts Options, d Deliverer, st StateStore) (*Poller, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if d == nil || st == nil {
		return nil, fmt.Errorf("%w: deliverer and state store are required", ErrConfig)
	}
	met, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, fmt.Errorf("imappoll: metrics: %w", err)
	}
	p := &Poller{
		opts: o, d: d, st: st, met: met,
		log:     o.Logger.With("inbox", o.Inbox, "mailbox", o.Mailbox),
		cur:     cursor{pending: map[uint32]int{}},
		started: o.Clock.Now(),
	}
	// Backfill delivered live is mail as any other: it is not throttled.
	if o.BackfillRate > 0 && !o.BackfillLive {
		p.limiter = rate.NewLimiter(rate.Limit(o.BackfillRate), max(1, int(o.BackfillRate)))
	}
	p.setState(StateStopped)
	return p, nil
}

// leaseRetry is how long a replica whose mailbox another one polls waits
// before it asks for the lease again: at most half the lease, so that it
// takes over soon after a dead holder's lease runs out, and at most a few
// seconds, so that it takes over at once, not after a poll interval, when
// a stopping holder releases the lease. Asking is one cheap query.
func (p *Poller) leaseRetry() time.Duration {
	return min(p.opts.PollInterval, p.opts.LeaseTTL/2, leaseRetryMax)
}

// leaseRetryMax bounds leaseRetry.
const leaseRetryMax = 5 * time.Second

// leaseName is the lease that makes one replica the mailbox's only poller.
func (p *Poller) leaseName() string { return "imap:" + p.opts.key() }

// Run polls until ctx is done and then returns nil. Every failure
// (connection, server restart, timeout, authentication, a vanished
// mailbox) is logged, shown in Status and retried after an exponential
// backoff with jitter; it never spins and never gives up.
func (p *Poller) Run(ctx context.Context) error {
	p.mu.Lock()
	p.started = p.opts.Clock.Now()
	p.mu.Unlock()
	defer p.setState(StateStopped)
	failures := 0
	for ctx.Err() == nil {
		p.setState(StateConnecting)
		held, err := p.st.AcquireLease(ctx, p.leaseName(), p.opts.Holder, p.opts.LeaseTTL)
		if err == nil && !held {
			p.setState(StateLeaseHeldElsewhere)
			p.log.Debug("imap mailbox polled by another replica")
			p.wait(ctx, p.leaseRetry())
			continue
		}
		progressed := false
		if err != nil {
			err = fmt.Errorf("acquire lease: %w", err)
		} else {
			p.mu.Lock()
			p.nextRenew = p.opts.Clock.Now().Add(p.opts.LeaseTTL / 3)
			p.mu.Unlock()
			progressed, err = p.session(ctx)
			if !errors.Is(err, errLeaseLost) {
				p.release()
			}
		}
		if ctx.Err() != nil {
			break
		}
		if errors.Is(err, errLeaseLost) {
			p.setState(StateLeaseHeldElsewhere)
			p.log.Warn("imap lease taken by another replica")
			p.wait(ctx, p.leaseRetry())
			continue
		}
		if progressed {
			failures = 0
		}
		p.recordError(err)
		delay := p.backoff(failures, errors.Is(err, ErrAuth))
		failures++
		if errors.Is(err, ErrAuth) {
			p.setState(StateAuthFailed)
		} else {
			p.setState(StateBackoff)
		}
		p.log.Error("imap poller failed; retrying", "err", err, "retry_in", delay)
		p.wait(ctx, delay)
	}
	return nil
}

// release gives the lease up so another replica can take over at once.
// It runs after ctx may be done, so it gets a short context of its own.
func (p *Poller) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.st.ReleaseLease(ctx, p.leaseName(), p.opts.Holder); err != nil {
		p.log.Warn("imap release lease", "err", err)
	}
}

// backoff is exponential (worker.Backoff) from MinBackoff (AuthBackoff for a refused
// login, capped at 4*MaxBackoff) with jitter in [d/2, d): replicas and
// mailboxes that failed together do not retry together.
func (p *Poller) backoff(failures int, auth bool) time.Duration {
	base, ceil := p.opts.MinBackoff, p.opts.MaxBackoff
	if auth {
		base, ceil = p.opts.AuthBackoff, max(4*p.opts.MaxBackoff, p.opts.AuthBackoff)
	}
	d := worker.Backoff(failures, base, ceil, nil)
	return d/2 + rand.N(d/2+1)
}

// wait blocks for d or until ctx is done.
func (p *Poller) wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// session runs one connection: login, select, then sync and wait for mail
// until something fails. progressed reports whether at least one pass
// succeeded, which resets the backoff.
func (p *Poller) session(ctx context.Context) (progressed bool, err error) {
	defer func() {
		// A bug in a dependency must not take the other mailboxes down.
		if r := recover(); r != nil {
			err = fmt.Errorf("imappoll: panic: %v", r)
			p.log.Error("imap poller panic", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	if err := p.loadState(ctx); err != nil {
		return false, err
	}
	s, err := dial(ctx, &p.opts)
	if err != nil {
		return false, err
	}
	defer s.close()
	if p.opts.After.Action == AfterMove {
		if err := s.ensureFolder(p.opts.After.Folder); err != nil {
			return false, err
		}
	}
	sel, err := s.selectMailbox(p.opts.Mailbox)
	if err != nil {
		return false, err
	}
	if err := p.firstConnect(ctx); err != nil {
		return false, err
	}
	for {
		p.setState(StateSyncing)
		if err := p.syncPass(ctx, s, sel); err != nil {
			return progressed, err
		}
		progressed = true
		p.markSuccess()
		if err := p.waitForMail(ctx, s); err != nil {
			return progressed, err
		}
		// SELECT again rather than trust the old answer: it is how a
		// mailbox that was deleted, or recreated with a new UIDVALIDITY,
		// shows up on servers that do not drop the connection for it.
		if sel, err = s.selectMailbox(p.opts.Mailbox); err != nil {
			return progressed, err
		}
	}
}

// loadState reads the checkpoint once per process; later sessions keep
// the in-memory cursor, which may be ahead of the persisted one.
func (p *Poller) loadState(ctx context.Context) error {
	if p.loaded {
		return nil
	}
	st, _, err := p.st.MailboxState(ctx, p.opts.key())
	if err != nil {
		return fmt.Errorf("load mailbox state: %w", err)
	}
	p.mu.Lock()
	p.state, p.loaded = st, true
	p.mu.Unlock()
	return nil
}

// firstConnect records the moment the mailbox was first ever connected,
// before anything is fetched: it divides backfill from live mail, and a
// crash during the backfill must not move it.
func (p *Poller) firstConnect(ctx context.Context) error {
	if !p.state.ConnectedAt.IsZero() {
		return nil
	}
	p.mu.Lock()
	p.state.ConnectedAt = p.opts.Clock.Now()
	p.mu.Unlock()
	p.log.Info("imap mailbox connected for the first time: older mail is backfill", "connected_at", p.state.ConnectedAt, "backfill_live", p.opts.BackfillLive)
	return p.saveState(ctx)
}

func (p *Poller) saveState(ctx context.Context) error {
	p.mu.Lock()
	st := p.state
	p.mu.Unlock()
	if err := p.st.SaveMailboxState(ctx, p.opts.key(), st); err != nil {
		return fmt.Errorf("save mailbox state: %w", err)
	}
	return nil
}

// renewIfDue renews the lease when a third of its TTL has passed since
// the last renewal.
func (p *Poller) renewIfDue(ctx context.Context) error {
	p.mu.Lock()
	due := !p.opts.Clock.Now().Before(p.nextRenew)
	p.mu.Unlock()
	if !due {
		return nil
	}
	return p.renew(ctx)
}

// renew extends the lease; losing it ends the session so two replicas
// never poll one mailbox.
func (p *Poller) renew(ctx context.Context) error {
	held, err := p.st.AcquireLease(ctx, p.leaseName(), p.opts.Holder, p.opts.LeaseTTL)
	if err != nil {
		return fmt.Errorf("renew lease: %w", err)
	}
	if !held {
		return errLeaseLost
	}
	p.mu.Lock()
	p.nextRenew = p.opts.Clock.Now().Add(p.opts.LeaseTTL / 3)
	p.mu.Unlock()
	return nil
}

// throttle waits until n more backfill messages may be fetched. The
// limiter is nil when backfill is not throttled (no rate, or backfill
// delivered live).
func (p *Poller) throttle(ctx context.Context, n int) error {
	if p.limiter == nil {
		return nil
	}
	for n > 0 {
		k := min(n, p.limiter.Burst())
		if err := p.limiter.WaitN(ctx, k); err != nil {
			return fmt.Errorf("throttle: %w", err)
		}
		n -= k
	}
	return nil
}

// delivery describes message uid to the Deliverer.
func (p *Poller) delivery(uid uint32, internal time.Time) Delivery {
	p.mu.Lock()
	connected, validity := p.state.ConnectedAt, p.cur.uidValidity
	p.mu.Unlock()
	return Delivery{
		Inbox: p.opts.Inbox,
		// INTERNALDATE has whole seconds (RFC 9051 §2.3.3): mail from the
		// very second of the first connection is live, not backfill.
		Imported:   !p.opts.BackfillLive && internal.Before(connected.Truncate(time.Second)),
		Source:     fmt.Sprintf("imap:%s/%s/%d/%d", p.opts.Inbox, p.opts.Mailbox, validity, uid),
		ReceivedAt: internal,
	}
}
