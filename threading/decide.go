package threading

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tendhq/tend/mail/header"
)

// EvidenceKind names one kind of threading evidence. The values are
// stable strings: storage keeps them with the message.
type EvidenceKind string

// The kinds of evidence, strongest first.
const (
	EvidenceSignedAddress EvidenceKind = "signed-address"
	EvidenceBounceAddress EvidenceKind = "bounce-address"
	EvidenceInReplyTo     EvidenceKind = "in-reply-to"
	EvidenceReferences    EvidenceKind = "references"
	EvidenceLoop          EvidenceKind = "loop"
	EvidenceSubjectTag    EvidenceKind = "subject-tag"
	EvidenceThreadIndex   EvidenceKind = "thread-index"
	EvidenceSubject       EvidenceKind = "subject"
	EvidenceBounce        EvidenceKind = "bounce"
	EvidenceNew           EvidenceKind = "new"
	// EvidenceSenderAuth records that a sender who is not authenticated
	// joined on weak evidence and so brought nobody along (ingest adds it).
	EvidenceSenderAuth EvidenceKind = "sender-auth"
)

// Evidence is one clue Decide considered. Detail is the human text shown
// on the ticket timeline.
type Evidence struct {
	Kind     EvidenceKind
	Ticket   int64
	Detail   string
	Accepted bool
	// Strong marks accepted evidence that only someone given our mail can
	// have: a signed agent address, or a reference to our outbound mail
	// (a MAC-signed Message-ID). Everything else (a subject tag, the
	// subject, a Thread-Index, a reference to a customer's mail) can be
	// guessed or copied from a list archive.
	Strong bool
}

// Decision is the outcome of Decide.
type Decision struct {
	// Ticket is the ticket the message joins; 0 means a new ticket, unless
	// NoTicket is set.
	Ticket int64
	// NoTicket means: store the message but open nothing (a bounce that
	// matched no ticket, or our own mail coming back).
	NoTicket bool
	// Reply is set when the message came through a verified signed agent
	// address. The caller must still check that the sender is that agent
	// before relaying or running commands (docs/design.md, security model).
	Reply *ReplyToken
	// BounceOutbox is the outbox row named by a verified VERP bounce
	// address the message was sent to, 0 if none.
	BounceOutbox int64
	// Evidence lists every clue considered, strongest first, the accepted
	// one and the rejected ones.
	Evidence []Evidence
}

// Via returns the kind of the accepted evidence.
func (d Decision) Via() EvidenceKind {
	for _, e := range d.Evidence {
		if e.Accepted && e.Kind != EvidenceBounceAddress {
			return e.Kind
		}
	}
	return ""
}

// Strong reports whether the accepted evidence is strong (see
// Evidence.Strong). New participants join a ticket only on strong
// evidence or from an authenticated sender.
func (d Decision) Strong() bool {
	for _, e := range d.Evidence {
		if e.Accepted && e.Kind != EvidenceBounceAddress {
			return e.Strong
		}
	}
	return false
}

// Config is the installation's threading configuration.
type Config struct {
	// OwnAddresses are the inbox addresses (support@…). Mail from them is a
	// loop; signed addresses on their domains are recognised.
	OwnAddresses []string
	// OwnDomains are domains only tend sends from: the domain of reply
	// addresses, bounce addresses and our Message-IDs. Any sender on them
	// is a loop, and any Message-ID on them must carry our MAC. Do not list
	// the staff's own mail domain here.
	OwnDomains []string
	// TagPrefix is the word in subject tags, "Acme" in "[Acme #123]".
	TagPrefix string
	// SubjectWindow is how long after its last update a ticket can still
	// be found by sender and subject alone; zero disables that rule.
	SubjectWindow time.Duration
	// MaxReferences bounds how many ids of a long References chain are
	// looked up (the newest ones, plus the thread root); 0 means 50.
	MaxReferences int
	Signer        *Signer
	Clock         Clock
}

// ErrConfig is returned when the Config lacks a Signer or Clock.
var ErrConfig = errors.New("threading: config needs a Signer and a Clock")

// Decide finds the ticket a message belongs to, strongest evidence first:
//
//  1. an envelope recipient that is a verified signed reply/note address;
//  2. mail from our own addresses is a loop: no ticket;
//  3. In-Reply-To, then References newest first, against every Message-ID
//     we stored or sent. A reference to our outbound mail is strong and
//     joins whoever sends it (they were given our mail by a participant);
//     so does a Message-ID minted by Signer.MessageID even when its row is
//     lost. A reference to a customer's inbound mail joins only when the
//     sender or one of its To/Cc addresses already takes part (the list
//     address of a list thread, the customer put in copy): those ids travel
//     to every recipient and list archive and prove nothing by themselves. Ids
//     on our domains without a valid MAC are ignored, as are ids held by
//     more than one ticket;
//  4. a subject tag, only if the sender or a Cc takes part in that ticket;
//  5. Outlook's Thread-Index root, only if the sender takes part;
//  6. same sender, same normalized subject (not a generic one), ticket
//     updated within SubjectWindow;
//  7. otherwise a new ticket, except for a bounce, which opens nothing.
//
// A person writing from a second address therefore joins only through 1
// or 3. Decide is pure apart from look; an error means a lookup failed
// and the message should be retried.
func Decide(ctx context.Context, cfg Config, msg Message, look Lookup) (Decision, error) {
	if cfg.Signer == nil || cfg.Clock == nil {
		return Decision{}, ErrConfig
	}
	dc := &decider{cfg: cfg, msg: msg, look: look, tickets: map[int64]resolved{}, part: map[partKey]bool{}}
	done, err := dc.run(ctx)
	if err != nil {
		return Decision{}, err
	}
	if !done {
		if dc.bounce {
			dc.d.NoTicket = true
			dc.add(EvidenceBounce, 0, true, "delivery status notification matched no ticket: stored without opening one")
		} else {
			dc.add(EvidenceNew, 0, true, "no evidence matched: new ticket")
		}
	}
	return dc.d, nil
}

type resolved struct {
	info TicketInfo
	ok   bool
}

// decider carries one decision's state and its lookup caches, so that no
// ticket or participant is looked up twice.
type decider struct {
	cfg     Config
	msg     Message
	look    Lookup
	d       Decision
	bounce  bool
	tickets map[int64]resolved
	part    map[partKey]bool
}

func (dc *decider) add(kind EvidenceKind, ticket int64, accepted bool, format string, args ...any) {
	dc.d.Evidence = append(dc.d.Evidence, Evidence{Kind: kind, Ticket: ticket, Accepted: accepted, Detail: fmt.Sprintf(format, args...)})
}

func (dc *decider) accept(kind EvidenceKind, t TicketInfo, from int64, format string, args ...any) {
	detail := fmt.Sprintf(format, args...)
	if from != 0 && from != t.Number {
		detail += fmt.Sprintf(" (ticket %d was merged into %d)", from, t.Number)
	}
	dc.d.Ticket = t.Number
	dc.add(kind, t.Number, true, "%s", detail)
}

func (dc *decider) run(ctx context.Context) (bool, error) {
	dc.bounce = dc.msg.IsBounce
	if done, err := dc.signedAddresses(ctx); done || err != nil {
		return done, err
	}
	if dc.isOwnSender(dc.msg.From) {
		dc.d.NoTicket = true
		dc.add(EvidenceLoop, 0, true, "sender %s is our own address and did not write to a signed address: mail loop, no ticket", dc.msg.From)
		return true, nil
	}
	steps := []func(context.Context) (bool, error){dc.references, dc.subjectTag, dc.threadIndex, dc.subject}
	for _, step := range steps {
		if done, err := step(ctx); done || err != nil {
			return done, err
		}
	}
	return false, nil
}

// ticket resolves a ticket number through merges, cached.
func (dc *decider) ticket(ctx context.Context, n int64) (TicketInfo, bool, error) {
	if r, ok := dc.tickets[n]; ok {
		return r.info, r.ok, nil
	}
	info, ok, err := dc.look.Ticket(ctx, n)
	if err != nil {
		return TicketInfo{}, false, fmt.Errorf("look up ticket %d: %w", n, err)
	}
	dc.tickets[n] = resolved{info, ok}
	return info, ok, nil
}

// Which addresses of the message count when asking whether it comes from
// someone on the ticket.
const (
	fromOnly = iota // Thread-Index: "only if the sender takes part"
	fromCc          // subject tag: "the sender or a CC" (issue 3)
	fromToCc        // reference to inbound mail: also To, for list threads
)

// resolveFound resolves the ticket a lookup found through merges; ok is
// false when the lookup found none or the ticket is gone.
func (dc *decider) resolveFound(ctx context.Context, what string, n int64, found bool, err error) (TicketInfo, bool, error) {
	if err != nil {
		return TicketInfo{}, false, fmt.Errorf("look up %s: %w", what, err)
	}
	if !found {
		return TicketInfo{}, false, nil
	}
	return dc.ticket(ctx, n)
}

// participates reports whether the message's sender (and, by mode, its
// Cc or To addresses) takes part in ticket, cached per ticket and mode.
func (dc *decider) participates(ctx context.Context, ticket int64, mode int) (bool, error) {
	addrs := []string{}
	if dc.msg.From != "" {
		addrs = append(addrs, dc.msg.From)
	}
	var more []string
	switch mode {
	case fromCc:
		more = dc.msg.Cc
	case fromToCc:
		more = append(append(more, dc.msg.To...), dc.msg.Cc...)
	}
	for _, a := range more {
		if !dc.isOwnSender(a) && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return false, nil
	}
	key := partKey{ticket, mode}
	if p, ok := dc.part[key]; ok {
		return p, nil
	}
	p, err := dc.look.IsParticipant(ctx, ticket, addrs)
	if err != nil {
		return false, fmt.Errorf("look up participants of ticket %d: %w", ticket, err)
	}
	dc.part[key] = p
	return p, nil
}

type partKey struct {
	ticket int64
	mode   int
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// signedDomain reports whether signed addresses may live on domain: the
// OwnDomains and the domains of the OwnAddresses.
func (dc *decider) signedDomain(domain string) bool {
	if domain == "" {
		return false
	}
	if contains(dc.cfg.OwnDomains, domain) {
		return true
	}
	for _, a := range dc.cfg.OwnAddresses {
		if strings.EqualFold(Domain(a), domain) {
			return true
		}
	}
	return false
}

// isOwnSender reports whether addr is one of ours: an inbox address, any
// address on an OwnDomain, or a signed address.
func (dc *decider) isOwnSender(addr string) bool {
	if addr == "" {
		return false
	}
	if contains(dc.cfg.OwnAddresses, addr) || contains(dc.cfg.OwnDomains, Domain(addr)) {
		return true
	}
	if dc.signedDomain(Domain(addr)) {
		lp := LocalPart(addr)
		if _, err := dc.cfg.Signer.Verify(lp); !errors.Is(err, ErrNotReplyAddress) {
			return true
		}
		if _, err := dc.cfg.Signer.ParseBounceAddress(lp); !errors.Is(err, ErrNotReplyAddress) {
			return true
		}
	}
	return false
}

// signedAddresses is rule 1. Without an envelope (IMAP) the To and Cc
// fields stand in: a token is as unforgeable in a header as in RCPT TO.
func (dc *decider) signedAddresses(ctx context.Context) (bool, error) {
	rcpts := dc.msg.Recipients
	if len(rcpts) == 0 {
		rcpts = append(append([]string{}, dc.msg.To...), dc.msg.Cc...)
	}
	var tok *ReplyToken
	for _, r := range rcpts {
		if !dc.signedDomain(Domain(r)) {
			continue
		}
		lp := LocalPart(r)
		if id, err := dc.cfg.Signer.ParseBounceAddress(lp); err == nil {
			dc.d.BounceOutbox = id
			dc.bounce = true
			dc.add(EvidenceBounceAddress, 0, true, "sent to the bounce address of outgoing mail %d", id)
			continue
		} else if !errors.Is(err, ErrNotReplyAddress) {
			dc.add(EvidenceBounceAddress, 0, false, "bounce address %s failed verification (%v): forged or stale, ignored", r, err)
			continue
		}
		t, err := dc.cfg.Signer.Verify(lp)
		switch {
		case errors.Is(err, ErrNotReplyAddress):
			continue
		case err != nil:
			dc.add(EvidenceSignedAddress, 0, false, "signed address %s failed verification (%v): forged or stale, ignored", r, err)
			continue
		case tok != nil && tok.Ticket != t.Ticket:
			dc.add(EvidenceSignedAddress, t.Ticket, false, "second signed address %s for ticket %d ignored", r, t.Ticket)
			continue
		}
		if tok == nil {
			tok = &t
		}
	}
	if tok == nil {
		return false, nil
	}
	info, ok, err := dc.ticket(ctx, tok.Ticket)
	if err != nil {
		return false, err
	}
	if !ok {
		dc.add(EvidenceSignedAddress, tok.Ticket, false, "signed %s address for ticket %d, which no longer exists", tok.Purpose, tok.Ticket)
		return false, nil
	}
	dc.d.Reply = tok
	dc.accept(EvidenceSignedAddress, info, tok.Ticket, "sent to the signed %s address of agent %d on ticket %d", tok.Purpose, tok.Agent, info.Number)
	dc.d.Evidence[len(dc.d.Evidence)-1].Strong = true
	return true, nil
}

type refID struct {
	id   string
	kind EvidenceKind
}

// candidateIDs lists In-Reply-To, then References newest first, then the
// References root, deduplicated and bounded.
func (dc *decider) candidateIDs() []refID {
	limit := dc.cfg.MaxReferences
	if limit <= 0 {
		limit = 50
	}
	var out []refID
	seen := map[string]bool{dc.msg.MessageID: dc.msg.MessageID != ""}
	push := func(id string, kind EvidenceKind) {
		if !seen[id] && header.ValidID(id) && len(out) < limit {
			seen[id] = true
			out = append(out, refID{id, kind})
		}
	}
	for _, id := range dc.msg.InReplyTo {
		push(id, EvidenceInReplyTo)
	}
	refs := dc.msg.References
	for i := len(refs) - 1; i >= 0; i-- {
		push(refs[i], EvidenceReferences)
	}
	if len(refs) > 0 && !seen[refs[0]] && header.ValidID(refs[0]) {
		// The root of a long chain is usually the customer's first mail.
		seen[refs[0]] = true
		out = append(out, refID{refs[0], EvidenceReferences})
	}
	return out
}

func (dc *decider) references(ctx context.Context) (bool, error) {
	cands := dc.candidateIDs()
	if len(cands) == 0 {
		return false, nil
	}
	ours := map[string]int64{}
	query := make([]string, 0, len(cands))
	for _, c := range cands {
		if t, ok := dc.cfg.Signer.ParseMessageID(c.id); ok {
			ours[c.id] = t
		} else if dc.signedDomain(Domain(c.id)) || IsOurMessageIDShape(c.id) {
			dc.add(c.kind, 0, false, "%s <%s> looks like ours but its signature does not verify: forged or mangled, ignored", c.kind, c.id)
			continue
		}
		query = append(query, c.id)
	}
	rows, err := dc.look.TicketsByMessageIDs(ctx, query)
	if err != nil {
		return false, fmt.Errorf("look up referenced message ids: %w", err)
	}
	byID := map[string][]StoredMessage{}
	for _, r := range rows {
		byID[r.MessageID] = append(byID[r.MessageID], r)
	}
	for _, c := range cands {
		done, err := dc.reference(ctx, c, byID[c.id], ours)
		if done || err != nil {
			return done, err
		}
	}
	return false, nil
}

// reference weighs one referenced id.
func (dc *decider) reference(ctx context.Context, c refID, rows []StoredMessage, ours map[string]int64) (bool, error) {
	field := "In-Reply-To"
	if c.kind == EvidenceReferences {
		field = "References"
	}
	tickets := map[int64]bool{}
	outbound := false
	for _, r := range rows {
		tickets[r.Ticket] = true
		outbound = outbound || r.Outbound
	}
	signed, isOurs := ours[c.id]
	var number int64
	switch {
	case isOurs:
		number = signed
		outbound = true
	case len(tickets) > 1:
		nums := make([]string, 0, len(tickets))
		for t := range tickets {
			nums = append(nums, strconv.FormatInt(t, 10))
		}
		slices.Sort(nums)
		dc.add(c.kind, 0, false, "%s <%s> is held by several tickets (%s): ambiguous, ignored", field, c.id, strings.Join(nums, ", "))
		return false, nil
	case len(tickets) == 1:
		number = rows[0].Ticket
	default:
		return false, nil
	}
	info, ok, err := dc.ticket(ctx, number)
	if err != nil {
		return false, err
	}
	if !ok {
		dc.add(c.kind, number, false, "%s <%s> points at ticket %d, which no longer exists", field, c.id, number)
		return false, nil
	}
	if outbound {
		how := "our mail"
		if isOurs && len(rows) == 0 {
			how = "our signed Message-ID (no stored row)"
		}
		dc.accept(c.kind, info, number, "threaded by %s to %s <%s>", field, how, c.id)
		dc.d.Evidence[len(dc.d.Evidence)-1].Strong = true
		return true, nil
	}
	p, err := dc.participates(ctx, info.Number, fromToCc)
	if err != nil {
		return false, err
	}
	if !p {
		dc.add(c.kind, info.Number, false, "%s <%s> ignored: it is a customer's mail on ticket %d and the sender is not on ticket %d", field, c.id, info.Number, info.Number)
		return false, nil
	}
	dc.accept(c.kind, info, number, "threaded by %s to <%s>", field, c.id)
	return true, nil
}

func (dc *decider) subjectTag(ctx context.Context) (bool, error) {
	n, ok := SubjectTag(dc.msg.Subject, dc.cfg.TagPrefix)
	if !ok {
		return false, nil
	}
	info, ok, err := dc.ticket(ctx, n)
	if err != nil || !ok {
		if err == nil {
			dc.add(EvidenceSubjectTag, n, false, "subject tag ignored: there is no ticket %d", n)
		}
		return false, err
	}
	p, err := dc.participates(ctx, info.Number, fromCc)
	if err != nil {
		return false, err
	}
	if !p {
		dc.add(EvidenceSubjectTag, info.Number, false, "subject tag ignored: sender not on ticket %d", info.Number)
		return false, nil
	}
	dc.accept(EvidenceSubjectTag, info, n, "threaded by subject tag #%d: sender takes part in the ticket", n)
	return true, nil
}

func (dc *decider) threadIndex(ctx context.Context) (bool, error) {
	if dc.msg.ThreadIndex == "" {
		return false, nil
	}
	root, ok := ThreadIndexRoot(dc.msg.ThreadIndex)
	if !ok {
		dc.add(EvidenceThreadIndex, 0, false, "malformed Thread-Index ignored")
		return false, nil
	}
	n, found, err := dc.look.TicketByThreadIndex(ctx, root)
	info, ok, err := dc.resolveFound(ctx, "thread index", n, found, err)
	if err != nil || !ok {
		return false, err
	}
	p, err := dc.participates(ctx, info.Number, fromOnly)
	if err != nil {
		return false, err
	}
	if !p {
		dc.add(EvidenceThreadIndex, info.Number, false, "Outlook conversation matches ticket %d, ignored: sender not on ticket %d", info.Number, info.Number)
		return false, nil
	}
	dc.accept(EvidenceThreadIndex, info, n, "threaded by Outlook Thread-Index conversation %s", root)
	return true, nil
}

func (dc *decider) subject(ctx context.Context) (bool, error) {
	if dc.bounce || dc.msg.From == "" || dc.cfg.SubjectWindow <= 0 {
		return false, nil
	}
	subj := dc.msg.Subject
	if strings.TrimSpace(subj) == "" {
		subj = dc.msg.ThreadTopic
	}
	key := NormalizeSubject(subj)
	if IsGenericSubject(key) {
		dc.add(EvidenceSubject, 0, false, "subject %q is too generic to thread on", key)
		return false, nil
	}
	since := dc.cfg.Clock.Now().Add(-dc.cfg.SubjectWindow)
	n, found, err := dc.look.RecentTicketBySubject(ctx, dc.msg.From, key, since)
	info, ok, err := dc.resolveFound(ctx, "ticket by subject", n, found, err)
	if err != nil || !ok {
		return false, err
	}
	dc.accept(EvidenceSubject, info, n, "threaded by subject %q from the same sender, ticket updated within %s", key, dc.cfg.SubjectWindow)
	return true, nil
}
