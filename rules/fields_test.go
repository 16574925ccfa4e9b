package rules

import (
	"os"
	"path/filepath"
	"testing"
)

// TestAgentFreeBody: a body that reads the Agent anywhere (a field of
// dot, of $, inside with or range, in a template it defines, in its HTML
// only) must be written per agent; one that does not can be shared. The
// subject does not count: it is rendered for each mail.
func TestAgentFreeBody(t *testing.T) {
	t.Parallel()
	const name = "notify_customer_message"
	tests := []struct {
		label, text, html string
		free              bool
	}{
		{"no agent", "{{.Customer.Name}} wrote:\n{{.Message.Text}}\n{{range .History}}#{{.Number}} {{.Subject}}\n{{end}}", "", true},
		{"agent's name", "Hi {{.Agent.Name}},\n{{.Message.Text}}", "", false},
		{"with the agent", "{{with .Agent}}Hi {{.Name}}{{end}}", "", false},
		{"from the root variable", "{{range .History}}{{$.Agent.Address}}{{end}}", "", false},
		{"in a variable", "{{$a := .Agent}}{{$a.Name}}", "", false},
		{"in a condition", "{{if eq .Agent.Name \"Lena\"}}hello{{end}}", "", false},
		{"in a defined template", "{{define \"sig\"}}{{.Agent.Name}}{{end}}{{.Message.Text}}{{template \"sig\" .}}", "", false},
		{"passed to a defined template", "{{define \"sig\"}}{{.Name}}{{end}}{{template \"sig\" .Agent}}", "", false},
		{"in a chain", "{{(.).Agent.Name}}", "", false},
		{"in the else branch", "{{if .Count}}many{{else}}{{.Agent.Name}}{{end}}", "", false},
		{"in the HTML only", "{{.Message.Text}}", "<p>Hi {{.Agent.Name}}</p>", false},
		{"HTML without agent", "{{.Message.Text}}", "<pre>{{.Message.Text}}</pre>", true},
		{"in the subject only", "{{.Message.Text}}", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.label, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			subject := "{{.Ticket.Tag}} new"
			if tc.label == "in the subject only" {
				subject = "{{.Ticket.Tag}} for {{.Agent.Name}}"
			}
			write(t, filepath.Join(dir, name+".txt.tmpl"), "Subject: "+subject+"\n\n"+tc.text)
			if tc.html != "" {
				write(t, filepath.Join(dir, name+".html.tmpl"), tc.html)
			}
			tm, err := LoadTemplates(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := tm.AgentFreeBody(name, "", ""); got != tc.free {
				t.Errorf("AgentFreeBody = %v, want %v", got, tc.free)
			}
		})
	}
}

// TestAgentFreeBodyLayers: the answer is the picked layer's (an inbox's
// override naming the agent is per agent for that inbox only), and a
// template nobody defines is not free.
func TestAgentFreeBodyLayers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "sales@acme.test", "notify_note.txt.tmpl"), "Subject: note\n\nHi {{.Agent.Name}}: {{.Message.Text}}")
	tm, err := LoadTemplates(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tm.AgentFreeBody("notify_note", "Sales@acme.test", "") {
		t.Error("the inbox's override names the agent, yet its body counts as free")
	}
	if !tm.AgentFreeBody("notify_note", "support@acme.test", "") {
		t.Error("another inbox's default body counts as per agent")
	}
	if tm.AgentFreeBody("no_such", "", "") {
		t.Error("an unknown template counts as free")
	}
	for _, n := range TemplateNames() {
		if !tm.AgentFreeBody(n, "", "") {
			t.Errorf("default %s names the agent in its body: its notifications are written per agent", n)
		}
	}
}

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
