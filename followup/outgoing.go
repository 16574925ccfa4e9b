package followup

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/tendhq/tend/mail/compose"
	"github.com/tendhq/tend/rules"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/threading"
	"github.com/tendhq/tend/vocab"
)

// Confirmation link purposes.
const (
	linkSolved    = "solved"
	linkNotSolved = "not_solved"
)

// links makes the signed, single-purpose, expiring confirmation links.
func (x *Executor) links(ticket int64) rules.Links {
	exp := x.opts.Clock.Now().Add(x.opts.LinkTTL)
	base := strings.TrimRight(x.opts.BaseURL, "/")
	mk := func(p string) string {
		return base + "/confirm?t=" + url.QueryEscape(x.opts.Signer.LinkToken(p, ticket, exp))
	}
	return rules.Links{Solved: mk(linkSolved), NotSolved: mk(linkNotSolved), Ticket: fmt.Sprintf("%s/tickets/%d", base, ticket)}
}

// thread returns the headers that put our mail in the customer's thread:
// a reply to their latest message, with its references, and Outlook's
// conversation carried on.
func (x *Executor) thread(sc *scope) (inReplyTo string, refs []string, threadIndex, threadTopic string) {
	for i := len(sc.msgs) - 1; i >= 0; i-- {
		m := sc.msgs[i]
		if m.Direction != storage.DirectionIn || m.AgentID != nil || strings.HasSuffix(m.MessageID, ".tend.invalid") {
			continue
		}
		refs = strings.Fields(m.References)
		if len(refs) > 20 {
			// Keep the root and the newest: enough to thread, bounded size.
			refs = append(refs[:1], refs[len(refs)-19:]...)
		}
		refs = append(refs, m.MessageID)
		if m.ThreadRoot != "" {
			threadIndex = threading.ContinueThreadIndex(m.ThreadRoot, x.opts.Clock.Now())
		}
		return m.MessageID, refs, threadIndex, m.ThreadTopic
	}
	return "", nil, "", ""
}

// outgoing is one mail to queue and what it is for.
type outgoing struct {
	kind string // storage.OutboxToCustomer or OutboxToStaff
	auto bool
	to   []string
	// template is the template it was rendered from ("" for a relayed
	// reply); stream and count are a coalesced notification's.
	template string
	stream   string
	count    int
	// notBefore defers the mail (a held customer notice).
	notBefore time.Time
	// alert is the fuse's own alert to leads: it is never held.
	alert bool
}

// queued is what became of a mail: held by the ticket's fuse, or due at
// a time.
type queued struct {
	held bool
	due  time.Time
}

// queue composes m and commits it as an outbox row on the ticket. The
// ticket's fuse may hold it (see fuse). While the scope batches (see
// batchMail), the mail waits in the batch and is committed with the
// batch's others.
func (x *Executor) queue(sc *scope, o outgoing, m compose.Message) (queued, error) {
	held := false
	if !o.alert {
		var err error
		if held, err = x.fuse(sc); err != nil {
			return queued{}, err
		}
	}
	row := storage.OutboxMail{TicketID: &sc.v.ID, Kind: o.kind, Auto: o.auto, EnvTo: strings.Join(o.to, ","),
		NextAttemptAt: o.notBefore, Template: o.template, Stream: o.stream, Count: max(o.count, 1)}
	if held {
		row.Status = storage.OutboxHeld
	}
	msg := storage.Message{
		TicketID: &sc.v.ID, FromAddr: m.From.Email, FromName: m.From.Name, ToAddrs: strings.Join(o.to, ","),
		Subject: m.Subject, InReplyTo: m.InReplyTo, References: strings.Join(m.References, " "),
		ThreadTopic: m.ThreadTopic, Class: vocab.ClassHuman, Role: "system", Text: m.Text, HTML: m.HTML,
	}
	if o.kind == storage.OutboxToStaff {
		// Notifications are not part of the customer's thread: they must
		// never become what a customer's reply is threaded against.
		msg.TicketID = nil
		// Nor is their text kept twice: it copies the ticket's messages,
		// and the composed bytes hold it until they are dropped. Written
		// and blanked later, it left holes in SQLite's pages that later
		// rows never fill (the generated corpus: 38 MB of copies for
		// 118 MB received).
		msg.Text, msg.HTML = "", ""
	}
	mail := storage.QueuedMail{Outbox: row, Message: msg, Build: func(id int64) (storage.Composed, error) {
		return x.build(sc.v.ID, id, o.auto, m)
	}}
	var err error
	if sc.batching {
		sc.batch = append(sc.batch, mail)
	} else {
		_, err = sc.tx.QueueMails(sc.ctx, []storage.QueuedMail{mail})
	}
	if err == nil && !held {
		sc.fuse.countQueued()
	}
	now := x.opts.Clock.Now()
	return queued{held: held, due: maxTime(o.notBefore, now)}, err
}

// batchMail runs fn with the mail it queues batched: committed together
// when fn is done, in the order it was queued, in three statements
// instead of three per mail (storage.QueueMails). fn must not read the
// outbox rows it queues; the fuse reads the ticket's counts before its
// first mail and counts on in the scope.
func (x *Executor) batchMail(sc *scope, fn func() error) error {
	if sc.batching {
		return fn()
	}
	sc.batching = true
	err := fn()
	sc.batching = false
	batch := sc.batch
	sc.batch = nil
	if err != nil {
		return err
	}
	_, err = sc.tx.QueueMails(sc.ctx, batch)
	return err
}

// build makes the outbox row id's mail: our Message-ID, the loop header
// on everything (so our own mail coming back is recognised), the ticket
// header, the DKIM signature; and its VERP return path. Mail on no ticket
// (ticket 0: a mailbox alert) gets a Message-ID that names no ticket, so
// a reply to it cannot be threaded onto one. The header is checked here;
// the bytes are written, and signed, by the Composed's Raw, which the
// outbox runs beside the rest of the transaction.
func (x *Executor) build(ticket, id int64, auto bool, m compose.Message) (storage.Composed, error) {
	m.MessageID = x.opts.Signer.MessageID(ticket, id, x.opts.Domain)
	if ticket == 0 {
		m.MessageID = fmt.Sprintf("tend-staff.%d.%d@%s", id, x.opts.Clock.Now().UnixNano(), strings.ToLower(x.opts.Domain))
	}
	m.Date = x.opts.Clock.Now()
	m.Auto = auto
	m.LoopHeader = x.opts.LoopValue
	extra := map[string]string{}
	for k, v := range m.Extra {
		extra[k] = v
	}
	if ticket != 0 {
		extra["X-Tend-Ticket"] = fmt.Sprint(ticket)
	}
	m.Extra = extra
	d, err := compose.Check(m)
	if err != nil {
		return storage.Composed{}, err
	}
	key := x.opts.DKIM
	raw := func() ([]byte, error) {
		raw, err := d.Bytes()
		if err != nil || key == nil {
			return raw, err
		}
		return compose.Sign(raw, *key)
	}
	return storage.Composed{MessageID: m.MessageID, EnvFrom: x.opts.Signer.BounceAddress(id) + "@" + x.opts.Domain, Raw: raw}, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// render renders a template for the ticket's inbox; a failure is put on
// the timeline and the mail is not sent (templates are checked at load, so
// this is rare).
func (x *Executor) render(sc *scope, name string, data rules.TemplateData) (rules.Rendered, bool, error) {
	return x.renderIn(sc, name, "", data)
}

// renderIn is render in a language (the customer's, for mail to them).
func (x *Executor) renderIn(sc *scope, name, lang string, data rules.TemplateData) (rules.Rendered, bool, error) {
	r, err := x.opts.Templates.RenderIn(name, sc.v.Inbox.Address, lang, data)
	if err != nil {
		return r, false, x.templateFailed(sc, name, err)
	}
	return r, true, nil
}

// renderLater renders a staff template's subject as render does, and
// leaves its body to the composition of the mail (compose.Message.Body),
// which runs beside the transaction: a staff mail's message row keeps no
// text (queue), so nothing in the transaction needs it. A body that fails
// to render fails its mail (storage.Composed).
func (x *Executor) renderLater(sc *scope, name string, data rules.TemplateData) (string, func() (string, string, error), bool, error) {
	subject, body, err := x.opts.Templates.RenderLaterIn(name, sc.v.Inbox.Address, "", data)
	if err != nil {
		return "", nil, false, x.templateFailed(sc, name, err)
	}
	return subject, body, true, nil
}

// templateFailed puts a template's failure on the timeline; the mail is
// not sent (templates are checked at load, so this is rare).
func (x *Executor) templateFailed(sc *scope, name string, err error) error {
	x.log.Error("template failed", "ticket", sc.v.ID, "template", name, "err", err)
	return sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventMailFailed, "", fmt.Sprintf("template %s: %v", name, err), nil)
}

// sendTemplate mails a template to the customer in the ticket's thread,
// deferred to notBefore when that is set (a held customer notice; why says
// why).
func (x *Executor) sendTemplate(sc *scope, ev rules.Event, a rules.Action, notBefore time.Time, why string) error {
	links := x.links(sc.v.ID)
	if a.Template == templateThankYou {
		var err error
		if links.Ratings, err = x.satisfactionLinks(sc, ev); err != nil {
			return err
		}
	}
	data := rules.DataFor(ev, links)
	lang := x.language(sc)
	if err := x.proposed(sc, ev, lang, &data); err != nil {
		return err
	}
	data.Inbox.ResponseTime = x.promise(sc, ev.Now)
	r, ok, err := x.renderIn(sc, a.Template, lang, data)
	if !ok {
		return err
	}
	inReplyTo, refs, idx, topic := x.thread(sc)
	m := compose.Message{
		From:    compose.Address{Name: sc.v.Inbox.Name, Email: sc.v.Inbox.Address},
		To:      []compose.Address{{Name: sc.v.Customer.Name, Email: sc.v.Customer.Email}},
		Subject: threading.TagSubject(r.Subject, sc.v.ID, x.opts.TagPrefix), InReplyTo: inReplyTo, References: refs,
		Text: r.Text, HTML: r.HTML, ThreadIndex: idx, ThreadTopic: topic,
	}
	q, err := x.queue(sc, outgoing{kind: storage.OutboxToCustomer, auto: a.Auto, to: []string{sc.v.Customer.Email}, template: a.Template, notBefore: notBefore}, m)
	if err != nil {
		return err
	}
	sc.notices = append(sc.notices, notice{template: a.Template, q: q})
	what := fmt.Sprintf("%s to %s", a.Template, sc.v.Customer.Email)
	switch {
	case q.held:
		return sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventMailHeld, "", fmt.Sprintf("%s held: the ticket's mail fuse has tripped; it is sent when a lead releases the ticket's mail (rule %s)", what, a.Rule), nil)
	case q.due.After(x.opts.Clock.Now()):
		return sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventMailDeferred, "", fmt.Sprintf("%s held until %s: %s (rule %s)", what, q.due.UTC().Format("Mon 2 Jan 15:04 MST"), strings.TrimPrefix(why, "held: "), a.Rule), nil)
	}
	return sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventMailQueued, "", fmt.Sprintf("%s (rule %s)", what, a.Rule), nil)
}

// proposed fills when resolution was last proposed, for the nudge's
// honest "we asked 2 days ago", in the customer's language lang ("vor 2
// Tagen"), as the promise is.
func (x *Executor) proposed(sc *scope, ev rules.Event, lang string, data *rules.TemplateData) error {
	if sc.v.State != vocab.StateProposed && sc.v.State != vocab.StateUnconfirmed {
		return nil
	}
	evs, err := sc.tx.Events(sc.ctx, sc.v.ID, vocab.EventResolveRequested)
	if err != nil || len(evs) == 0 {
		return err
	}
	at := evs[len(evs)-1].CreatedAt
	data.Ticket.ProposedAt, data.Ticket.ProposedAgo = at, rules.DescribeAgoIn(lang, ev.Now.Sub(at))
	return nil
}
