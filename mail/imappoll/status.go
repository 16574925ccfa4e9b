package imappoll

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// State is what a Poller is doing, for /readyz, metrics and the web view.
type State string

// The states of a Poller.
const (
	StateConnecting         State = "connecting"
	StateSyncing            State = "syncing"
	StateIdle               State = "idle"    // connected, waiting in IDLE
	StatePolling            State = "polling" // connected, waiting for the next poll
	StateBackoff            State = "backoff" // waiting to reconnect after a failure
	StateAuthFailed         State = "auth_failed"
	StateLeaseHeldElsewhere State = "lease_held_elsewhere"
	StateStopped            State = "stopped"
)

var allStates = []State{StateConnecting, StateSyncing, StateIdle, StatePolling, StateBackoff, StateAuthFailed, StateLeaseHeldElsewhere, StateStopped}

// Status is a snapshot of a Poller.
type Status struct {
	Inbox   string
	Mailbox string
	State   State
	// LastSuccess is when the mailbox was last read successfully (a full
	// pass, or a clean end of IDLE).
	LastSuccess time.Time
	// LastError is the most recent failure, kept after recovery so the
	// web view can show what happened; LastErrorAt tells when.
	LastError   string
	LastErrorAt time.Time
	// FailingSince is the first failure since the last success (zero while
	// the mailbox works): the "since when" of the mailbox-down alert.
	FailingSince time.Time
	// Backfilling is true until the first full pass finishes; Synced out
	// of Total is its progress.
	Backfilling   bool
	Synced, Total int
	// Pending counts messages that failed (Deliver or FETCH) and are
	// retried on every pass.
	Pending int
	// Stale is true when nothing was read successfully for StaleAfter:
	// flagged to leads and in /readyz.
	Stale bool
}

// Status returns a snapshot; it is safe to call from any goroutine.
func (p *Poller) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	ref := p.lastSuccess
	if ref.IsZero() {
		ref = p.started
	}
	return Status{
		Inbox:        p.opts.Inbox,
		Mailbox:      p.opts.Mailbox,
		State:        p.status,
		LastSuccess:  p.lastSuccess,
		LastError:    p.lastErr,
		LastErrorAt:  p.lastErrAt,
		FailingSince: p.failingSince,
		Backfilling:  !p.state.BackfillDone,
		Synced:       p.state.Synced,
		Total:        p.state.Total,
		Pending:      len(p.cur.pending),
		Stale:        p.opts.Clock.Now().Sub(ref) > p.opts.StaleAfter,
	}
}

func (p *Poller) setState(s State) {
	p.mu.Lock()
	p.status = s
	p.mu.Unlock()
	for _, st := range allStates {
		v := 0.0
		if st == s {
			v = 1
		}
		p.met.state.WithLabelValues(p.opts.Inbox, p.opts.Mailbox, string(st)).Set(v)
	}
}

func (p *Poller) markSuccess() {
	now := p.opts.Clock.Now()
	p.mu.Lock()
	p.lastSuccess = now
	p.failingSince = time.Time{}
	p.mu.Unlock()
	p.met.lastSuccess.WithLabelValues(p.opts.Inbox, p.opts.Mailbox).Set(float64(now.Unix()))
}

// recordError keeps err for Status and counts it; logging is the caller's.
func (p *Poller) recordError(err error) {
	p.mu.Lock()
	p.lastErr = err.Error()
	p.lastErrAt = p.opts.Clock.Now()
	if p.failingSince.IsZero() {
		p.failingSince = p.lastErrAt
	}
	p.mu.Unlock()
	p.met.errors.WithLabelValues(p.opts.Inbox, p.opts.Mailbox).Inc()
}

// metrics are the poller's Prometheus collectors, labelled by inbox and
// mailbox so that every poller can share one Registerer.
type metrics struct {
	fetched     *prometheus.CounterVec
	errors      *prometheus.CounterVec
	state       *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	labels := []string{"inbox", "mailbox"}
	m := &metrics{
		fetched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tend_imap_messages_fetched_total", Help: "Messages fetched from IMAP and committed by ingest.",
		}, labels),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tend_imap_errors_total", Help: "IMAP poller failures (connection, authentication, fetch, delivery).",
		}, labels),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tend_imap_state", Help: "1 for the IMAP poller's current state, 0 for the others.",
		}, append(labels, "state")),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tend_imap_last_success_timestamp_seconds", Help: "Unix time of the last successful read of the mailbox.",
		}, labels),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.fetched, err = register(reg, m.fetched)
	if err != nil {
		return nil, err
	}
	if m.errors, err = register(reg, m.errors); err != nil {
		return nil, err
	}
	if m.state, err = register(reg, m.state); err != nil {
		return nil, err
	}
	if m.lastSuccess, err = register(reg, m.lastSuccess); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the identical collector that another
// Poller registered first on the same Registerer.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}
