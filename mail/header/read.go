package header

import (
	"bytes"
	"net/textproto"
	"strings"
)

// Header is the read side of a parsed header block. Both
// net/textproto.MIMEHeader and github.com/emersion/go-message/textproto.Header
// satisfy it, so the SMTP session can hand over the header it already has
// without copying it.
type Header interface {
	// Get returns the first value of the field named key, or "".
	Get(key string) string
	// Values returns every value of the field named key, in order.
	Values(key string) []string
}

// Read parses the header block at the start of raw leniently and returns
// it with the offset at which the body starts (after the blank separator line,
// or len(raw) when there is none).
//
// It is written here rather than taken from net/textproto or go-message
// because both stop at the first malformed line and accept neither CR-only
// line endings nor a leading mbox "From " line or leading blank lines, all of
// which occur in real stored mail (and in quoted headers inside bounces).
// Leniency rules: a leading mbox "From " line is skipped; leading blank lines
// are skipped when a header field follows them; CRLF, LF and lone CR all end a
// line; a line that is not a field is skipped when a field follows it, and
// otherwise ends the header (a message that forgot its blank line). Values are
// unfolded per RFC 5322 section 2.2.3 and kept raw (no RFC 2047 decoding).
func Read(raw []byte) (textproto.MIMEHeader, int) {
	h := make(textproto.MIMEHeader)
	pos := Start(raw)
	var name string // canonical name of the field being unfolded
	fields := 0
	for pos < len(raw) {
		line, next := nextLine(raw, pos)
		if len(bytes.TrimSpace(line)) == 0 {
			return h, next
		}
		if line[0] == ' ' || line[0] == '\t' {
			if name != "" {
				vs := h[name]
				last := len(vs) - 1
				vs[last] = joinFolded(vs[last], string(bytes.TrimSpace(line)))
			}
			pos = next
			continue
		}
		key, value, ok := splitField(line)
		if !ok {
			// Not a field: tolerate one stray line inside the header, but a
			// line that is followed by more non-fields is the body.
			if fields > 0 && next < len(raw) {
				following, _ := nextLine(raw, next)
				if _, _, fok := splitField(following); fok {
					name = ""
					pos = next
					continue
				}
			}
			return h, pos
		}
		name = textproto.CanonicalMIMEHeaderKey(key)
		h[name] = append(h[name], value)
		fields++
		pos = next
	}
	return h, len(raw)
}

// joinFolded appends a continuation line to a field value.
func joinFolded(v, cont string) string {
	if v == "" {
		return cont
	}
	if cont == "" {
		return v
	}
	return v + " " + cont
}

// Start skips what precedes the first header field in stored mail: an
// mbox "From " separator line and blank lines (Gmail "show original" copies
// and some Exchange bounces start with one). When no field follows the blank
// lines, the message really has an empty header and 0 is returned.
func Start(raw []byte) int {
	pos := 0
	if bytes.HasPrefix(raw, []byte("From ")) {
		_, pos = nextLine(raw, 0)
	}
	start := pos
	for pos < len(raw) {
		line, next := nextLine(raw, pos)
		if len(bytes.TrimSpace(line)) != 0 {
			if _, _, ok := splitField(line); ok {
				return pos
			}
			return start
		}
		pos = next
	}
	return start
}

// nextLine returns the line starting at pos without its terminator, and the
// offset just after the terminator. CRLF, LF and a lone CR all end a line.
func nextLine(raw []byte, pos int) ([]byte, int) {
	i := bytes.IndexAny(raw[pos:], "\r\n")
	if i < 0 {
		return raw[pos:], len(raw)
	}
	end := pos + i
	next := end + 1
	if raw[end] == '\r' && next < len(raw) && raw[next] == '\n' {
		next++
	}
	return raw[pos:end], next
}

// splitField splits "Name: value". The name must be printable US-ASCII
// without spaces (RFC 5322 section 2.2); whitespace between the name and the
// colon, which some old mailers emit, is tolerated.
func splitField(line []byte) (string, string, bool) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return "", "", false
	}
	name := bytes.TrimRight(line[:colon], " \t")
	if len(name) == 0 {
		return "", "", false
	}
	for _, c := range name {
		if c <= ' ' || c >= 0x7f {
			return "", "", false
		}
	}
	return string(name), strings.TrimSpace(string(line[colon+1:])), true
}
