package ingest

import (
	"bytes"
	"io"
	"mime"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"net/textproto"

	"golang.org/x/text/encoding/htmlindex"
)

// Headers are the fields the hot path reads from the header block alone:
// enough to deduplicate, classify and thread without a full MIME parse.
type Headers struct {
	Header      textproto.MIMEHeader
	MessageID   string // without brackets; derived from the hash when absent or malformed
	Derived     bool   // MessageID was derived
	InReplyTo   string
	References  []string
	From        string
	FromName    string
	To, Cc      []string
	Subject     string // RFC 2047 decoded
	RawSubject  string
	Date        *time.Time
	ThreadIndex string
	ThreadTopic string
	Hash        string // hex SHA-256 of the raw bytes
	// ContentHash is the hex SHA-256 of the message without its trace
	// fields and CRs: what deduplication keys on, with the Message-ID.
	ContentHash string
	BodyOffset  int // where the body starts in the raw bytes
}

// wordDecoder decodes RFC 2047 encoded words in any charset the WHATWG
// encoding index knows, which covers what mail clients really send.
func wordDecoder() *mime.WordDecoder {
	return &mime.WordDecoder{CharsetReader: func(charset string, r io.Reader) (io.Reader, error) {
		enc, err := htmlindex.Get(charset)
		if err != nil {
			return nil, err
		}
		return enc.NewDecoder().Reader(r), nil
	}}
}

// decodeHeader decodes encoded words, keeping the raw text where decoding
// fails (a broken encoded word is shown as sent, never dropped).
func decodeHeader(dec *mime.WordDecoder, s string) string {
	out, err := dec.DecodeHeader(s)
	if err != nil {
		return s
	}
	return out
}

// ParseHeaders reads the header block of raw. It never fails: a broken
// header block yields what could be read, and a message with no usable
// Message-ID gets one derived from the hash of its content (RFC 5322
// §3.6.4 makes the field optional; threading never uses derived ids).
// The doors do not call it: they stream (Spooler), which parses the same
// way.
func ParseHeaders(raw []byte) Headers { return SpoolBytes(raw).Headers }

// parseHeaderBlock fills Headers from a header block read by
// classify.ReadHeader and the hashes of the whole message.
func parseHeaderBlock(hdr textproto.MIMEHeader, bodyOff int, hash, content string) Headers {
	h := Headers{Hash: hash, ContentHash: content, Header: hdr, BodyOffset: bodyOff}
	dec := wordDecoder()
	if ids := msgIDs(hdr.Get("Message-Id")); len(ids) > 0 {
		h.MessageID = ids[0]
	}
	if h.MessageID == "" {
		// From the content hash: a copy of an id-less message relayed
		// once more gets the same id, so it is one message.
		h.MessageID = h.ContentHash[:40] + "@hash.tend.invalid"
		h.Derived = true
	}
	if ids := msgIDs(hdr.Get("In-Reply-To")); len(ids) > 0 {
		h.InReplyTo = ids[len(ids)-1]
	}
	h.References = msgIDs(hdr.Get("References"))
	h.From, h.FromName = firstAddress(dec, hdr.Get("From"))
	h.FromName = clean(h.FromName)
	h.To = addressList(dec, hdr.Values("To"))
	h.Cc = addressList(dec, hdr.Values("Cc"))
	h.RawSubject = hdr.Get("Subject")
	// Headers must be 7-bit (RFC 5322) but 8-bit ones in any charset
	// arrive anyway; what is stored must be valid UTF-8 (PostgreSQL
	// refuses anything else), so undecodable bytes become U+FFFD.
	h.Subject = clean(strings.TrimSpace(decodeHeader(dec, h.RawSubject)))
	if d, err := mail.ParseDate(hdr.Get("Date")); err == nil {
		d = d.UTC()
		h.Date = &d
	}
	h.ThreadIndex = strings.TrimSpace(hdr.Get("Thread-Index"))
	h.ThreadTopic = clean(strings.TrimSpace(decodeHeader(dec, hdr.Get("Thread-Topic"))))
	return h
}

// clean makes s storable text: valid UTF-8, no NUL.
func clean(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// normalizeNewlines turns CR-only line ends (old Mac mailers) into LF,
// which the MIME parser understands.
func normalizeNewlines(b []byte) []byte {
	if !bytes.Contains(b, []byte("\r")) || bytes.Contains(b, []byte("\n")) {
		return b
	}
	return bytes.ReplaceAll(b, []byte("\r"), []byte("\n"))
}

// msgIDs extracts message ids from a Message-ID, In-Reply-To or References
// field (RFC 5322 §3.6.4), leniently: bracketed ids, or bare tokens with an
// "@" when a client left out the brackets. Ids that cannot be real (empty,
// no "@", whitespace inside) are dropped, so that threading never matches
// on junk.
func msgIDs(v string) []string {
	var out []string
	if strings.Contains(v, "<") {
		for {
			i := strings.IndexByte(v, '<')
			if i < 0 {
				break
			}
			j := strings.IndexByte(v[i:], '>')
			if j < 0 {
				break
			}
			if id := cleanID(v[i+1 : i+j]); id != "" {
				out = append(out, id)
			}
			v = v[i+j+1:]
		}
		return out
	}
	for _, f := range strings.Fields(v) {
		if id := cleanID(f); id != "" {
			out = append(out, id)
		}
	}
	return out
}

func cleanID(s string) string {
	s = strings.TrimSpace(s)
	if len(s) < 3 || len(s) > 900 || strings.ContainsAny(s, " \t\r\n<>\x00") || !utf8.ValidString(s) {
		return ""
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return ""
	}
	return s
}

// firstAddress returns the first address of an address field, lowercased,
// and its decoded display name.
func firstAddress(dec *mime.WordDecoder, v string) (string, string) {
	l := addressListNamed(dec, []string{v})
	if len(l) == 0 {
		return "", ""
	}
	return l[0].Address, l[0].Name
}

func addressList(dec *mime.WordDecoder, vs []string) []string {
	l := addressListNamed(dec, vs)
	out := make([]string, len(l))
	for i, a := range l {
		out[i] = a.Address
	}
	return out
}

// addressListNamed parses address fields with net/mail and, where a broken
// client makes it fail, falls back to picking out anything shaped like an
// address.
func addressListNamed(dec *mime.WordDecoder, vs []string) []*mail.Address {
	p := mail.AddressParser{WordDecoder: dec}
	var out []*mail.Address
	for _, v := range vs {
		if strings.TrimSpace(v) == "" {
			continue
		}
		l, err := p.ParseList(v)
		if err != nil {
			l = scrapeAddresses(v)
		}
		for _, a := range l {
			a.Address = strings.ToLower(strings.TrimSpace(a.Address))
			a.Name = clean(a.Name)
			// RFC 5321 §4.5.3.1.3: a path is at most 256 octets; longer
			// "addresses" are junk from broken mail.
			if a.Address != "" && len(a.Address) <= 320 && utf8.ValidString(a.Address) && !strings.ContainsRune(a.Address, 0) {
				out = append(out, a)
			}
		}
	}
	return out
}

func scrapeAddresses(v string) []*mail.Address {
	var out []*mail.Address
	for _, f := range strings.FieldsFunc(v, func(r rune) bool {
		return r == ' ' || r == ',' || r == ';' || r == '<' || r == '>' || r == '"' || r == '\t' || r == '(' || r == ')'
	}) {
		if cleanID(f) != "" && strings.Count(f, "@") == 1 {
			out = append(out, &mail.Address{Address: f})
		}
	}
	return out
}
