package followup

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tendhq/tend/mail/compose"
	"github.com/tendhq/tend/rules"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/threading"
)

// staff returns the agents a notification goes to.
func staff(sc *scope, to string, except int64) []storage.Agent {
	var out []storage.Agent
	add := func(a storage.Agent) {
		// Nobody hears of a ticket they may not see (agents[].inboxes;
		// postmaster tickets are the admins').
		if a.ID != except && a.SeesTicket(sc.v.Inboxes) && !slices.ContainsFunc(out, func(b storage.Agent) bool { return b.ID == a.ID }) {
			out = append(out, a)
		}
	}
	for _, a := range sc.agents {
		switch to {
		case rules.ToAgents:
			add(a)
		case rules.ToLeads:
			if a.Role == storage.RoleLead || a.Role == storage.RoleAdmin {
				add(a)
			}
		case rules.ToAssignee:
			if sc.v.Assignee != nil && a.ID == sc.v.Assignee.ID {
				add(a)
			}
		case rules.ToAssigneeOrAgents:
			if sc.v.Assignee == nil || a.ID == sc.v.Assignee.ID {
				add(a)
			}
		}
	}
	// The bootstrap admin has no real mailbox.
	return slices.DeleteFunc(out, func(a storage.Agent) bool {
		return strings.HasSuffix(a.Email, "@localhost") && a.Role == storage.RoleAdmin
	})
}

// notify mails a staff template to each agent of to, each with a Reply-To
// that is that agent's own signed address for this ticket: a reply to a
// note notification stays internal. Notifications are coalesced per
// agent, ticket and template: within NotifyWindow of the last one, the
// next waits for the window's end, and further ones update that waiting
// mail ("3 new messages") instead of adding mail. The waiting mail is an
// outbox row with a not-before time, so it survives a restart. The
// agents' new mails are committed together (batchMail).
func (x *Executor) notify(sc *scope, ev rules.Event, template, to, rule string, except int64) error {
	return x.batchMail(sc, func() error { return x.notifyAll(sc, ev, template, to, except) })
}

// notifyAll is notify's work, with the mail it queues batched.
func (x *Executor) notifyAll(sc *scope, ev rules.Event, template, to string, except int64) error {
	purpose := threading.PurposeReply
	if template == "notify_note" {
		purpose = threading.PurposeNote
	}
	tm, err := sc.tx.TemplatedMail(sc.ctx, sc.v.ID)
	if err != nil {
		return err
	}
	told := x.told(tm.Outcomes)
	now := x.opts.Clock.Now()
	var content *notifyContent
	hist, err := x.historyData(sc)
	if err != nil {
		return err
	}
	var agents []storage.Agent
	var streams []string
	for _, ag := range staff(sc, to, except) {
		key := fmt.Sprintf("%s/%d", template, ag.ID)
		if sc.notified[key] {
			continue
		}
		if sc.notified == nil {
			sc.notified = map[string]bool{}
		}
		sc.notified[key] = true
		agents = append(agents, ag)
		streams = append(streams, notifyStream(template, ag.ID))
	}
	// The agents' mails share one written body when the template's body
	// names no agent and their data agree (the same count): rendering and
	// encoding it was the bulk of composing each, and it was done once per
	// agent (compose.Content).
	shareable := x.opts.Templates.AgentFreeBody(template, sc.v.Inbox.Address, "")
	shared := map[int]*compose.Content{}
	withBody := func(m compose.Message, count int) compose.Message {
		if !shareable {
			return m
		}
		c := shared[count]
		if c == nil {
			c = compose.NewContent(fmt.Sprintf("%d/%s/%d", sc.v.ID, template, count), m)
			shared[count] = c
		}
		m.Body, m.Attachments, m.Content = nil, nil, c
		return m
	}
	for i, ag := range agents {
		stream := streams[i]
		last, found := tm.Latest[stream]
		data := rules.DataFor(ev, x.links(sc.v.ID))
		// The ticket as the event's actions left it, not as the event saw it.
		data.Ticket.State, data.Ticket.Priority, data.Ticket.RepeatContacts = sc.v.State, sc.v.Priority, sc.v.RepeatContacts
		if content == nil {
			c, err := x.notifyContent(sc, data)
			if err != nil {
				return err
			}
			content = &c
		}
		data.Message.Text, data.Message.Attachments = content.text, content.listed
		data.History = hist
		data.Agent = rules.Person{Address: ag.Email, Name: ag.Name}
		data.Told, data.Count = told, 1
		waiting := found && last.SentAt == nil && last.LeaseOwner == "" &&
			(last.Status == storage.OutboxHeld || last.Status == storage.OutboxPending)
		if waiting {
			data.Count = last.Count + 1
		}
		subject, body, ok, err := x.renderLater(sc, template, data)
		if !ok {
			if err != nil {
				return err
			}
			continue
		}
		reply := x.opts.Signer.Sign(purpose, sc.v.ID, ag.ID) + "@" + x.opts.Domain
		from := sc.v.Inbox.Name
		if ev.Message != nil && ev.Message.From.Address != "" {
			from = fmt.Sprintf("%s via %s", nameOr(ev.Message.From.Name, ev.Message.From.Address), sc.v.Inbox.Name)
		}
		m := compose.Message{
			From:    compose.Address{Name: from, Email: sc.v.Inbox.Address},
			To:      []compose.Address{{Name: ag.Name, Email: ag.Email}},
			ReplyTo: []compose.Address{{Name: sc.v.Inbox.Name, Email: reply}},
			Subject: threading.TagSubject(subject, sc.v.ID, x.opts.TagPrefix), Body: body,
			Attachments: content.forward,
		}
		if waiting {
			c, err := x.build(sc.v.ID, last.ID, true, withBody(m, data.Count))
			if err != nil {
				return err
			}
			done, err := sc.tx.RequeueMail(sc.ctx, last.ID, c.Raw, data.Count)
			if err != nil {
				return err
			}
			if done {
				continue
			}
			// A sender claimed it meanwhile: this one waits for the next window.
		}
		o := outgoing{kind: storage.OutboxToStaff, auto: true, to: []string{ag.Email}, template: template, stream: stream, count: 1}
		if found {
			sent := last.NextAttemptAt
			if last.SentAt != nil {
				sent = *last.SentAt
			}
			if next := sent.Add(x.opts.NotifyWindow); next.After(now) {
				o.notBefore = next
			}
		}
		if o.count != data.Count {
			// The waiting mail was claimed after it was rendered with a
			// higher count: render this one afresh.
			data.Count = 1
			if subject, body, ok, err = x.renderLater(sc, template, data); !ok {
				return err
			}
			m.Subject, m.Body = threading.TagSubject(subject, sc.v.ID, x.opts.TagPrefix), body
		}
		if _, err := x.queue(sc, o, withBody(m, data.Count)); err != nil {
			return err
		}
	}
	return nil
}

// notifyStream is the coalescing stream of template's notifications to
// agent (OutboxMail.Stream).
func notifyStream(template string, agent int64) string { return fmt.Sprintf("%s:%d", template, agent) }

// told describes what became of the newest mail of each customer template
// on the ticket (outs, TemplatedMail's), for staff texts that say what the
// customer was told.
func (x *Executor) told(outs map[string]storage.TemplateOutcome) map[string]string {
	now := x.opts.Clock.Now()
	out := map[string]string{}
	for name, o := range outs {
		switch {
		case o.Status == storage.OutboxHeld:
			out[name] = "held by the mail fuse"
		case o.Status == storage.OutboxFailed:
			out[name] = "failed"
		case o.Status == storage.OutboxPending && o.NextAttemptAt.After(now):
			out[name] = "held until " + o.NextAttemptAt.UTC().Format("Mon 2 Jan 15:04 MST")
		default:
			// Sent, or due now: it leaves with this very notification.
			out[name] = "sent"
		}
	}
	return out
}

func nameOr(name, addr string) string {
	if name != "" {
		return name
	}
	return addr
}
