package classify

import (
	"net/textproto"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tendhq/tend/mail/header"
	"github.com/tendhq/tend/vocab"
)

// Text bounces predate RFC 3464 and are still sent by qmail, Exim (as plain
// text), old Sendmail, Domino and Exchange 5.5. No maintained Go library reads
// them, so the heuristics live here, modelled on the phrases these MTAs
// actually write (see testdata/*.eml and the corpus test).

// bounceMarkers are phrases from the explanation of text bounces.
var bounceMarkers = [...]string{
	"this is the qmail-send program",
	"created automatically by mail delivery software",
	"could not be delivered to one or more",
	"i'm sorry to have to inform you that your message could not",
	"following addresses had permanent fatal errors",
	"following addresses had transient non-fatal errors",
	"delivery to the following recipient failed permanently",
	"delivery to the following recipients failed",
	"did not reach the following recipient",
	"your message did not reach some or all of the intended recipients",
	"delivery has failed to these recipients",
	"could not be delivered",
	"was not delivered to",
	"undeliverable",
	"transcript of session follows",
	"permanent error",
	"has not yet been delivered",
	"message could not be delivered",
}

// originalMarkers start the returned copy of the original message.
var originalMarkers = [...]string{
	"below this line is a copy of the message",
	"this is a copy of the message",
	"original message follows",
	"----- original message",
	"------ original message",
	"original message headers",
	"header of the original message",
	"returned message follows",
	"unsent message below",
	"message headers follow",
	"included is a copy of the message",
}

// looksLikeTextBounce reports a bounce that lacks an RFC 3464 part: the
// header classifies it as a bounce, or the text uses a mailer's phrasing.
func looksLikeTextBounce(top textproto.MIMEHeader, text string) bool {
	if r := Classify(top, ReversePath(top), Own{}); r.Class == vocab.ClassBounce {
		return true
	}
	l := strings.ToLower(clip(text, 16<<10))
	for _, m := range bounceMarkers {
		if strings.Contains(l, m) {
			return isDaemon(localPart(addressOf(top.Get("From")))) ||
				isPostmaster(localPart(addressOf(top.Get("From")))) ||
				isNullPath(ReversePath(top)) || matchSubject(strings.ToLower(header.Decode(top.Get("Subject"))), failureSubjects[:]) != ""
		}
	}
	return false
}

// lowerInPlace lowers text's letters where that keeps each one's byte
// length, and leaves every other byte where it was, so that an offset
// found in the result is the same offset in text. strings.ToLower does
// not keep offsets: invalid UTF-8 becomes U+FFFD (three bytes for one)
// and some letters change length (İ), and a bounce sliced at an offset
// found in its lowered copy panicked (FuzzParseDSN).
func lowerInPlace(text string) string {
	b := []byte(text)
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			i++
			continue
		}
		if l := unicode.ToLower(r); l != r && utf8.RuneLen(l) == n {
			utf8.EncodeRune(b[i:], l)
		}
		i += n
	}
	return string(b)
}

// explanationPart cuts text where the copy of the original message starts.
func explanationPart(text string) (string, string) {
	l := lowerInPlace(text)
	cut := -1
	for _, m := range originalMarkers {
		if i := strings.Index(l, m); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut < 0 {
		return text, ""
	}
	// Start the copy on the line after the marker.
	rest := text[cut:]
	if nl := strings.IndexByte(rest, '\n'); nl >= 0 {
		return text[:cut], rest[nl+1:]
	}
	return text[:cut], ""
}

// leadAddrRE matches a line that starts with an address, bare or in angle
// brackets, as qmail, Postfix, Sendmail, Exim, Exchange and Gmail list the
// failed recipients.
var leadAddrRE = regexp.MustCompile(`^<?([A-Za-z0-9.!#$%&'*+/=?^_{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+)>?(.*)$`)

// readTextBounce finds failed recipients in the explanation of a text
// bounce: lines led by an address, with the lines under them as diagnostic;
// failing that, any address in the explanation that is not the bounce's own
// sender or recipient. A wrong guess is harmless: callers match recipients
// against what they sent.
func readTextBounce(d *DSN, text string, top textproto.MIMEHeader) {
	expl, _ := explanationPart(text)
	exclude := map[string]bool{}
	for _, a := range addressList(append(top.Values("From"), top.Values("To")...)) {
		exclude[a] = true
	}
	for _, a := range d.DeliveredTo {
		exclude[a] = true
	}
	skip := func(a string) bool {
		l := localPart(a)
		return exclude[a] || isDaemon(l) || isPostmaster(l)
	}
	temporary := looksTemporary(expl)
	seen := map[string]int{}
	lines := strings.Split(expl, "\n")
	for i := 0; i < len(lines); i++ {
		// Sendmail variants list recipients as ">>> addr <addr>".
		m := leadAddrRE.FindStringSubmatch(strings.TrimLeft(lines[i], " \t>"))
		if m == nil {
			continue
		}
		addr := strings.ToLower(m[1])
		if skip(addr) {
			continue
		}
		diag := []string{strings.TrimSpace(strings.TrimLeft(m[2], ".:"))}
		for j := i + 1; j < len(lines) && j <= i+6; j++ {
			next := strings.TrimSpace(lines[j])
			if next == "" || leadAddrRE.MatchString(strings.TrimLeft(next, ">")) {
				break
			}
			diag = append(diag, next)
		}
		addRecipient(d, seen, addr, strings.TrimSpace(strings.Join(diag, " ")), temporary)
	}
	if len(d.Recipients) == 0 {
		for _, a := range addressList([]string{expl}) {
			if !skip(a) && len(d.Recipients) < 10 {
				addRecipient(d, seen, a, "", temporary)
			}
		}
	}
	// A single recipient takes the status found anywhere in the explanation.
	if len(d.Recipients) == 1 && d.Recipients[0].Status == "" {
		r := &d.Recipients[0]
		r.Status = statusCode(expl)
		if r.Diagnostic == "" {
			r.Diagnostic = diagnosticLine(expl)
		}
		r.Action = textAction(r.Status, r.Diagnostic, temporary)
		r.Permanent = isPermanent(r.Action, r.Status, r.Diagnostic)
	}
}

// addRecipient adds or completes the report for addr.
func addRecipient(d *DSN, seen map[string]int, addr, diag string, temporary bool) {
	if i, ok := seen[addr]; ok {
		if d.Recipients[i].Diagnostic == "" {
			d.Recipients[i].Diagnostic = diag
		}
		return
	}
	status := statusCode(diag)
	action := textAction(status, diag, temporary)
	seen[addr] = len(d.Recipients)
	d.Recipients = append(d.Recipients, Recipient{
		Address:    addr,
		Action:     action,
		Status:     status,
		Diagnostic: diag,
		Permanent:  isPermanent(action, status, diag),
	})
}

// textAction is actionFor with the explanation's own word on delays.
func textAction(status, diag string, temporary bool) string {
	if status == "" && temporary {
		return "delayed"
	}
	return actionFor(status, diag)
}

// diagnosticLine returns the first line of text that carries an SMTP reply
// or status code: usually the remote server's words.
func diagnosticLine(text string) string {
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if statusRE.MatchString(l) || replyCodeRE.MatchString(l) {
			return clip(l, 512)
		}
	}
	return ""
}

// quotedFieldRE matches a header line quoted in a bounce body, indented or
// not.
var quotedFieldRE = regexp.MustCompile(`(?im)^[ \t>]*(message-id|return-path)[ \t]*:[ \t]*(.*)$`)

// readQuotedOriginal finds the original's Message-ID, Return-Path and To in
// a copy quoted as text.
func readQuotedOriginal(d *DSN, text string) {
	_, orig := explanationPart(text)
	if orig != "" {
		h, _ := header.Read([]byte(strings.TrimLeft(orig, " \t\n")))
		if id := firstMsgID(h.Get("Message-Id")); id != "" {
			d.OriginalMessageID = id
		}
		if d.OriginalReturnPath == "" {
			d.OriginalReturnPath = addressOf(h.Get("Return-Path"))
		}
		if len(d.OriginalTo) == 0 {
			d.OriginalTo = addressList(h.Values("To"))
		}
	}
	if orig == "" {
		orig = text
	}
	for _, m := range quotedFieldRE.FindAllStringSubmatch(orig, -1) {
		switch strings.ToLower(m[1]) {
		case "message-id":
			if d.OriginalMessageID == "" {
				d.OriginalMessageID = firstMsgID(m[2])
			}
		case "return-path":
			if d.OriginalReturnPath == "" {
				d.OriginalReturnPath = addressOf(m[2])
			}
		}
	}
}
