package threading

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/tendhq/tend/mail/header"
)

// replyPrefixes are the reply and forward markers mail clients put in
// front of a subject, lowercased after NFKC folding. Sources: the
// localisations of Outlook, Thunderbird, Apple Mail, Gmail and the lists
// kept by mox (message/threadsubject.go) and Wikipedia's "List of email
// subject abbreviations".
var replyPrefixes = []string{
	// English and the Latin-script languages.
	"re", "fw", "fwd", "aw", "wg", "sv", "vs", "vl", "antw", "antwort", "doorst",
	"rif", "r", "i", "odp", "pd", "enc", "res", "tr", "rv", "ref", "ynt", "ilt",
	"i̇lt", "svar", "fs", "vb", "bls", "trs", "odg", "atb", "pārs", "ats", "vá",
	"továbbítás", "wtr", "rép",
	// CJK.
	"回复", "回覆", "答复", "答覆", "转发", "轉寄", "轉發", "返信", "転送", "회신", "전달",
	// Cyrillic, Greek, Hebrew, Arabic.
	"ответ", "отв", "пересл", "переслать", "απ", "σχετ", "πρθ", "השב", "הועבר", "رد", "إعادة توجيه",
}

// prefixRE matches one reply/forward marker at the start of a folded
// subject: the word, an optional count (Re[2], Re^3, Re(2)) and a colon,
// with the space some languages put before the colon ("Re :" in French).
// It is built from a fixed list at package level but never mutated.
var prefixRE = func() *regexp.Regexp {
	alts := make([]string, 0, len(replyPrefixes))
	for _, p := range replyPrefixes {
		alts = append(alts, regexp.QuoteMeta(p))
	}
	return regexp.MustCompile(`^(?:` + strings.Join(alts, "|") + `)\s*(?:\[\d{1,4}\]|\^\d{1,4}|\(\d{1,4}\))?\s*:\s*`)
}()

// bracketRE matches a leading list tag or helpdesk tag such as "[users]",
// "[Acme #123]" or "[EXTERNAL]".
var bracketRE = regexp.MustCompile(`^\[[^\[\]]{0,64}\]\s*`)

// ticketTagRE matches a ticket tag anywhere: "[#123]" or "[Anything #123]".
var ticketTagRE = regexp.MustCompile(`\[[^\[\]#]{0,40}#\s*\d{1,18}\s*\]`)

// fwdSuffixRE matches the old Pine/Alpine forward marker at the end.
var fwdSuffixRE = regexp.MustCompile(`\s*\((?:fwd|fw)\)\s*$`)

// NormalizeSubject returns the comparison key of a subject: RFC 2047
// decoded, NFKC folded (full-width letters and colons become ASCII),
// lowercased, without reply/forward prefixes in many languages (also
// counted forms like "Re[2]:", "Re^3:", "Re(2):"), without leading list
// tags and without ticket tags, with whitespace folded. It is a key, not
// something to show: it is idempotent, so the stored key of a ticket and
// the key of a reply compare equal however often either went through it.
func NormalizeSubject(s string) string {
	s = header.Decode(s)
	// Folding can expose new prefixes (a full-width "ＲＥ：" only becomes
	// "re:" after NFKC), so repeat until the key stops changing; two
	// rounds settle every input seen in fuzzing.
	for range 4 {
		n := normalizeOnce(s)
		if n == s {
			break
		}
		s = n
	}
	return s
}

func normalizeOnce(s string) string {
	s = norm.NFKC.String(strings.ToLower(norm.NFKC.String(s)))
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError
	}), " ")
	s = ticketTagRE.ReplaceAllString(s, " ")
	for {
		s = strings.TrimSpace(s)
		if m := prefixRE.FindStringIndex(s); m != nil {
			s = s[m[1]:]
			continue
		}
		if m := bracketRE.FindStringIndex(s); m != nil && m[1] < len(s) {
			s = s[m[1]:]
			continue
		}
		break
	}
	s = fwdSuffixRE.ReplaceAllString(s, "")
	s = strings.Join(strings.Fields(s), " ")
	// An encoded word left in the key would be decoded on the next pass
	// and break idempotency; it is only a key, so defuse it.
	return strings.ReplaceAll(s, "=?", "= ?")
}

// genericSubjects are subjects too common to identify a conversation: two
// mails from one person both titled "help" are not evidence of anything.
var genericSubjects = map[string]bool{
	"": true, "help": true, "help!": true, "question": true, "questions": true, "(no subject)": true,
	"no subject": true, "hi": true, "hello": true, "hey": true, "support": true, "problem": true,
	"issue": true, "request": true, "urgent": true, "test": true, "inquiry": true, "enquiry": true,
	"info": true, "information": true, "thanks": true, "thank you": true, "contact": true,
	"feedback": true, "untitled": true, "(kein betreff)": true, "kein betreff": true,
	"sans objet": true, "(sans objet)": true, "sin asunto": true, "hilfe": true, "frage": true,
	"aide": true, "ayuda": true, "无主题": true, "件名なし": true, "без темы": true,
}

// IsGenericSubject reports whether a normalized subject is too short or
// too common to group mail by subject alone.
func IsGenericSubject(normalized string) bool {
	return genericSubjects[normalized] || utf8.RuneCountInString(normalized) < 4
}

// SubjectTag finds a ticket tag in a subject: "[#123]" always, and
// "[<prefix> #123]" (case-insensitive) when prefix is set. It returns the
// first tag, which is the outermost one in "Re: [Acme #12] Fwd: [Acme #5]".
func SubjectTag(s string, prefix string) (int64, bool) {
	s = header.Decode(s)
	for len(s) > 0 {
		i := strings.IndexByte(s, '[')
		if i < 0 {
			return 0, false
		}
		s = s[i+1:]
		j := strings.IndexByte(s, ']')
		if j < 0 {
			return 0, false
		}
		if n, ok := parseTag(s[:j], prefix); ok {
			return n, true
		}
	}
	return 0, false
}

// parseTag parses the inside of one bracket pair.
func parseTag(in, prefix string) (int64, bool) {
	head, num, ok := strings.Cut(in, "#")
	if !ok {
		return 0, false
	}
	head = strings.TrimSpace(head)
	if head != "" && (prefix == "" || !strings.EqualFold(head, strings.TrimSpace(prefix))) {
		return 0, false
	}
	return parseID(strings.TrimSpace(num))
}

// TagSubject returns subject with our ticket tag "[<prefix> #<ticket>]"
// (or "[#<ticket>]" without a prefix) in front, unless that tag is
// already there. Other tags are left alone.
func TagSubject(subject string, ticket int64, prefix string) string {
	subject = header.Decode(subject)
	if n, ok := SubjectTag(subject, prefix); ok && n == ticket {
		return subject
	}
	tag := "[#" + strconv.FormatInt(ticket, 10) + "]"
	if p := strings.TrimSpace(prefix); p != "" {
		tag = "[" + p + " #" + strconv.FormatInt(ticket, 10) + "]"
	}
	if strings.TrimSpace(subject) == "" {
		return tag
	}
	return tag + " " + strings.TrimSpace(subject)
}
