package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// The segment file format. A segment file written by this version starts
// with a file header and holds records, each a header followed by the
// exact bytes of one message:
//
//	file header, 16 bytes:   "tendseg\x00", version uint16 (1), 6 zero bytes
//	record header, 52 bytes: "tndR", version uint8 (1 or 2), 3 zero bytes,
//	                         body length uint64, SHA-256 of the message (32 bytes),
//	                         CRC-32C of the 48 bytes before it
//	body:                    length bytes
//
// A version 1 record's body is the message as it is; a version 2 (recPacked)
// record's body is one zstd frame holding the message (packing.go), its
// length the frame's and its SHA-256 still the message's. Records of both
// versions share a file: a binary that reads version 2 reads every file
// written before it as it was.
//
// All integers are big-endian. The SHA-256 is the raw hash the database
// keys the message by (raw_messages.hash, messages.raw_hash), computed by
// ingest while it spooled the mail, so appending costs no second pass over
// the bytes. The header's own CRC lets a reader that walks the file tell a
// damaged header (whose length cannot be trusted) from a damaged body, and
// find the next record after one by scanning for a header whose CRC holds.
// raw_messages.offset still points at the body, past its header, so
// readers go by the database's offset and length exactly as before.
//
// Files written before record headers existed have no file header: they
// are kept as they are and read as before, through the database's
// offset and length only (the file header is the per-segment format
// marker). A data directory is not rewritten on upgrade, which could take
// as long as copying every byte of mail before the server answers;
// instead openSegments never appends to such a file (a new one is
// started), and CompactSegments rewrites every unmarked segment whatever
// its garbage, in its bounded steps beside intake, so the first
// maintenance runs after an upgrade bring the whole directory to the new
// format. Until then tend verify-raw checks an unmarked segment's
// messages by the database's offsets alone and counts it as legacy.

// Segment format constants.
const (
	segFileMagic   = "tendseg\x00"
	segVersion     = 1
	segFileHdrLen  = 16
	recMagic       = "tndR"
	recVersion     = 1
	recPacked      = 2 // the body is a zstd frame of the message
	recHdrLen      = 52
	recHdrChecked  = 48 // the bytes the header's CRC covers
	recHashOffset  = 16
	recCRCOffset   = 48
	recLengthField = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segFileHeader returns the header a new segment file starts with.
func segFileHeader() []byte {
	b := make([]byte, segFileHdrLen)
	copy(b, segFileMagic)
	binary.BigEndian.PutUint16(b[8:], segVersion)
	return b
}

// isSegFileHeader reports whether b (the first bytes of a file) is a
// segment file header of a version this binary reads.
func isSegFileHeader(b []byte) bool {
	return len(b) >= segFileHdrLen && string(b[:8]) == segFileMagic && binary.BigEndian.Uint16(b[8:]) == segVersion
}

// recHeader is a decoded record header.
type recHeader struct {
	length uint64
	sum    [32]byte
	packed bool // the body is a zstd frame (version recPacked)
}

// putRecHeader encodes a record header for a body of length bytes holding
// the message whose SHA-256 is the hex string hash into b (recHdrLen
// bytes); packed says the body is the message's zstd frame.
func putRecHeader(b []byte, length int64, hash string, packed bool) error {
	if len(hash) != 64 {
		return fmt.Errorf("raw segment: hash %q is not a hex SHA-256", hash)
	}
	clear(b[:recHdrLen])
	copy(b, recMagic)
	b[4] = recVersion
	if packed {
		b[4] = recPacked
	}
	binary.BigEndian.PutUint64(b[recLengthField:], uint64(length))
	if _, err := hex.Decode(b[recHashOffset:recHashOffset+32], []byte(hash)); err != nil {
		return fmt.Errorf("raw segment: hash %q: %w", hash, err)
	}
	binary.BigEndian.PutUint32(b[recCRCOffset:], crc32.Checksum(b[:recHdrChecked], castagnoli))
	return nil
}

// errRecHeader marks bytes that are not a sound record header.
var errRecHeader = errors.New("not a record header")

// parseRecHeader decodes b (recHdrLen bytes) as a record header.
func parseRecHeader(b []byte) (recHeader, error) {
	var h recHeader
	if len(b) < recHdrLen || string(b[:4]) != recMagic {
		return h, fmt.Errorf("%w: no magic", errRecHeader)
	}
	if crc32.Checksum(b[:recHdrChecked], castagnoli) != binary.BigEndian.Uint32(b[recCRCOffset:]) {
		return h, fmt.Errorf("%w: header checksum mismatch", errRecHeader)
	}
	if (b[4] != recVersion && b[4] != recPacked) || !bytes.Equal(b[5:8], []byte{0, 0, 0}) {
		return h, fmt.Errorf("%w: version %d", errRecHeader, b[4])
	}
	h.packed = b[4] == recPacked
	h.length = binary.BigEndian.Uint64(b[recLengthField:])
	copy(h.sum[:], b[recHashOffset:])
	return h, nil
}

// readSegFileHeader reports whether the segment file r starts with a
// segment file header (an empty file is treated as headed: its first
// append writes the header).
func readSegFileHeader(r io.ReaderAt, size int64) (bool, error) {
	if size == 0 {
		return true, nil
	}
	b := make([]byte, segFileHdrLen)
	n, err := r.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	return isSegFileHeader(b[:n]), nil
}
