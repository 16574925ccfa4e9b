package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// segments keeps raw message bytes beside a SQLite database, in
// append-only segment files. SQLite writes a blob page by page, two
// system calls per 4 KiB page into the WAL and the same again when it
// checkpoints: for mail of tens of kilobytes that was most of the ingest
// path's cost. Here one group commit appends all its messages with one
// write and makes them durable with one fsync, before the transaction that
// references them commits; a crash in between leaves only unreferenced
// bytes. PostgreSQL keeps raw bytes in the database instead: replicas
// sharing it must see them.
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
	idle     *sync.Cond // signalled when an inflight count drops
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
	if err := s.openCurrent(); err != nil {
		return nil, err
	}
	return s, nil
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

// segRef locates raw bytes in a segment.
type segRef struct {
	id     int
	offset int64
}

// append writes every blob with one write and one fsync and returns where
// each landed (all in one segment). The caller calls release with that
// segment once the transaction that refers to the bytes has finished,
// committed or not.
func (s *segments) append(blobs [][]byte) ([]segRef, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var total int64
	for _, b := range blobs {
		total += int64(len(b))
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
	refs := make([]segRef, len(blobs))
	buf := make([]byte, 0, total)
	off := s.size
	for i, b := range blobs {
		refs[i] = segRef{s.curID, off}
		buf = append(buf, b...)
		off += int64(len(b))
	}
	if _, err := s.cur.Write(buf); err != nil {
		return nil, fmt.Errorf("raw segment write: %w", err)
	}
	if err := s.cur.Sync(); err != nil {
		return nil, fmt.Errorf("raw segment fsync: %w", err)
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

// read returns size bytes at ref.
func (s *segments) read(id int, offset, size int64) ([]byte, error) {
	s.mu.Lock()
	f, ok := s.files[id]
	if !ok {
		var err error
		if f, err = os.Open(s.path(id)); err != nil {
			s.mu.Unlock()
			return nil, fmt.Errorf("raw segment %d: %w", id, err)
		}
		s.files[id] = f
	}
	s.mu.Unlock()
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
	if err := os.Remove(s.path(id)); err != nil {
		return fmt.Errorf("raw segment %d: %w", id, err)
	}
	if d, err := os.Open(s.dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
