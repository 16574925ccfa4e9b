package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrBackupUnsupported is Backup's error on PostgreSQL, whose own tools
// (pg_dump, base backups) make a consistent copy.
var ErrBackupUnsupported = errors.New("backup: use pg_dump for PostgreSQL")

// BackupStats say what Backup copied.
type BackupStats struct {
	DBBytes  int64 // the database file
	Segments int   // segment files
	Files    int   // large messages kept as files of their own
	RawBytes int64 // bytes of segment and message files
}

// Backup writes a consistent copy of a SQLite installation into dir (which
// must not exist or be empty) while the server runs: VACUUM INTO takes the
// database as of one read transaction, then the segment and message files
// are copied. Segments are append-only and every byte a committed row
// points at was made durable before the row committed, so a copy of each
// file taken after the snapshot holds everything the snapshot refers to;
// bytes appended since are unreferenced garbage the copy's first
// compaction reclaims. The copy is then opened and every raw row checked
// to lie within the copied files; a segment compacted away meanwhile
// makes the whole copy be taken again. dir is then a data_dir tend serve
// runs on.
func (s *Store) Backup(ctx context.Context, dir string) (BackupStats, error) {
	var st BackupStats
	if s.driver != DriverSQLite {
		return st, ErrBackupUnsupported
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return st, fmt.Errorf("backup: %s is not empty", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return st, fmt.Errorf("backup: %w", err)
	}
	const tries = 3
	var err error
	for range tries {
		if st, err = s.backupOnce(ctx, dir); err == nil || !errors.Is(err, errBackupRace) {
			return st, err
		}
		s.log.Info("backup: a segment changed during the copy; taking it again", "err", err)
		// dir was empty before: what is in it now is this copy's.
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if rerr := os.RemoveAll(filepath.Join(dir, e.Name())); rerr != nil {
				return st, fmt.Errorf("backup: %w", rerr)
			}
		}
	}
	return st, err
}

// errBackupRace marks a copy that compaction overtook.
var errBackupRace = errors.New("segment removed during the copy")

func (s *Store) backupOnce(ctx context.Context, dir string) (BackupStats, error) {
	var st BackupStats
	rawDir := filepath.Join(dir, "raw")
	if err := os.MkdirAll(rawDir, 0o750); err != nil {
		return st, fmt.Errorf("backup: %w", err)
	}
	dbPath := filepath.Join(dir, "tend.db")
	if err := s.db.WithContext(ctx).Exec("VACUUM INTO ?", dbPath).Error; err != nil {
		return st, fmt.Errorf("backup: vacuum into: %w", err)
	}
	if fi, err := os.Stat(dbPath); err == nil {
		st.DBBytes = fi.Size()
	}
	if s.afterSnapshot != nil {
		s.afterSnapshot()
	}
	names, err := filepath.Glob(filepath.Join(s.segs.dir, "*"))
	if err != nil {
		return st, fmt.Errorf("backup: %w", err)
	}
	for _, p := range names {
		base := filepath.Base(p)
		seg := strings.HasPrefix(base, "seg-") && strings.HasSuffix(base, ".dat")
		msg := strings.HasPrefix(base, "msg-") && strings.HasSuffix(base, ".eml")
		if !seg && !msg {
			continue
		}
		n, err := copyFile(p, filepath.Join(rawDir, base))
		if errors.Is(err, fs.ErrNotExist) {
			continue // compacted away: the check below decides whether the copy needed it
		}
		if err != nil {
			return st, fmt.Errorf("backup: %w", err)
		}
		st.RawBytes += n
		if seg {
			st.Segments++
		} else {
			st.Files++
		}
	}
	if err := syncPath(rawDir); err != nil {
		return st, err
	}
	if err := syncPath(dir); err != nil {
		return st, err
	}
	if err := checkBackup(ctx, dir); err != nil {
		return st, err
	}
	return st, nil
}

// checkBackup opens the copy and checks that every raw row lies within
// the copied files.
func checkBackup(ctx context.Context, dir string) error {
	b, err := Open(ctx, Options{Driver: DriverSQLite, DataDir: dir, Exclusive: true})
	if err != nil {
		return fmt.Errorf("backup: open the copy: %w", err)
	}
	defer b.Close()
	bad, err := b.CheckRaw(ctx)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if len(bad) > 0 {
		return fmt.Errorf("backup: %d raw messages missing from the copy (%s first): %w", len(bad), bad[0], errBackupRace)
	}
	return nil
}

// CheckRaw returns the hashes of raw messages whose bytes are not where
// their row says (a segment file too short or missing, a message file
// missing or of another size). It checks sizes, not contents.
func (s *Store) CheckRaw(ctx context.Context) ([]string, error) {
	if s.segs == nil {
		return nil, nil
	}
	var bad []string
	sizes := map[int]int64{}
	var last string
	for {
		var rows []RawMessage
		if err := s.db.WithContext(ctx).Select("hash, segment, \"offset\", size, packed").Where("hash > ? AND data IS NULL", last).
			Order("hash").Limit(1000).Find(&rows).Error; err != nil {
			return nil, fmt.Errorf("check raw: %w", err)
		}
		if len(rows) == 0 {
			return bad, nil
		}
		for _, r := range rows {
			last = r.Hash
			switch {
			case r.Segment == fileSegment:
				fi, err := os.Stat(s.segs.filePath(r.Hash))
				if err != nil || fi.Size() != r.Size {
					bad = append(bad, r.Hash)
				}
			case r.Segment > 0:
				size, ok := sizes[r.Segment]
				if !ok {
					size = -1
					if fi, err := os.Stat(s.segs.path(r.Segment)); err == nil {
						size = fi.Size()
					}
					sizes[r.Segment] = size
				}
				if r.Offset+r.stored() > size {
					bad = append(bad, r.Hash)
				}
			}
		}
	}
}

// copyFile copies src to dst and syncs it.
func copyFile(src, dst string) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// syncPath makes a directory's entries durable.
func syncPath(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("backup: fsync %s: %w", dir, err)
	}
	return nil
}
