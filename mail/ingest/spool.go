package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/textproto"
	"os"
	"path/filepath"
	"sync"

	"github.com/tendhq/tend/mail/header"
)

// Spool is one received message held for the committer: in memory (most
// mail, and bytes a caller already holds) or, beyond memSpoolMax, in a
// temporary file in the data directory, with what was learnt while it streamed:
// its size, its hashes and its header block, parsed. It is an io.ReaderAt
// with a Size, which is what storage.Incoming.Body takes.
type Spool struct {
	Headers
	size int64
	r    io.ReaderAt
	f    *os.File // nil when in memory
}

// Size is the number of bytes of the message.
func (s *Spool) Size() int64 { return s.size }

// ReadAt reads the message's bytes at off.
func (s *Spool) ReadAt(p []byte, off int64) (int, error) { return s.r.ReadAt(p, off) }

// Name is the spool file's path ("" in memory). The committer may move
// the file away (storage.FileBody); Close then has nothing to remove.
func (s *Spool) Name() string {
	if s.f == nil {
		return ""
	}
	return s.f.Name()
}

// Sync makes the spool file durable.
func (s *Spool) Sync() error {
	if s.f == nil {
		return nil
	}
	return s.f.Sync()
}

// Close releases the spool and removes its file, unless the committer
// moved it into the store.
func (s *Spool) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	if rerr := os.Remove(s.f.Name()); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	return err
}

// CleanSpool removes what a crash left in a spool directory: files of
// sessions that never finished. Call it before the doors open.
func CleanSpool(dir string) error {
	names, err := filepath.Glob(filepath.Join(dir, spoolPattern))
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if err := os.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

const spoolPattern = "spool-*"

// SpoolBytes wraps bytes already in memory (IMAP, tests) as a Spool, with
// the same hashes and header parse as a streamed one.
func SpoolBytes(raw []byte) *Spool {
	sp, err := spool(context.Background(), bytes.NewReader(raw), nil, nil)
	if err != nil {
		// Reading from memory into memory cannot fail.
		panic(fmt.Sprintf("ingest: spooling bytes: %v", err))
	}
	sp.r = bytes.NewReader(raw)
	return sp
}

// ErrInsufficientStorage means the data directory's file system has less
// free space than the configured minimum: the doors answer 452 (RFC 5321
// §4.2.3) and the sender keeps the mail until there is room.
var ErrInsufficientStorage = errors.New("insufficient system storage")

// Disk reports the free space of the file system that holds the data
// directory (StatDisk), or whatever a test wants it to.
type Disk interface {
	Free() (uint64, error)
}

// DiskGuard refuses new mail while the disk is nearly full, before it is
// full: a spool or segment write that fails half-way costs more than a
// 452 given up front.
type DiskGuard struct {
	Disk    Disk   // nil: no check
	MinFree uint64 // bytes that must stay free
}

// Check returns ErrInsufficientStorage when less than MinFree+need bytes
// are free.
func (g DiskGuard) Check(need uint64) error {
	if g.Disk == nil || g.MinFree == 0 {
		return nil
	}
	free, err := g.Disk.Free()
	if err != nil {
		return fmt.Errorf("free disk space: %w", err)
	}
	if free < g.MinFree+need {
		return fmt.Errorf("%w: %d bytes free, %d must stay free", ErrInsufficientStorage, free, g.MinFree)
	}
	return nil
}

// Spooler holds messages arriving at a door, in memory up to
// memSpoolMax bytes and in temporary files beyond, in bounded buffers,
// hashing and reading the header block as they stream, so that no large
// message is ever held whole in memory.
type Spooler struct {
	dir   string
	guard DiskGuard
	bufs  sync.Pool
}

// spoolBuf is the read buffer: a message passes through it chunk by chunk.
const spoolBuf = 64 << 10

// checkEvery is how many spooled bytes pass between two free-space checks.
const checkEvery = 4 << 20

// NewSpooler returns a Spooler writing into dir (created when first
// needed), which should be on the data directory's file system: what is
// spooled there is copied into the segment files next.
func NewSpooler(dir string, guard DiskGuard) *Spooler {
	s := &Spooler{dir: dir, guard: guard}
	s.bufs.New = func() any { b := make([]byte, spoolBuf); return &b }
	return s
}

// Guard is the free-space check the Spooler applies.
func (s *Spooler) Guard() DiskGuard { return s.guard }

// Spool reads r to its end: into memory while it is at most
// memSpoolMax bytes (most mail), into a new temporary file beyond; the
// caller must Close the Spool, which removes the file (CleanSpool removes
// what a crash left). Errors from r are returned wrapped (go-smtp's
// ErrDataTooLarge, a read timeout); ErrInsufficientStorage when the disk
// fills up underneath.
func (s *Spooler) Spool(ctx context.Context, r io.Reader) (*Spool, error) {
	return s.spoolSpill(ctx, r, 0)
}

// memSpoolMax is the size up to which a message is spooled in memory: a
// temporary file per message (create, write, remove) cost more than the
// message, 5% of the pipeline's CPU in opening files alone. Bigger ones go
// to a file, so a session holds at most this much.
const memSpoolMax = 64 << 10

// SpoolSized is Spool for a reader that announced its size (an IMAP
// literal; size < 0 when unknown): the free space is checked for that
// size first, and a message that fits in memory gets its buffer at once.
func (s *Spooler) SpoolSized(ctx context.Context, r io.Reader, size int64) (*Spool, error) {
	if size > 0 {
		if err := s.guard.Check(uint64(size)); err != nil {
			return nil, err
		}
	}
	return s.spoolSpill(ctx, r, size)
}

func (s *Spooler) spoolSpill(ctx context.Context, r io.Reader, size int64) (*Spool, error) {
	w := &spill{s: s}
	if size > 0 && size <= memSpoolMax {
		w.buf.Grow(int(size))
	}
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	// The disk is checked at the first chunk and then every checkEvery
	// bytes: often enough to stop well before it is full, rarely enough
	// to cost nothing.
	var next int64
	sp, err := spool(ctx, r, w, func(written int64) error {
		if written < next {
			return nil
		}
		next = written + checkEvery
		return s.guard.Check(0)
	}, *bp)
	if err != nil {
		if w.f != nil {
			_ = w.f.Close()
			_ = os.Remove(w.f.Name())
		}
		return nil, err
	}
	if w.f == nil {
		sp.r = bytes.NewReader(w.buf.Bytes())
	} else {
		sp.f, sp.r = w.f, w.f
	}
	return sp, nil
}

// spill is what Spool writes into: memory up to memSpoolMax bytes, then
// a temporary file holding everything written.
type spill struct {
	s   *Spooler
	buf bytes.Buffer
	f   *os.File
}

func (w *spill) Write(p []byte) (int, error) {
	if w.f == nil && w.buf.Len()+len(p) <= memSpoolMax {
		return w.buf.Write(p)
	}
	if w.f == nil {
		f, err := w.s.create()
		if err != nil {
			return 0, err
		}
		w.f = f
		if _, err := f.Write(w.buf.Bytes()); err != nil {
			return 0, err
		}
		w.buf = bytes.Buffer{}
	}
	return w.f.Write(p)
}

// create makes a new spool file, and the spool directory when it is not
// there (yet, or any more).
func (s *Spooler) create() (*os.File, error) {
	f, err := os.CreateTemp(s.dir, spoolPattern)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(s.dir, 0o750); err == nil {
			f, err = os.CreateTemp(s.dir, spoolPattern)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	return f, nil
}

// headMax bounds the header block kept in memory for the header parse.
// A longer header block (thousands of Received lines) is parsed as far as
// headMax; the rest is hashed and stored like the body.
const headMax = 1 << 20

// spool streams r into w (nil: nowhere), computing the hashes and
// keeping the header block. check, when set, runs after each write with
// the bytes written so far. buf is the read buffer (one is allocated when
// none is given).
func spool(ctx context.Context, r io.Reader, w io.Writer, check func(int64) error, buf ...[]byte) (*Spool, error) {
	var b []byte
	if len(buf) > 0 {
		b = buf[0]
	} else {
		b = make([]byte, spoolBuf)
	}
	st := &streamHash{raw: sha256.New(), content: sha256.New()}
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		k, rerr := r.Read(b)
		if k > 0 {
			chunk := b[:k]
			if w != nil {
				if _, err := w.Write(chunk); err != nil {
					return nil, fmt.Errorf("spool write: %w", err)
				}
			}
			st.write(chunk)
			n += int64(k)
			if check != nil {
				if err := check(n); err != nil {
					return nil, err
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, fmt.Errorf("spool read: %w", rerr)
		}
	}
	st.finish()
	h := parseHeaderBlock(st.hdr, st.bodyOff, hex.EncodeToString(st.raw.Sum(nil)), hex.EncodeToString(st.content.Sum(nil)))
	return &Spool{Headers: h, size: n}, nil
}

// streamHash computes, over one pass of the bytes, the SHA-256 of the
// exact bytes (what RawMessage is keyed by) and the content hash that
// deduplication keys on: the same bytes without the trace fields that
// every hop adds (see isTraceField) and without CRs, so that a copy of a
// message relayed once more, or fetched over IMAP from a server that
// stores LF line ends, is the same message.
type streamHash struct {
	raw, content hash.Hash
	head         []byte // the header block while it is being read
	headDone     bool
	bodyOff      int                  // where the body starts in head, once headDone
	hdr          textproto.MIMEHeader // the parsed header block, once headDone
}

func (s *streamHash) write(p []byte) {
	s.raw.Write(p)
	if s.headDone {
		writeNoCR(s.content, p)
		return
	}
	// The header block is parsed once, over the first headMax bytes (or
	// the whole message when shorter), never at a blank line seen in one
	// read: where the lenient parser ends a header block can depend on
	// bytes after that line, and the headers and the content hash must
	// not depend on how the sender's bytes were cut into reads (FuzzSpool
	// found a message whose early "\r\r" ended the block in one read and
	// not in another).
	room := headMax - len(s.head)
	take := p
	if len(take) > room {
		take = take[:room]
	}
	s.head = append(s.head, take...)
	if len(s.head) >= headMax {
		s.endHead()
	}
	if rest := p[len(take):]; len(rest) > 0 {
		writeNoCR(s.content, rest)
	}
}

// finish ends the header block at the end of the message when no blank
// line ended it before.
func (s *streamHash) finish() {
	if !s.headDone {
		s.endHead()
	}
}

// endHead finds where the header parse ends the header block (its rules
// are lenient: see header.Read), hashes the non-trace fields and
// whatever of the body is already in head.
func (s *streamHash) endHead() {
	s.headDone = true
	s.hdr, s.bodyOff = header.Read(s.head)
	writeContentHeader(s.content, s.head[:s.bodyOff])
	writeNoCR(s.content, s.head[s.bodyOff:])
	// Keep only the header block: the body part is hashed and on disk.
	s.head = s.head[:s.bodyOff:s.bodyOff]
}

func writeNoCR(w io.Writer, p []byte) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\r')
		if i < 0 {
			_, _ = w.Write(p)
			return
		}
		_, _ = w.Write(p[:i])
		p = p[i+1:]
	}
}

// SpoolDir is where the doors spool under the data directory.
func SpoolDir(dataDir string) string { return filepath.Join(dataDir, "spool") }
