package ingest

import (
	"net/textproto"

	"github.com/tendhq/tend/mail/header"
)

// Headers are the fields the hot path reads from the header block alone:
// enough to deduplicate, classify and thread without a full MIME parse.
type Headers struct {
	Header textproto.MIMEHeader
	// Fields are the parsed fields (mail/header); MessageID is derived
	// from the hash when absent or malformed.
	header.Fields
	Derived bool   // MessageID was derived
	Hash    string // hex SHA-256 of the raw bytes
	// ContentHash is the hex SHA-256 of the message without its trace
	// fields and CRs: what deduplication keys on, with the Message-ID.
	ContentHash string
	BodyOffset  int // where the body starts in the raw bytes
}

// ParseHeaders reads the header block of raw. It never fails: a broken
// header block yields what could be read, and a message with no usable
// Message-ID gets one derived from the hash of its content (RFC 5322
// §3.6.4 makes the field optional; threading never uses derived ids).
// The doors do not call it: they stream (Spooler), which parses the same
// way.
func ParseHeaders(raw []byte) Headers { return SpoolBytes(raw).Headers }

// parseHeaderBlock fills Headers from a header block read by header.Read
// and the hashes of the whole message.
func parseHeaderBlock(hdr textproto.MIMEHeader, bodyOff int, hash, content string) Headers {
	h := Headers{Hash: hash, ContentHash: content, Header: hdr, BodyOffset: bodyOff, Fields: header.Parse(hdr)}
	if h.MessageID == "" {
		// From the content hash: a copy of an id-less message relayed
		// once more gets the same id, so it is one message.
		h.MessageID = h.ContentHash[:40] + "@hash.tend.invalid"
		h.Derived = true
	}
	return h
}
