package threading

import (
	"strings"
	"time"

	"github.com/tendhq/tend/mail/header"
)

// Message is what threading needs from one mail: header fields the ingest
// path extracts cheaply (no full MIME parse) plus the envelope.
type Message struct {
	// MessageID is the mail's own id without angle brackets; "" if absent
	// or malformed.
	MessageID string
	// InReplyTo and References are ids without brackets, in header order
	// (References oldest first, as RFC 5322 section 3.6.4 writes them).
	InReplyTo  []string
	References []string
	// Subject is the raw header value, possibly RFC 2047 encoded.
	Subject string
	// From, To and Cc are lowercased bare addresses.
	From   string
	To, Cc []string
	// Recipients are the envelope RCPT TO addresses, lowercased; empty when
	// the mail came through IMAP and the envelope is unknown.
	Recipients []string
	// ThreadIndex and ThreadTopic are Outlook's conversation headers, raw.
	ThreadIndex string
	ThreadTopic string
	Date        time.Time
	// IsBounce marks a delivery status notification; classification is
	// done elsewhere.
	IsBounce bool
}

// ReadMessage reads the header block of raw (the body is not read) the
// way ingest does (header.Read, header.Parse) and returns the Message
// fields it carries, with rcpt as the envelope. IsBounce is left false:
// classifying is not threading's job.
func ReadMessage(raw []byte, rcpt []string) Message {
	h, _ := header.Read(raw)
	return FromFields(header.Parse(h), rcpt)
}

// FromFields is the Message of a parsed header block, with rcpt as the
// envelope: the one conversion ingest's threader and the tests share.
// The In-Reply-To evidence is the direct parent (Fields.Parent) only.
// IsBounce is left false.
func FromFields(f header.Fields, rcpt []string) Message {
	msg := Message{
		MessageID:   f.MessageID,
		References:  f.References,
		Subject:     f.RawSubject,
		From:        f.From,
		To:          f.To,
		Cc:          f.Cc,
		ThreadIndex: f.ThreadIndex,
		ThreadTopic: f.ThreadTopic,
	}
	if p := f.Parent(); p != "" {
		msg.InReplyTo = []string{p}
	}
	for _, r := range rcpt {
		if a := header.Address(r); a != "" {
			msg.Recipients = append(msg.Recipients, a)
		}
	}
	if f.Date != nil {
		msg.Date = *f.Date
	}
	return msg
}

// Domain returns the lowercased domain of an address or msg-id.
func Domain(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(addr[i+1:])
}

// LocalPart returns the part of an address before the last "@".
func LocalPart(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return addr
	}
	return addr[:i]
}
