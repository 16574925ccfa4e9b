package followup

import (
	"fmt"
	"strings"

	"github.com/tendhq/tend/mail/compose"
	"github.com/tendhq/tend/mail/header"
	"github.com/tendhq/tend/rules"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/threading"
	"github.com/tendhq/tend/vocab"
)

// agentMail applies mail that came through an agent's signed address: the
// token named the ticket and the agent; the sender must be that agent
// (docs/design.md, security model), else nothing runs and nothing is sent.
func (x *Executor) agentMail(sc *scope) error {
	msg := sc.trigger
	// Automatic mail (an agent's out-of-office, a bounce) is never the
	// agent's answer: relaying it to the customer is how a loop starts.
	if why, err := x.automaticSignal(sc, msg); err != nil || why != "" {
		if err != nil {
			return err
		}
		return x.holdAutoReply(sc, why)
	}
	var ag *storage.Agent
	for i := range sc.agents {
		if sc.agents[i].ID == *msg.AgentID {
			ag = &sc.agents[i]
		}
	}
	if why := agentSenderProblem(msg, ag); why != "" {
		return x.quarantine(sc, ag, why)
	}
	text := newText(msg)
	cmds, clean, problems := parseCommands(text)
	problems = append(problems, x.checkFollowUps(sc, cmds)...)
	if len(problems) > 0 {
		return x.commandError(sc, ag, problems, clean)
	}
	note := msg.Note || hasCommand(cmds, "note")
	if hasCommand(cmds, "send") && strings.TrimSpace(clean) != "" {
		// #send sends the held reply; text beside it is not a second
		// answer to the customer, so it stays internal.
		note = true
	}
	if err := sc.tx.AddParticipants(sc.ctx, sc.v.ID, []string{ag.Email}, "agent"); err != nil {
		return err
	}
	by := fmt.Sprintf("%s <%s>", ag.Name, ag.Email)
	switch {
	case note:
		text := noteText(cmds, clean)
		if strings.TrimSpace(text) == "" {
			// A bare #note in answer to the warning keeps the held reply.
			if kept, err := x.noteHeld(sc, ag); err != nil || kept {
				if err != nil {
					return err
				}
				return x.runCommands(sc, cmds, ag, by)
			}
		}
		if err := sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventNote, ag.Email, text, &msg.ID); err != nil {
			return err
		}
		ev, err := x.agentEvent(sc, ag, msg, text, true, cmds)
		if err != nil {
			return err
		}
		if err := x.run(sc, ev); err != nil {
			return err
		}
		if err := x.notify(sc, ev, "notify_note", rules.ToAgents, "note", ag.ID); err != nil {
			return err
		}
	case strings.TrimSpace(clean) != "":
		if held, err := x.holdIfAnswered(sc, ag, clean); err != nil || held {
			return err
		}
		if err := x.answer(sc, ag, msg, clean, cmds); err != nil {
			return err
		}
	}
	return x.runCommands(sc, cmds, ag, by)
}

// answer relays an agent's reply to the customer and tells the rules.
func (x *Executor) answer(sc *scope, ag *storage.Agent, msg *storage.Message, clean string, cmds []command) error {
	if err := x.sendAgentReply(sc, ag, clean, msg); err != nil {
		return err
	}
	now := sc.tx.Now()
	if err := sc.tx.UpdateTicket(sc.ctx, sc.v.ID, storage.TicketUpdate{FirstResponseAt: &now, LastAgentAt: &now}); err != nil {
		return err
	}
	ev, err := x.agentEvent(sc, ag, msg, clean, false, cmds)
	if err != nil {
		return err
	}
	return x.run(sc, ev)
}

// agentEvent is message.received for an agent's mail: the author is the
// agent as configured (not the recipient of a notification), the text is
// what was answered or noted.
func (x *Executor) agentEvent(sc *scope, ag *storage.Agent, msg *storage.Message, text string, note bool, cmds []command) (rules.Event, error) {
	ev, err := x.event(sc, vocab.EventMessageReceived)
	if err != nil {
		return ev, err
	}
	ev.Message = x.ruleMessage(msg, rules.RoleAgent)
	ev.Message.From = rules.Person{Address: ag.Email, Name: ag.Name}
	ev.Message.Note, ev.Message.Text = note, text
	for _, c := range cmds {
		ev.Message.Commands = append(ev.Message.Commands, c.String())
	}
	return ev, nil
}

// agentSenderProblem says why mail through an agent's signed address is
// not that agent's, "" when it is. A reply token travels in every
// notification and can leak (a forwarded mail, a mailing list, a
// compromised mailbox), so holding it proves nothing about the sender:
// the From and the envelope sender must both be the agent, and, where
// the sender was checked at all, an aligned DKIM or SPF pass must prove
// the agent's domain. Anything else is held.
func agentSenderProblem(msg *storage.Message, ag *storage.Agent) string {
	switch {
	case ag == nil:
		return "the token names no configured agent"
	case !strings.EqualFold(msg.FromAddr, ag.Email):
		return fmt.Sprintf("its From is %s", nameOr(msg.FromAddr, "missing"))
	case !strings.EqualFold(msg.EnvFrom, ag.Email):
		return fmt.Sprintf("its envelope sender is %s", nameOr(msg.EnvFrom, "empty (a bounce or an automatic mail)"))
	case msg.Auth.Method != "" && !msg.Auth.Authenticated():
		return "its sender is not authenticated (" + describeAuth(msg.Auth) + ")"
	}
	return ""
}

// quarantine holds mail to a signed address that is not the agent's (why
// says what gave it away).
func (x *Executor) quarantine(sc *scope, ag *storage.Agent, why string) error {
	msg := sc.trigger
	who := "an unknown agent"
	if ag != nil {
		who = ag.Email
	}
	detail := fmt.Sprintf("mail to %s's signed reply address from %s was not accepted as %s's: %s. It is held as an unverified comment; no command ran and nothing was sent", who, nameOr(msg.FromAddr, "no From"), who, why)
	if err := sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventQuarantined, msg.FromAddr, detail, &msg.ID); err != nil {
		return err
	}
	if ag == nil {
		return nil
	}
	return x.tellAgent(sc, ag, detail)
}

// tellAgent mails one agent the command_error template with text as the
// error.
func (x *Executor) tellAgent(sc *scope, ag *storage.Agent, text string) error {
	ev, err := x.event(sc, vocab.EventMessageReceived)
	if err != nil {
		return err
	}
	data := rules.DataFor(ev, x.links(sc.v.ID))
	data.Agent, data.Error = rules.Person{Address: ag.Email, Name: ag.Name}, text
	return x.mailAgent(sc, ag, "command_error", data)
}

// mailAgent mails one agent a staff template, with a Reply-To that is the
// agent's signed address for the ticket: their answer acts on it.
func (x *Executor) mailAgent(sc *scope, ag *storage.Agent, template string, data rules.TemplateData) error {
	r, ok, err := x.render(sc, template, data)
	if !ok {
		return err
	}
	m := compose.Message{
		From:    compose.Address{Name: sc.v.Inbox.Name, Email: sc.v.Inbox.Address},
		To:      []compose.Address{{Name: ag.Name, Email: ag.Email}},
		ReplyTo: []compose.Address{{Name: sc.v.Inbox.Name, Email: x.opts.Signer.Sign(threading.PurposeReply, sc.v.ID, ag.ID) + "@" + x.opts.Domain}},
		Subject: threading.TagSubject(r.Subject, sc.v.ID, x.opts.TagPrefix), Text: r.Text, HTML: r.HTML,
	}
	_, err = x.queue(sc, outgoing{kind: storage.OutboxToStaff, auto: true, to: []string{ag.Email}, template: "command_error"}, m)
	return err
}

// sendAgentReply relays the agent's new text to the customer and the CCs
// on the ticket, from the inbox address with the agent's name: no agent
// address appears anywhere in it.
func (x *Executor) sendAgentReply(sc *scope, ag *storage.Agent, text string, msg *storage.Message) error {
	to := []compose.Address{{Name: sc.v.Customer.Name, Email: sc.v.Customer.Email}}
	rcpts := []string{sc.v.Customer.Email}
	var cc []compose.Address
	for _, p := range sc.v.Participants {
		if p.Role == "cc" && p.Email != sc.v.Customer.Email {
			cc = append(cc, compose.Address{Email: p.Email})
			rcpts = append(rcpts, p.Email)
		}
	}
	atts, err := x.attachments(sc, msg)
	if err != nil {
		return err
	}
	inReplyTo, refs, idx, topic := x.thread(sc)
	subject := threading.DisplaySubject(sc.v.Subject, x.opts.TagPrefix)
	if n := threading.NormalizeSubject(subject); n != "" && !strings.HasPrefix(strings.ToLower(subject), "re:") {
		subject = "Re: " + subject
	}
	m := compose.Message{
		From: compose.Address{Name: fmt.Sprintf("%s (%s)", nameOr(ag.Name, "Support"), sc.v.Inbox.Name), Email: sc.v.Inbox.Address},
		To:   to, Cc: cc, Subject: threading.TagSubject(subject, sc.v.ID, x.opts.TagPrefix),
		InReplyTo: inReplyTo, References: refs, ThreadIndex: idx, ThreadTopic: topic, Text: text, Attachments: atts,
	}
	q, err := x.queue(sc, outgoing{kind: storage.OutboxToCustomer, to: rcpts}, m)
	if err != nil {
		return err
	}
	if q.held {
		return sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventReplyHeld, ag.Email, fmt.Sprintf("reply by %s to %s held: the ticket's mail fuse has tripped; it is sent when a lead releases the ticket's mail", ag.Name, strings.Join(rcpts, ", ")), &msg.ID)
	}
	return sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventReplyQueued, ag.Email, fmt.Sprintf("reply by %s to %s", ag.Name, strings.Join(rcpts, ", ")), &msg.ID)
}

// attachments are the attachments of msg, passed through from its raw
// message. They are cut by header.ParseMIME, the parse ingest stores and
// the web serves attachments from, so a forwarded file has the bytes the
// ticket page offers; enmime's default parse would also run charset
// detection on every text part (it was 12% of the pipeline's CPU).
func (x *Executor) attachments(sc *scope, msg *storage.Message) ([]compose.Attachment, error) {
	if pre := msg.Prepared; pre != nil && pre.HasAttachments {
		// Kept from the processor's parse, the same header.ParseMIME:
		// not read and parsed again inside the transaction.
		out := make([]compose.Attachment, len(pre.Attachments))
		for i, a := range pre.Attachments {
			out[i] = compose.Attachment{Filename: a.Filename, ContentType: a.ContentType, Data: a.Data}
		}
		return out, nil
	}
	raw, err := sc.tx.Raw(sc.ctx, msg.RawHash)
	if err != nil {
		return nil, err
	}
	env, err := header.ParseMIME(raw)
	if err != nil {
		// The text is relayed; attachments of a message enmime cannot
		// read are not, and the agent sees why on the timeline.
		return nil, sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventMailAttachmentsDropped, msg.FromAddr, "attachments not relayed: "+err.Error(), &msg.ID)
	}
	var out []compose.Attachment
	for _, p := range env.Attachments {
		out = append(out, compose.Attachment{Filename: p.FileName, ContentType: p.ContentType, Data: p.Content})
	}
	return out, nil
}
