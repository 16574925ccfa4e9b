package testenv

import (
	"errors"
	"runtime"
	"testing"
	"time"
)

// recorder is a testing.TB that records how a test would end instead of
// ending this one.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper() {}

// Fatalf and Skip end the goroutine, as testing's do.
func (r *recorder) Fatalf(format string, args ...any) { r.fatal = format; runtime.Goexit() }
func (r *recorder) Skip(args ...any)                  { r.skip = "skip"; runtime.Goexit() }

func TestSkipOrFail(t *testing.T) {
	for _, tc := range []struct {
		ci         string
		fail, skip bool
	}{
		{"", false, true},
		{"1", true, false},
	} {
		t.Setenv(CIEnv, tc.ci)
		if CI() != (tc.ci != "") {
			t.Errorf("%s=%q: CI() = %v", CIEnv, tc.ci, CI())
		}
		r := &recorder{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			SkipOrFail(r, "peer missing")
		}()
		<-done
		if (r.fatal != "") != tc.fail || (r.skip != "") != tc.skip {
			t.Errorf("%s=%q: failed %v, skipped %v; want %v, %v", CIEnv, tc.ci, r.fatal != "", r.skip != "", tc.fail, tc.skip)
		}
	}
}

func TestFakeClock(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.FixedZone("CET", 3600))
	c := NewFakeClock(t0)
	if got := c.Now(); !got.Equal(t0) || got.Location() != time.UTC {
		t.Fatalf("Now() = %v, want %v in UTC", got, t0)
	}
	c.Advance(90 * time.Minute)
	if got, want := c.Now(), t0.Add(90*time.Minute); !got.Equal(want) {
		t.Errorf("after Advance: %v, want %v", got, want)
	}
	t1 := t0.Add(-24 * time.Hour)
	c.Set(t1)
	if got := c.Now(); !got.Equal(t1) {
		t.Errorf("after Set: %v, want %v", got, t1)
	}
}

// TestPart: Time passes fn's error on and counts only fn's time; Loop
// counts only the iterations after the warm-up.
func TestPart(t *testing.T) {
	var p Part
	boom := errors.New("boom")
	var ran time.Duration
	if err := p.Time(func() error {
		t0 := time.Now()
		for time.Since(t0) == 0 {
		}
		ran = time.Since(t0)
		return boom
	}); err != boom {
		t.Errorf("Time returned %v, want fn's error", err)
	}
	if p.spent < ran {
		t.Errorf("Time counted %v, want at least fn's %v", p.spent, ran)
	}
	calls := 0
	res := testing.Benchmark(func(b *testing.B) {
		calls = 0
		p.Loop(b, 3, func() { calls++; _ = p.Time(func() error { return nil }) }, "x/op")
	})
	if calls != 3+res.N {
		t.Errorf("one ran %d times for %d iterations, want the 3 warm-ups more", calls, res.N)
	}
	if _, ok := res.Extra["x/op"]; !ok {
		t.Errorf("Loop reported %v, want the part's metric", res.Extra)
	}
}
