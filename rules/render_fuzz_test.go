package rules_test

import (
	"bufio"
	"bytes"
	"mime"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/mail/compose"
	"github.com/tendhq/tend/rules"
	"github.com/tendhq/tend/threading"
)

// outgoing is the mail the follow-through sends for r (as followup's
// outgoing.go builds it: the inbox as From, the customer as To, the
// subject tagged).
func outgoing(d rules.TemplateData, r rules.Rendered) compose.Message {
	return compose.Message{
		From:      compose.Address{Name: d.Inbox.Name, Email: d.Inbox.Address},
		To:        []compose.Address{{Name: d.Customer.Name, Email: d.Customer.Address}},
		Subject:   threading.TagSubject(r.Subject, d.Ticket.Number, ""),
		MessageID: "tend.1.2.x@mail.acme.test", InReplyTo: "m@example.com", Date: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC),
		Text: r.Text, HTML: r.HTML, Auto: true, LoopHeader: "X-Tend-Loop: fuzz",
	}
}

// fieldNames are a header's field names, sorted.
func fieldNames(h mail.Header) []string {
	var keys []string
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// composed builds the outgoing mail for r and returns its header field names, its decoded
// Subject and the raw header block.
func composed(t *testing.T, d rules.TemplateData, r rules.Rendered) (keys []string, subject string, head []byte, err error) {
	t.Helper()
	raw, err := compose.Build(outgoing(d, r))
	if err != nil {
		return nil, "", nil, err
	}
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if end < 0 {
		t.Fatalf("no end of header in %q", raw)
	}
	head = raw[:end+2]
	m, err := mail.ReadMessage(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatalf("composed mail does not parse: %v\n%s", err, head)
	}
	keys = fieldNames(m.Header)
	subject, err = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("Subject %q: %v", m.Header.Get("Subject"), err)
	}
	return keys, subject, head, nil
}

// FuzzRenderCustomerData: every template, in every language, renders
// whatever the customer put in the subject, their name and address and
// the message, never errors, and makes a subject of one line; the mail
// composed from it has exactly the header fields of a mail with tame data
// (no field injected through CR/LF), lines of at most 998 octets ending in
// CRLF, and the subject as rendered. Customer-facing templates never quote
// the customer's message (Ticket Trick).
func FuzzRenderCustomerData(f *testing.F) {
	s := rules.SampleData()
	for i := range len(rules.Languages()) * len(rules.TemplateNames()) {
		f.Add(s.Ticket.Subject, s.Customer.Name, s.Customer.Address, s.Message.Text, s.Reason, uint8(i))
	}
	for _, x := range []string{"Hi\r\nBcc: victim@example.org", "x\nSubject: injected", "=?utf-8?q?=0D=0ABcc:_a@b?=", "\x00\xff\xfe", "a\rb",
		strings.Repeat("ü", 400), "{{.Links.Solved}}", "<script>alert(1)</script>", `"; DROP`, "\u2028\u2029\u0085", strings.Repeat("abcdefg\uFFFD", 6)} {
		for i := range 19 {
			f.Add(x, x, "jane@example.com", x, x, uint8(i*7))
		}
		f.Add(s.Ticket.Subject, x, s.Customer.Address, s.Message.Text, x, uint8(0))
	}
	f.Add("s", "n", "jane\r\nBcc: x@y@example.com", "t", "r", uint8(1))
	ts, err := rules.LoadTemplates("")
	if err != nil {
		f.Fatal(err)
	}
	// The header fields of each template's mail with tame data, per
	// language.
	tame := rules.SampleData()
	want := map[string][]string{}
	for _, lang := range rules.Languages() {
		for _, name := range rules.TemplateNames() {
			r, err := ts.RenderIn(name, "", lang, tame)
			if err != nil {
				f.Fatal(err)
			}
			raw, err := compose.Build(outgoing(tame, r))
			if err != nil {
				f.Fatal(err)
			}
			m, err := mail.ReadMessage(bufio.NewReader(bytes.NewReader(raw)))
			if err != nil {
				f.Fatal(err)
			}
			want[lang+"/"+name] = fieldNames(m.Header)
		}
	}
	f.Fuzz(func(t *testing.T, subject, customer, addr, text, reason string, pick uint8) {
		// One language and one template per input, so that CI's short
		// runs try many inputs.
		lang := rules.Languages()[int(pick)%len(rules.Languages())]
		name := rules.TemplateNames()[int(pick)/len(rules.Languages())%len(rules.TemplateNames())]
		d := rules.SampleData()
		d.Ticket.Subject, d.Message.Subject = subject, subject
		d.Customer.Name, d.Message.From.Name = customer, customer
		d.Customer.Address, d.Message.From.Address = addr, addr
		d.Reason, d.Error = reason, reason
		// The message text framed so that quoting it is recognisable.
		quoted := "«Q" + text + "Q»"
		d.Message.Text = quoted
		r, err := ts.RenderIn(name, "", lang, d)
		if err != nil {
			t.Fatalf("%s (%s): %v", name, lang, err)
		}
		if strings.ContainsAny(r.Subject, "\r\n") {
			t.Fatalf("%s (%s): subject %q has a line break", name, lang, r.Subject)
		}
		if customerFacing(name) && strings.Contains(r.Text, quoted) {
			t.Fatalf("%s (%s) quotes the customer's message", name, lang)
		}
		keys, got, head, err := composed(t, d, r)
		if err != nil {
			// Only the customer's address may make compose refuse
			// (such mail is not sent at all); with a good one the
			// rest of the customer's data must compose.
			good := d
			good.Customer.Address = tame.Customer.Address
			if keys, got, head, err = composed(t, good, r); err != nil {
				t.Fatalf("%s (%s): %v", name, lang, err)
			}
		}
		if w := want[lang+"/"+name]; !slices.Equal(keys, w) {
			t.Fatalf("%s (%s): header fields %v, want %v\n%s", name, lang, keys, w, head)
		}
		for _, line := range strings.SplitAfter(string(head), "\r\n") {
			body := strings.TrimSuffix(line, "\r\n")
			if strings.ContainsAny(body, "\r\n") || len(line) > 1000 {
				t.Fatalf("%s (%s): header line %q", name, lang, line)
			}
		}
		if norm(got) != norm(threading.TagSubject(r.Subject, d.Ticket.Number, "")) {
			t.Fatalf("%s (%s): Subject reads %q, rendered %q", name, lang, got, r.Subject)
		}
	})
}

// customerFacing lists the templates that go to the customer (rules keeps
// its own list unexported).
func customerFacing(name string) bool {
	switch name {
	case "acknowledgement", "confirm_request", "thank_you", "nudge", "unconfirmed", "reopened", "closed":
		return true
	}
	return false
}

// norm compares subjects as a reader sees them: invalid UTF-8 replaced,
// runs of white space collapsed.
func norm(s string) string {
	return strings.Join(strings.Fields(strings.ToValidUTF8(s, "\uFFFD")), " ")
}
