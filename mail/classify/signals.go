package classify

import "strings"

// ReversePath is the best stand-in for the SMTP reverse-path of mail that did
// not arrive over SMTP (IMAP, mbox import): the Return-Path the final delivery
// stamped (RFC 5321 section 4.4), else the From address. It returns "<>" for
// a null Return-Path, which Classify treats as the null reverse-path.
func ReversePath(h Header) string {
	if rp := strings.TrimSpace(h.Get("Return-Path")); rp != "" {
		if isNullPath(rp) {
			return "<>"
		}
		return rp
	}
	return h.Get("From")
}

// isNullPath reports whether a reverse-path is the null path "<>".
func isNullPath(s string) bool {
	s = strings.TrimSpace(s)
	return s == "" || s == "<>" || s == "< >"
}

// addressOf extracts the lowercased addr-spec from an address field value
// ("Name <a@b>", "a@b (Name)", "<a@b>", "a@b"). It is hand-written rather
// than net/mail because it runs on every message before the 250 and only the
// address is needed, and because net/mail rejects many From lines real
// clients send (unquoted dots and commas in display names, 8-bit names).
func addressOf(v string) string {
	if i := strings.LastIndexByte(v, '<'); i >= 0 {
		rest := v[i+1:]
		if j := strings.IndexByte(rest, '>'); j >= 0 {
			return strings.ToLower(strings.TrimSpace(rest[:j]))
		}
		return strings.ToLower(strings.TrimSpace(rest))
	}
	for _, f := range strings.Fields(v) {
		if strings.Contains(f, "@") {
			return strings.ToLower(strings.Trim(f, `"'(),;`))
		}
	}
	return ""
}

// localPart returns what precedes the last @ of an address.
func localPart(a string) string {
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		return a[:i]
	}
	return a
}

// domainOf returns what follows the last @ of an address, or "".
func domainOf(a string) string {
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		return a[i+1:]
	}
	return ""
}

// isDaemon reports mailer-daemon local parts, including Exchange Online's
// system mailbox that signs its non-delivery reports.
func isDaemon(local string) bool {
	switch local {
	case "mailer-daemon", "mailer_daemon", "mailerdaemon", "mail-daemon", "maildaemon":
		return true
	}
	return strings.HasPrefix(local, "microsoftexchange")
}

// isPostmaster reports the postmaster mailbox (RFC 5321 section 4.5.1) and
// the spellings some gateways use for it.
func isPostmaster(local string) bool {
	switch local {
	case "postmaster", "post_master", "post-master":
		return true
	}
	return false
}

// isListManager reports list-manager local parts: listname-request (RFC
// 2142 section 6), owner-listname and listname-owner, listname-bounces
// (Mailman's envelope sender).
func isListManager(local string) bool {
	return strings.HasSuffix(local, "-request") || strings.HasPrefix(local, "owner-") ||
		strings.HasSuffix(local, "-owner") || strings.HasSuffix(local, "-bounces") ||
		strings.Contains(local, "-bounces+")
}

// isNoReply reports local parts that say nobody reads replies.
func isNoReply(local string) bool {
	// Drop separators without allocating: this runs on every message.
	var buf [64]byte
	b := buf[:0]
	for i := 0; i < len(local) && len(b) < len(buf); i++ {
		if c := local[i]; c != '-' && c != '_' && c != '.' {
			b = append(b, c)
		}
	}
	l := string(b)
	return strings.Contains(l, "noreply") || strings.Contains(l, "donotreply") || strings.Contains(l, "dontreply")
}

// splitMediaType returns the lowercased media type and its parameters. It is
// hand-written because mime.ParseMediaType fails on the whole value at the
// first bad parameter, and the report-type of a broken DSN header still
// matters.
func splitMediaType(v string) (string, map[string]string) {
	parts := strings.Split(v, ";")
	media := strings.ToLower(strings.TrimSpace(parts[0]))
	var params map[string]string
	for _, p := range parts[1:] {
		k, val, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		if params == nil {
			params = make(map[string]string, len(parts)-1)
		}
		params[strings.ToLower(strings.TrimSpace(k))] = strings.ToLower(strings.Trim(strings.TrimSpace(val), `"'`))
	}
	return media, params
}

// The tables below are read-only lookup data, never written after
// compilation; they are not state.

// replyPrefixes mark a subject as a person's reply or forward: a human
// writing "Re: Out of office" is not an auto-responder.
var replyPrefixes = [...]string{"re:", "re :", "aw:", "sv:", "fw:", "fwd:", "wg:", "tr:", "rv:", "r:", "antw:", "odp:", "vs:", "ynt:"}

// matchSubject returns the phrase of list that the lowercased subject
// contains, or "". A phrase counts at the start of the subject, or anywhere
// when the subject is not a reply or forward.
func matchSubject(lower string, list []string) string {
	reply := false
	for _, p := range replyPrefixes {
		if strings.HasPrefix(lower, p) {
			reply = true
			break
		}
	}
	for _, phrase := range list {
		if strings.HasPrefix(lower, phrase) || (!reply && strings.Contains(lower, phrase)) {
			return phrase
		}
	}
	return ""
}

// failureSubjects are phrases of bounce subjects as MTAs write them
// (Postfix, Exim, Sendmail, qmail, Exchange, Gmail, Domino, and a few
// translations).
var failureSubjects = [...]string{
	"undelivered mail returned to sender",
	"undeliverable",
	"undelivered mail",
	"mail delivery failed",
	"delivery status notification",
	"returned mail:",
	"returned mail",
	"failure notice",
	"delivery failure",
	"delivery has failed",
	"delivery failed",
	"failed delivery",
	"mail system error",
	"mail delivery problem",
	"mail could not be delivered",
	"message could not be delivered",
	"could not be delivered",
	"non delivery report",
	"non-delivery",
	"nondeliverable",
	"delivery notification",
	"delivery report",
	"delivery status",
	"email delivery error",
	"delayed mail",
	"postmaster notify",
	"warning: could not send message",
	"message delayed",
	"delivery delayed",
	"warning: message",
	"bounce notification",
	"unzustellbar",
	"nicht zustellbar",
	"non remis",
	"non recapitabile",
	"no se puede entregar",
	"não foi possível entregar",
	"onbestelbaar",
}

// autoReplySubjects are phrases of out-of-office and auto-reply subjects in
// the languages support inboxes meet most.
var autoReplySubjects = [...]string{
	"out of office",
	"out of the office",
	"automatic reply",
	"auto reply",
	"auto-reply",
	"autoreply",
	"auto:",
	"auto response",
	"auto-response",
	"autoresponse",
	"vacation reply",
	"away from my mail",
	"abwesenheitsnotiz",
	"automatische antwort",
	"abwesend",
	"réponse automatique",
	"reponse automatique",
	"absence du bureau",
	"respuesta automática",
	"respuesta automatica",
	"fuera de la oficina",
	"risposta automatica",
	"fuori ufficio",
	"resposta automática",
	"automatisch antwoord",
	"afwezigheidsbericht",
	"autosvar",
	"automaattinen vastaus",
	"automatyczna odpowiedź",
	"odpowiedź automatyczna",
}
