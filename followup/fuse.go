package followup

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tendhq/tend/mail/classify"
	"github.com/tendhq/tend/mail/compose"
	"github.com/tendhq/tend/mail/header"
	"github.com/tendhq/tend/rules"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/threading"
	"github.com/tendhq/tend/vocab"
)

// fuse reports whether the next mail on the scope's ticket must be held.
// It is the loop bound that does not depend on classifying anything: once
// FuseMaxMails mails were queued on one ticket within FuseWindow (a burst),
// or FuseMaxPerDay within 24 hours (a loop slowed down by coalescing, which
// would otherwise run forever just under the burst limit), the ticket is
// flagged, its leads get one alert, and everything it would send from then
// on is kept as held outbox rows until a lead releases it.
//
// The ticket's counts are read once per event and then counted on in the
// scope as the event queues mail (countQueued): three mails an event
// cost one query, not six.
func (x *Executor) fuse(sc *scope) (bool, error) {
	if sc.v.MailHeldSince != nil {
		return true, nil
	}
	now := x.opts.Clock.Now()
	if sc.fuse.burst < 0 {
		burst, day, err := sc.tx.TicketMailCounts(sc.ctx, sc.v.ID, now.Add(-x.opts.FuseWindow), now.Add(-24*time.Hour))
		if err != nil {
			return false, err
		}
		sc.fuse.burst, sc.fuse.day = burst, day
	}
	var why string
	if sc.fuse.burst >= x.opts.FuseMaxMails {
		why = fmt.Sprintf("%d mails on this ticket within %s (follow_through.fuse_max_mails %d, fuse_window %s)", sc.fuse.burst, x.opts.FuseWindow, x.opts.FuseMaxMails, x.opts.FuseWindow)
	} else {
		if sc.fuse.day < x.opts.FuseMaxPerDay {
			return false, nil
		}
		why = fmt.Sprintf("%d mails on this ticket within 24 hours (follow_through.fuse_max_mails_per_day %d)", sc.fuse.day, x.opts.FuseMaxPerDay)
	}
	tripped, err := sc.tx.HoldTicketMail(sc.ctx, sc.v.ID)
	if err != nil {
		return false, err
	}
	sc.v.MailHeldSince = &now
	if !tripped {
		return true, nil
	}
	x.log.Warn("mail fuse tripped", "ticket", sc.v.ID, "why", why)
	if err := sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventTicketMailHeld, "", "mail fuse tripped: "+why+"; all further mail on this ticket is held until a lead releases it", nil); err != nil {
		return false, err
	}
	return true, x.alertLeads(sc, why)
}

// fuseCounts are the ticket's mails the fuse counts (TicketMailCounts),
// -1 until read.
type fuseCounts struct{ burst, day int }

// countQueued counts a mail the scope queued, not held, in the fuse's
// counts it has read.
func (c *fuseCounts) countQueued() {
	if c.burst >= 0 {
		c.burst++
	}
	if c.day >= 0 {
		c.day++
	}
}

// alertLeads mails each lead the notify_fuse template, once per trip (the
// fuse is tripped only while the ticket is not flagged).
func (x *Executor) alertLeads(sc *scope, why string) error {
	ev, err := x.event(sc, vocab.EventTimerDue)
	if err != nil {
		return err
	}
	for _, ag := range staff(sc, rules.ToLeads, 0) {
		data := rules.DataFor(ev, x.links(sc.v.ID))
		data.Agent, data.Reason = rules.Person{Address: ag.Email, Name: ag.Name}, why
		r, ok, err := x.render(sc, "notify_fuse", data)
		if !ok {
			return err
		}
		m := compose.Message{
			From:    compose.Address{Name: sc.v.Inbox.Name, Email: sc.v.Inbox.Address},
			To:      []compose.Address{{Name: ag.Name, Email: ag.Email}},
			Subject: threading.TagSubject(r.Subject, sc.v.ID, x.opts.TagPrefix), Text: r.Text, HTML: r.HTML,
		}
		if _, err := x.queue(sc, outgoing{kind: storage.OutboxToStaff, auto: true, to: []string{ag.Email}, template: "notify_fuse", alert: true}, m); err != nil {
			return err
		}
	}
	return nil
}

// ReleaseMail clears ticket's mail fuse on behalf of by (a lead) and sends
// the mail it held. If the loop goes on, the fuse trips again.
func (x *Executor) ReleaseMail(ctx context.Context, ticket int64, by string) (int, error) {
	var n int
	err := x.onTicket(ctx, ticket, func(sc *scope) error {
		var err error
		if n, err = sc.tx.ReleaseHeldMail(ctx, sc.v.ID); err != nil {
			return err
		}
		return sc.tx.AddEvent(ctx, sc.v.ID, vocab.EventTicketMailReleased, by, fmt.Sprintf("%s released the ticket's held mail (%d mails)", by, n), nil)
	})
	return n, err
}

// automaticSignal says why mail that came through an agent's signed
// address was written by a machine ("" when nothing says so): the
// classifier's verdict on ingest, the null envelope sender of
// auto-responders and bounces (RFC 3834 section 3.3, RFC 5321 section
// 4.5.5), and the header read again here (RFC 3834 Auto-Submitted,
// X-Autoreply, Precedence, out-of-office subjects), so that nothing an
// auto-responder sends is ever taken for the agent's answer. Unlike
// customer mail, where a subject alone never decides (a person may write
// "Out of office question"), a heuristic is enough here: holding an
// agent's text on the ticket costs a look at the timeline, relaying an
// out-of-office to the customer starts a loop.
func (x *Executor) automaticSignal(sc *scope, msg *storage.Message) (string, error) {
	var why []string
	if msg.Class != "" && msg.Class != vocab.ClassHuman {
		why = append(why, "classified "+string(msg.Class))
	}
	if (msg.Source == "smtp" || msg.Source == "lmtp") && (strings.TrimSpace(msg.EnvFrom) == "" || strings.TrimSpace(msg.EnvFrom) == "<>") {
		why = append(why, "null envelope sender")
	}
	raw, err := sc.tx.Raw(sc.ctx, msg.RawHash)
	if err != nil {
		return "", err
	}
	h, _ := header.Read(raw)
	res := classify.Classify(h, msg.EnvFrom, classify.Own{})
	// X-Auto-Response-Suppress alone is what Outlook puts on a person's
	// mail: it asks us not to answer automatically, and says nothing about
	// who wrote it. Anything else that keeps automatic mail from answering
	// (rules.Permit) marks a machine here.
	suppressOnly := h.Get("X-Auto-Response-Suppress") != "" && res.Class == vocab.ClassHuman && !res.Suspect
	p, _ := rules.Permit(rules.Classification{Class: res.Class, NoAutoReply: res.NoAutoReply, Suspect: res.Suspect})
	if p != rules.Permitted && !suppressOnly {
		why = append(why, res.Reasons...)
	}
	return strings.Join(why, "; "), nil
}

// holdAutoReply keeps automatic mail to an agent's address on the ticket as
// an event: not relayed, no command run, nobody notified (that is what
// would loop).
func (x *Executor) holdAutoReply(sc *scope, why string) error {
	msg := sc.trigger
	detail := fmt.Sprintf("automatic mail from %s to an agent's reply address (%s): kept on the ticket; not relayed to the customer, no command ran, nobody was notified", msg.FromAddr, why)
	return sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventAgentAutoReplyHeld, msg.FromAddr, detail, &msg.ID)
}
