package rules

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/tendhq/tend/vocab"
)

//go:embed templates/*.tmpl templates/*/*.tmpl
var defaultTemplates embed.FS

// TemplateNames are the templates every installation has (embedded
// defaults). Rules may only name these, or extra ones provided in the
// template folder.
func TemplateNames() []string {
	return []string{
		"acknowledgement", "confirm_request", "thank_you", "nudge", "unconfirmed",
		"reopened", "closed", "notify_customer_message", "notify_note", "notify_breach",
		"notify_repeat", "notify_failure", "notify_unconfirmed", "command_error",
		"notify_held", "notify_fuse", "notify_follow_up",
		"notify_mailbox_down", "notify_mailbox_up",
	}
}

// Ticketless templates are about the installation, not a ticket (an IMAP
// mailbox failing): their data has no Ticket, their subject no tag.
func Ticketless(name string) bool {
	return name == "notify_mailbox_down" || name == "notify_mailbox_up"
}

// customerFacing templates go to the customer; they must never quote the
// customer's message body (docs/design.md, "Ticket Trick"), which LoadTemplates
// checks by rendering them with a marker in Message.Text.
func customerFacing(name string) bool {
	switch name {
	case "acknowledgement", "confirm_request", "thank_you", "nudge", "unconfirmed", "reopened", "closed":
		return true
	}
	return false
}

// ErrUnknownTemplate is returned by Render for a name no layer defines.
var ErrUnknownTemplate = errors.New("unknown template")

// TemplateData is what templates see. The executor fills it (DataFor helps)
// from the ticket after the event's actions were applied.
type TemplateData struct {
	Ticket   TicketData
	Customer Person
	// Agent is the assignee, or the agent who acted.
	Agent   Person
	Inbox   InboxData
	Links   Links
	Message MessageData
	// Reason is why (a close reason, a delivery failure, a state change).
	Reason string
	// Answer is the customer's confirmation answer, for staff notifications.
	Answer Answer
	// Error is the failed command's error, for command_error.
	Error string
	// Count is how many events a coalesced staff notification stands for
	// ("3 new messages"); 0 or 1 is one.
	Count int
	// Told says, for staff notifications, what became of the newest mail
	// of each customer template on the ticket when the text was written:
	// "sent", "held until Mon 2 Mar 15:04 UTC", "held by the mail fuse",
	// "failed"; absent when none was queued. Texts that say what the
	// customer was told must read it, so they are true.
	Told map[string]string
	// Held is the reply tend held back, for notify_held.
	Held HeldData
	// History is the customer's other tickets, open first, for staff
	// notifications ("also open: #4 Export stuck, 2 days").
	History []HistoryData
	// Mailbox is the IMAP mailbox of notify_mailbox_down and
	// notify_mailbox_up.
	Mailbox MailboxData
}

// MailboxData describes an IMAP mailbox that stopped or resumed feeding an
// inbox, for the admins' and leads' alerts.
type MailboxData struct {
	// Inbox is the inbox address it feeds; Name is the IMAP mailbox
	// (INBOX), Server host:port and User the login.
	Inbox, Name, Server, User string
	// Since is when it began failing; For how long, in words ("2 hours").
	Since time.Time
	For   string
	// LastSuccess is the last successful read (zero: none since tend
	// started).
	LastSuccess time.Time
	// Error is the server's (or the connection's) last error.
	Error string
	// StaleAfter is the configured imap.stale_after, in words.
	StaleAfter string
	// RecoveredAt is when it read mail again, for notify_mailbox_up.
	RecoveredAt time.Time
}

// HistoryData is one of the customer's other tickets.
type HistoryData struct {
	Number  int64
	Subject string
	State   vocab.State
	Open    bool
	// Age is how long ago it was opened, "2 days".
	Age string
}

// HeldData describes an agent's reply that was not sent because someone
// else answered the customer after the notification the agent replied to.
type HeldData struct {
	// By answered the customer at At with Text.
	By   Person
	At   time.Time
	Text string
	// Yours is the held reply, as it would have gone out.
	Yours string
}

// TicketData is the ticket as templates show it.
type TicketData struct {
	Number         int64
	Tag            string // "[#123]", for subjects
	Subject        string
	State          vocab.State
	Priority       string
	RepeatContacts int
	// ProposedAt is when resolution was last proposed (zero if never), and
	// ProposedAgo the same from now in the customer's language ("2 days
	// ago", "vor 2 Tagen"), for the nudge.
	ProposedAt  time.Time
	ProposedAgo string
}

// InboxData is the inbox as templates show it.
type InboxData struct {
	Name    string
	Address string
	// ResponseTime is the honest human promise, "within 4 hours".
	ResponseTime string
}

// Links are signed, single-purpose URLs made by the executor.
type Links struct {
	Solved, NotSolved, Rating, Ticket string
	// Ratings are the five signed "how did we do?" links, 1 (bad) to 5
	// (great). They are set only in the one thank-you mail that asks
	// (after a confirmed resolution, never twice on a ticket); templates
	// show the question only {{with .Links.Ratings}}.
	Ratings []RatingLink
}

// RatingLink is one signed satisfaction link.
type RatingLink struct {
	Score int
	URL   string
}

// MessageData describes the received message. Text is for staff
// notifications only; customer-facing templates may not show it.
type MessageData struct {
	From        Person
	Subject     string
	Date        time.Time
	Attachments []string
	Text        string
	// Unverified and SenderAuth: see Message.
	Unverified bool
	SenderAuth string
}

// Rendered is one mail's content.
type Rendered struct {
	Subject string
	Text    string
	HTML    string // empty when the template has no HTML variant
}

// DataFor fills TemplateData from an event's ticket view and message, so
// the executor only adds links, the agent and reasons of its own.
func DataFor(ev Event, links Links) TemplateData {
	t := ev.Ticket
	d := TemplateData{
		Ticket: TicketData{
			Number: t.Number, Tag: fmt.Sprintf("[#%d]", t.Number), Subject: t.Subject,
			State: t.State, Priority: t.Priority, RepeatContacts: t.RepeatContacts,
		},
		Customer: t.Customer,
		Agent:    t.Assignee,
		Inbox: InboxData{Name: t.Inbox.Name, Address: t.Inbox.Address,
			ResponseTime: DescribeResponseTime(t.Inbox.ResponseTime)},
		Links:  links,
		Reason: ev.Reason,
		Answer: ev.Answer,
	}
	if ev.Outbox != nil && d.Reason == "" {
		d.Reason = ev.Outbox.Reason
	}
	if m := ev.Message; m != nil {
		d.Message = MessageData{From: m.From, Subject: m.Subject, Date: m.Date,
			Attachments: m.Attachments, Text: m.Text, Unverified: m.Unverified, SenderAuth: m.SenderAuth}
		if d.Answer == "" {
			d.Answer = m.Answer
		}
	}
	return d
}

// pair is one template in both variants.
type pair struct {
	subject *texttemplate.Template
	text    *texttemplate.Template
	html    *htmltemplate.Template // nil: text-only
	// perAgent: the body names the Agent somewhere (AgentFreeBody).
	perAgent bool
}

// Templates are the parsed mail templates: embedded defaults, overridden by
// <dir>/<name>.txt.tmpl, overridden per inbox by
// <dir>/<inbox address>/<name>.txt.tmpl. A layer that overrides the text
// of a template without an .html.tmpl next to it sends text-only mail, so a
// customised text never goes out beside a stale default HTML part. Immutable
// after LoadTemplates; safe for concurrent use.
type Templates struct {
	defaults map[string]*pair
	global   map[string]*pair
	perInbox map[string]map[string]*pair // lower-cased inbox address
	// langs are the embedded customer templates per language
	// (templates/<code>/), userLangs the overrides in <dir>/<code>/.
	langs, userLangs map[string]map[string]*pair
}

// LoadTemplates parses the embedded defaults and the overrides in dir ("" for
// none), and test-executes every template with sample data, so a broken
// template fails at load (tend check-config), never on a live mail.
func LoadTemplates(dir string) (*Templates, error) {
	sub, err := fs.Sub(defaultTemplates, "templates")
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	t := &Templates{perInbox: map[string]map[string]*pair{}, langs: map[string]map[string]*pair{}, userLangs: map[string]map[string]*pair{}}
	if t.defaults, err = loadLayer(sub, "templates"); err != nil {
		return nil, err
	}
	for _, lang := range Languages()[1:] {
		langFS, err := fs.Sub(sub, lang)
		if err != nil {
			return nil, fmt.Errorf("templates: %w", err)
		}
		if t.langs[lang], err = loadLayer(langFS, filepath.Join("templates", lang)); err != nil {
			return nil, err
		}
	}
	for _, name := range TemplateNames() {
		if t.defaults[name] == nil {
			return nil, fmt.Errorf("templates: embedded default %q missing", name)
		}
	}
	if dir == "" {
		return t, nil
	}
	root := os.DirFS(dir)
	if t.global, err = loadLayer(root, dir); err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(root, ".")
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		isLang := ShippedLanguage(e.Name())
		if !strings.Contains(e.Name(), "@") && !isLang {
			return nil, fmt.Errorf("templates: %s: folder name must be an inbox address or a language (%s)", filepath.Join(dir, e.Name()), strings.Join(Languages(), ", "))
		}
		inboxFS, err := fs.Sub(root, e.Name())
		if err != nil {
			return nil, fmt.Errorf("templates: %w", err)
		}
		layer, err := loadLayer(inboxFS, filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if isLang {
			t.userLangs[e.Name()] = layer
			continue
		}
		t.perInbox[strings.ToLower(e.Name())] = layer
	}
	return t, nil
}

// loadLayer parses and checks the *.txt.tmpl / *.html.tmpl files of one folder.
func loadLayer(fsys fs.FS, where string) (map[string]*pair, error) {
	files, err := fs.Glob(fsys, "*.tmpl")
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	sort.Strings(files)
	layer := map[string]*pair{}
	for _, f := range files {
		name, ok := strings.CutSuffix(f, ".txt.tmpl")
		if !ok {
			if _, isHTML := strings.CutSuffix(f, ".html.tmpl"); isHTML {
				continue // read with its text file below
			}
			return nil, fmt.Errorf("templates: %s: want NAME.txt.tmpl or NAME.html.tmpl", filepath.Join(where, f))
		}
		p, err := parsePair(fsys, where, name)
		if err != nil {
			return nil, err
		}
		layer[name] = p
	}
	for _, f := range files {
		if name, ok := strings.CutSuffix(f, ".html.tmpl"); ok && layer[name] == nil {
			return nil, fmt.Errorf("templates: %s: HTML variant without %s.txt.tmpl", filepath.Join(where, f), name)
		}
	}
	return layer, nil
}

func parsePair(fsys fs.FS, where, name string) (*pair, error) {
	loc := filepath.Join(where, name+".txt.tmpl")
	src, err := fs.ReadFile(fsys, name+".txt.tmpl")
	if err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	}
	first, body, _ := strings.Cut(strings.ReplaceAll(string(src), "\r\n", "\n"), "\n")
	subj, ok := strings.CutPrefix(first, "Subject:")
	if !ok {
		return nil, fmt.Errorf("templates: %s:1: the first line must be \"Subject: …\"", loc)
	}
	body = strings.TrimPrefix(body, "\n")
	funcs := texttemplate.FuncMap{"join": strings.Join}
	p := &pair{}
	if p.subject, err = texttemplate.New(name + ".subject").Funcs(funcs).Parse(strings.TrimSpace(subj)); err != nil {
		return nil, fmt.Errorf("templates: %s: subject: %w", loc, err)
	}
	if p.text, err = texttemplate.New(name).Funcs(funcs).Parse(body); err != nil {
		return nil, fmt.Errorf("templates: %s: %w", loc, err)
	}
	if hsrc, err := fs.ReadFile(fsys, name+".html.tmpl"); err == nil {
		hloc := filepath.Join(where, name+".html.tmpl")
		if p.html, err = htmltemplate.New(name).Funcs(htmltemplate.FuncMap{"join": strings.Join}).Parse(string(hsrc)); err != nil {
			return nil, fmt.Errorf("templates: %s: %w", hloc, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("templates: %w", err)
	}
	p.perAgent = namesField(pairTrees(p.text, p.html), "Agent")
	// Test-execute now: a missing field or a bad call fails here.
	sample := SampleData()
	r, err := p.render(sample)
	if err != nil {
		return nil, fmt.Errorf("templates: %s: %w", loc, err)
	}
	if r.Subject == "" {
		return nil, fmt.Errorf("templates: %s:1: subject renders empty", loc)
	}
	if customerFacing(name) && (strings.Contains(r.Text, sampleBodyMarker) || strings.Contains(r.HTML, sampleBodyMarker) ||
		strings.Contains(r.Subject, sampleBodyMarker)) {
		return nil, fmt.Errorf("templates: %s: a mail to the customer must not quote the customer's message (Ticket Trick)", loc)
	}
	return p, nil
}

func (p *pair) render(d TemplateData) (Rendered, error) {
	var r Rendered
	var err error
	if r.Subject, err = p.renderSubject(d); err != nil {
		return r, err
	}
	r.Text, r.HTML, err = p.renderBody(d)
	return r, err
}

func (p *pair) renderSubject(d TemplateData) (string, error) {
	var b bytes.Buffer
	if err := p.subject.Execute(&b, d); err != nil {
		return "", fmt.Errorf("subject: %w", err)
	}
	// A subject is one header line: the customer's own subject may carry
	// CR/LF or tabs, which must not become header injection (RFC 5322 §2.2).
	return strings.Join(strings.Fields(b.String()), " "), nil
}

func (p *pair) renderBody(d TemplateData) (text, html string, err error) {
	var b bytes.Buffer
	if err := p.text.Execute(&b, d); err != nil {
		return "", "", fmt.Errorf("text: %w", err)
	}
	text = b.String()
	if p.html != nil {
		b.Reset()
		if err := p.html.Execute(&b, d); err != nil {
			return "", "", fmt.Errorf("html: %w", err)
		}
		html = b.String()
	}
	return text, html, nil
}

// Has reports whether name is defined by some layer.
func (t *Templates) Has(name string) bool {
	if t.defaults[name] != nil || t.global[name] != nil {
		return true
	}
	for _, layer := range t.perInbox {
		if layer[name] != nil {
			return true
		}
	}
	return false
}

// Render renders template name for the inbox (its address; "" for none):
// the inbox's override if any, else the global override, else the default.
func (t *Templates) Render(name, inbox string, data TemplateData) (Rendered, error) {
	return t.RenderIn(name, inbox, "", data)
}

// RenderIn renders template name for the inbox in language lang (ISO
// 639-1; "" or "en" for the defaults): the inbox's override if any, else
// the override in <dir>/<lang>/, else the shipped translation, else the
// global override, else the default. A translation wins over a global
// English override, so that a customer is never answered in English
// because an admin reworded the English text. Translations are text-only.
func (t *Templates) RenderIn(name, inbox, lang string, data TemplateData) (Rendered, error) {
	subject, body, err := t.RenderLaterIn(name, inbox, lang, data)
	if err != nil {
		return Rendered{}, err
	}
	r := Rendered{Subject: subject}
	if r.Text, r.HTML, err = body(); err != nil {
		return Rendered{}, err
	}
	return r, nil
}

// RenderLaterIn renders the subject of template name as RenderIn does,
// and returns body, which renders its text and HTML when called, on any
// goroutine: a notification's body, the bulk of its rendering, is made
// beside the transaction that queues it (compose.Message.Body). data
// must not change afterwards.
func (t *Templates) RenderLaterIn(name, inbox, lang string, data TemplateData) (subject string, body func() (text, html string, err error), err error) {
	p := t.lookup(name, inbox, lang)
	if p == nil {
		return "", nil, fmt.Errorf("render %q: %w", name, ErrUnknownTemplate)
	}
	if subject, err = p.renderSubject(data); err != nil {
		return "", nil, fmt.Errorf("render %q: %w", name, err)
	}
	return subject, func() (string, string, error) {
		text, html, err := p.renderBody(data)
		if err != nil {
			return "", "", fmt.Errorf("render %q: %w", name, err)
		}
		return text, html, nil
	}, nil
}

// lookup is the layer's template RenderLaterIn renders (nil: none).
func (t *Templates) lookup(name, inbox, lang string) *pair {
	p := t.perInbox[strings.ToLower(inbox)][name]
	if p == nil && lang != "" {
		if p = t.userLangs[lang][name]; p == nil {
			p = t.langs[lang][name]
		}
	}
	if p == nil {
		p = t.global[name]
	}
	if p == nil {
		p = t.defaults[name]
	}
	return p
}

// AgentFreeBody reports whether the body of template name, as
// RenderLaterIn would pick it, reads nothing of TemplateData.Agent: its
// text and HTML are then the same for every agent given otherwise equal
// data, and the agents' notifications can share one written body
// (compose.Content). It is false for a template no layer defines.
func (t *Templates) AgentFreeBody(name, inbox, lang string) bool {
	p := t.lookup(name, inbox, lang)
	return p != nil && !p.perAgent
}

// sampleBodyMarker stands for the customer's text in SampleData.
const sampleBodyMarker = "SAMPLE-CUSTOMER-BODY-7f3a"

// SampleData is the data templates are test-executed with at load: every
// field set, so a template that uses any of them is exercised.
func SampleData() TemplateData {
	return TemplateData{
		Ticket: TicketData{Number: 123, Tag: "[#123]", Subject: "Invoice 2024-17 is wrong", State: vocab.StateProposed, Priority: PriorityNormal, RepeatContacts: 2,
			ProposedAt: time.Date(2025, 6, 1, 9, 30, 0, 0, time.UTC), ProposedAgo: "2 days ago"},
		Customer: Person{Address: "jane@example.com", Name: "Jane Doe"},
		Agent:    Person{Address: "lena@support.example", Name: "Lena"},
		Inbox:    InboxData{Name: "Example Support", Address: "support@example.com", ResponseTime: "within 4 hours"},
		Links: Links{Solved: "https://support.example.com/c/123/yes?sig=x", NotSolved: "https://support.example.com/c/123/no?sig=x",
			Rating: "https://support.example.com/r/123?sig=x", Ticket: "https://support.example.com/t/123",
			Ratings: []RatingLink{{1, "https://support.example.com/rate?t=1"}, {2, "https://support.example.com/rate?t=2"},
				{3, "https://support.example.com/rate?t=3"}, {4, "https://support.example.com/rate?t=4"}, {5, "https://support.example.com/rate?t=5"}}},
		Message: MessageData{From: Person{Address: "jane@example.com", Name: "Jane Doe"}, Subject: "Invoice 2024-17 is wrong",
			Date: time.Date(2025, 6, 3, 9, 30, 0, 0, time.UTC), Attachments: []string{"invoice.pdf", "screenshot.png"}, Text: sampleBodyMarker},
		Reason: "duplicate of #120",
		History: []HistoryData{{Number: 120, Subject: "Export stuck", State: vocab.StateOpen, Open: true, Age: "2 days"},
			{Number: 97, Subject: "Password reset", State: vocab.StateResolved, Age: "3 weeks"}},
		Answer: AnswerUnclear,
		Error:  "#assign: no agent named \"lenna\"",
		Count:  3,
		Told:   map[string]string{"nudge": "sent", "unconfirmed": "held until Tue 3 Jun 11:00 UTC"},
		Held: HeldData{By: Person{Address: "bob@support.example", Name: "Bob"}, At: time.Date(2025, 6, 3, 9, 31, 0, 0, time.UTC),
			Text: "We refunded the invoice.", Yours: "We cannot refund this invoice."},
		Mailbox: MailboxData{Inbox: "support@example.com", Name: "INBOX", Server: "imap.example.com:993", User: "support@example.com",
			Since: time.Date(2025, 6, 3, 8, 0, 0, 0, time.UTC), For: "1 hour 30 minutes", LastSuccess: time.Date(2025, 6, 3, 7, 59, 0, 0, time.UTC),
			Error: "imappoll: authentication failed: NO [AUTHENTICATIONFAILED] Authentication failed.", StaleAfter: "10 minutes",
			RecoveredAt: time.Date(2025, 6, 3, 9, 30, 0, 0, time.UTC)},
	}
}
