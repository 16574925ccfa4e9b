package header

import (
	"net/mail"
	"strings"
	"time"
)

// Fields are what tend reads from every message's header block: enough to
// deduplicate, classify and thread without a full MIME parse. Every string
// but RawSubject and ThreadIndex is storable Text.
type Fields struct {
	// MessageID is the message's own id without brackets (StoredID); ""
	// when absent or malformed.
	MessageID string
	// InReplyTo and References are IDs: strict, in header order
	// (References oldest first, as RFC 5322 section 3.6.4 writes them).
	InReplyTo  []string
	References []string
	// From is the first From address, lowercased; FromName its decoded
	// display name.
	From, FromName string
	// To and Cc are lowercased addresses.
	To, Cc []string
	// Subject is RFC 2047 decoded and trimmed; RawSubject as sent (what
	// threading's subject key is made from).
	Subject, RawSubject string
	// Date is the Date field in UTC, nil when absent or unreadable.
	Date *time.Time
	// ThreadIndex is Outlook's Thread-Index, raw; ThreadTopic its
	// Thread-Topic, decoded.
	ThreadIndex, ThreadTopic string
}

// Parse reads Fields from a header block. It never fails: a bad field
// degrades to an empty value, because a message must still be stored and
// threaded.
func Parse(h Header) Fields {
	f := Fields{
		MessageID:   StoredID(h.Get("Message-Id")),
		InReplyTo:   IDs(strings.Join(h.Values("In-Reply-To"), " ")),
		References:  IDs(strings.Join(h.Values("References"), " ")),
		To:          AddressSpecs(h.Values("To")...),
		Cc:          AddressSpecs(h.Values("Cc")...),
		RawSubject:  h.Get("Subject"),
		ThreadIndex: strings.TrimSpace(h.Get("Thread-Index")),
		ThreadTopic: Text(strings.TrimSpace(Decode(h.Get("Thread-Topic")))),
	}
	if l := Addresses(h.Get("From")); len(l) > 0 {
		f.From, f.FromName = l[0].Address, l[0].Name
	}
	f.Subject = Text(strings.TrimSpace(Decode(h.Get("Subject"))))
	if d, err := mail.ParseDate(h.Get("Date")); err == nil {
		d = d.UTC()
		f.Date = &d
	}
	return f
}

// Parent is the id the message answers: the last of In-Reply-To (a reply
// to several messages lists its direct parent last), or "".
func (f Fields) Parent() string {
	if len(f.InReplyTo) == 0 {
		return ""
	}
	return f.InReplyTo[len(f.InReplyTo)-1]
}
