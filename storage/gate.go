package storage

import (
	"context"
	"slices"
	"sync"
)

// writeGate is SQLite's one writer, taken in turn by the writers of this
// process. SQLite itself makes a second writer wait in a busy handler
// that polls with growing sleeps (up to 100 ms): a worker committing one
// batch after another (the processor after a burst) took the lock again
// before a polling writer (the outbox sender, the group commit) woke up,
// and outgoing mail waited for all processing to end. The gate hands the
// lock to the longest waiter, the group commit's first: a sender waiting
// for its 250 goes before background work.
type writeGate struct {
	mu     sync.Mutex
	held   bool
	urgent []chan struct{} // the group commit's waiters, first in first out
	normal []chan struct{} // every other writer's
}

// lock waits for the gate, or for ctx to end.
func (g *writeGate) lock(ctx context.Context, urgent bool) error {
	g.mu.Lock()
	if !g.held {
		g.held = true
		g.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	if urgent {
		g.urgent = append(g.urgent, ch)
	} else {
		g.normal = append(g.normal, ch)
	}
	g.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		queued := false
		for _, q := range []*[]chan struct{}{&g.urgent, &g.normal} {
			if i := slices.Index(*q, ch); i >= 0 {
				*q = slices.Delete(*q, i, i+1)
				queued = true
			}
		}
		g.mu.Unlock()
		if !queued {
			// Handed over just as ctx ended: pass it on.
			g.unlock()
		}
		return ctx.Err()
	}
}

// unlock hands the gate to the next waiter, urgent ones first.
func (g *writeGate) unlock() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, q := range []*[]chan struct{}{&g.urgent, &g.normal} {
		if len(*q) > 0 {
			ch := (*q)[0]
			*q = (*q)[1:]
			close(ch) // held stays true: the waiter has it now
			return
		}
	}
	g.held = false
}

// urgentWaiting reports whether the group commit waits for the gate.
func (g *writeGate) urgentWaiting() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.urgent) > 0
}
