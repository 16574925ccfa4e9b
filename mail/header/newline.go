package header

import "bytes"

// Newlines turns CRLF and lone CR into LF, and returns b itself when it
// holds no CR (most stored mail after an IMAP fetch, and no copy then).
//
// One rule for every reader of a message: the header reader (Read) ends
// a line at CRLF, LF and a lone CR, and so must what reads the body, or a
// message with a CR-only footer a gateway appended to CRLF mail has one
// header block for Read and another for the MIME parser. It changes no
// data: in 7bit, 8bit and quoted-printable content a CRLF is a line break,
// not two bytes of data (RFC 2045 sections 2.10 and 6.7; a CR or LF that
// is data must be encoded), and base64, where every real binary
// attachment is, ignores line ends. What a part yields keeps LF line
// ends, which enmime and the text heuristics of bounce parsing read
// alike.
func Newlines(b []byte) []byte {
	i := bytes.IndexByte(b, '\r')
	if i < 0 {
		return b
	}
	out := make([]byte, i, len(b))
	copy(out, b[:i])
	for ; i < len(b); i++ {
		c := b[i]
		if c == '\r' {
			if i+1 < len(b) && b[i+1] == '\n' {
				continue
			}
			c = '\n'
		}
		out = append(out, c)
	}
	return out
}
