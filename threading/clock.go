package threading

import "time"

// Clock tells the time. threading declares the one method it needs, so
// that this pure package depends on nothing of storage's: storage.Clock
// and the tests' fake clocks satisfy it as they are.
type Clock interface {
	Now() time.Time
}

// wallClock is the system's clock, for a Signer given none.
type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }
