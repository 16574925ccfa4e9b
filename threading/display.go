package threading

import (
	"strings"

	"github.com/tendhq/tend/mail/header"
)

// DisplaySubject is a ticket's subject as we show it in our own mail: RFC
// 2047 decoded, without the reply and forward prefixes ("Re: Fwd: AW:")
// and without our ticket tags, which TagSubject puts back once, for this
// ticket. A stranger answering "Re: [#1] Printer" opens ticket #2, whose
// mail must read "[#2] Re: Printer", not "[#2] Re: Re: [#1] Printer [#2]".
// Case and everything else are kept: it is for people, unlike
// NormalizeSubject's key.
func DisplaySubject(subject, prefix string) string {
	s := strings.Join(strings.Fields(header.Decode(subject)), " ")
	for range 16 { // bounded: each round removes something or stops
		s = strings.TrimSpace(s)
		if m := prefixRE.FindStringIndex(strings.ToLower(s)); m != nil && len(strings.ToLower(s)) == len(s) {
			s = s[m[1]:]
			continue
		}
		if i, j, ok := leadingTag(s, prefix); ok && i == 0 {
			s = s[j:]
			continue
		}
		break
	}
	// Our tags elsewhere ("Printer [#1]") go too.
	for range 16 {
		i, j, ok := leadingTag(s, prefix)
		if !ok {
			break
		}
		s = strings.TrimSpace(strings.Join(strings.Fields(s[:i]+" "+s[j:]), " "))
	}
	return s
}

// leadingTag finds the first of our ticket tags in s and returns its byte
// span.
func leadingTag(s, prefix string) (int, int, bool) {
	for off := 0; off < len(s); {
		i := strings.IndexByte(s[off:], '[')
		if i < 0 {
			return 0, 0, false
		}
		i += off
		j := strings.IndexByte(s[i:], ']')
		if j < 0 {
			return 0, 0, false
		}
		j += i
		if _, ok := parseTag(s[i+1:j], prefix); ok {
			return i, j + 1, true
		}
		off = i + 1
	}
	return 0, 0, false
}
