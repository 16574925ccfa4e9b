package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrInUse is Open's error when Options.Exclusive is set and another
// process has the SQLite data directory open (a running tend serve), or
// when an exclusive holder (tend forget) has it and Exclusive is not set.
var ErrInUse = errors.New("data directory in use")

// lockRaw takes a lock on the raw directory beside a SQLite database:
// shared for every ordinary open, exclusive for Options.Exclusive. The
// segment files belong to one writing process at a time; an erasure,
// which rewrites and deletes segments, must not run beside a server
// appending to them, while backups and token commands may.
func lockRaw(dir string, exclusive bool) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("raw lock: %w", err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			if exclusive {
				return nil, fmt.Errorf("%s: %w by another process (stop tend serve first)", dir, ErrInUse)
			}
			return nil, fmt.Errorf("%s: %w by tend forget (wait for it to finish)", dir, ErrInUse)
		}
		return nil, fmt.Errorf("raw lock: %w", err)
	}
	return f, nil
}
