package compose

import (
	"encoding/base64"
	"strings"
	"unicode/utf8"
)

// maxWord bounds one RFC 2047 encoded-word so that, after a field name of
// up to ~14 characters, every header line stays within the 76 characters
// RFC 2047 section 2 asks for. mime.WordEncoder alone only limits a word to
// 75 characters, which overflows the first line once "Subject: " is added,
// and go-message then cannot fold it; hence this small chunking layer.
const maxWord = 60

// longToken is the longest run of non-space ASCII we leave unencoded: a
// longer one could not be folded and go-message would split it, changing
// the value.
const longToken = 70

// encodeText encodes an unstructured value (Subject, Thread-Topic, ...) as
// RFC 2047 words only when it has to: non-ASCII, control characters, text
// that would itself look like an encoded word, or an unfoldable token.
func encodeText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if !needsEncoding(s) {
		return s
	}
	// B is shorter for CJK, Cyrillic and emoji; Q stays readable for
	// mostly-Latin text.
	return encodeWords(s, nonASCIIShare(s) > 0.3)
}

// encodePhrase encodes a display name. B encoding is used because a
// Q-encoded word in a phrase may only contain a restricted set of
// characters (RFC 2047 section 5 rule 3) that mime.QEncoding does not
// respect (it leaves commas and quotes alone, which would split the
// address list); base64 has none of those. ASCII names are quoted by
// net/mail's rules.
func encodePhrase(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if !needsEncoding(s) {
		return quotePhrase(s)
	}
	return encodeWords(s, true)
}

// quotePhrase renders an ASCII display name as a quoted-string (RFC 5322
// section 3.2.4), escaping backslash and double quote.
func quotePhrase(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

func needsEncoding(s string) bool {
	if strings.Contains(s, "=?") {
		return true
	}
	run := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < ' ' && c != '\t') || c > '~' {
			return true
		}
		if c == ' ' || c == '\t' {
			run = 0
			continue
		}
		run++
		if run > longToken {
			return true
		}
	}
	// Leading or trailing blanks are lost on unfolding; encoding keeps them.
	return strings.TrimSpace(s) != s
}

func nonASCIIShare(s string) float64 {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] > '~' {
			n++
		}
	}
	return float64(n) / float64(len(s))
}

// encodeWords splits s into encoded words of at most maxWord characters,
// never inside a UTF-8 sequence (RFC 2047 section 5 requires each word to
// hold whole characters), separated by spaces, which decoders drop between
// adjacent encoded words (section 6.2). Each chunk is encoded here rather
// than with mime.WordEncoder because that leaves an all-ASCII chunk raw,
// and the separating space would then become part of the decoded text.
func encodeWords(s string, b bool) string {
	const overhead = len("=?utf-8?q??=")
	var words []string
	start, qlen := 0, 0
	for i := range s {
		// The rune's width in s, not utf8.RuneLen: a genuine U+FFFD (which
		// ingest stores for invalid bytes) is three bytes, an invalid byte
		// one.
		_, n := utf8.DecodeRuneInString(s[i:])
		rq := qCost(s[i : i+n])
		size := overhead + qlen + rq
		if b {
			size = overhead + (i-start+n+2)/3*4
		}
		if i > start && size > maxWord {
			words = append(words, encodeWord(s[start:i], b))
			start, qlen = i, 0
		}
		qlen += rq
	}
	if start < len(s) {
		words = append(words, encodeWord(s[start:], b))
	}
	return strings.Join(words, " ")
}

func encodeWord(s string, b bool) string {
	if b {
		return "=?utf-8?b?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?="
	}
	var sb strings.Builder
	sb.WriteString("=?utf-8?q?")
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ':
			sb.WriteByte('_')
		case qSafe(c):
			sb.WriteByte(c)
		default:
			sb.WriteByte('=')
			sb.WriteByte(upperhex[c>>4])
			sb.WriteByte(upperhex[c&0x0f])
		}
	}
	sb.WriteString("?=")
	return sb.String()
}

const upperhex = "0123456789ABCDEF"

// qSafe reports the bytes a Q-encoded word in unstructured text may carry
// literally (RFC 2047 section 4.2).
func qSafe(c byte) bool {
	return c > ' ' && c <= '~' && c != '=' && c != '?' && c != '_'
}

func qCost(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if qSafe(s[i]) || s[i] == ' ' {
			n++
		} else {
			n += 3
		}
	}
	return n
}
