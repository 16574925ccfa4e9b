package storage

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// TestPackerHoldsLittleMemory: packing a mail of a few hundred KB (a
// scan attached: above zstd's 128 KiB block, where the encoder keeps a
// history) allocates about what the mail needs, not a history buffer
// of zstd's default window (8 MiB per encoder state, kept for the
// process's life: issue 10, peak resident set at most 100 MB for the
// generated corpus at C=16).
func TestPackerHoldsLittleMemory(t *testing.T) {
	p, err := newPacker()
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	var b strings.Builder
	for i := 0; b.Len() < 300<<10; i++ {
		fmt.Fprintf(&b, "%d: the printer on floor %d prints blank pages again.\r\n", i, i%7)
	}
	mail := []byte(b.String())
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	out, err := p.pack(packedBody(mail))
	runtime.ReadMemStats(&after)
	if err != nil || out == nil {
		t.Fatalf("pack: %d bytes, %v", len(out), err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 4<<20 {
		t.Errorf("packing a %d-byte mail allocated %d KiB, want at most 4 MiB", len(mail), n>>10)
	}
}
