package threading

import (
	"fmt"
	"io"
	"net/mail"
	"strings"
	"time"
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

// ReadMessage reads a header block from r (the body is not read) and
// returns the Message fields it carries, with rcpt as the envelope.
// IsBounce is left false: classifying is not threading's job.
func ReadMessage(r io.Reader, rcpt []string) (Message, error) {
	m, err := mail.ReadMessage(r)
	if err != nil {
		return Message{}, fmt.Errorf("read header: %w", err)
	}
	return FromHeader(m.Header, rcpt), nil
}

// FromHeader extracts a Message from a parsed header. Bad fields degrade
// to empty values, never to an error: threading must still decide.
func FromHeader(h mail.Header, rcpt []string) Message {
	msg := Message{
		MessageID:   first(ParseIDList(h.Get("Message-Id"))),
		InReplyTo:   ParseIDList(h.Get("In-Reply-To")),
		References:  ParseIDList(strings.Join(h["References"], " ")),
		Subject:     h.Get("Subject"),
		From:        first(AddressList(h.Get("From"))),
		To:          AddressList(strings.Join(h["To"], ", ")),
		Cc:          AddressList(strings.Join(h["Cc"], ", ")),
		ThreadIndex: strings.TrimSpace(h.Get("Thread-Index")),
		ThreadTopic: h.Get("Thread-Topic"),
	}
	for _, r := range rcpt {
		if a := NormalizeAddress(r); a != "" {
			msg.Recipients = append(msg.Recipients, a)
		}
	}
	if d, err := mail.ParseDate(h.Get("Date")); err == nil {
		msg.Date = d
	}
	return msg
}

// first returns the first element of l, or "".
func first(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return l[0]
}

// ParseIDList returns the valid msg-ids (RFC 5322 section 3.6.4) in a
// Message-ID, In-Reply-To or References value, without brackets, in
// order, duplicates removed. It is lax about what real clients send
// (missing brackets, comments, folding, junk between ids) and strict about
// what it returns: see ValidID.
func ParseIDList(v string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(id string) {
		if ValidID(id) && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	if !strings.Contains(v, "<") {
		// Some clients omit the brackets: take bare tokens.
		for _, f := range strings.Fields(v) {
			add(f)
		}
		return out
	}
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			return out
		}
		v = v[i+1:]
		j := strings.IndexByte(v, '>')
		if j < 0 {
			return out
		}
		add(strings.TrimSpace(v[:j]))
		v = v[j+1:]
	}
}

// ValidID reports whether id (without brackets) is usable for threading:
// a non-empty left and right side around one "@", printable ASCII without
// spaces or brackets, at most 250 octets. Threading on an empty or junk id
// once pulled all new mail of a peer helpdesk into one conversation.
func ValidID(id string) bool {
	if len(id) < 3 || len(id) > 250 {
		return false
	}
	at := strings.LastIndexByte(id, '@')
	if at <= 0 || at == len(id)-1 || strings.Count(id, "@") != 1 && !strings.HasPrefix(id, "\"") {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == '(' || c == ')' || c == ',' {
			return false
		}
	}
	return true
}

// NormalizeAddress returns the bare lowercased address of a mailbox
// ("Name <A@B>" or "a@b"), or "" when there is none. Lowercasing the local
// part is not what RFC 5321 section 2.4 promises, but it is what every
// mail system does in practice, and a helpdesk must not split a customer
// in two over case.
func NormalizeAddress(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if a, err := mail.ParseAddress(s); err == nil {
		return strings.ToLower(a.Address)
	}
	// Lax fallback for what net/mail refuses (unquoted dots, 8-bit names):
	// take the last <...>, else the bare token.
	if i := strings.LastIndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j > 0 {
			s = s[i+1 : i+j]
		}
	}
	s = strings.ToLower(strings.Trim(strings.TrimSpace(s), "<>\"'"))
	if strings.Count(s, "@") != 1 || strings.ContainsAny(s, " \t\r\n<>,;") || s[0] == '@' || s[len(s)-1] == '@' {
		return ""
	}
	return s
}

// AddressList returns the lowercased bare addresses of an address-list
// header value, skipping what cannot be parsed.
func AddressList(v string) []string {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	p := mail.AddressParser{WordDecoder: newWordDecoder()}
	var out []string
	if list, err := p.ParseList(v); err == nil {
		for _, a := range list {
			out = append(out, strings.ToLower(a.Address))
		}
		return out
	}
	// Lax: split on commas outside quotes and parse each on its own.
	for _, part := range splitAddresses(v) {
		if a := NormalizeAddress(part); a != "" {
			out = append(out, a)
		}
	}
	return out
}

func splitAddresses(v string) []string {
	var parts []string
	quoted, start := false, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			quoted = !quoted
		case ',', ';':
			if !quoted {
				parts = append(parts, v[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, v[start:])
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
