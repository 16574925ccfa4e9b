package followup

import (
	"fmt"

	"github.com/tendhq/tend/mail/agentcmd"
	"github.com/tendhq/tend/mail/replytext"
	"github.com/tendhq/tend/storage"
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
