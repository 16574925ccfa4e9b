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
// is read as UTF-8, and only when the result is not UTF-8 (a declared
// charset proved wrong, an undeclared one was not UTF-8) is the message
// parsed again with detection. UTF-8 with a few stray bytes (a mangled
// soft line break, a byte cut by a gateway) is UTF-8: its bad bytes
// become U+FFFD, as storage would store them, without a second parse
// that runs detection on every part (it cost 12% of the pipeline's CPU
// on the benchmark corpus, and came back with UTF-8 all the same).
func ParseMIME(raw []byte) (*enmime.Envelope, error) {
	src := Newlines(raw)
	env, err := enmime.NewParser(enmime.DisableCharacterDetection(true), enmime.SetCustomParseMediaType(utf8ByDefault)).ReadEnvelope(bytes.NewReader(src))
	if err == nil && !(utf8.ValidString(env.Text) && utf8.ValidString(env.HTML)) {
		if mostlyUTF8(env.Text) && mostlyUTF8(env.HTML) {
			env.Text = strings.ToValidUTF8(env.Text, "\uFFFD")
			env.HTML = strings.ToValidUTF8(env.HTML, "\uFFFD")
			return env, nil
		}
		env, err = enmime.NewParser().ReadEnvelope(bytes.NewReader(src))
	}
	if err != nil {
		return nil, fmt.Errorf("mime: %w", err)
	}
	return env, nil
}

// mostlyUTF8 says whether s is UTF-8, perhaps with stray bytes: it has no
// more invalid bytes than valid multibyte characters. Text in a legacy
// 8-bit charset read as UTF-8 has almost no valid multibyte sequences (a
// Latin-1 letter is one byte above 0x7F, which UTF-8 never allows alone),
// so it fails and goes to detection; so does ASCII with one stray byte,
// which detection reads as well as anything.
func mostlyUTF8(s string) bool {
	valid, invalid := 0, 0
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			invalid++
		case n > 1:
			valid++
		}
		i += n
	}
	return invalid <= valid
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
