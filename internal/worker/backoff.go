package worker

import "time"

// Backoff returns how long to wait before retry number attempt (0 for the
// first retry): base doubled per attempt, capped at ceiling, without
// overflow however large attempt is. With rnd it is "full jitter" (a
// uniform draw in [0, d)), which spreads the retries of many items that
// failed together instead of synchronising them; rnd returns a value in
// [0, 1): pass rand.Float64, or a fixed function in tests. Without rnd it
// is the capped delay itself, for callers that jitter differently or not
// at all.
func Backoff(attempt int, base, ceiling time.Duration, rnd func() float64) time.Duration {
	if base <= 0 || ceiling <= 0 {
		return 0
	}
	if attempt < 0 {
		attempt = 0
	}
	d := ceiling
	if attempt < 62 && base <= ceiling>>uint(attempt) {
		d = base << uint(attempt)
	}
	if rnd == nil {
		return d
	}
	f := rnd()
	if f < 0 || f >= 1 {
		f = 0
	}
	return time.Duration(f * float64(d))
}
