package heappeak

import (
	"runtime"
	"testing"
	"time"
)

// TestSamplerSeesAnAllocation holds 64 MiB across a few samples and
// expects the peak to include it.
func TestSamplerSeesAnAllocation(t *testing.T) {
	const size = 64 << 20
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	s := Start(0)
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i)
	}
	// Wait on a condition, not a sleep: two samples since the buffer
	// exists.
	n := s.Samples()
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for s.Samples() < n+2 {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("no samples taken in 10 s")
		}
	}
	peak := s.Stop()
	runtime.KeepAlive(buf)
	if peak < m.HeapAlloc+size {
		t.Fatalf("peak %d, want at least %d (idle %d + %d held)", peak, m.HeapAlloc+size, m.HeapAlloc, size)
	}
}

// TestSamplerFloor reports the floor when nothing larger was seen.
func TestSamplerFloor(t *testing.T) {
	const floor = 1 << 40
	if got := Start(floor).Stop(); got != floor {
		t.Fatalf("peak %d, want the floor %d", got, floor)
	}
}
