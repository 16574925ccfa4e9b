// Package ingest is the one path every received message takes, whatever
// door it came through (SMTP, LMTP, IMAP): read the header block, classify,
// thread, and commit the raw bytes with the message's ticket before the
// door says "accepted". The full MIME parse and the rules run afterwards,
// from durable work rows (see Processor).
package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tendhq/tend/mail/classify"
	"github.com/tendhq/tend/mail/header"
	"github.com/tendhq/tend/mail/senderauth"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/threading"
	"github.com/tendhq/tend/vocab"
)

// Envelope is what the door knows about a message besides its bytes.
type Envelope struct {
	From     string   // MAIL FROM / Return-Path; "" for the null sender
	To       []string // accepted recipients, lowercased
	Source   string   // smtp, lmtp, imap:<inbox>/<mailbox>/<uidvalidity>/<uid>
	Imported bool     // IMAP backfill: stored and threaded, no automatic mail
	// Unknown is set when the door has no SMTP envelope (IMAP): the
	// return path is then read from the Return-Path field.
	Unknown bool
	// ClientIP and Helo are the SMTP client's address and HELO/EHLO
	// name, for SPF; nil and "" without an SMTP session (IMAP, LMTP on a
	// unix socket).
	ClientIP net.IP
	Helo     string
}

// Committer is the durable store of the ingest path.
type Committer interface {
	Deliver(ctx context.Context, in *storage.Incoming) (storage.Delivered, error)
}

// Threader places a message on a ticket inside the delivery transaction.
type Threader interface {
	Place(ctx context.Context, m *Message, tx *storage.Tx) (storage.Placement, error)
}

// Message is a received message as the ingest path sees it.
type Message struct {
	Headers
	Env Envelope
	// Classified is the full classification: the class, its reasons,
	// whether automatic mail may answer, upstream spam and DMARC verdicts.
	// It is the one copy: storage.Incoming takes all of it, so no part is
	// lost on the way to the rules gate.
	Classified classify.Result
	// Inboxes are the inbox addresses among the recipients.
	Inboxes []string
	// Auth is the sender authentication verdict.
	Auth senderauth.Verdict
}

// Authenticator judges the sender of a message (senderauth.Verifier).
// It must return within its own time bound: the sender waits for its 250.
type Authenticator interface {
	Verify(ctx context.Context, in senderauth.Input) senderauth.Verdict
}

// Observer is told the outcome of every delivery, for metrics.
type Observer interface {
	Delivered(d storage.Delivered, took time.Duration)
	Failed(err error)
}

// Options configure a Pipeline.
type Options struct {
	Committer Committer
	Threader  Threader
	// Inboxes are the configured inbox addresses, lowercased; the first is
	// where mail that reached no inbox directly (signed reply addresses)
	// is filed until its ticket is known.
	Inboxes []string
	// Own describes us, so that our own mail coming back is recognised.
	Own classify.Own
	// Auth, when set, verifies every message's sender before threading.
	Auth     Authenticator
	Observer Observer
	Logger   *slog.Logger
}

// Pipeline is the ingest path. It is safe for concurrent use.
type Pipeline struct {
	opts    Options
	inboxes map[string]bool
}

// New returns a Pipeline.
func New(opts Options) (*Pipeline, error) {
	if opts.Committer == nil || opts.Threader == nil {
		return nil, errors.New("ingest: committer and threader are required")
	}
	if len(opts.Inboxes) == 0 {
		return nil, errors.New("ingest: no inbox configured")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{opts: opts, inboxes: map[string]bool{}}
	for _, a := range opts.Inboxes {
		p.inboxes[strings.ToLower(a)] = true
	}
	return p, nil
}

// IsInbox reports whether addr is a configured inbox.
func (p *Pipeline) IsInbox(addr string) bool { return p.inboxes[strings.ToLower(addr)] }

// Deliver stores raw durably with its ticket; see DeliverSpool. For
// callers that hold the bytes already (IMAP, tests); the SMTP and LMTP
// doors stream into a Spool instead.
func (p *Pipeline) Deliver(ctx context.Context, raw []byte, env Envelope) (storage.Delivered, error) {
	return p.DeliverSpool(ctx, SpoolBytes(raw), env)
}

// DeliverSpool stores a spooled message durably with its ticket. It
// returns nil only once the message is committed; any error means it is
// not stored and the door must say "try again later". The spool stays
// the caller's to close.
func (p *Pipeline) DeliverSpool(ctx context.Context, sp *Spool, env Envelope) (storage.Delivered, error) {
	start := time.Now()
	m, in := p.prepare(ctx, sp, env)
	d, err := p.opts.Committer.Deliver(ctx, in)
	return p.delivered(m, d, err, start)
}

// prepWorkers bounds how many messages of one DeliverSpools call are
// classified and judged at once.
const prepWorkers = 8

// BatchCommitter is a Committer that also takes many messages at once,
// in order (storage.Committer).
type BatchCommitter interface {
	DeliverAll(ctx context.Context, ins []*storage.Incoming) ([]storage.Delivered, []error)
}

// DeliverSpools stores spooled messages durably with their tickets, in
// their order: each is threaded after the ones before it, as if they came
// one after another (an IMAP mailbox's history, replies after what they
// answer), yet they share the committer's transactions. The results and
// errors are the spools', index for index, with DeliverSpool's meaning.
func (p *Pipeline) DeliverSpools(ctx context.Context, sps []*Spool, envs []Envelope) ([]storage.Delivered, []error) {
	start := time.Now()
	ms, ins := make([]*Message, len(sps)), make([]*storage.Incoming, len(sps))
	// Sender authentication may wait on DNS for each message: the
	// messages are judged side by side, and committed in order after.
	var g errgroup.Group
	g.SetLimit(prepWorkers)
	for i, sp := range sps {
		g.Go(func() error {
			ms[i], ins[i] = p.prepare(ctx, sp, envs[i])
			return nil
		})
	}
	_ = g.Wait() // incoming does not fail

	var ds []storage.Delivered
	var errs []error
	if bc, ok := p.opts.Committer.(BatchCommitter); ok {
		ds, errs = bc.DeliverAll(ctx, ins)
	} else {
		ds, errs = make([]storage.Delivered, len(ins)), make([]error, len(ins))
		for i, in := range ins {
			ds[i], errs[i] = p.opts.Committer.Deliver(ctx, in)
		}
	}
	for i := range ds {
		ds[i], errs[i] = p.delivered(ms[i], ds[i], errs[i], start)
	}
	return ds, errs
}

// prepare is what the committer stores for a spooled message: its header
// block classified, its sender judged, its recipients' inboxes, threaded
// when committed.
func (p *Pipeline) prepare(ctx context.Context, sp *Spool, env Envelope) (*Message, *storage.Incoming) {
	m := &Message{Headers: sp.Headers, Env: env}
	// Classification reads only the header block: cheap enough for the
	// hot path, and threading needs it (a bounce never opens a ticket).
	if env.Unknown {
		env.From = classify.ReversePath(m.Header)
		m.Env.From = env.From
	}
	m.Classified = classify.Classify(m.Header, env.From, p.opts.Own)
	if p.opts.Auth != nil {
		m.Auth = p.opts.Auth.Verify(ctx, senderauth.Input{
			Message: io.NewSectionReader(sp, 0, sp.Size()), AuthResults: m.Header.Values("Authentication-Results"),
			From: author(m), ClientIP: env.ClientIP, Helo: env.Helo, MailFrom: env.From,
		})
	}
	in := p.incoming(sp, m)
	in.Place = func(ctx context.Context, tx *storage.Tx) (storage.Placement, error) {
		return p.opts.Threader.Place(ctx, m, tx)
	}
	return m, in
}

// DeliverWritten stores mail that tend composed for a signed-in agent (a
// reply or an internal note written in the web view) on the ticket that
// place names. It is not classified, verified or threaded: the session
// proved who wrote it and the page named the ticket. From there on it is
// the agent's mail like any other: parsed, then handled by the rules as
// mail to the agent's signed address is (commands, the collision
// warning, the outbox).
func (p *Pipeline) DeliverWritten(ctx context.Context, raw []byte, env Envelope, place storage.Placement) (storage.Delivered, error) {
	start := time.Now()
	sp := SpoolBytes(raw)
	env.Source = storage.SourceWeb
	// Written by a signed-in agent: human by what the session proved.
	m := &Message{Headers: sp.Headers, Env: env, Classified: classify.Result{Class: vocab.ClassHuman}}
	in := p.incoming(sp, m)
	in.Auth = storage.SenderAuth{Method: storage.SourceWeb, FromDomain: domainOf(env.From), Aligned: true}
	in.Place = func(context.Context, *storage.Tx) (storage.Placement, error) { return place, nil }
	d, err := p.opts.Committer.Deliver(ctx, in)
	return p.delivered(m, d, err, start)
}

// domainOf is the domain of an address, lowercased.
func domainOf(addr string) string {
	_, d, _ := strings.Cut(addr, "@")
	return strings.ToLower(d)
}

// incoming is m as storage takes it, filed under the inboxes among its
// recipients (or the first inbox); the caller sets Place.
func (p *Pipeline) incoming(sp *Spool, m *Message) *storage.Incoming {
	for _, rcpt := range m.Env.To {
		if p.inboxes[rcpt] {
			m.Inboxes = append(m.Inboxes, rcpt)
		}
	}
	env := m.Env
	return &storage.Incoming{
		Body: sp, Hash: m.Hash, ContentHash: m.ContentHash, MessageID: m.MessageID, InReplyTo: m.Parent(), References: m.References,
		ThreadRoot: threadRoot(m.ThreadIndex), NormSubject: threading.NormalizeSubject(m.RawSubject),
		ThreadTopic: m.ThreadTopic, From: m.From, FromName: m.FromName, To: m.To, Cc: m.Cc,
		EnvFrom: env.From, EnvTo: env.To, Subject: m.Subject, Date: m.Date, Class: m.Classified.Class, Role: "customer",
		Inboxes: m.Inboxes, DefaultInbox: p.opts.Inboxes[0], Source: env.Source, Imported: env.Imported, Auth: storedAuth(m.Auth),
		NoAutoReply: m.Classified.NoAutoReply, Suspect: m.Classified.Suspect, ClassReasons: m.Classified.Reasons,
	}
}

// delivered reports one delivery's outcome to the observer and the log.
func (p *Pipeline) delivered(m *Message, d storage.Delivered, err error, start time.Time) (storage.Delivered, error) {
	if err != nil {
		if p.opts.Observer != nil {
			p.opts.Observer.Failed(err)
		}
		return storage.Delivered{}, fmt.Errorf("ingest %s: %w", m.MessageID, err)
	}
	if p.opts.Observer != nil {
		p.opts.Observer.Delivered(d, time.Since(start))
	}
	// One line per message at the default level: an operator sees mail
	// arrive without turning on debugging.
	p.opts.Logger.Info("message received", "message_id", m.MessageID, "from", m.Env.From, "ticket", d.Ticket,
		"new", d.NewTicket, "duplicate", d.Duplicate, "class", m.Classified.Class, "source", m.Env.Source)
	return d, nil
}

// author is the one From address sender authentication can vouch for:
// "" when the message has no From, several From fields, or several
// addresses in one (RFC 7489 section 6.6.1), since a signature over one
// of them says nothing about the one a mail client shows.
func author(m *Message) string {
	vs := m.Header.Values("From")
	if len(vs) != 1 || len(header.Addresses(vs...)) != 1 {
		return ""
	}
	return m.From
}

// storedAuth is the verdict as storage keeps it.
func storedAuth(v senderauth.Verdict) storage.SenderAuth {
	return storage.SenderAuth{
		Method: v.Method, ServID: v.ServID, DKIM: string(v.DKIM), DKIMDomain: v.DKIMDomain,
		SPF: string(v.SPF), SPFDomain: v.SPFDomain, DMARC: string(v.DMARC), FromDomain: v.FromDomain, Aligned: v.Aligned,
	}
}

func threadRoot(idx string) string {
	root, _ := threading.ThreadIndexRoot(idx)
	return root
}
