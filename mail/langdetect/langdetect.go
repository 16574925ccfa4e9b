// Package langdetect tells which of tend's shipped languages a customer
// wrote in, so that what tend sends them is in their language.
//
// It uses github.com/abadojack/whatlanggo (trigram profiles compiled into
// the binary, about 2 MB, a few MB of memory) restricted to the shipped
// languages. github.com/pemistahl/lingua-go is more accurate on short
// text, but it embeds the models of all its 75 languages whatever the
// detector is restricted to: measured with only the six loaded, it added
// 132 MB to the binary and held 112 MiB of heap (223 MB resident) after a
// few detections, too much for a support inbox shipped as one small
// static binary. A short or ambiguous text gives no answer, and the caller
// falls back to the inbox's language.
package langdetect

import (
	"strings"
	"unicode"

	"github.com/abadojack/whatlanggo"
)

// byCode are the shipped languages (rules.Languages) in whatlanggo's terms.
var byCode = map[string]whatlanggo.Lang{
	"en": whatlanggo.Eng, "de": whatlanggo.Deu, "fr": whatlanggo.Fra,
	"es": whatlanggo.Spa, "pt": whatlanggo.Por, "nl": whatlanggo.Nld,
}

// minLetters is the shortest text worth a guess: "Hi", "Danke!" or a
// bare order number say nothing about a language.
const minLetters = 12

// minConfidence is whatlanggo's confidence below which the guess is not
// used. Its own "reliable" threshold (0.8) rejects many real first
// messages of one sentence; below 0.5 its trigram guesses on short text
// are often wrong ("My export has been stuck since yesterday." scores
// German at 0.2), and the inbox's language is the better answer.
const minConfidence = 0.5

// maxScan bounds the work: a trigram detector has settled on a language
// long before 2 KiB (a few hundred words), and the cost grows with the
// text, which on a long first message was 8% of all the CPU spent on it
// after the 250 when this was 8 KiB.
const maxScan = 2 << 10

// Detector detects among a fixed set of languages.
type Detector struct {
	opts whatlanggo.Options
}

// New returns a Detector for the given ISO 639-1 codes; codes it does not
// know are ignored.
func New(codes []string) *Detector {
	d := &Detector{opts: whatlanggo.Options{Whitelist: map[whatlanggo.Lang]bool{}}}
	for _, c := range codes {
		if l, ok := byCode[c]; ok {
			d.opts.Whitelist[l] = true
		}
	}
	return d
}

// Detect returns the ISO 639-1 code of the language text is written in,
// or "" when the text is too short or the guess too weak.
func (d *Detector) Detect(text string) string {
	if len(text) > maxScan {
		text = text[:maxScan]
	}
	text = strings.ToValidUTF8(text, " ")
	letters := 0
	for _, r := range text {
		if unicode.IsLetter(r) {
			letters++
		}
	}
	if letters < minLetters || len(d.opts.Whitelist) == 0 {
		return ""
	}
	info := whatlanggo.DetectWithOptions(text, d.opts)
	if info.Confidence < minConfidence || !d.opts.Whitelist[info.Lang] {
		return ""
	}
	return info.Lang.Iso6391()
}
