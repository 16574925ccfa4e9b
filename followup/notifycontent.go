package followup

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tendhq/tend/mail/compose"
	"github.com/tendhq/tend/rules"
)

// Defaults of the notification content caps (Options.NotifyMaxText,
// Options.NotifyAttachMax).
const (
	DefaultNotifyMaxText   = 64 << 10
	DefaultNotifyAttachMax = 1 << 20
)

// maxListedAttachments bounds the attachment list of a notification: a
// mail with thousands of parts is listed by its first ones and a count.
const maxListedAttachments = 50

// notifyContent is what a staff notification carries of the message that
// caused it, computed once for every agent notified: the text cut to
// NotifyMaxText, the attachments listed with their sizes, and the
// attachments themselves when they are small enough to forward. A large
// mail thus costs each agent a bounded mail, not a copy of the mail.
type notifyContent struct {
	text    string
	listed  []string
	forward []compose.Attachment
}

func (x *Executor) notifyContent(sc *scope, data rules.TemplateData) (notifyContent, error) {
	c := notifyContent{text: capText(data.Message.Text, x.opts.NotifyMaxText, data.Links.Ticket)}
	msg := sc.trigger
	if msg == nil {
		return c, nil
	}
	atts, err := sc.tx.Attachments(sc.ctx, msg.ID)
	if err != nil {
		return c, err
	}
	var total int64
	files := 0
	for _, a := range atts {
		if a.Inline {
			continue
		}
		files++
		total += a.Size
		if len(c.listed) < maxListedAttachments {
			name := strings.TrimSpace(a.Filename)
			if name == "" {
				name = fmt.Sprintf("attachment %d", files) // as customerMessage names it
			}
			c.listed = append(c.listed, fmt.Sprintf("%s (%s)", name, humanSize(a.Size)))
		}
	}
	if files > len(c.listed) {
		c.listed = append(c.listed, fmt.Sprintf("and %d more", files-len(c.listed)))
	}
	// The attachments are forwarded only when all of them fit under the
	// cap, and parsed only then: the parse holds the whole message.
	if files > 0 && x.opts.NotifyAttachMax > 0 && total <= x.opts.NotifyAttachMax {
		if c.forward, err = x.attachments(sc, msg); err != nil {
			return c, err
		}
	}
	return c, nil
}

// capText cuts text to max bytes at a character boundary, saying how much
// is left out and where the whole message is.
func capText(text string, max int, ticketLink string) string {
	if max <= 0 || len(text) <= max {
		return text
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	where := "on the ticket page"
	if ticketLink != "" {
		where += ": " + ticketLink
	}
	return fmt.Sprintf("%s\n\n[… %s more not shown; the whole message is %s]", text[:cut], humanSize(int64(len(text)-cut)), where)
}

// humanSize writes a byte count the way a mail client shows it.
func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d KB", (n+1<<9)>>10)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}
