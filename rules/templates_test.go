package rules

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tendhq/tend/vocab"
)

func TestDefaultTemplatesRender(t *testing.T) {
	tm, err := LoadTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	data := SampleData()
	for _, name := range TemplateNames() {
		t.Run(name, func(t *testing.T) {
			r, err := tm.Render(name, "support@example.com", data)
			if err != nil {
				t.Fatal(err)
			}
			if r.Subject == "" || r.Text == "" || r.HTML == "" {
				t.Fatalf("empty part: %+v", r)
			}
			for _, part := range []string{r.Subject, r.Text, r.HTML} {
				if strings.Contains(part, "<no value>") {
					t.Errorf("unfilled field in %q", part)
				}
			}
			if Ticketless(name) {
				if strings.Contains(r.Subject, "[#123]") || !strings.Contains(r.Text, data.Mailbox.Error) || !strings.Contains(r.HTML, data.Mailbox.Name) {
					t.Errorf("mailbox alert %s: subject %q tagged, or text lacks the server's error:\n%s", name, r.Subject, r.Text)
				}
			} else if !strings.Contains(r.Subject, "[#123]") {
				t.Errorf("subject %q lacks the ticket tag", r.Subject)
			}
			if customerFacing(name) && strings.Contains(r.Text+r.HTML, sampleBodyMarker) {
				t.Errorf("customer mail quotes the customer's message")
			}
		})
	}
}

func TestAcknowledgementText(t *testing.T) {
	tm, err := LoadTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	d := SampleData()
	d.Message.Text = "please reset my password, code 991122"
	r, err := tm.Render("acknowledgement", "", d)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`We received your message about "Invoice 2024-17 is wrong" (ticket #123)`,
		"invoice.pdf, screenshot.png",
		"A person will answer within 4 hours.",
		"To add information, just reply to this mail.",
	} {
		if !strings.Contains(r.Text, want) {
			t.Errorf("acknowledgement lacks %q:\n%s", want, r.Text)
		}
	}
	if strings.Contains(r.Text+r.HTML+r.Subject, "991122") {
		t.Error("acknowledgement quotes the customer's message (Ticket Trick)")
	}
}

// The customer controls the subject: it must not break the header or the HTML.
func TestRenderHostileSubject(t *testing.T) {
	tm, err := LoadTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	d := SampleData()
	d.Ticket.Subject = "Hi\r\nBcc: victim@example.org\t<script>alert(1)</script>"
	r, err := tm.Render("acknowledgement", "", d)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(r.Subject, "\r\n\t") {
		t.Errorf("subject keeps line breaks: %q", r.Subject)
	}
	if strings.Contains(r.HTML, "<script>") {
		t.Errorf("HTML not escaped: %s", r.HTML)
	}
}

func TestTemplateOverrides(t *testing.T) {
	tm, err := LoadTemplates(filepath.Join("testdata", "templates", "good"))
	if err != nil {
		t.Fatal(err)
	}
	d := SampleData()
	tests := []struct {
		name, inbox, subject, text string
		html                       bool
	}{
		{"per-inbox override with HTML", "Sales@ACME.test", "Sales got it: Invoice 2024-17 is wrong [#123]", "Sales team here. Ticket #123.", true},
		{"global override, text only", "support@acme.test", "We got it [#123]", "Thanks Jane Doe, ticket #123 is in. Answer within 4 hours.", false},
		{"no inbox", "", "We got it [#123]", "Thanks Jane Doe", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tm.Render("acknowledgement", tc.inbox, d)
			if err != nil {
				t.Fatal(err)
			}
			if r.Subject != tc.subject || !strings.Contains(r.Text, tc.text) || (r.HTML != "") != tc.html {
				t.Errorf("got %+v", r)
			}
		})
	}
	// Templates not overridden come from the defaults.
	r, err := tm.Render("nudge", "sales@acme.test", d)
	if err != nil || !strings.Contains(r.Text, "have not heard back") {
		t.Errorf("default nudge: %+v, %v", r, err)
	}
	if _, err := tm.Render("no_such", "", d); !errors.Is(err, ErrUnknownTemplate) {
		t.Errorf("unknown template: %v, want ErrUnknownTemplate", err)
	}
}

func TestBrokenTemplatesFailAtLoad(t *testing.T) {
	tests := []struct{ dir, want string }{
		{"broken-field", "can't evaluate field Nmber"},
		{"broken-syntax", "nudge.txt.tmpl"},
		{"no-subject", `nudge.txt.tmpl:1: the first line must be "Subject: …"`},
		{"quotes-body", "must not quote the customer's message"},
		{"html-only", "HTML variant without nudge.txt.tmpl"},
		{"bad-folder", "folder name must be an inbox address"},
		{"does-not-exist", "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.dir, func(t *testing.T) {
			_, err := LoadTemplates(filepath.Join("testdata", "templates", tc.dir))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadTemplates = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// Rules may name templates that exist only in the template folder.
func TestRulesSeeExtraTemplates(t *testing.T) {
	tm, err := LoadTemplates(filepath.Join("testdata", "templates", "extra"))
	if err != nil {
		t.Fatal(err)
	}
	src := []byte("- name: esc\n  on: ticket.created\n  do:\n    - notify: {template: notify_escalation, to: leads}\n")
	if _, err := Load("r.yaml", src, Options{Templates: tm}); err != nil {
		t.Errorf("with the extra template: %v", err)
	}
	if _, err := Load("r.yaml", src, Options{}); err == nil || !strings.Contains(err.Error(), `r.yaml:4: rule "esc": notify: unknown template "notify_escalation"`) {
		t.Errorf("without it: %v", err)
	}
}

func TestDataFor(t *testing.T) {
	tk := baseTicket()
	tk.Assignee = Person{Address: "lena@acme.test", Name: "Lena"}
	ev := Event{Type: vocab.EventOutboxFailed, Ticket: tk, Outbox: &Outbox{To: "jane@example.com", Reason: "550 no such user"}}
	d := DataFor(ev, Links{Ticket: "https://t/42"})
	if d.Ticket.Tag != "[#42]" || d.Inbox.ResponseTime != "within 4 hours" || d.Reason != "550 no such user" ||
		d.Agent.Name != "Lena" || d.Links.Ticket != "https://t/42" {
		t.Errorf("DataFor = %+v", d)
	}
	m := customerMsg("body")
	m.Attachments = []string{"a.pdf"}
	d = DataFor(Event{Ticket: tk, Message: m}, Links{})
	if d.Message.Text != "body" || len(d.Message.Attachments) != 1 {
		t.Errorf("message data = %+v", d.Message)
	}
}

// TestRenderLaterIn: rendering a template's subject now and its body
// later gives what rendering it at once does, for every template.
func TestRenderLaterIn(t *testing.T) {
	tm, err := LoadTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	data := SampleData()
	for _, name := range TemplateNames() {
		now, err := tm.RenderIn(name, "support@example.com", "", data)
		if err != nil {
			t.Fatal(err)
		}
		subject, body, err := tm.RenderLaterIn(name, "support@example.com", "", data)
		if err != nil {
			t.Fatal(err)
		}
		text, html, err := body()
		if err != nil {
			t.Fatal(err)
		}
		if (Rendered{Subject: subject, Text: text, HTML: html}) != now || text == "" {
			t.Errorf("%s: later %q / %q / %q, at once %+v", name, subject, text, html, now)
		}
	}
	if _, _, err := tm.RenderLaterIn("no_such_template", "support@example.com", "", data); !errors.Is(err, ErrUnknownTemplate) {
		t.Errorf("unknown template: %v", err)
	}
}
