package followup

import (
	"fmt"
	"strings"
	"time"

	"github.com/tendhq/tend/rules"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/vocab"
)

// collisionWindow: a reply that references none of our notifications
// (the agent wrote to the signed address afresh, or the client dropped
// the headers) is held when another agent answered the customer this
// shortly before it arrived: two replies within seconds of each other
// were written without seeing each other.
const collisionWindow = 2 * time.Minute

// holdIfAnswered holds an agent's reply when someone else has answered the
// customer since the agent last saw the ticket, and mails the agent who
// answered, when and what. It reports whether the reply was held; a held
// reply is not sent and none of its commands run.
func (x *Executor) holdIfAnswered(sc *scope, ag *storage.Agent, clean string) (bool, error) {
	msg := sc.trigger
	// The second of two replies must see the first's answer.
	if err := sc.tx.LockTicket(sc.ctx, sc.v.ID); err != nil {
		return false, err
	}
	seen, err := x.seenSince(sc, msg)
	if err != nil {
		return false, err
	}
	queued, err := sc.tx.Events(sc.ctx, sc.v.ID, vocab.EventReplyQueued)
	if err != nil {
		return false, err
	}
	var other *storage.Event
	for i, e := range queued {
		// At the same instant counts: the fake clock of a test, or two
		// replies within the clock's resolution, did not see each other.
		if !strings.EqualFold(e.Actor, ag.Email) && !e.CreatedAt.Before(seen) {
			other = &queued[i]
		}
	}
	if other == nil {
		return false, nil
	}
	by := rules.Person{Address: other.Actor}
	if a := findAgent(sc.agents, other.Actor); a != nil {
		by.Name = a.Name
	}
	theirs := other.Detail
	if other.MessageRowID != nil {
		m, err := sc.tx.Message(sc.ctx, *other.MessageRowID)
		if err != nil {
			return false, err
		}
		_, theirs, _ = parseCommands(newText(&m))
	}
	detail := fmt.Sprintf("reply by %s held: %s answered the customer at %s, after the notification %s replied to; #send sends it, #note keeps it internal",
		ag.Email, nameOr(by.Name, by.Address), other.CreatedAt.UTC().Format("15:04:05 MST"), ag.Email)
	if err := sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventReplyHeld, ag.Email, detail, &msg.ID); err != nil {
		return false, err
	}
	ev, err := x.event(sc, vocab.EventMessageReceived)
	if err != nil {
		return false, err
	}
	data := rules.DataFor(ev, x.links(sc.v.ID))
	data.Agent = rules.Person{Address: ag.Email, Name: ag.Name}
	data.Held = rules.HeldData{By: by, At: other.CreatedAt, Text: theirs, Yours: clean}
	return true, x.mailAgent(sc, ag, "notify_held", data)
}

// seenSince is when the agent last saw the ticket: the newest of our
// notifications on it that their mail answers (In-Reply-To, References),
// or for a reply written in the web view the newest message the page
// showed, else collisionWindow before their mail arrived.
func (x *Executor) seenSince(sc *scope, msg *storage.Message) (time.Time, error) {
	var seen time.Time
	for _, id := range append(strings.Fields(msg.References), msg.InReplyTo) {
		id = strings.Trim(id, "<>")
		if msg.Source == storage.SourceWeb {
			// Written in the web view, which names the newest message its
			// writer had on screen: everything up to it was seen (the
			// microsecond makes an answer stored with it count as seen).
			for _, m := range sc.msgs {
				if m.MessageID == id && m.ID != msg.ID && !m.ReceivedAt.Before(seen) {
					seen = m.ReceivedAt.Add(time.Microsecond)
				}
			}
			continue
		}
		if _, ours := x.opts.Signer.ParseMessageID(id); !ours {
			continue
		}
		o, ok, err := sc.tx.OutboxMailByMessageID(sc.ctx, id)
		if err != nil {
			return time.Time{}, err
		}
		if ok && o.Kind == storage.OutboxToStaff && o.TicketID != nil && *o.TicketID == sc.v.ID && o.CreatedAt.After(seen) {
			seen = o.CreatedAt
		}
	}
	if seen.IsZero() {
		seen = msg.ReceivedAt.Add(-collisionWindow)
	}
	return seen, nil
}

// heldReply is the agent's newest reply on the ticket that is still held
// (neither sent by #send nor kept by #note), or nil.
func (x *Executor) heldReply(sc *scope, ag *storage.Agent) (*storage.Message, error) {
	evs, err := sc.tx.Events(sc.ctx, sc.v.ID, vocab.EventReplyHeld, vocab.EventReplyReleased, vocab.EventReplyNoted)
	if err != nil {
		return nil, err
	}
	var held []int64
	for _, e := range evs {
		if e.MessageRowID == nil || !strings.EqualFold(e.Actor, ag.Email) {
			continue
		}
		if e.Kind == vocab.EventReplyHeld {
			held = append(held, *e.MessageRowID)
			continue
		}
		for i, id := range held {
			if id == *e.MessageRowID {
				held = append(held[:i], held[i+1:]...)
				break
			}
		}
	}
	if len(held) == 0 {
		return nil, nil
	}
	id := held[len(held)-1]
	m, err := sc.tx.Message(sc.ctx, id)
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// sendHeld is #send: the agent's held reply goes to the customer after
// all, as it would have, and its commands run.
func (x *Executor) sendHeld(sc *scope, ag *storage.Agent, by string) error {
	held, err := x.heldReply(sc, ag)
	if err != nil {
		return err
	}
	if held == nil {
		return x.commandError(sc, ag, []string{"#send: you have no held reply on this ticket"}, "")
	}
	cmds, clean, _ := parseCommands(newText(held))
	if err := sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventReplyReleased, ag.Email, "held reply sent anyway (#send)", &held.ID); err != nil {
		return err
	}
	if err := x.answer(sc, ag, held, clean, cmds); err != nil {
		return err
	}
	return x.runCommands(sc, cmds, ag, by)
}

// noteHeld is #note in answer to the warning: the held reply becomes an
// internal note. It reports whether there was one.
func (x *Executor) noteHeld(sc *scope, ag *storage.Agent) (bool, error) {
	held, err := x.heldReply(sc, ag)
	if err != nil || held == nil {
		return false, err
	}
	_, clean, _ := parseCommands(newText(held))
	if err := sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventReplyNoted, ag.Email, "held reply kept as an internal note (#note)", &held.ID); err != nil {
		return false, err
	}
	return true, sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventNote, ag.Email, clean, &held.ID)
}
