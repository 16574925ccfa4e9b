package header

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jhillyerd/enmime/v2"
	"github.com/jhillyerd/enmime/v2/mediatype"
)

// ParseMIME runs the full MIME parse of raw (enmime), the one way ingest
// stores a message and the web cuts its attachments from the same bytes,
// so that part n is the same part with the same bytes for both. Line ends
// go through Newlines first.
//
// Charset detection is the slowest part of the parse and guesses wrong
// on raw UTF-8 (scripts and old clients send it with no MIME header at
// all): a part's declared charset is used, a text part that declares none
// is read as UTF-8, and only when the result is not valid UTF-8 (a
// declared charset proved wrong, an undeclared one was not UTF-8) is the
// message parsed again with detection.
func ParseMIME(raw []byte) (*enmime.Envelope, error) {
	src := Newlines(raw)
	env, err := enmime.NewParser(enmime.DisableCharacterDetection(true), enmime.SetCustomParseMediaType(utf8ByDefault)).ReadEnvelope(bytes.NewReader(src))
	if err == nil && !(utf8.ValidString(env.Text) && utf8.ValidString(env.HTML)) {
		env, err = enmime.NewParser().ReadEnvelope(bytes.NewReader(src))
	}
	if err != nil {
		return nil, fmt.Errorf("mime: %w", err)
	}
	return env, nil
}

// utf8ByDefault parses a Content-Type as enmime does, and gives a text
// part without a charset parameter charset=utf-8, so that enmime reads it
// as UTF-8 instead of guessing (enmime runs detection on every part that
// declares no charset, even with detection disabled). US-ASCII counts as
// undeclared: it is what enmime assumes for a message with no
// Content-Type (RFC 2045 section 5.2), UTF-8 reads ASCII unchanged, and
// 8-bit bytes under it prove the label wrong.
func utf8ByDefault(ctype string) (string, map[string]string, []string, error) {
	mtype, params, invalid, err := mediatype.Parse(ctype)
	if cs := strings.ToLower(params["charset"]); err == nil && strings.HasPrefix(mtype, "text/") && (cs == "" || cs == "us-ascii") {
		if params == nil {
			params = map[string]string{}
		}
		params["charset"] = "utf-8"
	}
	return mtype, params, invalid, err
}

// Part is one part of a message in tend's numbering: its position is its
// number (storage's Attachment.Part, the web's download path).
type Part struct {
	*enmime.Part
	// Inline is true for inline parts and other non-body parts, false for
	// attachments proper.
	Inline bool
}

// Parts lists the parts of env that are not the message's text: its
// attachments, then its inlines, then the other parts, each in enmime's
// order. The numbering is stored, so it must not change.
func Parts(env *enmime.Envelope) []Part {
	out := make([]Part, 0, len(env.Attachments)+len(env.Inlines)+len(env.OtherParts))
	for _, p := range env.Attachments {
		out = append(out, Part{Part: p})
	}
	for _, p := range env.Inlines {
		out = append(out, Part{Part: p, Inline: true})
	}
	for _, p := range env.OtherParts {
		out = append(out, Part{Part: p, Inline: true})
	}
	return out
}
