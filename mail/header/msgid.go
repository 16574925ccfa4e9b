package header

import (
	"strings"
	"unicode/utf8"
)

// MaxIDLen bounds a msg-id used for threading. RFC 5322 sets no limit of
// its own (a line is at most 998 octets, section 2.1.1); real ids are
// under 100 octets (the longest of the shared corpus has 95), and an id
// of hundreds of octets is junk a broken client made, not a reference.
const MaxIDLen = 250

// maxStoredIDLen bounds the Message-ID kept for storage: a line of 998
// octets (RFC 5322 section 2.1.1) less the field name and brackets.
const maxStoredIDLen = 900

// IDs returns the msg-ids (RFC 5322 section 3.6.4) in a Message-ID,
// In-Reply-To or References value, without brackets, in order, duplicates
// removed, each one ValidID: what threading may match on. It is lax about
// what real clients send around the ids (missing brackets, comments,
// folding, junk between ids, commas) and strict about what it returns.
func IDs(v string) []string {
	var out []string
	seen := map[string]bool{}
	scanIDs(v, func(id string) {
		if ValidID(id) && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	})
	return out
}

// StoredID returns the message's own id from a Message-ID value, as it
// is kept for storage and deduplication: the first id in it without
// brackets, held to a laxer rule than IDs (RFC 6532 UTF-8 and the
// specials some MTAs put in ids are kept), or "" when there is none. An
// id that is not ValidID is stored but never matched by threading.
func StoredID(v string) string {
	id := ""
	scanIDs(v, func(s string) {
		if id == "" && storableID(s) {
			id = s
		}
	})
	return id
}

// scanIDs calls fn with every candidate id of v: the insides of <...>
// when v has a "<", else its whitespace-separated tokens (some clients
// omit the brackets).
func scanIDs(v string, fn func(string)) {
	if !strings.Contains(v, "<") {
		for _, f := range strings.Fields(v) {
			fn(f)
		}
		return
	}
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			return
		}
		v = v[i+1:]
		j := strings.IndexByte(v, '>')
		if j < 0 {
			return
		}
		fn(strings.TrimSpace(v[:j]))
		v = v[j+1:]
	}
}

// ValidID reports whether id (without brackets) is usable for threading:
// the id-left "@" id-right of RFC 5322 section 3.6.4, that is printable
// US-ASCII without spaces, brackets, parentheses or commas, one "@"
// (unless the left side is quoted) with something on both sides, at most
// MaxIDLen octets. Threading on an empty or junk id once pulled all new
// mail of a peer helpdesk into one conversation.
func ValidID(id string) bool {
	if len(id) < 3 || len(id) > MaxIDLen {
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

// storableID is the rule of StoredID: an "@" with something on both
// sides, valid UTF-8 without whitespace, brackets or NUL, at most
// maxStoredIDLen octets.
func storableID(s string) bool {
	if len(s) < 3 || len(s) > maxStoredIDLen || strings.ContainsAny(s, " \t\r\n<>\x00") || !utf8.ValidString(s) {
		return false
	}
	at := strings.LastIndexByte(s, '@')
	return at > 0 && at < len(s)-1
}
