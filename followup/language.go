package followup

import (
	"strings"
	"time"

	"github.com/tendhq/tend/mail/langdetect"
	"github.com/tendhq/tend/rules"
	"github.com/tendhq/tend/storage"
)

// InboxPolicy is an inbox's language and working time.
type InboxPolicy struct {
	// Language is the fallback language of mail to customers (ISO 639-1).
	Language string
	// Calendar is the inbox's time zone, business hours and holidays; nil
	// is UTC around the clock.
	Calendar *rules.Calendar
}

// policy is the ticket's inbox policy (English, UTC, around the clock
// when the inbox has none).
func (x *Executor) policy(sc *scope) InboxPolicy {
	p := x.opts.Inboxes[strings.ToLower(sc.v.Inbox.Address)]
	if p.Language == "" {
		p.Language = "en"
	}
	return p
}

// language is what the customer is written to in: the language detected
// from their first message, else the inbox's.
func (x *Executor) language(sc *scope) string {
	if rules.ShippedLanguage(sc.v.Language) {
		return sc.v.Language
	}
	return x.policy(sc).Language
}

// detectLanguage remembers the language of a new ticket's first message,
// or the inbox's when it cannot be told.
func (x *Executor) detectLanguage(sc *scope, msg *storage.Message) {
	if sc.v.Language != "" {
		return
	}
	lang := ""
	if pre := msg.Prepared; pre != nil && pre.HasLanguage {
		lang = pre.Language
	} else if x.opts.Detector != nil {
		lang = x.opts.Detector.Detect(msg.Subject + "\n" + newText(msg))
	}
	if lang == "" {
		lang = x.policy(sc).Language
	}
	sc.change(storage.TicketUpdate{Language: &lang})
	sc.v.Language = lang
}

// Prepare works out, before the processing batch's transaction, what
// handling msg would otherwise compute inside it (see
// ingest.ProcessorOptions.Prepare): the language of a customer's message
// that starts a conversation (no In-Reply-To, no References), which a new
// ticket takes (detectLanguage). Language detection was a fifth of the
// executor's time in tend bench, while the transaction held SQLite's
// writer. A message that starts a ticket otherwise is detected there as
// before.
func (x *Executor) Prepare(msg *storage.Message) {
	if x.opts.Detector == nil || msg.Prepared == nil || !msg.StartsConversation() {
		return
	}
	msg.Prepared.Language = x.opts.Detector.Detect(msg.Subject + "\n" + newText(msg))
	msg.Prepared.HasLanguage = true
}

// KeepAttachments is the most bytes of a message's attachments the
// processor should keep from its parse for Prepared
// (ingest.ProcessorOptions.KeepAttachments): what notifications forward
// (NotifyAttachMax), 0 when they forward none.
func (x *Executor) KeepAttachments() int64 { return max(x.opts.NotifyAttachMax, 0) }

// NewDetector is the language detector for the shipped languages.
func NewDetector() *langdetect.Detector { return langdetect.New(rules.Languages()) }

// due is when a delay from now ends: in business time when asked and the
// inbox has business hours, else on the clock.
func (x *Executor) due(sc *scope, now time.Time, d time.Duration, business bool) time.Time {
	if business {
		return x.policy(sc).Calendar.Add(now, d)
	}
	return now.Add(d)
}

// promise is the honest first-answer promise in the customer's language:
// a local deadline ("by Monday 11:00 CET") when the inbox has business
// hours, the duration ("within 4 hours") otherwise. It is computed the
// way the first-response clock is armed, so the two agree.
func (x *Executor) promise(sc *scope, now time.Time) string {
	rt := time.Duration(sc.v.Inbox.ResponseTime) * time.Second
	lang := x.language(sc)
	cal := x.policy(sc).Calendar
	if rt <= 0 || !cal.Open() {
		return rules.DescribeResponseTimeIn(lang, rt)
	}
	return rules.DescribeDeadline(lang, cal.Add(now, rt).In(cal.Loc), now)
}
