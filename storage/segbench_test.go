package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// BenchmarkSegmentAppend is one group commit's append of 64 messages of
// 16 KiB, fsync included: what a record header adds to the write path.
func BenchmarkSegmentAppend(b *testing.B) {
	s, err := openSegments(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	body := bytes.Repeat([]byte("0123456789abcdef"), 1024)
	sum := sha256.Sum256(body)
	recs := make([]segRecord, 64)
	for i := range recs {
		recs[i] = segRecord{hash: hex.EncodeToString(sum[:]), body: bytes.NewReader(body)}
	}
	b.SetBytes(int64(len(recs) * len(body)))
	for b.Loop() {
		refs, err := s.append(recs)
		if err != nil {
			b.Fatal(err)
		}
		s.release(refs[0].id)
	}
}
