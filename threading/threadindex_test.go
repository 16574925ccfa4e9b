package threading

import (
	"encoding/base64"
	"testing"
	"time"
)

func TestThreadIndexRoot(t *testing.T) {
	// Header values as Outlook and Exchange send them (see the corpus).
	root := "AdoBHLGUtaY+wvYtQv2Hq3qNQkYWnA=="
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"header only", root, root, true},
		{"one reply", "AdoBHLGUtaY+wvYtQv2Hq3qNQkYWnAAATJ0P", root, true},
		{"folded", " AdoBHLGUtaY+wvYtQv2H\r\n q3qNQkYWnA== ", root, true},
		{"no padding", "AdoBHLGUtaY+wvYtQv2Hq3qNQkYWnA", root, true},
		{"too short", "AcT9+CUlRgRKMiKZ", "", false},
		{"bad length", base64.StdEncoding.EncodeToString(make([]byte, 25)), "", false},
		{"zero guid", "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", "", false},
		{"not base64", "not base64 at all!", "", false},
		{"empty", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ThreadIndexRoot(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("ThreadIndexRoot(%q) = %q, %v", tt.in, got, ok)
			}
		})
	}
}

func TestContinueThreadIndex(t *testing.T) {
	start := time.Date(2026, 1, 14, 8, 3, 0, 0, time.UTC)
	parent := NewThreadIndex(start, [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	tests := []struct {
		name  string
		after time.Duration
		dc    byte
	}{
		{"minutes later", 5 * time.Minute, 0},
		{"a year later", 365 * 24 * time.Hour, 0},
		{"ten years later", 10 * 365 * 24 * time.Hour, 0x80},
		{"clock behind", -time.Hour, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			child := ContinueThreadIndex(parent, start.Add(tt.after))
			b, err := base64.StdEncoding.DecodeString(child)
			if err != nil || len(b) != 27 {
				t.Fatalf("child %q: %d bytes, %v", child, len(b), err)
			}
			if r1, _ := ThreadIndexRoot(child); r1 != parent {
				t.Errorf("root changed: %q", r1)
			}
			if b[22]&0x80 != tt.dc {
				t.Errorf("DC bit = %x, want %x", b[22]&0x80, tt.dc)
			}
			grand := ContinueThreadIndex(child, start.Add(tt.after+time.Minute))
			if g, _ := base64.StdEncoding.DecodeString(grand); len(g) != 32 {
				t.Errorf("grandchild has %d bytes", len(g))
			}
		})
	}
	// The delta of a reply five minutes later must decode to about five
	// minutes (bits 48..18 of the FILETIME delta, [MS-OXOMSG] 2.2.1.3).
	b, _ := base64.StdEncoding.DecodeString(ContinueThreadIndex(parent, start.Add(5*time.Minute)))
	delta := uint64(b[22]&0x7f)<<24 | uint64(b[23])<<16 | uint64(b[24])<<8 | uint64(b[25])
	got := time.Duration(delta<<18*100) * time.Nanosecond
	if got < 4*time.Minute || got > 6*time.Minute {
		t.Errorf("decoded delta %v, want about 5m", got)
	}
	if ContinueThreadIndex("junk", start) != "" {
		t.Error("junk parent must give an empty index")
	}
}
