package worker

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	half := func() float64 { return 0.5 }
	cases := []struct {
		attempt   int
		base, max time.Duration
		rnd       func() float64
		want      time.Duration
	}{
		{0, time.Second, time.Hour, nil, time.Second},
		{3, time.Second, time.Hour, nil, 8 * time.Second},
		{3, time.Second, time.Hour, half, 4 * time.Second},
		{20, time.Second, time.Hour, nil, time.Hour},
		{200, time.Second, time.Hour, half, 30 * time.Minute},
		{-1, time.Second, time.Hour, nil, time.Second},
		{5, 0, time.Hour, nil, 0},
		{2, time.Second, time.Hour, func() float64 { return 7 }, 0},
		{62, time.Nanosecond, time.Duration(1<<63 - 1), nil, time.Duration(1<<63 - 1)},
		// A base above the ceiling is the ceiling, not an overflow.
		{20, 2 * time.Hour, time.Hour, nil, time.Hour},
	}
	for _, tc := range cases {
		if got := Backoff(tc.attempt, tc.base, tc.max, tc.rnd); got != tc.want {
			t.Errorf("Backoff(%d, %v, %v) = %v, want %v", tc.attempt, tc.base, tc.max, got, tc.want)
		}
	}
	// Full jitter stays in [0, cap).
	for i := 0; i < 100; i++ {
		f := float64(i) / 100
		if got := Backoff(4, time.Second, time.Hour, func() float64 { return f }); got < 0 || got >= 16*time.Second {
			t.Errorf("jittered backoff %v out of range", got)
		}
	}
}
