package followup

import (
	"strings"
	"testing"

	"github.com/tendhq/tend/internal/fuzzseed"
	"github.com/tendhq/tend/storage"
)

// FuzzAgentText: whatever an agent's mail holds (text part or HTML part,
// quoted chain and signature included), reading its commands never
// panics; every command is one line starting with "#"; and the text that
// goes on to the customer holds no command any more: read again, it gives
// none.
func FuzzAgentText(f *testing.F) {
	for _, b := range fuzzseed.Files(f, "../mail/agentcmd/testdata/*.txt") {
		f.Add(string(b), "")
		f.Add("", "<p>"+strings.ReplaceAll(string(b), "\n", "<br>")+"</p>")
	}
	for _, s := range []string{"#resolve\nThanks!", "Hi\n#close duplicate of #12\n\n> #reopen\n-- \n#assign x@y", "#waiting until monday\r\n#remind 3d",
		"#note\n#resolve", " #resolve", "#RESOLVE", "#resolve\u00a0now", "#tag a\n#tag b\nbody\n#resolve"} {
		f.Add(s, "")
		f.Add("", "<div>"+strings.ReplaceAll(s, "\n", "</div><div>")+"</div>")
	}
	f.Fuzz(func(t *testing.T, text, html string) {
		cmds, customer, _ := parseCommands(newText(&storage.Message{Text: text, HTML: html}))
		for _, c := range cmds {
			if s := c.String(); !strings.HasPrefix(s, "#") || strings.ContainsAny(s, "\r\n") {
				t.Fatalf("command %q", s)
			}
		}
		if again, _, _ := parseCommands(customer); len(again) != 0 {
			t.Fatalf("the customer's text %q still holds commands %v", customer, again)
		}
	})
}
