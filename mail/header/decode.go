package header

import (
	"fmt"
	"io"
	"mime"
	"strings"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
)

// Charset returns the decoder of a charset label, from one index: the
// WHATWG Encoding Standard (htmlindex) first, because it reads labels the
// way the clients that wrote them meant (iso-8859-1 and us-ascii as
// windows-1252, whose curly quotes Outlook sends under those labels;
// ks_c_5601-1987, gb2312, cp125x, shift-jis), then the IANA MIME names
// WHATWG leaves out (the IBM code pages cp437, cp850 and kin, which old
// DOS and mainframe gateways still label), so that no label either index
// knows is refused.
func Charset(label string) (encoding.Encoding, error) {
	if enc, err := htmlindex.Get(label); err == nil {
		return enc, nil
	}
	enc, err := ianaindex.MIME.Encoding(label)
	if err != nil || enc == nil {
		return nil, fmt.Errorf("charset %q: unsupported", label)
	}
	return enc, nil
}

// wordDecoder returns an RFC 2047 decoder on Charset. It is built per call
// so that nothing mutable lives at package level; it is cheap.
func wordDecoder() *mime.WordDecoder {
	return &mime.WordDecoder{CharsetReader: func(label string, r io.Reader) (io.Reader, error) {
		enc, err := Charset(label)
		if err != nil {
			return nil, err
		}
		return enc.NewDecoder().Reader(r), nil
	}}
}

// Decode decodes the RFC 2047 encoded words of a header value. When a word
// cannot be decoded (unknown charset, broken encoding) the value is kept
// as sent, because a readable-but-encoded subject is better than none.
// The result is valid UTF-8: bytes that are not (8-bit headers in some
// charset, which arrive although RFC 5322 forbids them) become U+FFFD.
func Decode(s string) string {
	if strings.Contains(s, "=?") {
		if d, err := wordDecoder().DecodeHeader(s); err == nil {
			s = d
		}
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// Text is s made storable: valid UTF-8 (PostgreSQL refuses anything
// else) and without NUL.
func Text(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}
