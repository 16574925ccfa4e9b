// Package heappeak measures the peak of the Go heap over a stretch of
// work, for benchmarks and memory-bound tests. It is test support, a leaf
// that imports nothing of tend's.
package heappeak

import (
	"runtime"
	"sync/atomic"
	"time"
)

// Interval is how often the heap is sampled: often enough to see a
// message held whole, rare enough (ReadMemStats stops the world) not to
// slow what is measured.
const Interval = 10 * time.Millisecond

// Sampler samples HeapAlloc every Interval until Stop.
type Sampler struct {
	done    chan struct{}
	res     chan uint64
	samples atomic.Int64
}

// Start samples the heap from now on; initial is the floor of the peak
// (the heap before the work, usually).
func Start(initial uint64) *Sampler {
	s := &Sampler{done: make(chan struct{}), res: make(chan uint64)}
	go func() {
		peak := initial
		tick := time.NewTicker(Interval)
		defer tick.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
			s.samples.Add(1)
			select {
			case <-s.done:
				res := peak
				s.res <- res
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// Samples is how many samples were taken so far.
func (s *Sampler) Samples() int64 { return s.samples.Load() }

// Stop ends the sampling and returns the peak seen.
func (s *Sampler) Stop() uint64 {
	close(s.done)
	return <-s.res
}
