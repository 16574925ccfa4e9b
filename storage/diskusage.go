package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// DiskPart is one share of the store's bytes on disk.
type DiskPart struct {
	Name  string // a file ("tend.db-wal", "raw/"), or a table or index
	Bytes int64
}

// DiskUsage is what the store holds on disk: Total is every byte of it
// (SQLite: the database, its WAL and the raw directory; PostgreSQL: the
// database's size), Files the files that make it up (SQLite only) and
// Objects the tables and indexes inside the database, largest first
// (a table's TOAST is counted with it on PostgreSQL; on SQLite only
// where the driver has the dbstat table, which the bundled pure-Go one
// lacks: `sqlite3 tend.db` on a copy kept with tend bench --keep shows
// them). It is what `tend
// bench` reports beside the bytes received, so that a growth in one
// share can be seen.
type DiskUsage struct {
	Total   int64
	Files   []DiskPart
	Objects []DiskPart
}

// DiskUsage measures the store's bytes on disk (see DiskUsage).
func (s *Store) DiskUsage(ctx context.Context) (DiskUsage, error) {
	var u DiskUsage
	db := s.db.WithContext(ctx)
	if s.driver == DriverPostgres {
		if err := db.Raw("SELECT pg_database_size(current_database())").Scan(&u.Total).Error; err != nil {
			return u, fmt.Errorf("disk usage: %w", err)
		}
		err := db.Raw(`SELECT c.relname AS name, pg_relation_size(c.oid) + COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) AS bytes
			FROM pg_class c WHERE c.relkind IN ('r', 'i', 'm') AND c.relnamespace = current_schema()::regnamespace`).Scan(&u.Objects).Error
		if err != nil {
			return u, fmt.Errorf("disk usage: %w", err)
		}
	} else {
		var path string
		if err := db.Raw("SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&path).Error; err != nil {
			return u, fmt.Errorf("disk usage: %w", err)
		}
		for _, f := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(f)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return u, fmt.Errorf("disk usage: %w", err)
			}
			u.Files = append(u.Files, DiskPart{filepath.Base(f), fi.Size()})
		}
		if s.segs != nil {
			n, err := treeSize(s.segs.dir)
			if err != nil {
				return u, fmt.Errorf("disk usage: %w", err)
			}
			u.Files = append(u.Files, DiskPart{filepath.Base(s.segs.dir) + "/", n})
		}
		for _, f := range u.Files {
			u.Total += f.Bytes
		}
		// dbstat names every b-tree; a search table's shadow tables
		// (search_messages_data, …) are counted under their own names.
		err := db.Raw("SELECT name, SUM(pgsize) AS bytes FROM dbstat GROUP BY name").Scan(&u.Objects).Error
		if err != nil && !strings.Contains(err.Error(), "no such table") {
			return u, fmt.Errorf("disk usage: %w", err)
		}
	}
	sort.Slice(u.Objects, func(i, j int) bool { return u.Objects[i].Bytes > u.Objects[j].Bytes })
	return u, nil
}

// treeSize is the bytes of the files under dir.
func treeSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	})
	return n, err
}
