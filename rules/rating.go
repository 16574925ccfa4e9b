package rules

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// ratingLine is a reply to "how did we do?": a digit 1–5 first, optionally
// "/5", "out of 5", "stars" (or the same in the shipped languages), then
// the end of the line or a separator before a comment: "5", "4/5",
// "5 stars!", "3 - slow but fine", "4. Quick answer". A digit followed
// straight by a word ("1 more thing …") is not a rating.
var ratingLine = regexp.MustCompile(`(?i)^\s*\**([1-5])\**\s*(?:(?:/|out of|of|von|sur|de|van|em)\s*5\b)?\s*(?:stars?|sterne?|étoiles?|estrellas?|estrelas?|sterren)?\s*(?:$|[-–—:.,;!)(]+(?:\s+(.*))?$)`)

// ParseRating reads a customer's answer to the satisfaction question from
// the new text of their reply (quotes already stripped): the score 1–5
// from the first non-blank line, and what else they wrote as a comment.
// ok is false when the reply does not start with a rating.
func ParseRating(text string) (score int, comment string, ok bool) {
	if len(text) > maxAnswerScan {
		text = text[:maxAnswerScan]
	}
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, " ")
	}
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	for i, line := range lines {
		if strings.TrimSpace(line) == "" {
			continue
		}
		m := ratingLine.FindStringSubmatch(line)
		if m == nil {
			return 0, "", false
		}
		rest := append([]string{strings.TrimSpace(m[2])}, lines[i+1:]...)
		return int(m[1][0] - '0'), strings.TrimSpace(strings.Join(rest, "\n")), true
	}
	return 0, "", false
}
