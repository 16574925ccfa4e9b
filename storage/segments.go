package storage

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// segments keeps raw message bytes beside a SQLite database, in
// append-only segment files. SQLite writes a blob page by page, two
// system calls per 4 KiB page into the WAL and the same again when it
// checkpoints: for mail of tens of kilobytes that was most of the ingest
// path's cost. Here one group commit appends all its messages with one
// write and makes them durable with one fsync, before the transaction that
// references them commits; a crash in between leaves only unreferenced
// bytes. PostgreSQL keeps raw bytes in the database instead: replicas
// sharing it must see them. A large message that arrives as a file (see
// fileMin) is moved in as a file of its own instead. Each message in a
// segment sits behind a record header with its length and SHA-256, so a
// segment file can be checked or re-indexed on its own (segformat.go).
type segments struct {
	dir     string
	maxSize int64

	mu    sync.Mutex // guards cur, curID, curSize and readers
	cur   *os.File
	curID int
	size  int64
	files map[int]*os.File // open for reading

	// inflight counts, per segment, appends whose transaction has not
	// finished yet (see release): compaction waits for them before it
	// decides a sealed segment is empty.
	inflight map[int]int
	idle     *sync.Cond    // signalled when an inflight count drops
	bw       *bufio.Writer // append's bounded write buffer

	// shred makes remove overwrite a segment with zeros before it
	// unlinks it (set by Forget, under mu): the freed blocks then no
	// longer hold the erased mail on a file system that writes in place.
	shred bool
}

// segmentMax is where a new segment file starts.
const segmentMax = 1 << 30

func openSegments(dir string) (*segments, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("raw segments: %w", err)
	}
	s := &segments{dir: dir, maxSize: segmentMax, files: map[int]*os.File{}, inflight: map[int]int{}}
	s.idle = sync.NewCond(&s.mu)
	ids, err := filepath.Glob(filepath.Join(dir, "seg-*.dat"))
	if err != nil {
		return nil, err
	}
	for _, p := range ids {
		var id int
		if _, err := fmt.Sscanf(filepath.Base(p), "seg-%08d.dat", &id); err == nil && id > s.curID {
			s.curID = id
		}
	}
	if s.curID == 0 {
		s.curID = 1
	}
	// A segment written before record headers (see segformat.go) is
	// never appended to: its records would lack headers and the file its
	// format marker. The next one is started instead.
	if headed, err := s.headed(s.curID); err != nil {
		return nil, err
	} else if !headed {
		s.curID++
	}
	if err := s.openCurrent(); err != nil {
		return nil, err
	}
	return s, nil
}

// headed reports whether segment id is in the format with record headers
// (see segformat.go); a missing or empty file is.
func (s *segments) headed(id int) (bool, error) {
	f, err := os.Open(s.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("raw segment %d: %w", id, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("raw segment %d: %w", id, err)
	}
	ok, err := readSegFileHeader(f, fi.Size())
	if err != nil {
		return false, fmt.Errorf("raw segment %d: %w", id, err)
	}
	return ok, nil
}

func (s *segments) path(id int) string { return filepath.Join(s.dir, fmt.Sprintf("seg-%08d.dat", id)) }

func (s *segments) openCurrent() error {
	f, err := os.OpenFile(s.path(s.curID), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("raw segment: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("raw segment: %w", err)
	}
	if st.Size() == 0 {
		// A new file: make its directory entry durable too.
		if d, err := os.Open(s.dir); err == nil {
			_ = d.Sync()
			_ = d.Close()
		}
	}
	s.cur, s.size = f, st.Size()
	return nil
}

// fileSegment in RawMessage.Segment says the bytes are a file of their
// own in the raw directory, named by their hash (see filePath).
const fileSegment = -1

// fileMin is the size from which a message that arrives as a file (the
// doors' spool) is moved into the raw directory as a file of its own
// rather than copied into a segment: its copy and fsync would otherwise
// run on the committer, and every small message of the same batch would
// wait behind them.
const fileMin = 1 << 20

// filePath is where the bytes of a large message are kept.
func (s *segments) filePath(hash string) string { return filepath.Join(s.dir, "msg-"+hash+".eml") }

// moveIn moves a synced file into place as the bytes of hash. Across
// file systems (a database path outside data_dir) it is copied and
// synced instead.
func (s *segments) moveIn(src, hash string) error {
	dst := s.filePath(hash)
	err := os.Rename(src, dst)
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.EXDEV) {
		return fmt.Errorf("raw file: %w", err)
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("raw file: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("raw file: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return fmt.Errorf("raw file: %w", err)
	}
	if err := out.Sync(); err != nil {
		_ = out.Close()
		return fmt.Errorf("raw file fsync: %w", err)
	}
	return out.Close()
}

// syncDir makes the names of files moved in durable.
func (s *segments) syncDir() error {
	d, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("raw dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("raw dir fsync: %w", err)
	}
	return nil
}

// readFile returns the bytes of a large message.
func (s *segments) readFile(hash string) ([]byte, error) {
	b, err := os.ReadFile(s.filePath(hash))
	if err != nil {
		return nil, fmt.Errorf("raw file: %w", err)
	}
	return b, nil
}

// segRef locates raw bytes in a segment.
type segRef struct {
	id     int
	offset int64
}

// segRecord is one message to append: the bytes to store, the hex
// SHA-256 of the message, which goes into the record's header, and
// whether body is the message's zstd frame (packing.go) or the message.
type segRecord struct {
	hash   string
	body   Body
	packed bool
}

// append copies every body, each behind its record header, into the
// current segment through one bounded buffer (the bodies are the doors'
// spool files: a 24 MB message never sits in memory, and a batch of small
// ones goes out in one write), with one fsync at the end, and returns
// where each body landed (all in one segment). A failed append is cut off
// again, so that the next one lands where its offsets say. The caller
// calls release with that segment once the transaction that refers to the
// bytes has finished, committed or not.
func (s *segments) append(recs []segRecord) ([]segRef, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var total int64
	for _, r := range recs {
		total += recHdrLen + r.body.Size()
	}
	if s.size > 0 && s.size+total > s.maxSize {
		if err := s.cur.Close(); err != nil {
			return nil, fmt.Errorf("raw segment: %w", err)
		}
		s.curID++
		if err := s.openCurrent(); err != nil {
			return nil, err
		}
	}
	if s.bw == nil {
		s.bw = bufio.NewWriterSize(nil, segmentBuf)
	}
	s.bw.Reset(onlyWriter{s.cur})
	off := s.size
	if off == 0 {
		// A new file: its format marker first.
		if _, err := s.bw.Write(segFileHeader()); err != nil {
			return nil, s.undo(fmt.Errorf("raw segment write: %w", err))
		}
		off = segFileHdrLen
	}
	refs := make([]segRef, len(recs))
	var hdr [recHdrLen]byte
	for i, r := range recs {
		size := r.body.Size()
		if err := putRecHeader(hdr[:], size, r.hash, r.packed); err != nil {
			return nil, s.undo(err)
		}
		if _, err := s.bw.Write(hdr[:]); err != nil {
			return nil, s.undo(fmt.Errorf("raw segment write: %w", err))
		}
		off += recHdrLen
		refs[i] = segRef{s.curID, off}
		n, err := s.bw.ReadFrom(io.NewSectionReader(r.body, 0, size))
		if err == nil && n != size {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return nil, s.undo(fmt.Errorf("raw segment write: %w", err))
		}
		off += n
	}
	if err := s.bw.Flush(); err != nil {
		return nil, s.undo(fmt.Errorf("raw segment write: %w", err))
	}
	if err := s.cur.Sync(); err != nil {
		return nil, s.undo(fmt.Errorf("raw segment fsync: %w", err))
	}
	s.size = off
	s.inflight[s.curID]++
	return refs, nil
}

// release ends an append's wait on segment id (see append).
func (s *segments) release(id int) {
	s.mu.Lock()
	s.inflight[id]--
	if s.inflight[id] <= 0 {
		delete(s.inflight, id)
	}
	s.mu.Unlock()
	s.idle.Broadcast()
}

// settle waits until every append to segment id has finished its
// transaction.
func (s *segments) settle(id int) {
	s.mu.Lock()
	for s.inflight[id] > 0 {
		s.idle.Wait()
	}
	s.mu.Unlock()
}

// segmentBuf is the write buffer of append.
const segmentBuf = 1 << 20

// undo truncates the current segment back to its last good size after a
// failed append.
func (s *segments) undo(cause error) error {
	if err := s.cur.Truncate(s.size); err != nil {
		return errors.Join(cause, fmt.Errorf("raw segment truncate: %w", err))
	}
	return cause
}

// onlyWriter hides os.File's ReadFrom, so that the bufio.Writer of
// append copies through its own bounded buffer (ReadFrom on an O_APPEND
// file falls back to a copy of its own anyway).
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

// reader returns segment id open for reading.
func (s *segments) reader(id int) (*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[id]
	if !ok {
		var err error
		if f, err = os.Open(s.path(id)); err != nil {
			return nil, fmt.Errorf("raw segment %d: %w", id, err)
		}
		s.files[id] = f
	}
	return f, nil
}

// read returns size bytes at ref.
func (s *segments) read(id int, offset, size int64) ([]byte, error) {
	f, err := s.reader(id)
	if err != nil {
		return nil, err
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, offset); err != nil {
		return nil, fmt.Errorf("raw segment %d at %d: %w", id, offset, err)
	}
	return b, nil
}

func (s *segments) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	errs := []error{s.cur.Close()}
	for _, f := range s.files {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

// seal starts a new current segment if id is the current one, so that id
// receives no more appends.
func (s *segments) seal(id int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id != s.curID {
		return nil
	}
	if err := s.cur.Close(); err != nil {
		return fmt.Errorf("raw segment: %w", err)
	}
	s.curID++
	return s.openCurrent()
}

// remove deletes sealed segment id, which nothing refers to any more. A
// reader that looked up its location just before may find it gone: Raw
// then looks again.
func (s *segments) remove(id int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id == s.curID {
		return fmt.Errorf("raw segment %d: the current segment cannot be removed", id)
	}
	if f, ok := s.files[id]; ok {
		_ = f.Close()
		delete(s.files, id)
	}
	if s.shred {
		if err := shredFile(s.path(id)); err != nil {
			return fmt.Errorf("raw segment %d: %w", id, err)
		}
	}
	if err := os.Remove(s.path(id)); err != nil {
		return fmt.Errorf("raw segment %d: %w", id, err)
	}
	if d, err := os.Open(s.dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
