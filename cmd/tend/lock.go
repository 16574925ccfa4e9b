package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/tendhq/tend/cmd/tend/config"
	"github.com/tendhq/tend/storage"
)

// lockName is the lock file serve holds in each directory it owns.
const lockName = "tend.lock"

// errLocked is lockDirs' error when another tend serve holds a lock.
var errLocked = errors.New("in use by another tend serve")

// lockDirs makes this process the only tend serve on its data directory
// and, on SQLite, on its database file's directory (a dsn may put it
// outside data_dir). The data directory is locked on PostgreSQL too: it
// holds the spool, which a starting serve empties, so two processes on one
// would delete each other's mail in flight. SQLite takes one process per
// database: a second one would double every lease-guarded job, and the
// first may take back every lease at start (storage.ReclaimLeases) only
// because the lock proves no other process holds one.
//
// The lock is flock(2) on dir/tend.lock: the kernel drops it when the
// process ends however it ends, so a crash leaves nothing stale to clean
// up, and the file itself only says who holds it. unlock releases every
// lock.
func lockDirs(cfg config.Config) (unlock func(), err error) {
	dirs := []string{cfg.DataDir}
	if (cfg.Database.Driver == "" || cfg.Database.Driver == storage.DriverSQLite) && cfg.Database.DSN != "" {
		dirs = append(dirs, filepath.Dir(cfg.Database.DSN))
	}
	var held []*os.File
	unlock = func() {
		for _, f := range held {
			// Empty the file first, so that it never names a process that
			// no longer holds it; closing the descriptor drops the lock.
			_ = f.Truncate(0)
			_ = f.Close()
		}
	}
	seen := map[string]bool{}
	for _, dir := range dirs {
		abs, err := filepath.Abs(dir)
		if err != nil {
			unlock()
			return nil, fmt.Errorf("lock %s: %w", dir, err)
		}
		if seen[abs] {
			continue // flock conflicts with itself on a second descriptor
		}
		seen[abs] = true
		f, err := lockDir(abs)
		if err != nil {
			unlock()
			return nil, err
		}
		held = append(held, f)
	}
	return unlock, nil
}

// lockDir takes dir's lock without waiting and writes who holds it.
func lockDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			holder := "a process that has not written its name yet"
			if b, rerr := os.ReadFile(path); rerr == nil && len(strings.TrimSpace(string(b))) > 0 {
				holder = strings.TrimSpace(string(b))
			}
			return nil, fmt.Errorf("%s %w (%s; lock %s): stop it first; one data directory serves one process, and replicas need PostgreSQL, each with its own data_dir",
				dir, errLocked, holder, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	host, _ := os.Hostname()
	who := fmt.Sprintf("pid %d on %s\n", os.Getpid(), host)
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt([]byte(who), 0)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}
