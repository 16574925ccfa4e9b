package worker

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuf is a log sink the loop's goroutine and the test share.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLoop drives a loop by wake-ups alone (the period is far away): it
// runs batches until one finds nothing, waits, runs again when woken,
// logs an error and waits instead of spinning, and returns nil when ctx
// ends.
func TestLoop(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Each batch's result comes from the test; each call is reported.
	type result struct {
		n   int
		err error
	}
	results := make(chan result)
	calls := make(chan int, 16)
	var mu sync.Mutex
	count, befores := 0, 0
	once := func(context.Context) (int, error) {
		mu.Lock()
		count++
		c := count
		mu.Unlock()
		calls <- c
		r := <-results
		return r.n, r.err
	}
	// Unbuffered: a send succeeds only once the loop waits in its select,
	// so each wake-up below proves the loop stopped running batches.
	wake := make(chan struct{})
	logs := &syncBuf{}
	done := make(chan error, 1)
	go func() {
		done <- Loop(ctx, Options{
			Name: "test worker", Log: slog.New(slog.NewTextHandler(logs, nil)), Wake: wake, Period: time.Hour,
			Before: func(context.Context) { mu.Lock(); befores++; mu.Unlock() },
		}, once)
	}()
	step := func(want int, r result) {
		t.Helper()
		select {
		case got := <-calls:
			if got != want {
				t.Fatalf("call %d, want %d", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no call %d", want)
		}
		results <- r
	}
	// Work found twice, then none: three calls without a wake-up.
	step(1, result{n: 2})
	step(2, result{n: 1})
	step(3, result{n: 0})
	woken := func() {
		t.Helper()
		select {
		case wake <- struct{}{}:
		case <-time.After(10 * time.Second):
			t.Fatal("the loop is not waiting for a wake-up")
		}
	}
	// Idle until woken.
	woken()
	step(4, result{err: errors.New("database gone")})
	// The error ends the run of batches: the loop waits again.
	woken()
	step(5, result{n: 0})
	if !strings.Contains(logs.String(), "database gone") || !strings.Contains(logs.String(), "test worker") {
		t.Errorf("error not logged with the worker's name: %q", logs.String())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Loop returned %v, want nil on cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Loop did not return after cancel")
	}
	select {
	case c := <-calls:
		t.Errorf("unexpected call %d after the last wake-up", c)
	default:
	}
	mu.Lock()
	defer mu.Unlock()
	if befores != count {
		t.Errorf("Before ran %d times for %d batches", befores, count)
	}
}

// TestWakeNeverBlocks: a wake-up on a channel that already holds one is
// dropped, not queued and not waited for.
func TestWakeNeverBlocks(t *testing.T) {
	t.Parallel()
	ch := make(chan struct{}, 1)
	Wake(ch)
	Wake(ch)
	if len(ch) != 1 {
		t.Fatalf("%d wake-ups pending, want 1", len(ch))
	}
	Wake(make(chan struct{})) // nobody listening: returns at once
}
