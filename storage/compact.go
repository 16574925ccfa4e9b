package storage

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"gorm.io/gorm"
)

// CompactStats say what one compaction did.
type CompactStats struct {
	Erased    int64 // raw rows no message referred to any more, dropped
	Segments  int   // segment files rewritten or removed
	Moved     int   // messages copied into the current segment
	Reclaimed int64 // bytes of segment files given back to the file system
}

// compactChunk bounds the bytes moved, and the rows re-pointed in one
// short transaction, per step of a compaction.
const compactChunk = 8 << 20

// CompactSegments reclaims the bytes of segment files (beside SQLite) that
// no message refers to: duplicates (the committer appends a message's
// bytes before it knows the message is a duplicate), appends whose
// transaction then failed, and raw messages no message refers to any more.
// A segment whose garbage is at least minGarbage of its size has its live
// messages copied to the current segment, re-pointed in short transactions,
// and is then deleted. It never holds the writer for more than one chunk's
// updates, so intake goes on meanwhile; a crash midway leaves at worst a
// copy that the next compaction reclaims.
func (s *Store) CompactSegments(ctx context.Context, minGarbage float64) (CompactStats, error) {
	var st CompactStats
	if s.segs == nil {
		return st, nil
	}
	for {
		res := s.db.WithContext(ctx).Exec(`DELETE FROM raw_messages WHERE hash IN (SELECT hash FROM raw_messages r WHERE segment > 0
			AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.raw_hash = r.hash) LIMIT 500)`)
		if res.Error != nil {
			return st, fmt.Errorf("compact: erase: %w", res.Error)
		}
		st.Erased += res.RowsAffected
		if res.RowsAffected < 500 {
			break
		}
	}
	paths, err := filepath.Glob(filepath.Join(s.segs.dir, "seg-*.dat"))
	if err != nil {
		return st, err
	}
	for _, p := range paths {
		var id int
		if _, err := fmt.Sscanf(filepath.Base(p), "seg-%08d.dat", &id); err != nil {
			continue
		}
		done, err := s.compactSegment(ctx, id, minGarbage, &st)
		if err != nil {
			return st, err
		}
		if done {
			st.Segments++
		}
	}
	return st, nil
}

type liveBlob struct {
	Hash   string
	Offset int64
	Size   int64
	Packed int64
}

// stored is the bytes the blob takes in its segment.
func (b liveBlob) stored() int64 { return RawMessage{Size: b.Size, Packed: b.Packed}.stored() }

func (s *Store) compactSegment(ctx context.Context, id int, minGarbage float64, st *CompactStats) (bool, error) {
	fi, err := os.Stat(s.segs.path(id))
	if err != nil {
		return false, fmt.Errorf("compact segment %d: %w", id, err)
	}
	headed, err := s.segs.headed(id)
	if err != nil {
		return false, err
	}
	live, err := s.liveBlobs(ctx, id)
	if err != nil {
		return false, err
	}
	garbage := fi.Size() - liveSize(live, headed)
	// A segment without record headers is rewritten whatever its
	// garbage: that is how a data directory comes to the current format
	// (see segformat.go).
	if fi.Size() == 0 || (headed && float64(garbage) < minGarbage*float64(fi.Size())) {
		return false, nil
	}
	// The current segment is sealed first, so that new messages go to a
	// fresh one; then the appends already made to it finish their
	// transactions, and only then is the list of what lives in it final.
	if err := s.segs.seal(id); err != nil {
		return false, err
	}
	s.segs.settle(id)
	if live, err = s.liveBlobs(ctx, id); err != nil {
		return false, err
	}
	garbage = max(0, fi.Size()-liveSize(live, headed))
	f, err := s.segs.reader(id)
	if err != nil {
		return false, err
	}
	for len(live) > 0 {
		var n int
		var size int64
		for n < len(live) && (n == 0 || size+live[n].stored() <= compactChunk) {
			size += live[n].stored()
			n++
		}
		chunk := live[:n]
		live = live[n:]
		// Copied straight from the old file through append's bounded
		// buffer, never whole in memory; a message stored as it is gets
		// packed on the way (an upgraded data directory's older mail),
		// which holds at most the chunk's bytes.
		recs := make([]segRecord, len(chunk))
		packed := make([]int64, len(chunk))
		for i, b := range chunk {
			body := io.NewSectionReader(f, b.Offset, b.stored())
			recs[i] = segRecord{hash: b.Hash, body: body, packed: b.Packed > 0}
			packed[i] = b.Packed
			if b.Packed == 0 {
				p, err := s.pack.pack(body)
				if err != nil {
					return false, fmt.Errorf("compact segment %d: %w", id, err)
				}
				if p != nil {
					recs[i] = segRecord{hash: b.Hash, body: packedBody(p), packed: true}
					packed[i] = int64(len(p))
				}
			}
		}
		refs, err := s.segs.append(recs)
		if err != nil {
			return false, err
		}
		err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			for i, b := range chunk {
				if err := tx.Model(&RawMessage{}).Where("hash = ? AND segment = ? AND \"offset\" = ?", b.Hash, id, b.Offset).
					Updates(map[string]any{"segment": refs[i].id, "offset": refs[i].offset, "packed": packed[i]}).Error; err != nil {
					return err
				}
			}
			return nil
		})
		s.segs.release(refs[0].id)
		if err != nil {
			return false, fmt.Errorf("compact segment %d: re-point: %w", id, err)
		}
		st.Moved += len(chunk)
	}
	var left int64
	if err := s.db.WithContext(ctx).Model(&RawMessage{}).Where("segment = ?", id).Count(&left).Error; err != nil {
		return false, fmt.Errorf("compact segment %d: %w", id, err)
	}
	if left > 0 {
		return false, fmt.Errorf("compact segment %d: %d messages still point into it", id, left)
	}
	if err := s.segs.remove(id); err != nil {
		return false, err
	}
	st.Reclaimed += garbage
	return true, nil
}

// liveSize is the bytes that live blobs take in their segment file: with
// their headers, and the file's, when the segment has them.
func liveSize(live []liveBlob, headed bool) int64 {
	var n int64
	for _, b := range live {
		n += b.stored()
	}
	if headed {
		n += segFileHdrLen + int64(len(live))*recHdrLen
	}
	return n
}

// liveBlobs lists the raw messages stored in segment id, in file order.
func (s *Store) liveBlobs(ctx context.Context, id int) ([]liveBlob, error) {
	var live []liveBlob
	if err := s.db.WithContext(ctx).Model(&RawMessage{}).Select("hash, \"offset\", size, packed").
		Where("segment = ?", id).Order("\"offset\"").Scan(&live).Error; err != nil {
		return nil, fmt.Errorf("compact segment %d: %w", id, err)
	}
	return live, nil
}
