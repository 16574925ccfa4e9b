package followup

// command is one of an agent's one-line commands.
type command struct{ Name, Arg string }

func (c command) String() string {
	if c.Arg == "" {
		return "#" + c.Name
	}
	return "#" + c.Name + " " + c.Arg
}

// parseCommands splits an agent's text into commands, the text the
// customer would see, and problems.
func parseCommands(text string) ([]command, string, []string) { return nil, text, nil }

func hasCommand(cmds []command, name string) bool {
	for _, c := range cmds {
		if c.Name == name {
			return true
		}
	}
	return false
}
