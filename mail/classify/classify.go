// Package classify tells apart mail a person wrote from mail a machine sent:
// auto-replies, bounces, list traffic, reports, upstream spam verdicts and our
// own mail coming back. Classify looks at the header block only, so it can run
// on the SMTP hot path before the 250; ParseDSN reads a whole delivery status
// notification after it.
//
// The loop-protection signals follow RFC 3834 section 5 and what mature
// helpdesks and list managers check (see docs/design.md, "Classify").
package classify

import (
	"strings"

	"github.com/emersion/go-msgauth/authres"

	"github.com/tendhq/tend/mail/header"
	"github.com/tendhq/tend/vocab"
)

// Own describes us, so that our own mail is recognised when it comes back.
type Own struct {
	// Addresses are our inbox and system addresses (support@…, the VERP
	// bounce address), compared case-insensitively with the sender.
	Addresses []string
	// Domains are the domains tend puts in the Message-IDs it generates. A
	// message whose Message-ID is on one of them is ours. Use a domain only
	// tend generates Message-IDs on: employees' mail must not match.
	Domains []string
	// LoopHeader is the field tend adds to everything it sends (for example
	// "X-Tend-Loop"); its presence marks our own mail. Empty disables it.
	LoopHeader string
	// AuthServID is the authserv-id our own MTA stamps on
	// Authentication-Results (RFC 8601 section 2.5). Results from any other
	// authserv-id are ignored because anyone can write that field.
	AuthServID string
}

// Result is the verdict on one message.
type Result struct {
	// Class is the strongest classification found (see precedence). The
	// zero value is no class at all, which the rules gate refuses: a
	// Result that was never filled in answers nothing.
	Class vocab.Class
	// Reasons lists every signal seen, human-readable, for the timeline.
	Reasons []string
	// NoAutoReply is true when nothing automatic may be sent in answer: for
	// every class but human, and for human mail that asks not to be answered
	// automatically (X-Auto-Response-Suppress), passed an Exchange inbox
	// rule, or comes from a postmaster or the null reverse-path. A subject
	// never sets it.
	NoAutoReply bool
	// Suspect is true when only heuristics point at a machine: a subject
	// that reads like a bounce, out-of-office notice or complaint, a
	// sender named like a mail system, or (with Class auto-reply) nothing but
	// a null reverse-path. People write such subjects too ("Delivery
	// status of my order?"), so a subject never changes Class: such mail is
	// stored, threaded and acknowledged like any other, and the rules gate
	// holds only automatic mail after the first acknowledgement, with the
	// per-address cap bounding a loop.
	Suspect bool
	// Spam is the upstream filter's verdict (X-Spam-Flag: YES and the like),
	// independent of Class.
	Spam bool
	// DMARCFail is true when Authentication-Results stamped with our own
	// AuthServID says dmarc=fail (RFC 7489 section 6.6).
	DMARCFail bool
}

// verdict accumulates signals while Classify walks the header.
type verdict struct {
	Result
	strong  [len(precedence)]bool // classes backed by a header signal, by rank
	suspect [len(precedence)]bool // classes backed only by heuristics, by rank
	hinted  bool                  // a heuristic that never decides the class
}

// precedence is the order in which the machine classes win when several
// signals match, strongest first; human is what is left.
var precedence = [...]vocab.Class{vocab.ClassOwnMail, vocab.ClassBounce, vocab.ClassReport,
	vocab.ClassAutoReply, vocab.ClassSpam, vocab.ClassList}

// rank is c's place in precedence; every check passes one of its classes.
func rank(c vocab.Class) int {
	for i, p := range precedence {
		if p == c {
			return i
		}
	}
	panic("classify: no precedence for class " + string(c))
}

func (v *verdict) add(c vocab.Class, reason string) {
	v.strong[rank(c)] = true
	v.Reasons = append(v.Reasons, reason)
}

// guess records a heuristic that suggests class c without proving it. Only
// the null reverse-path may still decide the class (as auto-reply, when no
// header signal does); every other guess only makes the mail Suspect.
func (v *verdict) guess(c vocab.Class, reason string) {
	v.suspect[rank(c)] = true
	v.Reasons = append(v.Reasons, reason)
}

// hint records a heuristic that never changes the class: the mail stays
// what its header proves, and is marked Suspect if that is Human.
func (v *verdict) hint(reason string) {
	v.hinted = true
	v.Reasons = append(v.Reasons, reason)
}

func (v *verdict) noReply(reason string) {
	v.NoAutoReply = true
	v.Reasons = append(v.Reasons, reason)
}

// Classify decides from the header alone what sent a message. envelopeFrom
// is the SMTP reverse-path (MAIL FROM); "" or "<>" is the null reverse-path
// that DSNs and auto-responders use (RFC 5321 section 4.5.5, RFC 3834
// section 3.3). For mail that did not arrive over SMTP, pass ReversePath(h).
//
// Classify never drops anything: it only labels. It does no I/O and costs a
// few microseconds, so it may run before the SMTP 250.
func Classify(h Header, envelopeFrom string, own Own) Result {
	var v verdict
	from := addressOf(h.Get("From"))
	env := addressOf(envelopeFrom)
	nullPath := isNullPath(envelopeFrom)
	subject := header.Decode(h.Get("Subject"))

	checkOwn(&v, h, from, env, own)
	checkContentType(&v, h)
	checkAutoSubmitted(&v, h, nullPath)
	checkMicrosoft(&v, h)
	checkLists(&v, h)
	checkSpam(&v, h)
	checkSenders(&v, h, from, env, nullPath)
	checkSubject(&v, subject, from, env, nullPath)
	checkDMARC(&v, h, own.AuthServID)

	v.Class = vocab.ClassHuman
	for i, c := range precedence {
		if v.strong[i] {
			v.Class = c
			break
		}
	}
	if v.Class == vocab.ClassHuman {
		for i, c := range precedence {
			if v.suspect[i] {
				v.Class, v.Suspect = c, true
				break
			}
		}
	}
	if v.Class != vocab.ClassHuman {
		v.NoAutoReply = true
	} else if v.hinted {
		v.Suspect = true
	}
	return v.Result
}

// checkOwn finds our own mail: our loop header, our address as sender, our
// Message-ID domain, or an X-Loop naming one of our addresses.
func checkOwn(v *verdict, h Header, from, env string, own Own) {
	if own.LoopHeader != "" && len(h.Values(own.LoopHeader)) > 0 {
		v.add(vocab.ClassOwnMail, "own loop header "+own.LoopHeader)
	}
	for _, a := range own.Addresses {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == "" {
			continue
		}
		if from == a {
			v.add(vocab.ClassOwnMail, "From is our own address "+a)
		} else if env == a {
			v.add(vocab.ClassOwnMail, "envelope sender is our own address "+a)
		}
		for _, l := range h.Values("X-Loop") {
			if addressOf(l) == a {
				v.add(vocab.ClassOwnMail, "X-Loop names our own address "+a)
			}
		}
	}
	if d := domainOf(addressOf(h.Get("Message-Id"))); d != "" {
		for _, od := range own.Domains {
			if strings.EqualFold(d, strings.TrimSpace(od)) {
				v.add(vocab.ClassOwnMail, "Message-ID on our domain "+d)
			}
		}
	}
}

// checkContentType recognises multipart/report (RFC 6522): a delivery-status
// report is a bounce (RFC 3464), any other report type (MDN, ARF, TLS-RPT) a
// report.
func checkContentType(v *verdict, h Header) {
	media, params := splitMediaType(h.Get("Content-Type"))
	switch media {
	case "multipart/report":
		rt := params["report-type"]
		if rt == "delivery-status" || rt == "global-delivery-status" {
			v.add(vocab.ClassBounce, "Content-Type: multipart/report; report-type="+rt+" (RFC 3464)")
		} else {
			v.add(vocab.ClassReport, "Content-Type: multipart/report; report-type="+rt+" (RFC 6522)")
		}
	case "message/delivery-status":
		v.add(vocab.ClassBounce, "Content-Type: message/delivery-status (RFC 3464)")
	case "message/disposition-notification", "message/feedback-report":
		v.add(vocab.ClassReport, "Content-Type: "+media)
	}
	if h.Get("Tls-Report-Domain") != "" {
		v.add(vocab.ClassReport, "TLS-Report-Domain (RFC 8460)")
	}
	if len(h.Values("X-Failed-Recipients")) > 0 {
		v.add(vocab.ClassBounce, "X-Failed-Recipients (Exim bounce)")
	}
}

// checkAutoSubmitted applies RFC 3834 and the vendor headers that predate it.
func checkAutoSubmitted(v *verdict, h Header, nullPath bool) {
	for _, as := range h.Values("Auto-Submitted") {
		// The keyword ends at a parameter, a comment or white space.
		keyword := strings.ToLower(strings.TrimSpace(as))
		if i := strings.IndexAny(keyword, "; \t("); i >= 0 {
			keyword = keyword[:i]
		}
		// RFC 3834 section 5: "no" is the only value a person's mail carries;
		// anything else, including unknown values, is automatic.
		if keyword != "no" {
			v.add(vocab.ClassAutoReply, "Auto-Submitted: "+keyword+" (RFC 3834)")
		}
	}
	if strings.EqualFold(strings.TrimSpace(h.Get("X-Apple-Action")), "vacation") {
		// iCloud's vacation responder sends no RFC 3834 field.
		v.add(vocab.ClassAutoReply, "X-Apple-Action: VACATION (iCloud vacation reply)")
	}
	for _, name := range []string{"X-Autoreply", "X-Autorespond", "X-Autoresponse", "X-Autoreply-From", "X-Mail-Autoreply", "X-Auto-Reply"} {
		if len(h.Values(name)) > 0 {
			v.add(vocab.ClassAutoReply, name+" present")
		}
	}
	for _, p := range h.Values("Precedence") {
		switch strings.ToLower(strings.TrimSpace(p)) {
		case "auto_reply", "auto-reply":
			v.add(vocab.ClassAutoReply, "Precedence: auto_reply")
		case "junk":
			// vacation(1) and procmail autoresponders send junk.
			v.add(vocab.ClassAutoReply, "Precedence: junk")
		case "bulk":
			v.add(vocab.ClassList, "Precedence: bulk")
		case "list":
			v.add(vocab.ClassList, "Precedence: list")
		}
	}
	if nullPath {
		// Strong for loop protection, weak for the class: IMAP-appended
		// and imported mail carries Return-Path: <> too.
		v.guess(vocab.ClassAutoReply, "null return path (RFC 3834 section 3.3)")
		v.NoAutoReply = true
	}
}

// checkMicrosoft reads Exchange and Outlook markers. X-Auto-Response-Suppress
// (MS-OXCMAIL 2.2.3.2.14) is the sender asking us not to answer: on its own it
// says nothing about who wrote the message. X-MS-Exchange-Inbox-Rules-Loop is
// stamped on anything an inbox rule produced, forwards included, and
// X-MS-Exchange-Generated-Message-Source names the agent that generated a
// message; together with suppression they are how Exchange out-of-office
// replies look.
func checkMicrosoft(v *verdict, h Header) {
	suppress := false
	for _, s := range h.Values("X-Auto-Response-Suppress") {
		for _, tok := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			switch strings.ToLower(tok) {
			case "all", "oof", "autoreply":
				suppress = true
			}
		}
	}
	rulesLoop := len(h.Values("X-Ms-Exchange-Inbox-Rules-Loop")) > 0
	generated := h.Get("X-Ms-Exchange-Generated-Message-Source")
	switch {
	case generated != "":
		v.add(vocab.ClassAutoReply, "X-MS-Exchange-Generated-Message-Source: "+generated)
	case rulesLoop && suppress:
		v.add(vocab.ClassAutoReply, "Exchange inbox-rule reply (X-MS-Exchange-Inbox-Rules-Loop with X-Auto-Response-Suppress)")
	case rulesLoop:
		v.noReply("X-MS-Exchange-Inbox-Rules-Loop: passed through an Exchange inbox rule")
	}
	if suppress {
		v.noReply("X-Auto-Response-Suppress asks for no automatic reply")
	}
}

// listFields are the RFC 2369 and RFC 2919 list header fields, plus ezmlm's
// Mailing-List.
var listFields = [...]string{"List-Id", "List-Unsubscribe", "List-Post", "List-Help", "List-Subscribe", "List-Owner", "List-Archive", "Mailing-List"}

func checkLists(v *verdict, h Header) {
	for _, name := range listFields {
		if len(h.Values(name)) > 0 {
			v.add(vocab.ClassList, name+" present (RFC 2369/2919)")
			return
		}
	}
}

// checkSpam reads upstream spam verdicts: SpamAssassin, rspamd and Exchange
// Online Protection. A forged verdict only hurts its sender.
func checkSpam(v *verdict, h Header) {
	yes := func(s string) bool {
		s = strings.ToLower(strings.TrimSpace(s))
		return s == "yes" || s == "true" || strings.HasPrefix(s, "yes,") || strings.HasPrefix(s, "yes ")
	}
	switch {
	case yes(h.Get("X-Spam-Flag")):
		v.add(vocab.ClassSpam, "X-Spam-Flag: YES")
	case yes(h.Get("X-Spam-Status")):
		v.add(vocab.ClassSpam, "X-Spam-Status: Yes")
	case yes(h.Get("X-Spam")):
		v.add(vocab.ClassSpam, "X-Spam: Yes")
	case strings.Contains(h.Get("X-Forefront-Antispam-Report"), "SFV:SPM"):
		v.add(vocab.ClassSpam, "X-Forefront-Antispam-Report: SFV:SPM")
	default:
		return
	}
	v.Spam = true
}

// checkSenders looks at the sender addresses for mailer daemons, list
// managers and addresses that say they take no replies.
func checkSenders(v *verdict, h Header, from, env string, nullPath bool) {
	addrs := [...]string{from, env, addressOf(h.Get("Sender"))}
	seen := [4]bool{}
	for _, a := range addrs {
		if a == "" {
			continue
		}
		local := localPart(a)
		switch {
		case isDaemon(local) && !seen[0]:
			seen[0] = true
			if nullPath {
				// A daemon writing with a null reverse-path is a DSN.
				v.add(vocab.ClassBounce, "mailer-daemon sender "+a+" with a null return path")
			} else {
				// No person writes as MAILER-DAEMON: structural
				// evidence even with a real reverse-path (Exchange
				// Online and some gateways send their reports so).
				v.add(vocab.ClassBounce, "mailer-daemon sender "+a)
			}
		case isPostmaster(local) && !seen[1]:
			seen[1] = true
			v.noReply("postmaster sender " + a)
		case isListManager(local) && !seen[2]:
			seen[2] = true
			v.add(vocab.ClassList, "list-manager sender "+a)
		case isNoReply(local) && !seen[3]:
			seen[3] = true
			v.add(vocab.ClassAutoReply, "no-reply sender "+a)
		}
	}
	name := strings.ToLower(h.Get("From"))
	if from == "" && strings.Contains(name, "mailer-daemon") {
		// "From: MAILER-DAEMON <>": the daemon with the null address.
		v.add(vocab.ClassBounce, "From is MAILER-DAEMON with a null address")
	}
	if strings.Contains(name, "mail delivery subsystem") || strings.Contains(name, "mail delivery system") {
		// A sender named like a machine is not answered, but the name
		// alone proves no bounce: the mail is kept like a person's.
		v.hint("From names a mail delivery system")
		v.NoAutoReply = true
	}
}

// checkSubject applies subject heuristics. They only ever raise a
// suspicion: a person may write any of these words. With a daemon sender or
// a null return path a failure subject is a strong bounce signal.
func checkSubject(v *verdict, subject, from, env string, nullPath bool) {
	if subject == "" {
		return
	}
	lower := strings.ToLower(subject)
	if phrase := matchSubject(lower, failureSubjects[:]); phrase != "" {
		daemon := nullPath || isDaemon(localPart(from)) || isDaemon(localPart(env)) ||
			isPostmaster(localPart(from)) || isPostmaster(localPart(env))
		if daemon {
			v.add(vocab.ClassBounce, "failure subject "+quote(phrase)+" from a mailer daemon")
		} else {
			v.hint("failure subject " + quote(phrase))
		}
		return
	}
	if phrase := matchSubject(lower, autoReplySubjects[:]); phrase != "" {
		v.hint("auto-reply subject " + quote(phrase))
		return
	}
	if strings.Contains(lower, "report domain:") && strings.Contains(lower, "submitter:") {
		v.add(vocab.ClassReport, "DMARC aggregate report subject (RFC 7489 section 7.2.1.1)")
	} else if strings.HasPrefix(lower, "complaint about message from") {
		if from == "staff@hotmail.com" {
			// The sender of Hotmail's JMRP feedback loop.
			v.add(vocab.ClassReport, "feedback-loop complaint from staff@hotmail.com (Hotmail JMRP)")
		} else {
			v.hint("feedback-loop complaint subject (Hotmail JMRP)")
		}
	}
}

// checkDMARC reads Authentication-Results (RFC 8601) stamped by our own MTA
// only; go-msgauth does the parsing.
func checkDMARC(v *verdict, h Header, servID string) {
	if servID == "" {
		return
	}
	for _, ar := range h.Values("Authentication-Results") {
		id, results, _ := authres.Parse(ar) // partial results are still ours to read
		if !strings.EqualFold(id, servID) {
			continue
		}
		for _, r := range results {
			if d, ok := r.(*authres.DMARCResult); ok && d.Value == authres.ResultFail {
				v.DMARCFail = true
				v.Reasons = append(v.Reasons, "dmarc=fail from "+servID)
				return
			}
		}
	}
}

func quote(s string) string { return `"` + s + `"` }
