package storage

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestWriteGateOrder: waiters get the gate one at a time, the group
// commit's (urgent) first, then the others in the order they came; a
// waiter whose context ends leaves the queue and the gate still moves on.
func TestWriteGateOrder(t *testing.T) {
	var g writeGate
	ctx := context.Background()
	if err := g.lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 4)
	queue := func(name string, urgent bool) {
		go func() {
			if err := g.lock(ctx, urgent); err != nil {
				got <- name + ": " + err.Error()
				return
			}
			got <- name
			g.unlock()
		}()
	}
	// Each waiter is queued before the next starts.
	waitQueued := func(n int) {
		tick := time.NewTicker(time.Millisecond) // a condition polled, not a guess of how long it takes
		defer tick.Stop()
		deadline := time.After(10 * time.Second)
		for {
			g.mu.Lock()
			q := len(g.urgent) + len(g.normal)
			g.mu.Unlock()
			if q == n {
				return
			}
			select {
			case <-deadline:
				t.Fatalf("%d waiters queued, want %d", q, n)
			case <-tick.C:
			}
		}
	}
	queue("processor", false)
	waitQueued(1)
	queue("sender", false)
	waitQueued(2)
	cctx, cancel := context.WithCancel(ctx)
	gone := make(chan error, 1)
	go func() { gone <- g.lock(cctx, false) }()
	waitQueued(3)
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v, want context.Canceled", err)
	}
	waitQueued(2)
	queue("commit", true)
	waitQueued(3)
	if !g.urgentWaiting() {
		t.Error("urgentWaiting is false with the group commit queued")
	}
	g.unlock()
	for _, want := range []string{"commit", "processor", "sender"} {
		if name := <-got; name != want {
			t.Fatalf("gate went to %q, want %q", name, want)
		}
	}
	// Free again: the next lock is immediate.
	if err := g.lock(ctx, false); err != nil {
		t.Fatal(err)
	}
	g.unlock()
}
