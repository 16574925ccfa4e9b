// Package storagetest holds helpers for tests of tend's packages: openers
// for the SQLite and PostgreSQL test databases, a group committer that
// runs for a test, and the work queue's contract (WorkQueueContract),
// which the store and any wrapper of it must pass. Where tests run (CI or
// not) and the fake clock are internal/testenv's, a leaf that tests of
// packages below storage use without depending on it.
package storagetest

import (
	"time"

	"github.com/tendhq/tend/internal/testenv"
)

// FakeClock is testenv.FakeClock, named here as well because the tests
// that open stores through this package take their clock with them.
type FakeClock = testenv.FakeClock

// NewFakeClock returns a clock stopped at t (testenv.NewFakeClock).
func NewFakeClock(t time.Time) *FakeClock { return testenv.NewFakeClock(t) }
