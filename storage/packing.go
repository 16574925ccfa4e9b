package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
)

// Raw message bytes are kept zstd-compressed ("packed") where that saves
// enough: in a segment file behind a record header of version recPacked
// (SQLite), or in raw_messages.data (PostgreSQL), with
// raw_messages.packed holding the compressed length. Mail is text: its
// headers, quoted-printable and HTML shrink to a third, and even base64
// attachments of compressed data lose the quarter that base64 adds,
// which zstd's entropy coder takes back. Large messages, kept as files
// of their own or in raw_chunks, are stored as they are.
//
// zstd rather than the standard library's flate: it decompresses about
// three times faster, which is what every read of a message pays, and
// klauspost/compress is a maintained pure-Go implementation (no cgo,
// like the rest of tend).
//
// A message is packed on the deliverer's goroutine, before it reaches
// the committer, so the one writer never waits for compression.

// packMinSaving is the part of a message compression must save for the
// packed form to be kept: below it the read cost buys too little.
const packMinSaving = 8 // at least 1/8 of the bytes

// packMin is the size below which a message is not worth packing.
const packMin = 512

// packer compresses and decompresses raw messages. Its encoder and
// decoder are safe for concurrent use, each with as many internal
// states as there are processors (their memory is bounded by that, not
// by the number of callers).
type packer struct {
	enc *zstd.Encoder
	dec *zstd.Decoder

	bufs sync.Pool // *[]byte read buffers for pack

	// off makes pack store every message as it is: what a binary from
	// before packing wrote (set only by tests, see export_test.go).
	off atomic.Bool
}

func newPacker() (*packer, error) {
	n := runtime.GOMAXPROCS(0)
	// SpeedFastest: tend writes every message once but is measured per
	// message on the ingest path; the better levels gain a percent of
	// size for half as much CPU again. Entropy-coding every literal is
	// what shrinks base64 (an attachment of compressed data has no
	// matches, only 6 bits in each byte): without it the fastest level
	// leaves such a mail at 92% of its size, with it at 73%. On the
	// generated corpus: 0.62 of the bytes, about 0.2 ms of CPU per 23 KB
	// mail to pack and 0.05 ms to read.
	//
	// The window is fileMin: only a message below it is packed, whole,
	// so a longer window finds nothing more (the packed bytes are the
	// same). With zstd's default of 8 MiB each encoder state kept an
	// 8 MiB history buffer from its first message above a block (128
	// KiB) on: 16 MiB on two cores, half of the live heap and, with the
	// garbage collector's headroom, 12 to 20 MiB of the peak resident set
	// of the generated corpus at C=16 (issue 10: at most 100 MB). With
	// fileMin a state keeps 2 MiB.
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(n),
		zstd.WithWindowSize(fileMin), zstd.WithAllLitEntropyCompression(true),
		zstd.WithEncoderCRC(false)) // the record's SHA-256 already covers the bytes
	if err != nil {
		return nil, fmt.Errorf("raw packing: %w", err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(n), zstd.WithDecoderMaxMemory(fileMin*4))
	if err != nil {
		return nil, fmt.Errorf("raw packing: %w", err)
	}
	return &packer{enc: enc, dec: dec}, nil
}

func (p *packer) close() {
	_ = p.enc.Close()
	p.dec.Close()
}

// pack returns body compressed, or nil when it is not worth it (too
// small, too large to hold, or saving too little).
func (p *packer) pack(body Body) ([]byte, error) {
	size := body.Size()
	if size < packMin || size >= fileMin || p.off.Load() {
		return nil, nil
	}
	bp, _ := p.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer p.bufs.Put(bp)
	if int64(cap(*bp)) < size {
		*bp = make([]byte, size)
	}
	src := (*bp)[:size]
	if _, err := body.ReadAt(src, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("raw packing: read spool: %w", err)
	}
	return p.packBytes(src), nil
}

// packBytes returns src compressed, or nil when that saves too little.
// The caller has checked its size.
func (p *packer) packBytes(src []byte) []byte {
	size := int64(len(src))
	out := p.enc.EncodeAll(src, make([]byte, 0, size/2))
	if int64(len(out)) > size-size/packMinSaving {
		return nil
	}
	return out
}

// packMail is packBytes for an outgoing mail's composed bytes (see
// OutboxBody): nil when it is too small, too large or saves too little.
func (p *packer) packMail(raw []byte) []byte {
	if len(raw) < packMin || len(raw) >= fileMin || p.off.Load() {
		return nil
	}
	return p.packBytes(raw)
}

// unpack returns the size bytes that packed holds.
func (p *packer) unpack(packed []byte, size int64) ([]byte, error) {
	out, err := p.dec.DecodeAll(packed, make([]byte, 0, size))
	if err != nil {
		return nil, fmt.Errorf("raw packing: %w", err)
	}
	if int64(len(out)) != size {
		return nil, fmt.Errorf("raw packing: %d bytes unpacked, want %d", len(out), size)
	}
	return out, nil
}

// reader streams the bytes that the packed frame at r holds, in bounded
// memory (tend verify-raw hashes them through it). The caller closes it.
func (p *packer) reader(r io.Reader) (*zstd.Decoder, error) {
	d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(fileMin*4))
	if err != nil {
		return nil, fmt.Errorf("raw packing: %w", err)
	}
	return d, nil
}

// packedBody is a packed message as a Body for the segment append.
func packedBody(b []byte) Body { return bytes.NewReader(b) }
