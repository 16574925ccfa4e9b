// Package webreply turns what an agent writes in the web view (a reply to
// the customer, an internal note) into that agent's mail on the ticket,
// so that it takes the path of an answer by mail and nothing else: stored
// with its raw bytes, parsed, then handled by the rules exactly as mail to
// the agent's signed address (followup: one-line commands such as
// #resolve, the collision warning, the outbox and its follow-through).
// Only the doorway differs: the web session, not a signed address and the
// sender's domain, proves who wrote it.
package webreply

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tendhq/tend/mail/compose"
	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/threading"
)

// Deliverer stores mail that tend wrote for an agent (ingest.Pipeline).
type Deliverer interface {
	DeliverWritten(ctx context.Context, raw []byte, env ingest.Envelope, place storage.Placement) (storage.Delivered, error)
}

// Options configure a Writer.
type Options struct {
	Deliverer Deliverer
	// Domain is ours: the written mail's Message-ID is on it.
	Domain    string
	TagPrefix string
	Clock     storage.Clock
}

// Writer writes agents' web answers as their mail.
type Writer struct{ opts Options }

// New returns a Writer.
func New(opts Options) (*Writer, error) {
	if opts.Deliverer == nil || opts.Domain == "" {
		return nil, errors.New("webreply: deliverer and domain are required")
	}
	if opts.Clock == nil {
		opts.Clock = storage.SystemClock{}
	}
	return &Writer{opts: opts}, nil
}

// Request is one answer written in the web view.
type Request struct {
	Ticket  int64
	Inbox   string // the ticket's inbox address
	Subject string // the ticket's subject
	Agent   storage.Agent
	Text    string
	// Note keeps it internal: never sent to the customer.
	Note bool
	// InReplyTo is the Message-ID of the newest message the page showed
	// its writer ("" when unknown): an answer by someone else after it
	// holds this one back (the collision warning).
	InReplyTo string
}

// evidenceWeb is the threading evidence of a web answer: the page named
// the ticket.
const evidenceWeb = "web"

// ErrEmpty is Write's error for an answer with no text.
var ErrEmpty = errors.New("the answer is empty")

// Write stores the answer as the agent's mail on the ticket. It returns
// once the mail is durable; the rules handle it right after, as they
// handle mail (the ticket's timeline shows the outcome).
func (w *Writer) Write(ctx context.Context, r Request) (storage.Delivered, error) {
	if strings.TrimSpace(r.Text) == "" {
		return storage.Delivered{}, ErrEmpty
	}
	if r.Agent.ID == 0 || r.Agent.Email == "" {
		return storage.Delivered{}, errors.New("webreply: the answer needs an agent")
	}
	subject := threading.DisplaySubject(r.Subject, w.opts.TagPrefix)
	if !strings.HasPrefix(strings.ToLower(subject), "re:") {
		subject = "Re: " + subject
	}
	m := compose.Message{
		From:      compose.Address{Name: r.Agent.Name, Email: r.Agent.Email},
		To:        []compose.Address{{Email: r.Inbox}},
		Subject:   threading.TagSubject(subject, r.Ticket, w.opts.TagPrefix),
		MessageID: "web." + strings.ToLower(rand.Text()) + "@" + w.opts.Domain,
		Date:      w.opts.Clock.Now(),
		Text:      strings.ReplaceAll(r.Text, "\r\n", "\n"),
		// Never sent, so no loop to mark; compose wants a field, and this
		// one says where the mail was written.
		LoopHeader: "X-Tend-Written: web view",
	}
	if id := strings.Trim(strings.TrimSpace(r.InReplyTo), "<>"); id != "" {
		m.InReplyTo, m.References = id, []string{id}
	}
	raw, err := compose.Build(m)
	if err != nil {
		return storage.Delivered{}, fmt.Errorf("webreply: %w", err)
	}
	why := "written in the web view by " + r.Agent.Email + ", signed in"
	evidence, _ := json.Marshal([]threading.Evidence{{Kind: evidenceWeb, Ticket: r.Ticket, Detail: why, Accepted: true}})
	place := storage.Placement{Ticket: r.Ticket, AgentID: r.Agent.ID, Note: r.Note, Role: "agent", Summary: why, Evidence: string(evidence)}
	env := ingest.Envelope{From: r.Agent.Email, To: []string{strings.ToLower(r.Inbox)}}
	d, err := w.opts.Deliverer.DeliverWritten(ctx, raw, env, place)
	if err != nil {
		return storage.Delivered{}, fmt.Errorf("webreply: %w", err)
	}
	return d, nil
}
