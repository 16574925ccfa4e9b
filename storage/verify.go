package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// RawReport is what VerifyRaw found.
type RawReport struct {
	Records  int64 // stored bodies checked: segment records, message files, rows, chunk bodies
	Bytes    int64 // their bytes
	Orphaned int64 // bodies no message points at (garbage for compaction and reclaiming, not errors)
	// OrphanedBytes are the bytes of those, and of torn tails that a
	// crash in the middle of an append left.
	OrphanedBytes int64
	// Legacy are segment files from before record headers (see
	// segformat.go): their messages are checked through the database's
	// offsets only, and their garbage is not counted.
	Legacy int
	Bad    []RawProblem // corruption: a message's raw bytes missing or not what was stored
}

// RawProblem is one message whose raw bytes are damaged or missing.
type RawProblem struct {
	File    string // the file (segment, message file) or "raw_messages"/"raw_chunks"
	Offset  int64  // where in File the record's body starts (-1: not in a file)
	Hash    string // the raw hash the database has for the bytes
	Message int64  // a message row pointing at them (0: none found)
	Problem string
}

func (p RawProblem) String() string {
	where := p.File
	if p.Offset >= 0 {
		where = fmt.Sprintf("%s at offset %d", p.File, p.Offset)
	}
	return fmt.Sprintf("%s: message %d (raw %s): %s", where, p.Message, p.Hash, p.Problem)
}

// VerifyRaw checks every stored raw body against its SHA-256 and the
// database: it walks each segment file record by record (checking every
// header and body), every large-message file, and on PostgreSQL every
// body kept in a row or in raw_chunks, then makes sure every received
// message's raw row exists and points at a sound record. Bodies nothing
// points at are counted as orphaned. It only reads, so it runs beside
// tend serve; what the server appends or compaction moves meanwhile is
// looked up again before it is called damaged.
func (s *Store) VerifyRaw(ctx context.Context) (RawReport, error) {
	var r RawReport
	v := &verifier{s: s, rep: &r, buf: make([]byte, segmentBuf), sum: sha256.New()}
	if err := v.rows(ctx); err != nil {
		return r, err
	}
	if s.segs != nil {
		if err := v.segments(ctx); err != nil {
			return r, err
		}
		if err := v.files(ctx); err != nil {
			return r, err
		}
	}
	if s.driver == DriverPostgres {
		if err := v.chunks(ctx); err != nil {
			return r, err
		}
	}
	if err := v.messages(ctx); err != nil {
		return r, err
	}
	return r, nil
}

type verifier struct {
	s   *Store
	rep *RawReport
	buf []byte
	sum hash.Hash
}

// hashOf streams size bytes of r at off through SHA-256 and returns the
// hex digest and how many bytes there were.
func (v *verifier) hashOf(r io.ReaderAt, off, size int64) (string, int64, error) {
	v.sum.Reset()
	n, err := io.CopyBuffer(v.sum, io.NewSectionReader(r, off, size), v.buf)
	return hex.EncodeToString(v.sum.Sum(nil)), n, err
}

// hashStored is hashOf for a message stored in size bytes at off, which
// are its zstd frame when packed: the digest and length are then the
// message's, streamed through the decoder in bounded memory. A frame
// that does not decode gives an empty digest (a damaged body, as a
// mismatch is), not an error; errors are the reader's.
func (v *verifier) hashStored(r io.ReaderAt, off, size int64, packed bool) (string, int64, error) {
	if !packed {
		return v.hashOf(r, off, size)
	}
	sec := &readErr{r: io.NewSectionReader(r, off, size)}
	d, err := v.s.pack.reader(sec)
	if err != nil {
		return "", 0, err
	}
	defer d.Close()
	v.sum.Reset()
	n, err := io.CopyBuffer(v.sum, d, v.buf)
	if sec.err != nil {
		return "", 0, sec.err
	}
	if err != nil {
		return "", n, nil
	}
	return hex.EncodeToString(v.sum.Sum(nil)), n, nil
}

// readErr remembers the underlying reader's error, so that hashStored
// can tell a failing file from a frame that does not decode.
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		e.err = err
	}
	return n, err
}

// bad records a problem, naming a message that points at hash. When at
// is the row as read before the check, the row is looked up again first:
// compaction may have moved the bytes meanwhile (or an erasure dropped
// them), and then where they are now is what counts.
func (v *verifier) bad(ctx context.Context, p RawProblem, at *usedRow) error {
	if at != nil {
		var now []RawMessage
		if err := v.s.db.WithContext(ctx).Select("hash, segment, \"offset\"").Where("hash = ?", at.Hash).Limit(1).Find(&now).Error; err != nil {
			return fmt.Errorf("verify raw: %w", err)
		}
		if len(now) == 0 {
			return nil
		}
		if now[0].Segment != at.Segment || now[0].Offset != at.Offset {
			if b, err := v.s.Raw(ctx, at.Hash); err == nil {
				if h := sha256.Sum256(b); hex.EncodeToString(h[:]) == at.Hash {
					return nil
				}
			}
		}
	}
	var ids []int64
	if err := v.s.db.WithContext(ctx).Model(&Message{}).Where("raw_hash = ?", p.Hash).Order("id").Limit(1).Pluck("id", &ids).Error; err != nil {
		return fmt.Errorf("verify raw: %w", err)
	}
	if len(ids) > 0 {
		p.Message = ids[0]
	}
	v.rep.Bad = append(v.rep.Bad, p)
	return nil
}

// usedRow is a raw row with whether any message points at it.
type usedRow struct {
	Hash    string
	Segment int
	Offset  int64
	Size    int64
	Packed  int64
	Used    bool
}

// stored is the bytes the row's message takes where it is kept.
func (r usedRow) stored() int64 { return RawMessage{Size: r.Size, Packed: r.Packed}.stored() }

const usedSelect = `hash, segment, "offset", size, packed, EXISTS (SELECT 1 FROM messages m WHERE m.raw_hash = raw_messages.hash) AS used`

// rows checks the bodies kept in raw_messages.data (PostgreSQL's small
// messages), in pages.
func (v *verifier) rows(ctx context.Context) error {
	var last string
	for {
		var rows []struct {
			Hash   string
			Size   int64
			Packed int64
			Used   bool
			Data   []byte
		}
		if err := v.s.db.WithContext(ctx).Model(&RawMessage{}).Select(usedSelect+", data").
			Where("hash > ? AND data IS NOT NULL", last).Order("hash").Limit(100).Scan(&rows).Error; err != nil {
			return fmt.Errorf("verify raw: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		for _, r := range rows {
			last = r.Hash
			h, n, err := v.hashStored(bytes.NewReader(r.Data), 0, int64(len(r.Data)), r.Packed > 0)
			if err != nil {
				return fmt.Errorf("verify raw: %w", err)
			}
			v.count(r.Used, n)
			if r.Used && (h != r.Hash || n != r.Size) {
				if err := v.bad(ctx, RawProblem{File: "raw_messages", Offset: -1, Hash: r.Hash,
					Problem: fmt.Sprintf("row holds %d bytes with SHA-256 %s, want %d bytes", n, h, r.Size)}, nil); err != nil {
					return err
				}
			}
		}
	}
}

func (v *verifier) count(used bool, n int64) {
	v.rep.Records++
	v.rep.Bytes += n
	if !used {
		v.rep.Orphaned++
		v.rep.OrphanedBytes += n
	}
}

// segments checks every segment file against the raw rows that point
// into it.
func (v *verifier) segments(ctx context.Context) error {
	// Listed again until no new file appears: compaction beside a
	// running server may start a segment and move rows into it meanwhile.
	seen := map[int]bool{}
	for fresh := true; fresh; {
		fresh = false
		paths, err := filepath.Glob(filepath.Join(v.s.segs.dir, "seg-*.dat"))
		if err != nil {
			return fmt.Errorf("verify raw: %w", err)
		}
		for _, p := range paths {
			var id int
			if _, err := fmt.Sscanf(filepath.Base(p), "seg-%08d.dat", &id); err != nil || seen[id] {
				continue
			}
			seen[id], fresh = true, true
			if err := v.segment(ctx, id, p); err != nil {
				return err
			}
		}
	}
	// Rows that point into a segment file that is not there (only
	// those: the others were checked with their file).
	ids := []int{0}
	for id := range seen {
		ids = append(ids, id)
	}
	for last := ""; ; {
		var rows []usedRow
		if err := v.s.db.WithContext(ctx).Model(&RawMessage{}).Select(usedSelect).
			Where("hash > ? AND segment > 0 AND data IS NULL AND segment NOT IN ?", last, ids).
			Order("hash").Limit(1000).Scan(&rows).Error; err != nil {
			return fmt.Errorf("verify raw: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		for _, r := range rows {
			last = r.Hash
			if !r.Used {
				continue
			}
			if _, err := os.Stat(v.s.segs.path(r.Segment)); err == nil {
				continue // started after the listing: not missing, only new
			}
			if err := v.bad(ctx, RawProblem{File: v.s.segs.path(r.Segment), Offset: r.Offset, Hash: r.Hash,
				Problem: "the segment file is missing"}, &r); err != nil {
				return err
			}
		}
	}
}

func (v *verifier) segment(ctx context.Context, id int, path string) error {
	// The rows first, then the file: what the server appends meanwhile
	// is only more records no row of this list points at.
	var rows []usedRow
	if err := v.s.db.WithContext(ctx).Model(&RawMessage{}).Select(usedSelect).Where("segment = ? AND data IS NULL", id).
		Order("\"offset\"").Scan(&rows).Error; err != nil {
		return fmt.Errorf("verify raw: %w", err)
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // compacted away since the glob: its rows point elsewhere now
	}
	if err != nil {
		return fmt.Errorf("verify raw: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("verify raw: %w", err)
	}
	size := fi.Size()
	headed, err := readSegFileHeader(f, size)
	if err != nil {
		return fmt.Errorf("verify raw %s: %w", path, err)
	}
	if !headed {
		v.rep.Legacy++
		for _, r := range rows {
			if err := v.direct(ctx, f, path, size, r, ""); err != nil {
				return err
			}
		}
		return nil
	}
	recs, lost, err := v.walk(f, size)
	if err != nil {
		return fmt.Errorf("verify raw %s: %w", path, err)
	}
	v.rep.OrphanedBytes += lost
	pointed := map[int64]bool{}
	for _, r := range rows {
		if !r.Used {
			continue
		}
		pointed[r.Offset] = true
		w, ok := recs[r.Offset]
		switch {
		case ok && w.ok && w.hash == r.Hash && w.n == r.Size && w.size == r.stored() && w.packed == (r.Packed > 0):
			v.count(true, w.n)
		case ok && !w.ok:
			if err := v.direct(ctx, f, path, size, r, "the body does not match the SHA-256 in its header"); err != nil {
				return err
			}
		case ok:
			if err := v.direct(ctx, f, path, size, r, fmt.Sprintf("the record holds %d bytes of %s", w.n, w.hash)); err != nil {
				return err
			}
		default:
			if err := v.direct(ctx, f, path, size, r, "no sound record header before the body"); err != nil {
				return err
			}
		}
	}
	for off, w := range recs {
		if !pointed[off] {
			v.count(false, w.n)
		}
	}
	return nil
}

// direct checks row r's bytes in segment f by the database's offset and
// length alone; why, when set, is what the walk found wrong there.
func (v *verifier) direct(ctx context.Context, f *os.File, path string, size int64, r usedRow, why string) error {
	if r.Offset+r.stored() > size {
		if !r.Used {
			return nil
		}
		return v.bad(ctx, RawProblem{File: path, Offset: r.Offset, Hash: r.Hash,
			Problem: fmt.Sprintf("truncated: %d bytes wanted, the file ends %d bytes in", r.stored(), max(0, size-r.Offset))}, &r)
	}
	h, n, err := v.hashStored(f, r.Offset, r.stored(), r.Packed > 0)
	if err != nil {
		return fmt.Errorf("verify raw %s: %w", path, err)
	}
	v.count(r.Used, n)
	if !r.Used {
		return nil
	}
	switch {
	case h != r.Hash || n != r.Size:
		if why == "" {
			why = "the bytes do not match their SHA-256"
		}
		return v.bad(ctx, RawProblem{File: path, Offset: r.Offset, Hash: r.Hash, Problem: why}, &r)
	case why != "":
		return v.bad(ctx, RawProblem{File: path, Offset: r.Offset, Hash: r.Hash, Problem: why + " (the body itself is intact)"}, &r)
	}
	return nil
}

// files checks the large messages kept as files of their own, named by
// their hash.
func (v *verifier) files(ctx context.Context) error {
	var rows []usedRow
	if err := v.s.db.WithContext(ctx).Model(&RawMessage{}).Select(usedSelect).Where("segment = ? AND data IS NULL", fileSegment).
		Scan(&rows).Error; err != nil {
		return fmt.Errorf("verify raw: %w", err)
	}
	byHash := map[string]usedRow{}
	for _, r := range rows {
		byHash[r.Hash] = r
	}
	paths, err := filepath.Glob(filepath.Join(v.s.segs.dir, "msg-*.eml"))
	if err != nil {
		return fmt.Errorf("verify raw: %w", err)
	}
	for _, p := range paths {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "msg-"), ".eml")
		r, ok := byHash[name]
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("verify raw: %w", err)
		}
		fi, err := f.Stat()
		if err == nil {
			var h string
			var n int64
			h, n, err = v.hashOf(f, 0, fi.Size())
			if err == nil {
				v.count(ok && r.Used, n)
				if ok && r.Used && (h != name || n != r.Size) {
					err = v.bad(ctx, RawProblem{File: p, Offset: 0, Hash: name,
						Problem: fmt.Sprintf("the file holds %d bytes with SHA-256 %s, want %d bytes", n, h, r.Size)}, &r)
				}
			}
		}
		_ = f.Close()
		if err != nil {
			return fmt.Errorf("verify raw %s: %w", p, err)
		}
		delete(byHash, name)
	}
	for _, r := range byHash {
		if r.Used {
			if err := v.bad(ctx, RawProblem{File: v.s.segs.filePath(r.Hash), Offset: -1, Hash: r.Hash, Problem: "the message file is missing"}, &r); err != nil {
				return err
			}
		}
	}
	return nil
}

// chunks checks the bodies kept in raw_chunks (PostgreSQL), one chunk
// page at a time, and counts chunks no raw row points at.
func (v *verifier) chunks(ctx context.Context) error {
	var last string
	for {
		var rows []usedRow
		if err := v.s.db.WithContext(ctx).Model(&RawMessage{}).Select(usedSelect).
			Where("hash > ? AND segment = ? AND data IS NULL", last, chunkSegment).Order("hash").Limit(100).Scan(&rows).Error; err != nil {
			return fmt.Errorf("verify raw: %w", err)
		}
		if len(rows) == 0 {
			break
		}
		for _, r := range rows {
			last = r.Hash
			if err := v.chunked(ctx, r); err != nil {
				return err
			}
		}
	}
	var orphans []struct {
		N     int64
		Bytes int64
	}
	if err := v.s.db.WithContext(ctx).Raw(`SELECT COUNT(DISTINCT hash) AS n, COALESCE(SUM(LENGTH(data)), 0) AS bytes FROM raw_chunks c
		WHERE NOT EXISTS (SELECT 1 FROM raw_messages r WHERE r.hash = c.hash AND r.segment = ?)`, chunkSegment).Scan(&orphans).Error; err != nil {
		return fmt.Errorf("verify raw: orphan chunks: %w", err)
	}
	for _, o := range orphans {
		v.rep.Records += o.N
		v.rep.Bytes += o.Bytes
		v.rep.Orphaned += o.N
		v.rep.OrphanedBytes += o.Bytes
	}
	return nil
}

// chunked streams the chunks of r through SHA-256, checking that their
// sequence has no gap.
func (v *verifier) chunked(ctx context.Context, r usedRow) error {
	v.sum.Reset()
	var n int64
	problem := ""
	for seq := 0; problem == ""; {
		var cs []RawChunk
		if err := v.s.db.WithContext(ctx).Where("hash = ? AND seq >= ?", r.Hash, seq).Order("seq").Limit(chunksPerTx).Find(&cs).Error; err != nil {
			return fmt.Errorf("verify raw %s: chunks: %w", r.Hash, err)
		}
		if len(cs) == 0 {
			break
		}
		for _, c := range cs {
			if c.Seq != seq {
				problem = fmt.Sprintf("chunk %d missing", seq)
				break
			}
			v.sum.Write(c.Data)
			n += int64(len(c.Data))
			seq++
		}
	}
	v.count(r.Used, n)
	if !r.Used {
		return nil
	}
	h := hex.EncodeToString(v.sum.Sum(nil))
	if problem == "" && (h != r.Hash || n != r.Size) {
		problem = fmt.Sprintf("the chunks hold %d bytes with SHA-256 %s, want %d bytes", n, h, r.Size)
	}
	if problem == "" {
		return nil
	}
	return v.bad(ctx, RawProblem{File: "raw_chunks", Offset: -1, Hash: r.Hash, Problem: problem}, nil)
}

// messages reports received messages whose raw row is missing.
func (v *verifier) messages(ctx context.Context) error {
	var last int64
	for {
		var rows []struct {
			ID      int64
			RawHash string
		}
		if err := v.s.db.WithContext(ctx).Model(&Message{}).Select("id, raw_hash").
			Where("id > ? AND direction = ? AND NOT EXISTS (SELECT 1 FROM raw_messages r WHERE r.hash = messages.raw_hash)", last, DirectionIn).
			Order("id").Limit(1000).Scan(&rows).Error; err != nil {
			return fmt.Errorf("verify raw: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		for _, r := range rows {
			last = r.ID
			v.rep.Bad = append(v.rep.Bad, RawProblem{File: "raw_messages", Offset: -1, Hash: r.RawHash, Message: r.ID,
				Problem: "no raw row: the message's bytes are not stored"})
		}
	}
}
