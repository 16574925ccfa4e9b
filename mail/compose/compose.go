// Package compose builds the outgoing RFC 5322 messages tend sends:
// replies relayed from agents, automatic acknowledgements and notifications.
//
// It is pure: the caller decides every header value (Message-ID, Date,
// subject tag, loop header) and Build only renders them correctly, so the
// same Message always yields the same bytes. That makes the output
// golden-testable and lets the outbox store the exact bytes it will send.
package compose

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	netmail "net/mail"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
	"golang.org/x/net/idna"
)

// Sentinel errors returned by Build; callers branch on them with errors.Is
// to tell a programming mistake (missing field) from bad user data.
var (
	// ErrMissingField means a field every outgoing message needs is empty.
	ErrMissingField = errors.New("missing required field")
	// ErrInvalidAddress means an address is not a valid RFC 5322 addr-spec.
	ErrInvalidAddress = errors.New("invalid address")
	// ErrInvalidHeader means a caller-supplied header name or message
	// identifier would produce a malformed or injectable header.
	ErrInvalidHeader = errors.New("invalid header")
)

// defaultLoopField is the field name used when LoopHeader is a bare value.
const defaultLoopField = "X-Tend-Loop"

// Address is a mailbox: an optional display name and an addr-spec.
type Address struct {
	Name, Email string
}

// Attachment is a file carried by the message. Inline attachments with a
// ContentID are placed in a multipart/related part next to the HTML body so
// that "cid:" references resolve (RFC 2387); others go into multipart/mixed.
type Attachment struct {
	Filename, ContentType string
	Data                  []byte
	ContentID             string // without angle brackets
	Inline                bool
}

// Message describes one outgoing mail. Build renders it; nothing in it is
// invented by Build.
type Message struct {
	From    Address
	To, Cc  []Address
	ReplyTo []Address
	// Subject is used verbatim: the caller has already added the ticket tag.
	Subject string
	// MessageID is the identifier without angle brackets; the caller signs
	// it so that replies to it can be threaded back to the ticket.
	MessageID string
	// InReplyTo and References are identifiers without angle brackets
	// (RFC 5322 section 3.6.4).
	InReplyTo  string
	References []string
	Date       time.Time
	// Text is the plain body. HTML, when set, makes the message
	// multipart/alternative with Text first (RFC 2046 section 5.1.4: the
	// last part is the preferred one).
	Text, HTML string
	// Body, when set, makes Text and HTML when the message is written
	// (Build, Draft.Bytes), on whatever goroutine writes it: the outbox
	// writes drafts beside the transaction that queued them, and a
	// notification's rendered body then costs that transaction nothing.
	Body        func() (text, html string, err error)
	Attachments []Attachment
	// Content, when set, is the body instead of Text, HTML, Body and
	// Attachments (which must then be empty): written once and shared by
	// every Message that holds it, each with its own header.
	Content *Content
	// Auto marks automatic mail (acknowledgements, notifications): it adds
	// Auto-Submitted: auto-replied (RFC 3834 section 5) and
	// X-Auto-Response-Suppress: All so that well-behaved responders,
	// including Exchange, do not answer it. Precedence is deliberately not
	// set: RFC 3834 section 3.1.8 discourages it.
	Auto bool
	// LoopHeader is set on everything we send so that our own mail coming
	// back is recognised. Either a full field ("X-Tend-Loop: id") or a bare
	// value, which is then placed in X-Tend-Loop.
	LoopHeader string
	// ThreadIndex and ThreadTopic carry an Outlook conversation on, so the
	// customer's Outlook threads our reply with their message.
	ThreadIndex, ThreadTopic string
	// Extra holds further fields such as X-Tend-Ticket. Values are encoded
	// as unstructured text (RFC 2047 if needed).
	Extra map[string]string
}

// Build renders m as an RFC 5322 message with CRLF line endings. Display
// names and the subject are RFC 2047 encoded when they are not plain ASCII
// and folded below 78 characters where possible; text parts are
// quoted-printable and attachments base64, so no line exceeds 998 octets
// (RFC 5322 section 2.1.1). Multipart boundaries are derived from the
// Message-ID, so the same Message always gives the same bytes.
func Build(m Message) ([]byte, error) {
	d, err := Check(m)
	if err != nil {
		return nil, err
	}
	return d.Bytes()
}

// Draft is a Message whose header fields Check has built and found valid:
// all that is left is writing it out (Bytes), which is most of the work of
// Build (the quoted-printable and base64 bodies). The outbox writes drafts
// beside the rest of the transaction that queues them, off SQLite's one
// writer (storage.QueueMails).
type Draft struct {
	m      Message
	fields []field
}

// Check validates m's header (addresses, identifiers, extra fields), the
// part of Build that fails on bad data, and returns the draft to write.
func Check(m Message) (*Draft, error) {
	if m.Content != nil && (m.Text != "" || m.HTML != "" || m.Body != nil || len(m.Attachments) > 0) {
		return nil, fmt.Errorf("compose: a message with shared content has a body of its own: %w", ErrInvalidHeader)
	}
	fs, err := header(m)
	if err != nil {
		return nil, err
	}
	return &Draft{m: m, fields: fs}, nil
}

// Bytes renders the draft as Build renders its Message.
func (d *Draft) Bytes() ([]byte, error) {
	if d.m.Content != nil {
		return d.shared()
	}
	m := d.m
	if m.Body != nil {
		var err error
		if m.Text, m.HTML, err = m.Body(); err != nil {
			return nil, fmt.Errorf("compose: body: %w", err)
		}
	}
	var buf bytes.Buffer
	b := &builder{seed: m.MessageID, w: &buf, root: d.fields}
	if err := b.write(m); err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	return buf.Bytes(), nil
}

// shared writes the draft's header fields before its shared content.
// The content's entity begins with its own header (MIME-Version, then
// the Content-* fields) and the root's fields would stand before it in
// one block, so the draft's block is written without its closing empty
// line: the bytes are those of the same message written alone with the
// content's boundaries.
func (d *Draft) shared() ([]byte, error) {
	entity, err := d.m.Content.entity()
	if err != nil {
		return nil, err
	}
	var h message.Header
	for i := len(d.fields) - 1; i >= 0; i-- {
		h.Add(d.fields[i].k, d.fields[i].v)
	}
	var buf bytes.Buffer
	buf.Grow(len(entity) + 1024)
	if err := textproto.WriteHeader(&buf, h.Header); err != nil {
		return nil, fmt.Errorf("compose: %w", err)
	}
	buf.Truncate(buf.Len() - len("\r\n"))
	buf.Write(entity)
	return buf.Bytes(), nil
}

// Content is a message body (text, HTML, attachments) that several mails
// carry unchanged under headers of their own: the notifications of one
// event, one to each agent, each with its own recipient, signed Reply-To
// and Message-ID. It is rendered and encoded once, by whichever of them
// is written first, on any goroutine; the others reuse the bytes. Its
// multipart boundaries are derived from seed instead of a Message-ID.
type Content struct {
	seed  string
	body  Message // Text, HTML, Body and Attachments only
	once  sync.Once
	bytes []byte
	err   error
}

// NewContent returns the shared body made of m's Text, HTML, Body and
// Attachments (its header is ignored); seed names its boundaries, so the
// same seed and body always give the same bytes.
func NewContent(seed string, m Message) *Content {
	return &Content{seed: seed, body: Message{Text: m.Text, HTML: m.HTML, Body: m.Body, Attachments: m.Attachments}}
}

// entity is the content as a MIME entity, header (from MIME-Version on)
// and body, made on first use.
func (c *Content) entity() ([]byte, error) {
	c.once.Do(func() {
		m := c.body
		if m.Body != nil {
			var err error
			if m.Text, m.HTML, err = m.Body(); err != nil {
				c.err = fmt.Errorf("compose: body: %w", err)
				return
			}
		}
		var buf bytes.Buffer
		b := &builder{seed: c.seed, w: &buf}
		if err := b.write(m); err != nil {
			c.err = fmt.Errorf("compose: %w", err)
			return
		}
		c.bytes = buf.Bytes()
	})
	return c.bytes, c.err
}

// field is one header field; fields are kept in a slice because the
// order in which they are written matters to readers of raw mail.
type field struct{ k, v string }

// header builds the top-level header fields in the conventional order.
func header(m Message) ([]field, error) {
	if m.From.Email == "" {
		return nil, fmt.Errorf("compose: from: %w", ErrMissingField)
	}
	if m.MessageID == "" {
		return nil, fmt.Errorf("compose: message-id: %w", ErrMissingField)
	}
	if m.Date.IsZero() {
		return nil, fmt.Errorf("compose: date: %w", ErrMissingField)
	}
	if strings.TrimSpace(m.LoopHeader) == "" {
		return nil, fmt.Errorf("compose: loop header: %w", ErrMissingField)
	}
	if len(m.To) == 0 && len(m.Cc) == 0 {
		return nil, fmt.Errorf("compose: recipients: %w", ErrMissingField)
	}
	var fs []field
	for _, f := range []struct {
		key   string
		addrs []Address
	}{{"From", []Address{m.From}}, {"To", m.To}, {"Cc", m.Cc}, {"Reply-To", m.ReplyTo}} {
		if len(f.addrs) == 0 {
			continue
		}
		v, err := addressList(f.key, f.addrs)
		if err != nil {
			return nil, err
		}
		fs = append(fs, field{f.key, v})
	}
	fs = append(fs, field{"Subject", encodeText(m.Subject)})
	fs = append(fs, field{"Date", m.Date.Format(time.RFC1123Z)})
	if err := checkMsgID(m.MessageID); err != nil {
		return nil, fmt.Errorf("compose: message-id: %w", err)
	}
	fs = append(fs, field{"Message-ID", "<" + m.MessageID + ">"})
	if m.InReplyTo != "" {
		if err := checkMsgID(m.InReplyTo); err != nil {
			return nil, fmt.Errorf("compose: in-reply-to: %w", err)
		}
		fs = append(fs, field{"In-Reply-To", "<" + m.InReplyTo + ">"})
	}
	if len(m.References) > 0 {
		for _, id := range m.References {
			if err := checkMsgID(id); err != nil {
				return nil, fmt.Errorf("compose: references: %w", err)
			}
		}
		fs = append(fs, field{"References", "<" + strings.Join(m.References, "> <") + ">"})
	}
	if m.ThreadTopic != "" {
		fs = append(fs, field{"Thread-Topic", encodeText(m.ThreadTopic)})
	}
	if m.ThreadIndex != "" {
		fs = append(fs, field{"Thread-Index", encodeText(m.ThreadIndex)})
	}
	if m.Auto {
		fs = append(fs, field{"Auto-Submitted", "auto-replied"}, field{"X-Auto-Response-Suppress", "All"})
	}
	name, value := loopField(m.LoopHeader)
	if err := checkFieldName(name); err != nil {
		return nil, fmt.Errorf("compose: loop header: %w", err)
	}
	fs = append(fs, field{name, encodeText(value)})
	keys := make([]string, 0, len(m.Extra))
	for k := range m.Extra {
		keys = append(keys, k)
	}
	sort.Strings(keys) // map order is random; the output must not be
	for _, k := range keys {
		if err := checkFieldName(k); err != nil {
			return nil, fmt.Errorf("compose: extra field %q: %w", k, err)
		}
		if reservedField(k) {
			return nil, fmt.Errorf("compose: extra field %q would override a built field: %w", k, ErrInvalidHeader)
		}
		fs = append(fs, field{k, encodeText(m.Extra[k])})
	}
	return fs, nil
}

// loopField splits "Name: value" or returns the default field for a value.
func loopField(s string) (name, value string) {
	if k, v, ok := strings.Cut(s, ":"); ok && checkFieldName(strings.TrimSpace(k)) == nil {
		return strings.TrimSpace(k), strings.TrimSpace(v)
	}
	return defaultLoopField, strings.TrimSpace(s)
}

// reservedField lists fields Build writes itself; letting Extra set them
// would produce duplicates or contradict the structured fields.
func reservedField(k string) bool {
	switch strings.ToLower(k) {
	case "from", "to", "cc", "bcc", "reply-to", "subject", "date", "message-id",
		"in-reply-to", "references", "mime-version", "content-type",
		"content-transfer-encoding", "auto-submitted", "x-auto-response-suppress",
		"thread-index", "thread-topic", "sender", "dkim-signature":
		return true
	}
	return false
}

// checkFieldName enforces RFC 5322 section 3.6.8 field-name syntax:
// printable ASCII except colon.
func checkFieldName(k string) error {
	if k == "" {
		return ErrInvalidHeader
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 33 || k[i] > 126 || k[i] == ':' {
			return ErrInvalidHeader
		}
	}
	return nil
}

// checkMsgID accepts the id-left "@" id-right shape of RFC 5322 section
// 3.6.4 loosely (any printable ASCII without brackets or whitespace), which
// is what every MTA accepts, and rejects anything that could break the
// header or smuggle another field in.
func checkMsgID(id string) error {
	if id == "" || !strings.Contains(id, "@") {
		return ErrInvalidHeader
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c <= ' ' || c > '~' || c == '<' || c == '>' {
			return ErrInvalidHeader
		}
	}
	return nil
}

// addressList validates each addr-spec with net/mail, so that a bad
// address is refused here instead of producing a field a relay rejects
// later, and formats the list (RFC 5322 section 3.4).
func addressList(key string, in []Address) (string, error) {
	out := make([]string, 0, len(in))
	for _, a := range in {
		parsed, err := netmail.ParseAddress("<" + a.Email + ">")
		if err != nil || parsed.Address != a.Email {
			return "", fmt.Errorf("compose: %s %q: %w", strings.ToLower(key), a.Email, ErrInvalidAddress)
		}
		// An internationalised domain is written as its A-labels (RFC
		// 5891), which mean the same: the header then needs SMTPUTF8 only
		// for a non-ASCII local part, and a relay without SMTPUTF8 can
		// take the message as signed (mail/relay downgrades only what is
		// not ASCII, and would break the DKIM signature over To).
		addr, err := asciiDomain(a.Email)
		if err != nil {
			return "", fmt.Errorf("compose: %s %q: %w: %w", strings.ToLower(key), a.Email, ErrInvalidAddress, err)
		}
		// net/mail renders the addr-spec (quoting the local part when
		// needed); the display name is ours so it can be encoded safely.
		spec := (&netmail.Address{Address: addr}).String()
		if a.Name == "" {
			out = append(out, spec)
			continue
		}
		out = append(out, encodePhrase(a.Name)+" "+spec)
	}
	return strings.Join(out, ", "), nil
}

// asciiDomain returns addr with its domain as A-labels when the domain is
// not ASCII.
func asciiDomain(addr string) (string, error) {
	at := strings.LastIndexByte(addr, '@')
	domain := addr[at+1:]
	for i := 0; i < len(domain); i++ {
		if domain[i] >= 0x80 {
			d, err := idna.Lookup.ToASCII(domain)
			if err != nil {
				return "", err
			}
			return addr[:at+1] + d, nil
		}
	}
	return addr, nil
}

// builder writes the MIME tree. It numbers the multipart boundaries it
// creates so that each is distinct and reproducible, and owns the root
// header fields, which go on whichever entity is created first.
type builder struct {
	seed string
	n    int
	w    io.Writer
	root []field
}

// boundary returns a deterministic boundary. It contains "=_", which can
// never occur in quoted-printable or base64 output (RFC 2045 sections 6.7
// and 6.8), so it cannot collide with a body line.
func (b *builder) boundary() string {
	b.n++
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", b.seed, b.n)))
	return "=_tend_" + hex.EncodeToString(sum[:12])
}

// create starts a child part of parent, or the root entity when parent is
// nil. go-message writes header fields in reverse order of addition, so
// they are added from last to first to keep the order we chose.
func (b *builder) create(parent *message.Writer, fs ...field) (*message.Writer, error) {
	if parent == nil {
		all := append(append([]field{}, b.root...), field{"MIME-Version", "1.0"})
		fs = append(all, fs...)
	}
	var h message.Header
	for i := len(fs) - 1; i >= 0; i-- {
		h.Add(fs[i].k, fs[i].v)
	}
	if parent == nil {
		return message.CreateWriter(b.w, h)
	}
	return parent.CreatePart(h)
}

// contentType formats a Content-Type or Content-Disposition value with
// go-message's parameter encoding (RFC 2047 words in quoted parameters,
// which every mainstream client, Outlook included, decodes).
func contentType(key, t string, params map[string]string) field {
	var h message.Header
	if key == "Content-Disposition" {
		h.SetContentDisposition(t, params)
	} else {
		h.SetContentType(t, params)
	}
	return field{key, h.Get(key)}
}

func (b *builder) multipart(parent *message.Writer, t string, params map[string]string) (*message.Writer, error) {
	if params == nil {
		params = map[string]string{}
	}
	params["boundary"] = b.boundary()
	w, err := b.create(parent, contentType("Content-Type", t, params))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	return w, nil
}

func (b *builder) write(m Message) error {
	var inline, attached []Attachment
	for _, a := range m.Attachments {
		if a.Inline && a.ContentID != "" {
			inline = append(inline, a)
		} else {
			attached = append(attached, a)
		}
	}
	if len(attached) == 0 {
		return b.writeRelated(nil, m, inline)
	}
	mw, err := b.multipart(nil, "multipart/mixed", nil)
	if err != nil {
		return err
	}
	if err := b.writeRelated(mw, m, inline); err != nil {
		return err
	}
	for _, a := range attached {
		if err := b.writeAttachment(mw, a); err != nil {
			return err
		}
	}
	return mw.Close()
}

// writeRelated writes the body wrapped in multipart/related (RFC 2387) when
// there are inline parts for it to reference.
func (b *builder) writeRelated(parent *message.Writer, m Message, inline []Attachment) error {
	if len(inline) == 0 {
		return b.writeBody(parent, m)
	}
	typ := "text/plain"
	if m.HTML != "" {
		typ = "multipart/alternative"
	}
	rw, err := b.multipart(parent, "multipart/related", map[string]string{"type": typ})
	if err != nil {
		return err
	}
	if err := b.writeBody(rw, m); err != nil {
		return err
	}
	for _, a := range inline {
		if err := b.writeAttachment(rw, a); err != nil {
			return err
		}
	}
	return rw.Close()
}

// writeBody writes text/plain, or multipart/alternative with the HTML last
// as the preferred rendering (RFC 2046 section 5.1.4).
func (b *builder) writeBody(parent *message.Writer, m Message) error {
	if m.HTML == "" {
		return b.writeText(parent, "text/plain", m.Text)
	}
	aw, err := b.multipart(parent, "multipart/alternative", nil)
	if err != nil {
		return err
	}
	if err := b.writeText(aw, "text/plain", m.Text); err != nil {
		return err
	}
	if err := b.writeText(aw, "text/html", m.HTML); err != nil {
		return err
	}
	return aw.Close()
}

// writeText writes one quoted-printable UTF-8 text part. Line breaks are
// normalised to CRLF first so that the encoder emits canonical line ends
// (RFC 2045 section 6.7 rule 4) whatever the caller's text used.
func (b *builder) writeText(parent *message.Writer, typ, body string) error {
	tw, err := b.create(parent,
		contentType("Content-Type", typ, map[string]string{"charset": "utf-8"}),
		field{"Content-Transfer-Encoding", "quoted-printable"})
	if err != nil {
		return fmt.Errorf("%s: %w", typ, err)
	}
	if _, err := io.WriteString(tw, canonicalLines(body)); err != nil {
		return fmt.Errorf("%s: %w", typ, err)
	}
	return tw.Close()
}

// canonicalLines turns CRLF, bare CR and bare LF into CRLF and makes sure
// invalid UTF-8 does not leak into a part labelled utf-8.
func canonicalLines(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}

// writeAttachment writes a base64 part (RFC 2045 section 6.8).
func (b *builder) writeAttachment(parent *message.Writer, a Attachment) error {
	t, params, err := mime.ParseMediaType(a.ContentType)
	if err != nil || !strings.Contains(t, "/") || strings.HasPrefix(t, "multipart/") {
		// An unusable or multipart type would make the part unreadable;
		// octet-stream still delivers the bytes.
		t, params = "application/octet-stream", map[string]string{}
	}
	delete(params, "boundary")
	name := strings.ToValidUTF8(a.Filename, "\uFFFD")
	if name != "" {
		params["name"] = name
	}
	disp := "attachment"
	if a.Inline {
		disp = "inline"
	}
	dparams := map[string]string{}
	if name != "" {
		dparams["filename"] = name
	}
	fs := []field{contentType("Content-Type", t, params), contentType("Content-Disposition", disp, dparams)}
	if a.ContentID != "" {
		if !validCID(a.ContentID) {
			return fmt.Errorf("compose: attachment %q content-id: %w", name, ErrInvalidHeader)
		}
		fs = append(fs, field{"Content-ID", "<" + a.ContentID + ">"})
	}
	fs = append(fs, field{"Content-Transfer-Encoding", "base64"})
	pw, err := b.create(parent, fs...)
	if err != nil {
		return fmt.Errorf("attachment %q: %w", name, err)
	}
	if _, err := pw.Write(a.Data); err != nil {
		return fmt.Errorf("attachment %q: %w", name, err)
	}
	return pw.Close()
}

// validCID accepts Content-IDs with or without "@" (Apple Mail and Outlook
// both produce the latter) as long as they cannot break the header.
func validCID(id string) bool {
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c <= ' ' || c > '~' || c == '<' || c == '>' {
			return false
		}
	}
	return id != ""
}
