package followup

import (
	"fmt"
	"strings"

	"github.com/tendhq/tend/mail/agentcmd"
	"github.com/tendhq/tend/mail/replytext"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/vocab"
)

// command is one of an agent's one-line commands.
type command struct {
	Name, Arg string
	// When is set for the follow-ups (#waiting until, #remind, #snooze).
	When *agentcmd.When
}

func (c command) String() string {
	if c.Arg == "" {
		return "#" + c.Name
	}
	return "#" + c.Name + " " + c.Arg
}

// parseCommands splits an agent's new text into commands, the text the
// customer would see, and problems (each a sentence for the agent).
func parseCommands(text string) ([]command, string, []string) {
	res, err := agentcmd.Parse(text)
	var problems []string
	for _, p := range res.Problems {
		problems = append(problems, p.String())
	}
	if err != nil && len(problems) == 0 {
		problems = append(problems, err.Error())
	}
	cmds := make([]command, 0, len(res.Commands))
	for _, c := range res.Commands {
		arg := c.Arg
		if c.Kind == agentcmd.Close && c.DuplicateOf != 0 {
			arg = fmt.Sprintf("duplicate of #%d", c.DuplicateOf)
		}
		cmds = append(cmds, command{Name: string(c.Kind), Arg: arg, When: c.When})
	}
	return cmds, res.Text, problems
}

func hasCommand(cmds []command, name string) bool {
	for _, c := range cmds {
		if c.Name == name {
			return true
		}
	}
	return false
}

// newText is what the sender newly wrote: the quoted chain and signature
// stripped, from the text part or, when there is none, the HTML part.
func newText(m *storage.Message) string {
	if m.Text != "" {
		return replytext.Extract(m.Text)
	}
	if m.HTML != "" {
		return replytext.ExtractHTML(m.HTML)
	}
	return ""
}

// noteText is a note's text: what "#note some text" says on its line,
// then the rest of the mail.
func noteText(cmds []command, clean string) string {
	var parts []string
	for _, c := range cmds {
		if c.Name == "note" && c.Arg != "" {
			parts = append(parts, c.Arg)
		}
	}
	if strings.TrimSpace(clean) != "" {
		parts = append(parts, clean)
	}
	return strings.Join(parts, "\n\n")
}

// runCommands applies an agent's one-line commands.
func (x *Executor) runCommands(sc *scope, cmds []command, ag *storage.Agent, by string) error {
	for _, c := range cmds {
		if err := sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventCommand, ag.Email, c.String(), nil); err != nil {
			return err
		}
		var err error
		switch c.Name {
		case "resolve":
			err = x.requestResolve(sc, by)
		case "close":
			err = x.changeState(sc, vocab.StateClosed, c.Arg, by)
		case "waiting":
			if c.When != nil {
				err = x.followUp(sc, c, c.When, by)
				break
			}
			err = x.setState(sc, vocab.StateWaiting, "", by)
		case "remind", "snooze":
			err = x.followUp(sc, c, c.When, by)
		case "assign":
			target := ag
			if c.Arg != "me" {
				target = findAgent(sc.agents, c.Arg)
			}
			if target == nil {
				// parseCommands checked the syntax; the name is checked here.
				return x.commandError(sc, ag, []string{fmt.Sprintf("#assign %s: no agent of that name or address", c.Arg)}, "")
			}
			err = x.assign(sc, target, by)
		case "priority":
			err = sc.tx.UpdateTicket(sc.ctx, sc.v.ID, storage.TicketUpdate{Priority: &c.Arg})
		case "tag":
			err = sc.tx.UpdateTicket(sc.ctx, sc.v.ID, storage.TicketUpdate{AddTags: []string{c.Arg}})
		case "send":
			err = x.sendHeld(sc, ag, by)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// commandError tells the agent what was wrong and what would have been
// sent; nothing goes to the customer.
func (x *Executor) commandError(sc *scope, ag *storage.Agent, problems []string, wouldSend string) error {
	detail := strings.Join(problems, "\n")
	if err := sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventCommandRejected, ag.Email, detail, &sc.trigger.ID); err != nil {
		return err
	}
	msg := "Nothing was sent to the customer and no command ran, because:\n" + detail
	if strings.TrimSpace(wouldSend) != "" {
		msg += "\n\nThis is what would have been sent:\n\n" + wouldSend
	}
	return x.tellAgent(sc, ag, msg)
}

// requestResolve asks the rules to propose resolution (#resolve, or a
// lead's button).
func (x *Executor) requestResolve(sc *scope, by string) error {
	if err := sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventResolveRequested, by, "resolution proposed by "+by, nil); err != nil {
		return err
	}
	ev, err := x.event(sc, vocab.EventResolveRequested)
	if err != nil {
		return err
	}
	return x.run(sc, ev)
}

// changeState is a state change made by a person: applied, then told to
// the rules (which tell the customer what they would care about).
func (x *Executor) changeState(sc *scope, state vocab.State, reason, by string) error {
	prev := sc.v.State
	if prev == state {
		return nil
	}
	if err := x.setState(sc, state, reason, by); err != nil {
		return err
	}
	ev, err := x.event(sc, vocab.EventStateChanged)
	if err != nil {
		return err
	}
	ev.Ticket.PrevState, ev.NewState, ev.Reason = prev, state, reason
	return x.run(sc, ev)
}
