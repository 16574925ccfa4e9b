package storage

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"os"
)

// Walking a segment file of the format in segformat.go on its own,
// record by record, as tend verify-raw does.

// walked is one record found by walking a segment file.
type walked struct {
	size   int64  // of the body
	n      int64  // of the message the body holds (size, unless packed)
	hash   string // of the header
	packed bool   // the body is the message's zstd frame
	ok     bool   // the message matches its header's SHA-256
}

// walk reads a headed segment file record by record and returns the
// records by the offset of their body, and the bytes it could not read as
// records (a torn tail, a damaged header), resuming after a damaged
// header at the next sound one.
func (v *verifier) walk(f *os.File, size int64) (map[int64]walked, int64, error) {
	recs := map[int64]walked{}
	var lost int64
	hdr := make([]byte, recHdrLen)
	pos := int64(segFileHdrLen)
	for pos < size {
		h, err := readRecHeader(f, hdr, pos)
		if err != nil && !errors.Is(err, errRecHeader) && !errors.Is(err, io.EOF) {
			return nil, 0, err
		}
		if err == nil && pos+recHdrLen+int64(h.length) <= size {
			body := pos + recHdrLen
			want := hex.EncodeToString(h.sum[:])
			got, n, err := v.hashStored(f, body, int64(h.length), h.packed)
			if err != nil {
				return nil, 0, err
			}
			recs[body] = walked{size: int64(h.length), n: n, hash: want, packed: h.packed, ok: got == want}
			pos = body + int64(h.length)
			continue
		}
		next, err := v.resync(f, pos+1, size)
		if err != nil {
			return nil, 0, err
		}
		lost += next - pos
		pos = next
	}
	return recs, lost, nil
}

// readRecHeader reads and decodes the record header at pos.
func readRecHeader(f io.ReaderAt, hdr []byte, pos int64) (recHeader, error) {
	if _, err := f.ReadAt(hdr, pos); err != nil {
		return recHeader{}, err
	}
	return parseRecHeader(hdr)
}

// resync returns the offset of the next sound record header from pos on
// (size when there is none).
func (v *verifier) resync(f *os.File, pos, size int64) (int64, error) {
	hdr := make([]byte, recHdrLen)
	for off := pos; off < size; {
		n, err := f.ReadAt(v.buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if n == 0 {
			break
		}
		chunk := v.buf[:n]
		for i := 0; ; {
			j := bytes.Index(chunk[i:], []byte(recMagic))
			if j < 0 {
				break
			}
			at := off + int64(i+j)
			if h, err := readRecHeader(f, hdr, at); err == nil && at+recHdrLen+int64(h.length) <= size {
				return at, nil
			}
			i += j + 1
		}
		// Step back a little, so that a magic across the boundary is seen.
		off += int64(max(1, n-len(recMagic)+1))
	}
	return size, nil
}
