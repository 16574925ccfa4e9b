package testenv

import (
	"testing"
	"time"
)

// Part times one part of a benchmark's work (what runs inside a
// transaction, say) apart from the rest of each iteration.
type Part struct{ spent time.Duration }

// Time runs fn and adds its duration to the part.
func (p *Part) Time(fn func() error) error {
	t0 := time.Now()
	err := fn()
	p.spent += time.Since(t0)
	return err
}

// Loop runs one warm times (the store a benchmark measures on), then once
// per benchmark iteration, and reports the part's time per iteration in
// microseconds as metric (e.g. "tx-µs/msg"); the warm-up is not counted.
func (p *Part) Loop(b *testing.B, warm int, one func(), metric string) {
	b.Helper()
	for range warm {
		one()
	}
	p.spent = 0
	for b.Loop() {
		one()
	}
	b.ReportMetric(float64(p.spent.Microseconds())/float64(b.N), metric)
}
