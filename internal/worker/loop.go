// Package worker holds what tend's database-driven workers share: the loop
// that runs a batch until nothing is left and then waits for a wake-up or
// the period, and the backoff between retries. It is a leaf: it imports
// nothing of tend, so every layer may use it.
package worker

import (
	"context"
	"log/slog"
	"time"
)

// Options configure Loop.
type Options struct {
	Name   string
	Log    *slog.Logger
	Wake   <-chan struct{}
	Period time.Duration
	Linger time.Duration         // wait after a wake-up, to batch
	Before func(context.Context) // called before each batch (to yield)
}

// Loop is the life of a database-driven worker: run once until it finds
// nothing to do, then wait for a wake-up, the period, or the end of ctx.
// An error is logged and retried at the next period; it never spins. The
// wake-up channel only shortens the wait: the work itself is in the
// database, so nothing is lost if a wake-up is.
func Loop(ctx context.Context, o Options, once func(context.Context) (int, error)) error {
	t := time.NewTicker(o.Period)
	defer t.Stop()
	for {
		for {
			if o.Before != nil {
				o.Before(ctx)
			}
			n, err := once(ctx)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				o.Log.Error(o.Name, "err", err)
				break
			}
			if n == 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-o.Wake:
			if o.Linger > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(o.Linger):
				}
			}
		case <-t.C:
		}
	}
}

// Wake sends a wake-up on ch without blocking: a wake-up already pending
// is as good as a second one.
func Wake(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
