package storage_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/tendhq/tend/storage"
)

// TestReclaimReturnsFreePages: a new SQLite database frees pages
// incrementally, so the room a burst's dropped bodies left (here 24 MiB
// of rows deleted at once) goes back to the file system in bounded steps
// instead of staying in the file at the size of the backlog.
func TestReclaimReturnsFreePages(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := storage.Open(ctx, storage.Options{Driver: storage.DriverSQLite, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if mode, err := storage.Pragma(ctx, s, "auto_vacuum"); err != nil || mode != "2" {
		t.Fatalf("auto_vacuum = %q, %v; want 2 (incremental)", mode, err)
	}
	for _, stmt := range []string{
		"CREATE TABLE burst (b BLOB)",
		"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 96) INSERT INTO burst SELECT randomblob(256 * 1024) FROM n",
		"DROP TABLE burst",
	} {
		if err := storage.ExecForTest(ctx, s, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	free := func() int {
		v, err := storage.Pragma(ctx, s, "freelist_count")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(v)
		return n
	}
	size := func() int64 {
		if err := storage.ExecForTest(ctx, s, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filepath.Join(dir, "tend.db"))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before, freeBefore := size(), free()
	if freeBefore < 6000 {
		t.Fatalf("only %d free pages after the burst", freeBefore)
	}
	// Each call frees at most one bounded step; a few calls free it all.
	for range 4 {
		if err := s.Reclaim(ctx); err != nil {
			t.Fatal(err)
		}
	}
	after := size()
	if f := free(); f > 2048 {
		t.Errorf("%d pages still free after reclaiming (%d before)", f, freeBefore)
	}
	if after > before-20<<20 {
		t.Errorf("tend.db %d bytes after reclaiming, %d before: the room was not returned", after, before)
	}
}
