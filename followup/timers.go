package followup

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tendhq/tend/internal/worker"
	"github.com/tendhq/tend/rules"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/vocab"
)

// Timers fires due timers.
type Timers struct {
	store *storage.Store
	exec  *Executor
	owner string
	lease time.Duration
	loop  worker.Options
}

// NewTimers returns the timer worker; it claims timers for lease (5
// minutes if 0).
func NewTimers(store *storage.Store, exec *Executor, owner string, period, lease time.Duration, log *slog.Logger) *Timers {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if lease <= 0 {
		lease = 5 * time.Minute
	}
	t := &Timers{store: store, exec: exec, owner: owner, lease: lease}
	// Nothing wakes the timers early: they are due at a time, found by
	// the period.
	t.loop = worker.Options{Name: "timers", Log: log, Period: period}
	return t
}

// Run fires timers until ctx ends.
func (t *Timers) Run(ctx context.Context) error { return worker.Loop(ctx, t.loop, t.RunOnce) }

// RunOnce fires the timers due now and returns how many it claimed.
func (t *Timers) RunOnce(ctx context.Context) (int, error) {
	ts, err := t.store.ClaimTimers(ctx, t.owner, 32, t.lease)
	if err != nil {
		return 0, err
	}
	for _, tm := range ts {
		if err := t.exec.HandleTimer(ctx, tm, t.owner); err != nil {
			// The lease runs out and the timer is tried again.
			return 0, fmt.Errorf("timer %d (%s on #%d): %w", tm.ID, tm.Name, tm.TicketID, err)
		}
	}
	return len(ts), nil
}

// HandleTimer fires a claimed timer: timer.due for the rules. A timer that
// was cancelled meanwhile, or taken over by another replica, does nothing.
func (x *Executor) HandleTimer(ctx context.Context, t storage.Timer, owner string) error {
	return x.opts.Store.InTx(ctx, func(tx *storage.Tx) error {
		ok, err := tx.FireTimer(ctx, t.ID, owner)
		if err != nil || !ok {
			return err
		}
		sc, err := x.open(ctx, tx, t.TicketID, nil)
		if err != nil {
			return err
		}
		if t.Name == storage.TimerFollowUp {
			if err := x.followUpDue(sc, t); err != nil {
				return err
			}
		}
		ev, err := x.event(sc, vocab.EventTimerDue)
		if err != nil {
			return err
		}
		ev.Timer = &rules.Timer{Name: t.Name, DueAt: t.DueAt, Seq: t.ID}
		if t.Name == storage.TimerFollowUp {
			ev.Reason = "follow-up set for " + x.localTime(sc, t.DueAt)
		}
		return x.run(sc, ev)
	})
}
