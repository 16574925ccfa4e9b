package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// segmentBytes is a segment file holding bodies as records.
func segmentBytes(t testing.TB, bodies ...[]byte) []byte {
	t.Helper()
	b := segFileHeader()
	hdr := make([]byte, recHdrLen)
	for _, body := range bodies {
		sum := sha256.Sum256(body)
		if err := putRecHeader(hdr, int64(len(body)), hex.EncodeToString(sum[:]), false); err != nil {
			t.Fatal(err)
		}
		b = append(append(b, hdr...), body...)
	}
	return b
}

// FuzzSegmentWalk walks arbitrary bytes as a segment file: it ends, every
// record it reports lies inside the file behind a sound header, and a
// record it calls sound has the SHA-256 its header says.
func FuzzSegmentWalk(f *testing.F) {
	f.Add(segmentBytes(f, []byte("From: a\r\n\r\nhello\r\n"), []byte("x"), nil))
	f.Add(segmentBytes(f, []byte("tndR tndR tndR")))
	torn := segmentBytes(f, []byte("first"), []byte("second record, torn"))
	f.Add(torn[:len(torn)-5])
	f.Add([]byte(segFileMagic + "\x00\x01\x00\x00\x00\x00\x00\x00tndR\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "seg.dat")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		file, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		v := &verifier{buf: make([]byte, 64), sum: sha256.New()}
		recs, lost, err := v.walk(file, int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		var covered int64
		for off, w := range recs {
			if off < segFileHdrLen+recHdrLen || off+w.size > int64(len(data)) {
				t.Fatalf("record at %d (%d bytes) outside the %d-byte file", off, w.size, len(data))
			}
			if _, err := parseRecHeader(data[off-recHdrLen : off]); err != nil {
				t.Fatalf("record at %d behind an unsound header: %v", off, err)
			}
			sum := sha256.Sum256(data[off : off+w.size])
			if w.ok != (hex.EncodeToString(sum[:]) == w.hash) {
				t.Fatalf("record at %d: ok=%v, but its SHA-256 %x against %s", off, w.ok, sum, w.hash)
			}
			covered += recHdrLen + w.size
		}
		if want := max(0, int64(len(data))-segFileHdrLen); covered+lost != want {
			t.Fatalf("records %d + lost %d bytes, want the file's %d", covered, lost, want)
		}
	})
}

// TestRecHeaderRoundTrip: a header reads back as written, and any single
// flipped bit in it is refused.
func TestRecHeaderRoundTrip(t *testing.T) {
	sum := sha256.Sum256([]byte("body"))
	hdr := make([]byte, recHdrLen)
	if err := putRecHeader(hdr, 4, hex.EncodeToString(sum[:]), false); err != nil {
		t.Fatal(err)
	}
	h, err := parseRecHeader(hdr)
	if err != nil || h.length != 4 || h.sum != sum {
		t.Fatalf("read back %+v, %v", h, err)
	}
	for i := range recHdrLen * 8 {
		b := append([]byte(nil), hdr...)
		b[i/8] ^= 1 << (i % 8)
		if _, err := parseRecHeader(b); err == nil {
			t.Errorf("bit %d flipped: header still accepted", i)
		}
	}
	if err := putRecHeader(hdr, 4, "not-a-hash", false); err == nil {
		t.Error("a malformed hash was accepted")
	}
}
