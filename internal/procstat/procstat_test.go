package procstat

import (
	"os"
	"testing"
	"time"
)

// TestSelf reads this test process: it has used CPU and holds memory,
// and the figures grow when it works and allocates.
func TestSelf(t *testing.T) {
	pid := os.Getpid()
	cpu0, rss0 := CPU(pid), PeakRSS(pid)
	if rss0 <= 0 {
		t.Fatalf("PeakRSS = %d", rss0)
	}
	// Work until the kernel counts at least one more tick; the deadline
	// only bounds a broken reader.
	deadline := time.Now().Add(10 * time.Second)
	for CPU(pid) <= cpu0 && time.Now().Before(deadline) {
		for i := range 1_000_000 {
			_ = i * i
		}
	}
	if CPU(pid) <= cpu0 {
		t.Errorf("CPU did not grow from %v", cpu0)
	}
	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = byte(i)
	}
	if got := PeakRSS(pid); got < rss0+32<<20 {
		t.Errorf("PeakRSS %d after touching 64 MiB, was %d", got, rss0)
	}
	_ = big[len(big)-1]
	if CPU(-1) != 0 || PeakRSS(-1) != 0 {
		t.Error("a process that does not exist has figures")
	}
}
