package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/vocab"
)

// TestTranslationsUseTheEnglishFields: each translated customer template
// says what the English one says where it matters. For every piece of
// data the English template shows (the interval since we asked, the
// attachments, the ticket's tag, the promise, the links, the rating
// links, the reason), changing it in rules.SampleData changes the English
// mail, so it must change the translated mail too: a translation that
// still says "a few days ago", or leaves out the attachment list, fails.
func TestTranslationsUseTheEnglishFields(t *testing.T) {
	t.Parallel()
	tpl, err := LoadTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	changes := []struct {
		field  string
		change func(*TemplateData)
	}{
		{"the interval since we asked (.Ticket.ProposedAgo)", func(d *TemplateData) {
			d.Ticket.ProposedAt, d.Ticket.ProposedAgo = d.Ticket.ProposedAt.Add(-3*24*time.Hour), "5 days ago"
		}},
		{"no interval known (.Ticket.ProposedAgo empty)", func(d *TemplateData) { d.Ticket.ProposedAt, d.Ticket.ProposedAgo = time.Time{}, "" }},
		{"the attachments (.Message.Attachments)", func(d *TemplateData) { d.Message.Attachments = []string{"contract-77.docx"} }},
		{"no attachments", func(d *TemplateData) { d.Message.Attachments = nil }},
		{"the tag (.Ticket.Tag)", func(d *TemplateData) { d.Ticket.Tag = "[#987]" }},
		{"the ticket number", func(d *TemplateData) { d.Ticket.Number = 987 }},
		{"the subject", func(d *TemplateData) { d.Ticket.Subject = "Something else entirely" }},
		{"the promise (.Inbox.ResponseTime)", func(d *TemplateData) { d.Inbox.ResponseTime = "by Monday 10:00 CET" }},
		{"the solved link", func(d *TemplateData) { d.Links.Solved += "&other" }},
		{"the not-solved link", func(d *TemplateData) { d.Links.NotSolved += "&other" }},
		{"the rating links", func(d *TemplateData) { d.Links.Ratings = nil }},
		{"the reason", func(d *TemplateData) { d.Reason = "merged into #5" }},
		{"the state", func(d *TemplateData) { d.Ticket.State = vocab.StateResolved }},
		{"the customer's name", func(d *TemplateData) { d.Customer.Name = "" }},
		{"the inbox's name", func(d *TemplateData) { d.Inbox.Name = "Other Support" }},
	}
	render := func(name, lang string, d TemplateData) string {
		t.Helper()
		r, err := tpl.RenderIn(name, "", lang, d)
		if err != nil {
			t.Fatalf("%s/%s: %v", lang, name, err)
		}
		return r.Subject + "\n" + r.Text
	}
	for _, name := range TemplateNames() {
		if !customerFacing(name) {
			continue
		}
		for _, c := range changes {
			changed := SampleData()
			c.change(&changed)
			if render(name, "en", SampleData()) == render(name, "en", changed) {
				continue // the English template does not show it
			}
			for _, lang := range Languages()[1:] {
				if render(name, lang, SampleData()) == render(name, lang, changed) {
					t.Errorf("%s/%s does not show %s, which the English %s does", lang, name, c.field, name)
				}
			}
		}
	}
}

// TestDescribeAgoIn: the interval in the nudge, in each language.
func TestDescribeAgoIn(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		lang string
		d    time.Duration
		want string
	}{
		{"en", 48 * time.Hour, "2 days ago"},
		{"", time.Hour, "1 hour ago"},
		{"de", 48 * time.Hour, "vor 2 Tagen"},
		{"de", 24 * time.Hour, "vor 1 Tag"},
		{"de", 3 * time.Hour, "vor 3 Stunden"},
		{"fr", 48 * time.Hour, "il y a 2 jours"},
		{"fr", 5 * time.Minute, "il y a 5 minutes"},
		{"es", 48 * time.Hour, "hace 2 días"},
		{"es", time.Hour, "hace 1 hora"},
		{"pt", 48 * time.Hour, "há 2 dias"},
		{"pt", time.Minute, "há 1 minuto"},
		{"nl", 48 * time.Hour, "2 dagen geleden"},
		{"nl", 3 * time.Hour, "3 uur geleden"},
		{"nl", time.Second, "zojuist"},
		{"de", time.Second, "gerade eben"},
		{"xx", 48 * time.Hour, "2 days ago"},
	} {
		if got := DescribeAgoIn(c.lang, c.d); got != c.want {
			t.Errorf("DescribeAgoIn(%q, %s) = %q, want %q", c.lang, c.d, got, c.want)
		}
	}
	if !strings.Contains(DescribeAgoIn("de", 5*24*time.Hour), "5") {
		t.Error("no number")
	}
}
