package classify

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jhillyerd/enmime/v2"

	"github.com/tendhq/tend/mail/header"
)

// ErrNotDSN means the message carries no sign of being a delivery report:
// neither a multipart/report delivery-status part nor a recognisable text
// bounce.
var ErrNotDSN = errors.New("not a delivery status notification")

// DSN is what a delivery status notification says about a message we sent.
type DSN struct {
	// Standard is true when the report came as an RFC 3464
	// message/delivery-status part; false for text bounces read heuristically.
	Standard bool
	// ReportingMTA is the per-message Reporting-MTA field, without its type.
	ReportingMTA string
	// EnvelopeID is Original-Envelope-Id (RFC 3461 ENVID) when the original
	// was sent with one.
	EnvelopeID string
	// Recipients are the per-recipient reports, in order.
	Recipients []Recipient
	// OriginalMessageID is the Message-ID of the message that bounced, from
	// the returned message or headers, or else from the bounce's own
	// In-Reply-To/References; without angle brackets.
	OriginalMessageID string
	// OriginalReturnPath is the Return-Path of the returned message, where
	// a VERP address identifying the outbox row would appear.
	OriginalReturnPath string
	// OriginalTo lists the To addresses of the returned message.
	OriginalTo []string
	// DeliveredTo lists the addresses this DSN itself was delivered to
	// (Delivered-To, X-Original-To, Envelope-To, To): for a VERP return path
	// this is the address that identifies the outbox row.
	DeliveredTo []string
	// Explanation is the human-readable part, trimmed to a few kilobytes.
	Explanation string
}

// Recipient is one per-recipient report (RFC 3464 section 2.3).
type Recipient struct {
	// Address is the Final-Recipient (else Original-Recipient) address,
	// without its address type.
	Address string
	// OriginalRecipient is the Original-Recipient address, if given.
	OriginalRecipient string
	// Action is failed, delayed, delivered, relayed or expanded.
	Action string
	// Status is the enhanced status code (RFC 3463), such as "5.1.1"; ""
	// when the report gave none.
	Status string
	// Diagnostic is the Diagnostic-Code text, or the MTA's explanation.
	Diagnostic string
	// Permanent is true for hard failures (status 5.x.x, or failed without
	// a code); false for delays and temporary (4.x.x) failures.
	Permanent bool
}

// Failed returns the recipients whose delivery failed for good or for now
// (Action failed), leaving out delays and successes.
func (d *DSN) Failed() []Recipient {
	var out []Recipient
	for _, r := range d.Recipients {
		if r.Action == "failed" {
			out = append(out, r)
		}
	}
	return out
}

// maxExplanation caps the explanation kept on a DSN.
const maxExplanation = 4 << 10

// ParseDSN reads a delivery status notification: an RFC 3464 multipart/report
// (RFC 6522) or one of the common text bounces (qmail, Exim, Sendmail,
// Postfix, Exchange, Domino, Gmail). It never panics; broken MIME yields
// what could be read. It returns ErrNotDSN when raw is not a bounce at all,
// and a non-nil DSN with an error when a report was found but could only be
// read in part.
//
// enmime walks the MIME tree; the delivery-status fields and quoted headers
// are read with header.Read, because enmime's dsn package needs the three
// report parts in exact order and a strict header syntax that many real
// MTAs do not produce.
func ParseDSN(raw []byte) (*DSN, error) {
	data := header.Newlines(raw)
	data = data[header.Start(data):]
	top, _ := header.Read(data)

	d := &DSN{}
	d.DeliveredTo = deliveredTo(top)

	p := enmime.NewParser(enmime.SkipMalformedParts(true), enmime.DisableCharacterDetection(true))
	root, perr := p.ReadParts(bytes.NewReader(data))

	var explanation []byte
	report := false
	if root != nil {
		s := scanParts(root)
		explanation = s.explanation
		report = s.report
		for _, st := range s.status {
			readDeliveryStatus(d, st)
		}
		if s.original != nil {
			readOriginal(d, s.original)
		}
	}
	if root == nil || (explanation == nil && len(d.Recipients) == 0) {
		_, body := header.Read(data)
		explanation = data[body:]
	}
	d.Explanation = clip(string(explanation), maxExplanation)

	text := string(explanation)
	bounceText := looksLikeTextBounce(top, text)
	if len(d.Recipients) == 0 && (bounceText || report) {
		if i := inlineStatus(text); i >= 0 {
			// Old Sendmail pastes the RFC 3464 fields into the text.
			readDeliveryStatus(d, []byte(text[i:]))
			d.Standard = false
		}
	}
	if len(d.Recipients) == 0 && (bounceText || report) {
		readTextBounce(d, text, top)
	}
	if len(d.Recipients) == 0 {
		for _, v := range top.Values("X-Failed-Recipients") {
			for _, a := range strings.Split(v, ",") {
				if a = addressOf(a); a != "" {
					d.Recipients = append(d.Recipients, Recipient{Address: a, Action: "failed", Permanent: true})
				}
			}
		}
	}
	if d.OriginalMessageID == "" {
		readQuotedOriginal(d, text)
	}
	if d.OriginalMessageID == "" {
		// The copy may sit in another part, or the MIME may be too broken
		// for enmime: look through the undecoded body too.
		_, body := header.Read(data)
		readQuotedOriginal(d, string(data[body:]))
	}
	if d.OriginalMessageID == "" {
		// Exchange, Gmail and others thread the bounce on the original.
		if id := firstMsgID(top.Get("In-Reply-To")); id != "" {
			d.OriginalMessageID = id
		} else if refs := strings.Fields(top.Get("References")); len(refs) > 0 {
			d.OriginalMessageID = firstMsgID(refs[len(refs)-1])
		}
	}

	if !report && !bounceText && len(d.Recipients) == 0 {
		return nil, ErrNotDSN
	}
	if perr != nil {
		return d, fmt.Errorf("parse dsn mime: %w", perr)
	}
	return d, nil
}

// partScan collects what ParseDSN needs from the MIME tree.
type partScan struct {
	report      bool
	explanation []byte
	status      [][]byte
	original    []byte
}

// scanParts walks the tree: the delivery-status parts, the returned message
// or headers, and the first text part as explanation.
func scanParts(root *enmime.Part) partScan {
	var s partScan
	var walk func(p *enmime.Part, depth int)
	walk = func(p *enmime.Part, depth int) {
		if p == nil || depth > 32 {
			return
		}
		ct := strings.ToLower(p.ContentType)
		switch {
		case ct == "multipart/report":
			rt := strings.ToLower(p.ContentTypeParams["report-type"])
			if rt == "delivery-status" || rt == "global-delivery-status" {
				s.report = true
			}
		case ct == "message/delivery-status" || ct == "message/global-delivery-status":
			s.report = true
			s.status = append(s.status, p.Content)
		case ct == "text/plain" && bytes.HasPrefix(bytes.TrimSpace(p.Content), []byte("Reporting-MTA:")):
			// Some MTAs label the status part text/plain.
			s.status = append(s.status, p.Content)
		case ct == "message/rfc822" || ct == "text/rfc822-headers" || ct == "message/rfc822-headers" ||
			ct == "message/global" || ct == "message/global-headers":
			if s.original == nil {
				s.original = p.Content
			}
		case strings.HasPrefix(ct, "text/plain") || (ct == "" && p.FirstChild == nil):
			if s.explanation == nil && p.Disposition != "attachment" {
				s.explanation = p.Content
			}
		case ct == "text/html":
			if s.explanation == nil && p.Disposition != "attachment" {
				s.explanation = []byte(stripTags(string(p.Content)))
			}
		}
		for c := p.FirstChild; c != nil; c = c.NextSibling {
			walk(c, depth+1)
		}
	}
	walk(root, 0)
	return s
}

// readDeliveryStatus parses a message/delivery-status body: groups of
// header-like fields separated by blank lines, per-message first, then one
// group per recipient (RFC 3464 section 2.1).
func readDeliveryStatus(d *DSN, body []byte) {
	d.Standard = true
	for _, group := range splitGroups(body) {
		h, _ := header.Read(group)
		if mta := h.Get("Reporting-Mta"); mta != "" && d.ReportingMTA == "" {
			d.ReportingMTA = stripType(mta)
		}
		if id := h.Get("Original-Envelope-Id"); id != "" && d.EnvelopeID == "" {
			d.EnvelopeID = id
		}
		final := h.Get("Final-Recipient")
		orig := h.Get("Original-Recipient")
		if final == "" && orig == "" {
			continue
		}
		r := Recipient{
			Address:           addressOf(stripType(final)),
			OriginalRecipient: addressOf(stripType(orig)),
			Action:            strings.ToLower(strings.TrimSpace(strings.SplitN(h.Get("Action"), " ", 2)[0])),
			Status:            statusCode(h.Get("Status")),
			Diagnostic:        stripType(h.Get("Diagnostic-Code")),
		}
		if r.Address == "" {
			r.Address = r.OriginalRecipient
		}
		if r.Status == "" {
			r.Status = statusCode(r.Diagnostic)
		}
		if r.Action == "" {
			r.Action = actionFor(r.Status, r.Diagnostic)
		}
		r.Permanent = isPermanent(r.Action, r.Status, r.Diagnostic)
		d.Recipients = append(d.Recipients, r)
	}
}

// readOriginal reads the returned message or its headers.
func readOriginal(d *DSN, content []byte) {
	h, _ := header.Read(header.Newlines(content))
	if d.OriginalMessageID == "" {
		d.OriginalMessageID = firstMsgID(h.Get("Message-Id"))
	}
	if d.OriginalReturnPath == "" {
		d.OriginalReturnPath = addressOf(h.Get("Return-Path"))
	}
	if len(d.OriginalTo) == 0 {
		d.OriginalTo = addressList(h.Values("To"))
	}
}

// deliveredTo lists the addresses a message was delivered to, as the
// delivering MTA recorded them, then the To field.
func deliveredTo(h Header) []string {
	var fields []string
	for _, name := range []string{"Delivered-To", "X-Original-To", "Envelope-To", "To"} {
		fields = append(fields, h.Values(name)...)
	}
	return addressList(fields)
}

// addressList extracts the distinct addresses from address field values.
func addressList(values []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range values {
		for _, a := range addrRE.FindAllString(v, -1) {
			a = strings.ToLower(a)
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// The regular expressions below are compiled once and only read.
var (
	// addrRE matches an addr-spec with a dotted domain, loosely.
	addrRE = regexp.MustCompile(`[A-Za-z0-9.!#$%&'*+/=?^_{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+`)
	// statusRE matches an RFC 3463 enhanced status code.
	statusRE = regexp.MustCompile(`(?:^|[^0-9.])([245]\.[0-9]{1,3}\.[0-9]{1,3})(?:[^0-9.]|$)`)
	// replyCodeRE matches an RFC 5321 reply code in a diagnostic.
	replyCodeRE = regexp.MustCompile(`(?:^|[^0-9.])([45][0-9][0-9])(?:[ -]|$)`)
)

// statusCode extracts an enhanced status code from a Status field or a
// diagnostic text.
func statusCode(s string) string {
	if m := statusRE.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return ""
}

// actionFor infers an RFC 3464 action where the report gave none.
func actionFor(status, text string) string {
	switch {
	case strings.HasPrefix(status, "2"):
		return "delivered"
	case strings.HasPrefix(status, "4"):
		return "delayed"
	case strings.HasPrefix(status, "5"):
		return "failed"
	}
	if looksTemporary(text) {
		return "delayed"
	}
	if m := replyCodeRE.FindStringSubmatch(text); m != nil && m[1][0] == '4' {
		return "delayed"
	}
	return "failed"
}

// isPermanent decides hard versus soft failure: the status class where there
// is one (RFC 3463 section 3.1), else the SMTP reply code, else the action.
func isPermanent(action, status, diag string) bool {
	switch {
	case strings.HasPrefix(status, "5"):
		return true
	case strings.HasPrefix(status, "4"), strings.HasPrefix(status, "2"):
		return false
	}
	if m := replyCodeRE.FindStringSubmatch(diag); m != nil {
		return m[1][0] == '5'
	}
	return action == "failed"
}

// looksTemporary reports text that announces a delay rather than a failure.
func looksTemporary(text string) bool {
	l := strings.ToLower(text)
	for _, p := range []string{"has not yet been delivered", "not been delivered yet", "delayed", "will continue trying",
		"will be retried", "still being retried", "temporary failure", "temporarily", "deferred", "warning: could not send"} {
		if strings.Contains(l, p) {
			return true
		}
	}
	return false
}

// stripType removes the "type;" prefix of DSN fields such as
// "rfc822; user@example.com" or "smtp; 550 5.1.1 unknown".
func stripType(v string) string {
	if i := strings.IndexByte(v, ';'); i >= 0 {
		return strings.TrimSpace(v[i+1:])
	}
	return strings.TrimSpace(v)
}

// firstMsgID returns the first msg-id in v (header.IDs), or "".
func firstMsgID(v string) string {
	if ids := header.IDs(v); len(ids) > 0 {
		return ids[0]
	}
	return ""
}

// inlineStatus returns the offset of delivery-status fields pasted into a
// text bounce (the Reporting-MTA or first Final-Recipient line), or -1.
func inlineStatus(text string) int {
	l := lowerInPlace(text)
	for _, f := range []string{"\nreporting-mta:", "\nfinal-recipient:"} {
		if i := strings.Index(l, f); i >= 0 {
			return i + 1
		}
	}
	return -1
}

// splitGroups splits a body on blank lines into non-empty groups.
func splitGroups(body []byte) [][]byte {
	body = header.Newlines(body)
	var out [][]byte
	for _, g := range bytes.Split(body, []byte("\n\n")) {
		if len(bytes.TrimSpace(g)) > 0 {
			out = append(out, bytes.TrimLeft(g, "\n"))
		}
	}
	return out
}

// clip shortens s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// stripTags reduces HTML to its text, crudely: for finding addresses and
// codes in an HTML-only bounce, markup only has to be out of the way.
func stripTags(s string) string {
	var b strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '<':
			in = true
		case r == '>':
			in = false
			b.WriteByte(' ')
		case !in:
			b.WriteRune(r)
		}
	}
	return b.String()
}
