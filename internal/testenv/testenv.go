// Package testenv is what tend's tests share about where they run: whether
// this is CI (where a missing peer is a failure, not a skip) and a clock
// that only moves when told to. It is a leaf: it imports nothing of tend,
// so the tests of every package, threading's included, may use it without
// depending on storage.
package testenv

import (
	"os"
	"testing"
)

// CIEnv names the variable that CI sets: with it, a test whose peer (a
// database, Dovecot, Chromium, the corpus) is missing fails instead of
// skipping.
const CIEnv = "TEND_CI"

// CI reports whether the tests run under CI (CIEnv is set).
func CI() bool { return os.Getenv(CIEnv) != "" }

// SkipOrFail skips the test with reason on a laptop and fails it under CI.
func SkipOrFail(t testing.TB, reason string) {
	t.Helper()
	if CI() {
		t.Fatalf("%s (and %s is set: CI must not skip)", reason, CIEnv)
	}
	t.Skip(reason)
}
