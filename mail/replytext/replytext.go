// Package replytext extracts what the sender newly wrote from a reply:
// it strips the quoted chain, attribution lines ("On … wrote:" in several
// languages), Outlook original-message blocks and signatures, and keeps
// interleaved answers.
//
// Why our own code: the Go ports of GitHub's email_reply_parser
// (recapco/emailreplyparser, ThomsonReutersEikon/mailstrip) have been
// unmaintained since 2015–2016 and know only English; web-ridge's parser
// describes itself as used at small scale and is not served by our module
// proxy, and neither is Forgejo's port of Discourse's email_reply_trimmer
// (code.forgejo.org/forgejo/reply), the best candidate, which also handles
// plain text only. Talon, the reference, is Python. The rules here follow
// talon's and email_reply_trimmer's published heuristics and are tested
// on talon's own reply fixtures.
//
// Forwards are kept on purpose: a "---------- Forwarded message ---------"
// (Gmail), "Begin forwarded message:" (Apple Mail) or "-------- Forwarded
// Message --------" (Thunderbird) block is content the sender chose to
// send, not history they happened to quote, so everything from the marker
// on is returned as written.
package replytext

import (
	"regexp"
	"strings"
)

// Line-level patterns. Each is matched against one trimmed line (or up to
// three joined lines for attributions that clients wrap).
var (
	// openerAttribution: "On … wrote:" and its translations, as Gmail,
	// Apple Mail, Thunderbird and mobile clients write them.
	openerAttribution = regexp.MustCompile(`(?i)^(?:-+\s*)?(?:` +
		`on\s.{1,250}\bwrote\s?:` + // English
		`|am\s.{1,250}\bschrieb\b.{0,250}:` + // German (Gmail, Apple, Thunderbird)
		`|le\s.{1,250}\sa\s+écrit\s?:` + // French
		`|el\s.{1,250}\sescribió\s?:` + // Spanish
		`|em\s.{1,250}\sescreveu\s?:` + // Portuguese
		`|op\s.{1,250}\b(?:schreef|geschreven)\b.{0,250}:` + // Dutch
		`|il\s.{1,250}\sha\s+scritto\s?:` + // Italian
		`)$`)
	// verbAttribution: attributions that do not start with a fixed word,
	// e.g. Outlook web's "Bob <b@x> schrieb am Mo., 2. Apr.:", Android's
	// "02.04.2012 14:20 пользователь … написал:".
	verbAttribution = regexp.MustCompile(`(?i)(?:\bwrote|\bschrieb\b.{0,120}|a\s+écrit|escribió|escreveu|\bschreef\b.{0,120}|ha\s+scritto|написала?|napisał[a]?|skrev|kirjoitti)\s?:$`)
	// dateAndAddress: the generic attribution shape used by clients in
	// languages we do not list (e.g. Japanese Gmail: "2012年4月2日(月) 14:20
	// Bob <b@x>:"); only trusted when quoted lines follow.
	dateAndAddress = regexp.MustCompile(`\d.*@.*:$`)

	// separator: original-message separators; everything below is history.
	separator = regexp.MustCompile(`(?i)^-{2,}\s*(?:original message|ursprüngliche nachricht|message d'origine|mensaje original|mensagem original|oorspronkelijk bericht|messaggio originale|originalmeddelande|исходное сообщение)\s*-{2,}$`)

	// forward markers; see the package comment.
	forward = regexp.MustCompile(`(?i)^(?:-{2,}\s*(?:forwarded message|weitergeleitete nachricht|message transféré|mensaje reenviado|mensagem encaminhada|doorgestuurd bericht|messaggio inoltrato)\s*-{2,}|begin forwarded message:|anfang der weitergeleiteten nachricht:|début du message réexpédié :)$`)

	// headerFrom/headerSent: an Outlook-style block of the original's
	// header fields, localized ("Von:", "De :", "Gesendet:", "Envoyé :"),
	// sometimes bolded with asterisks in the plain-text part.
	headerFrom = regexp.MustCompile(`(?i)^\*?(?:from|von|de|van|da|från|fra|od|от|差出人)\s?:\*?\s*\S`)
	headerNext = regexp.MustCompile(`(?i)^\*?(?:sent|gesendet|envoyé|enviado|enviada|verzonden|inviato|skickat|sendt|wysłano|отправлено|送信日時|date|datum|fecha|data|to|an|à|para|aan|a|till|til|до|宛先|subject|betreff|objet|asunto|assunto|onderwerp|oggetto|ämne|emne|temat|тема|件名)\s?:`)

	// rule: a line of underscores or dashes that Outlook puts above the
	// header block.
	rule = regexp.MustCompile(`^(?:_{8,}|-{8,})$`)

	// mobile: one-line client signatures.
	mobile = regexp.MustCompile(`(?i)^(?:sent from my \S.{0,60}|sent from (?:outlook|mail|yahoo mail|samsung|my samsung)\b.{0,60}|get outlook for (?:ios|android).{0,20}|von meinem \S.{0,40} gesendet\.?|gesendet von meinem \S.{0,40}|envoyé de mon \S.{0,40}|enviado desde mi \S.{0,40}|enviado do meu \S.{0,40}|verstuurd vanaf mijn \S.{0,40}|inviato da(?:l mio)? \S.{0,40}|sent with sparrow.{0,60})$`)
)

// kind of a line after classification.
type kind int

const (
	kText kind = iota
	kBlank
	kQuote
	kAttribution
)

// Extract returns what the sender newly wrote in a plain-text reply:
// quoted lines and their attribution, Outlook-style original-message
// blocks, "-- " signatures and one-line mobile signatures are removed.
// Interleaved replies keep the quoted lines that precede each answer, so
// the answers still make sense; leading and trailing quotes are dropped.
// The result has no leading or trailing blank lines and no trailing
// spaces; it is empty when nothing new was written.
func Extract(text string) string {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")
	lines := strings.Split(text, "\n")

	kinds := make([]kind, len(lines))
	end := len(lines) // everything from end on is dropped
	keepFrom := -1    // a forward: everything from here on is kept as is
	for i := 0; i < end; i++ {
		raw := lines[i]
		l := strings.TrimSpace(raw)
		switch {
		case l == "":
			kinds[i] = kBlank
		case strings.HasPrefix(l, ">"):
			kinds[i] = kQuote
		case forward.MatchString(l):
			keepFrom = i
			end = i
		case separator.MatchString(l), isSigDelimiter(raw), isOutlookBlock(lines, i):
			end = i
		default:
			if n := attribution(lines, kinds, i); n > 0 {
				for j := i - n + 1; j <= i; j++ {
					kinds[j] = kAttribution
				}
				if !quoteFollows(lines, i+1) {
					// Unquoted history below the attribution (Outlook
					// style top posting): all of it goes.
					end = i - n + 1
				}
				continue
			}
			if mobile.MatchString(l) {
				kinds[i] = kBlank
				continue
			}
			kinds[i] = kText
		}
	}
	// Drop separator rules and blank lines just above the cut.
	for end > 0 && (kinds[end-1] == kBlank || rule.MatchString(strings.TrimSpace(lines[end-1]))) {
		end--
	}
	out := keepSegments(lines[:end], kinds[:end])
	if keepFrom >= 0 {
		out = append(out, "")
		out = append(out, lines[keepFrom:]...)
	}
	return tidy(out)
}

// isSigDelimiter recognises the RFC 3676 section 4.3 signature separator
// "-- ", and "--" without the space, since many clients trim it.
func isSigDelimiter(raw string) bool {
	return raw == "-- " || raw == "--"
}

// isOutlookBlock reports a "From: …" line followed within three lines by
// another header field of the original (Sent:, Date:, To:, Subject:).
func isOutlookBlock(lines []string, i int) bool {
	if !headerFrom.MatchString(strings.TrimSpace(lines[i])) {
		return false
	}
	for j := i + 1; j < len(lines) && j <= i+3; j++ {
		if headerNext.MatchString(strings.TrimSpace(lines[j])) {
			return true
		}
	}
	return false
}

// attribution reports whether line i ends an attribution and how many
// lines (1 to 3) it spans; clients wrap long ones ("On Mon, Apr 2, 2012
// at 6:26 PM, Megan One <\nxxx@gmail.com> wrote:").
func attribution(lines []string, kinds []kind, i int) int {
	l := strings.TrimSpace(lines[i])
	if !strings.HasSuffix(l, ":") {
		return 0
	}
	joined := l
	for n := 1; n <= 3; n++ {
		if n > 1 {
			j := i - n + 1
			if j < 0 || kinds[j] != kText {
				break
			}
			joined = strings.TrimSpace(lines[j]) + " " + joined
		}
		if openerAttribution.MatchString(joined) {
			return n
		}
		if n == 1 && (verbAttribution.MatchString(joined) || dateAndAddress.MatchString(joined)) && quoteFollows(lines, i+1) {
			// Without a known opener, only the quote below makes it
			// an attribution; see how far up it started.
			for m := 2; m <= 3; m++ {
				j := i - m + 1
				if j < 0 || kinds[j] != kText || !looksLikeAttributionStart(lines[j]) {
					return m - 1
				}
			}
			return 3
		}
	}
	return 0
}

var attributionStart = regexp.MustCompile(`^\s*(?:\d|[A-Za-z]{2,3}\b.*\d)`)

// looksLikeAttributionStart accepts a wrapped attribution's first line:
// it begins with a date ("02.04.2012 14:20 …") or a weekday/month word
// followed by digits, and does not end a sentence.
func looksLikeAttributionStart(l string) bool {
	t := strings.TrimSpace(l)
	return attributionStart.MatchString(t) && !strings.HasSuffix(t, ".") && !strings.HasSuffix(t, "!") && !strings.HasSuffix(t, "?")
}

// quoteFollows reports whether the next non-blank line from i is quoted.
func quoteFollows(lines []string, i int) bool {
	for ; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if l == "" {
			continue
		}
		return strings.HasPrefix(l, ">")
	}
	return false
}

// keepSegments drops attribution lines and quoted blocks that are not
// followed by new text. When new text comes in two or more pieces with
// quotes between them (an interleaved reply), the quotes before each
// answer are kept as the answers' context.
func keepSegments(lines []string, kinds []kind) []string {
	lastText := -1
	textRuns := 0
	inText := false
	sawQuoteAfterText := false
	interleaved := false
	for i, k := range kinds {
		switch k {
		case kText:
			lastText = i
			if !inText {
				textRuns++
				if sawQuoteAfterText {
					interleaved = true
				}
			}
			inText = true
		case kQuote, kAttribution:
			if textRuns > 0 {
				sawQuoteAfterText = true
			}
			inText = false
		}
	}
	// A quote first, then one or more answers separated by quotes, is
	// interleaved too ("> question\nanswer\n> question\nanswer").
	if !interleaved && textRuns >= 2 {
		interleaved = sawQuoteAfterText
	}
	var out []string
	for i, l := range lines {
		switch kinds[i] {
		case kAttribution:
			continue
		case kQuote:
			if !interleaved || i > lastText {
				continue
			}
		case kBlank:
			if strings.TrimSpace(l) != "" {
				continue // a mobile signature line
			}
		}
		out = append(out, l)
	}
	return out
}

// tidy removes trailing spaces, runs of more than one blank line and
// leading and trailing blank lines.
func tidy(lines []string) string {
	var b strings.Builder
	blank := 0
	started := false
	for _, l := range lines {
		l = strings.TrimRight(l, " \t\u00a0")
		if l == "" {
			if started {
				blank++
			}
			continue
		}
		if started {
			b.WriteString("\n")
			if blank > 0 {
				b.WriteString("\n")
			}
		}
		blank = 0
		started = true
		b.WriteString(l)
	}
	return b.String()
}
