package threading

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"time"
)

// Outlook's Thread-Index header carries PidTagConversationIndex
// ([MS-OXOMSG] section 2.2.1.3, mapped to the header by [MS-OXCMAIL]
// section 2.2.3.2.7): a 22-byte header block (time and a conversation
// GUID) followed by one 5-byte response level per reply or forward. The
// header block is the same for every mail of one conversation, so it is
// what Outlook groups by, and the only threading clue Exchange keeps when
// it drops References.
//
// The specification calls byte 0 "reserved, 0x01" followed by 40 bits of
// FILETIME; real headers (for example "AdoBHLGUtaY+..." decodes to 01 DA
// 01 1C B1 94) are the top 48 bits of the FILETIME, whose first byte is
// 0x01 for any date between 1972 and 2057. Both readings agree on the
// bytes; we compute times with the 48-bit reading because it is what
// Outlook's own deltas are relative to.
const (
	threadIndexHeaderLen = 22
	threadIndexChildLen  = 5
	// maxThreadIndexLen bounds the header we decode: Outlook stops adding
	// levels long before this, and a longer value is junk.
	maxThreadIndexLen = 4096
)

// filetimeEpoch is 1601-01-01, the FILETIME epoch, in Unix seconds.
const filetimeEpoch = -11644473600

func decodeThreadIndex(h string) ([]byte, bool) {
	h = strings.Join(strings.Fields(h), "")
	if h == "" || len(h) > maxThreadIndexLen {
		return nil, false
	}
	b, err := base64.StdEncoding.DecodeString(h)
	if err != nil {
		// Some gateways drop the padding.
		if b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(h, "=")); err != nil {
			return nil, false
		}
	}
	if len(b) < threadIndexHeaderLen || (len(b)-threadIndexHeaderLen)%threadIndexChildLen != 0 {
		return nil, false
	}
	guidZero := true
	for _, c := range b[6:threadIndexHeaderLen] {
		if c != 0 {
			guidZero = false
			break
		}
	}
	// An all-zero GUID is what broken generators emit for every mail;
	// matching on it would join strangers.
	return b, !guidZero
}

// ThreadIndexRoot returns the conversation root of a Thread-Index header:
// its 22-byte header block, re-encoded as standard base64 so it can be
// stored and compared as a string. ok is false for anything that is not a
// well-formed conversation index.
func ThreadIndexRoot(h string) (string, bool) {
	b, ok := decodeThreadIndex(h)
	if !ok {
		return "", false
	}
	return base64.StdEncoding.EncodeToString(b[:threadIndexHeaderLen]), true
}

// NewThreadIndex starts a conversation index at now with the given
// conversation GUID (callers pass random bytes). Used for mail we start.
func NewThreadIndex(now time.Time, guid [16]byte) string {
	b := make([]byte, threadIndexHeaderLen)
	ft := toFiletime(now)
	var t [8]byte
	binary.BigEndian.PutUint64(t[:], ft)
	copy(b[:6], t[:6])
	copy(b[6:], guid[:])
	return base64.StdEncoding.EncodeToString(b)
}

// ContinueThreadIndex returns parent with one response level appended for
// a reply sent at now ([MS-OXOMSG] section 2.2.1.3): DC bit, 31 bits of
// time delta since the header time, 8 bits "random". Our replies carry it
// so Outlook shows them inside the customer's conversation. The random
// byte is derived from parent and now, keeping the function pure and its
// output reproducible. It returns "" when parent is not a valid index.
func ContinueThreadIndex(parent string, now time.Time) string {
	b, ok := decodeThreadIndex(parent)
	if !ok {
		return ""
	}
	var t [8]byte
	copy(t[:6], b[:6])
	head := binary.BigEndian.Uint64(t[:])
	var delta uint64
	if ft := toFiletime(now); ft > head {
		delta = ft - head
	}
	var level uint32
	if delta>>49 == 0 {
		// DC = 0: bits 48..18 of the delta.
		level = uint32(delta>>18) & 0x7fffffff
	} else {
		// DC = 1: bits 53..23 of the delta.
		level = 0x80000000 | uint32(delta>>23)&0x7fffffff
	}
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], toFiletime(now))
	sum := sha256.Sum256(append(append([]byte{}, b...), n[:]...))
	child := make([]byte, threadIndexChildLen)
	binary.BigEndian.PutUint32(child, level)
	child[4] = sum[0]
	return base64.StdEncoding.EncodeToString(append(b, child...))
}

// toFiletime converts t to 100 ns ticks since 1601, clamped at zero.
func toFiletime(t time.Time) uint64 {
	s := t.Unix() - filetimeEpoch
	if s < 0 {
		return 0
	}
	return uint64(s)*10_000_000 + uint64(t.Nanosecond()/100)
}
