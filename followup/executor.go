package followup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tendhq/tend/mail/compose"
	"github.com/tendhq/tend/mail/langdetect"
	"github.com/tendhq/tend/rules"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/threading"
	"github.com/tendhq/tend/vocab"
)

// Options configure an Executor.
type Options struct {
	Store     *storage.Store
	Engine    *rules.Engine
	Templates *rules.Templates
	Signer    *threading.Signer
	// Domain is ours: Message-IDs, agent reply addresses and VERP return
	// paths are on it.
	Domain    string
	BaseURL   string
	TagPrefix string
	// LoopValue identifies this installation in the loop header of
	// everything it sends.
	LoopValue string
	DKIM      *compose.DKIM
	Clock     storage.Clock
	Logger    *slog.Logger
	// LinkTTL is how long confirmation links stay valid.
	LinkTTL time.Duration
	// FuseMaxMails and FuseWindow are the per-ticket mail fuse: when that
	// many mails were queued on one ticket within the window, everything
	// further on it is held and its leads are alerted (default 20 in 10
	// minutes: a busy ticket never gets there, a loop does in seconds).
	FuseMaxMails int
	FuseWindow   time.Duration
	// FuseMaxPerDay trips the fuse on that many mails on one ticket within
	// 24 hours (default 100): a loop slowed by coalescing stays under the
	// burst limit, but not under this one.
	FuseMaxPerDay int
	// NotifyWindow coalesces notifications: an agent gets at most one of
	// each kind per ticket per window (default 2 minutes).
	NotifyWindow time.Duration
	// NotifyMaxText is the most bytes of the customer's text a staff
	// notification carries (default DefaultNotifyMaxText).
	NotifyMaxText int
	// NotifyAttachMax forwards the customer's attachments with a staff
	// notification only when together they are at most this many bytes
	// (default DefaultNotifyAttachMax; negative: never). Larger ones are
	// listed with their sizes and served from the ticket page.
	NotifyAttachMax int64
	// Inboxes are the inboxes' languages and calendars, by lower-case
	// address; an inbox not listed writes English, in UTC, around the
	// clock.
	Inboxes map[string]InboxPolicy
	// Detector tells the customer's language from their first message;
	// nil always uses the inbox's language.
	Detector *langdetect.Detector
}

// Executor applies the rules. It is safe for concurrent use; every entry
// point is one transaction and idempotent.
type Executor struct {
	opts Options
	log  *slog.Logger
}

// New returns an Executor.
func New(opts Options) (*Executor, error) {
	if opts.Store == nil || opts.Engine == nil || opts.Templates == nil || opts.Signer == nil || opts.Domain == "" {
		return nil, errors.New("followup: store, engine, templates, signer and domain are required")
	}
	if opts.Clock == nil {
		opts.Clock = storage.SystemClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.LinkTTL <= 0 {
		opts.LinkTTL = 30 * 24 * time.Hour
	}
	if opts.FuseMaxMails <= 0 {
		opts.FuseMaxMails = 20
	}
	if opts.FuseMaxPerDay <= 0 {
		opts.FuseMaxPerDay = 100
	}
	if opts.FuseWindow <= 0 {
		opts.FuseWindow = 10 * time.Minute
	}
	if opts.NotifyWindow <= 0 {
		opts.NotifyWindow = 2 * time.Minute
	}
	if opts.NotifyMaxText <= 0 {
		opts.NotifyMaxText = DefaultNotifyMaxText
	}
	if opts.NotifyAttachMax == 0 {
		opts.NotifyAttachMax = DefaultNotifyAttachMax
	}
	return &Executor{opts: opts, log: opts.Logger}, nil
}

// roleCC is the rules' role of a writer who is not the ticket's customer
// (a colleague on Cc, someone the customer forwarded our mail to).
const roleCC = "cc"

// scope is one event being handled inside its transaction.
type scope struct {
	ctx  context.Context
	tx   *storage.Tx
	v    storage.TicketView
	msgs []storage.Message
	// trigger is the message that caused the event, if any.
	trigger *storage.Message
	agents  []storage.Agent
	// history is the customer's other tickets (see history.go).
	history       []storage.HistoryTicket
	historyLoaded bool
	// notified is who got which staff template in this transaction: a
	// lead who is also an agent is on two rules' lists and gets it once.
	notified map[string]bool
	// notices is what became of each customer template the rules sent in
	// this transaction, for texts that say whether the customer was told.
	notices []notice
	// fuse is the ticket's mail the fuse counts, as this event queues it.
	fuse fuseCounts
	// batching, while set, makes queue add mail to batch instead of
	// committing it (batchMail).
	batching bool
	batch    []storage.QueuedMail
	// pending is what the event changed on the ticket's row and has not
	// written yet (change, flush).
	pending storage.TicketUpdate
	dirty   bool
}

// change records u for the scope's ticket. The row is written once, by
// flush, before anything that reads or writes it otherwise: a new
// ticket's language, repeat contact and priority were three UPDATEs of
// its row (each rewriting its queue indexes and logging a change for the
// live view), now one.
func (sc *scope) change(u storage.TicketUpdate) {
	sc.pending.Merge(u)
	sc.dirty = true
}

// flush writes the changes recorded by change.
func (sc *scope) flush() error {
	if !sc.dirty {
		return nil
	}
	u := sc.pending
	sc.pending, sc.dirty = storage.TicketUpdate{}, false
	return sc.tx.UpdateTicket(sc.ctx, sc.v.ID, u)
}

// deferrable are the actions that neither read nor write the ticket's row
// (they read the scope's view of it): a change recorded before them can
// wait until after them.
func deferrable(k rules.ActionKind) bool {
	switch k {
	case rules.Send, rules.Notify, rules.Schedule, rules.Cancel, rules.SetPriority, rules.Record:
		return true
	}
	return false
}

// notice is what became of one customer template: queued (held by the
// fuse, or due at a time), or not sent at all (suppressed says why).
type notice struct {
	template   string
	q          queued
	suppressed string
}

// HandleMessage runs the rules for a stored, parsed message inside tx. It
// is the ingest Processor's AfterParse hook; running it twice for one
// message does nothing the second time.
func (x *Executor) HandleMessage(ctx context.Context, tx *storage.Tx, msg storage.Message) error {
	return x.handleMessage(ctx, tx, msg, nil)
}

// HandleMessageIn is HandleMessage for a message whose ticket the caller
// has just loaded in tx (the access guard, which reads it to decide):
// loading it again cost six queries per message.
func (x *Executor) HandleMessageIn(ctx context.Context, tx *storage.Tx, msg storage.Message, v storage.TicketView) error {
	return x.handleMessage(ctx, tx, msg, &v)
}

func (x *Executor) handleMessage(ctx context.Context, tx *storage.Tx, msg storage.Message, v *storage.TicketView) error {
	first, err := tx.MarkHandled(ctx, msg.ID)
	if err != nil || !first {
		return err
	}
	if msg.TicketID == nil {
		if msg.Class == vocab.ClassBounce {
			return x.bounce(ctx, tx, msg)
		}
		return nil
	}
	if v == nil {
		loaded, err := tx.TicketView(ctx, *msg.TicketID)
		if err != nil {
			return err
		}
		v = &loaded
	}
	sc, err := x.openView(ctx, tx, *v, &msg)
	if err != nil {
		return err
	}
	if msg.AgentID != nil {
		err = x.agentMail(sc)
	} else {
		err = x.customerMail(sc)
	}
	if err != nil {
		return err
	}
	return sc.flush()
}

// open loads what an event needs.
func (x *Executor) open(ctx context.Context, tx *storage.Tx, ticket int64, trigger *storage.Message) (*scope, error) {
	v, err := tx.TicketView(ctx, ticket)
	if err != nil {
		return nil, err
	}
	return x.openView(ctx, tx, v, trigger)
}

// openView is open with the ticket loaded.
func (x *Executor) openView(ctx context.Context, tx *storage.Tx, v storage.TicketView, trigger *storage.Message) (*scope, error) {
	msgs, err := tx.Messages(ctx, v.ID)
	if err != nil {
		return nil, err
	}
	agents, err := tx.Agents(ctx)
	if err != nil {
		return nil, err
	}
	return &scope{ctx: ctx, tx: tx, v: v, msgs: msgs, trigger: trigger, agents: agents, fuse: fuseCounts{-1, -1}}, nil
}

func (x *Executor) customerMail(sc *scope) error {
	msg := sc.trigger
	evType := vocab.EventMessageReceived
	if firstInbound(sc.msgs) == msg.ID {
		evType = vocab.EventTicketCreated
		x.detectLanguage(sc, msg)
	}
	role := rules.RoleCustomer
	if msg.FromAddr != sc.v.Customer.Email {
		role = roleCC
	}
	if done, err := x.ratingReply(sc, msg, role); err != nil || done {
		return err
	}
	ev, err := x.event(sc, evType)
	if err != nil {
		return err
	}
	if msg.Class == vocab.ClassHuman && !msg.Imported {
		// The customer (or a CC) wrote while the ticket was put aside:
		// it is back at once, not when the follow-up was due.
		if err := x.wake(sc, "the customer wrote: back in the queue before the follow-up"); err != nil {
			return err
		}
	}
	if ev.Message, err = x.customerMessage(sc, msg, role); err != nil {
		return err
	}
	// The rules see the ticket as it was before this message: the ingest
	// transaction already moved LastCustomerAt to it.
	ev.Ticket.LastCustomerAt = time.Time{}
	for _, m := range sc.msgs {
		if m.ID < msg.ID && m.Direction == storage.DirectionIn && m.FromAddr == sc.v.Customer.Email && m.Class == vocab.ClassHuman {
			ev.Ticket.LastCustomerAt = m.ReceivedAt
		}
	}
	ev = rules.Prepare(ev)
	if ev.Message.Answer == rules.AnswerNo {
		// The ticket page shows it as a banner until resolution is
		// proposed again.
		if err := sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventConfirmationAnswered, msg.FromAddr, answeredNotSolved, &msg.ID); err != nil {
			return err
		}
	}
	return x.run(sc, ev)
}

// answeredNotSolved is the detail of vocab.EventConfirmationAnswered for
// the customer's written "not solved".
const answeredNotSolved = "the customer says it is not solved"

// customerMessage is the rules' view of a customer's (or a Cc's) message,
// with the names of its attachments, for the acknowledgement and the
// notifications.
func (x *Executor) customerMessage(sc *scope, msg *storage.Message, role string) (*rules.Message, error) {
	rm := x.ruleMessage(msg, role)
	names, err := sc.tx.AttachmentNames(sc.ctx, msg.ID)
	if err != nil {
		return nil, err
	}
	for i, n := range names {
		if strings.TrimSpace(n) == "" {
			names[i] = fmt.Sprintf("attachment %d", i+1)
		}
	}
	rm.Attachments = names
	return rm, nil
}

// firstInbound is the row id of the ticket's first received message.
func firstInbound(msgs []storage.Message) int64 {
	for _, m := range msgs {
		if m.Direction == storage.DirectionIn {
			return m.ID
		}
	}
	return 0
}

// ruleMessage is the rules' view of a message.
func (x *Executor) ruleMessage(m *storage.Message, role string) *rules.Message {
	rm := &rules.Message{
		From: rules.Person{Address: m.FromAddr, Name: m.FromName}, Role: role, Class: m.Class,
		Text: newText(m), Subject: m.Subject, Imported: m.Imported, Note: m.Note,
		NoAutoReply: m.NoAutoReply, Suspect: m.Suspect, ClassReasons: m.Reasons(),
		Unverified: unverified(m), SenderAuth: describeAuth(m.Auth),
	}
	if m.Date != nil {
		rm.Date = *m.Date
	}
	return rm
}

// event builds an event of type typ on the scope's ticket.
func (x *Executor) event(sc *scope, typ vocab.EventKind) (rules.Event, error) {
	now := x.opts.Clock.Now()
	counts, err := sc.tx.MailCounts(sc.ctx, sc.v.Customer.Email, sc.v.ID, now.Add(-x.opts.FuseWindow), now.Add(-24*time.Hour))
	if err != nil {
		return rules.Event{}, err
	}
	lastHour, today := counts.ToAddrLastHour, counts.OnTicketToday
	if sc.fuse.burst < 0 {
		// Read with the flood counts: the fuse, asked before this
		// event's first mail, need not read them again.
		sc.fuse.burst, sc.fuse.day = counts.Burst, counts.Day
	}
	v := sc.v
	t := rules.Ticket{
		Number: v.ID, Subject: threading.DisplaySubject(v.Subject, x.opts.TagPrefix), State: v.State, CloseReason: v.CloseReason, Priority: v.Priority,
		Customer: rules.Person{Address: v.Customer.Email, Name: v.Customer.Name},
		Inbox:    rules.Inbox{Address: v.Inbox.Address, Name: v.Inbox.Name, ResponseTime: time.Duration(v.Inbox.ResponseTime) * time.Second},
		Tags:     strings.Fields(v.Tags), RepeatContacts: v.RepeatContacts, Breached: v.Breached,
		CreatedAt: v.CreatedAt, AutoMailsToCustomerLastHour: lastHour, AutoMailsOnTicketToday: today,
	}
	if v.Assignee != nil {
		t.Assignee = rules.Person{Address: v.Assignee.Email, Name: v.Assignee.Name}
	}
	if err := x.customerLoad(sc, &t); err != nil {
		return rules.Event{}, err
	}
	for dst, src := range map[*time.Time]*time.Time{&t.FirstResponseAt: v.FirstResponseAt, &t.LastCustomerAt: v.LastCustomerAt, &t.LastAgentAt: v.LastAgentAt, &t.ResolvedAt: v.ResolvedAt, &t.CustomerSuppressedUntil: v.Customer.SuppressedUntil} {
		if src != nil {
			*dst = *src
		}
	}
	return rules.Event{Type: typ, Now: x.opts.Clock.Now(), Ticket: t}, nil
}

// run evaluates the rules for ev and applies what they decide. A rule that
// fails is logged and put on the timeline; it never blocks the others.
func (x *Executor) run(sc *scope, ev rules.Event) error {
	// The mails rendered below see the answer the rules saw.
	ev = rules.Prepare(ev)
	acts, errs := x.opts.Engine.Evaluate(ev)
	for _, re := range errs {
		x.log.Warn("rule failed", "ticket", sc.v.ID, "rule", re.Rule, "err", re.Err)
		if err := sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventRuleFailed, "", re.Error(), nil); err != nil {
			return err
		}
	}
	verdicts := rules.GateAll(ev, acts, x.opts.Engine.Options())
	// Staff notifications go last: what they say of the ticket (its state,
	// its priority, what the customer was told) is then what the event's
	// other actions made it, not what it was before them.
	order := make([]int, 0, len(acts))
	for _, notify := range []bool{false, true} {
		for i, a := range acts {
			if (a.Kind == rules.Notify) == notify {
				order = append(order, i)
			}
		}
	}
	for _, i := range order {
		a := acts[i]
		if v := verdicts[i]; a.Kind == rules.Send && !v.Allowed && !v.Until.IsZero() {
			// A notice the customer must get, held back for now: deferred,
			// never dropped.
			if err := x.sendTemplate(sc, ev, a, v.Until, v.Reason); err != nil {
				return fmt.Errorf("rule %s: %s: %w", a.Rule, a.Kind, err)
			}
			continue
		}
		if a.Auto && !verdicts[i].Allowed {
			if a.Kind == rules.Send {
				sc.notices = append(sc.notices, notice{template: a.Template, suppressed: verdicts[i].Reason})
			}
			if err := sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventMailSuppressed, "", fmt.Sprintf("%s (%s): %s", a.Template, a.Rule, verdicts[i].Reason), nil); err != nil {
				return err
			}
			continue
		}
		if !deferrable(a.Kind) {
			if err := sc.flush(); err != nil {
				return err
			}
		}
		if err := x.apply(sc, ev, a); err != nil {
			return fmt.Errorf("rule %s: %s: %w", a.Rule, a.Kind, err)
		}
	}
	return sc.flush()
}

// apply carries out one action.
func (x *Executor) apply(sc *scope, ev rules.Event, a rules.Action) error {
	ctx, tx, id := sc.ctx, sc.tx, sc.v.ID
	switch a.Kind {
	case rules.Send:
		return x.sendTemplate(sc, ev, a, time.Time{}, "")
	case rules.Notify:
		return x.notify(sc, ev, a.Template, a.To, a.Rule, 0)
	case rules.SetState:
		return x.setState(sc, a.State, a.Note, "rule "+a.Rule)
	case rules.Assign:
		ag := findAgent(sc.agents, a.Assignee)
		if ag == nil {
			return tx.AddEvent(ctx, id, vocab.EventRuleFailed, "", fmt.Sprintf("rule %s: no agent %q to assign", a.Rule, a.Assignee), nil)
		}
		return x.assign(sc, ag, "rule "+a.Rule)
	case rules.SetPriority:
		sc.change(storage.TicketUpdate{Priority: &a.Priority})
		sc.v.Priority = a.Priority
		return tx.AddEvent(ctx, id, vocab.EventPriority, "", fmt.Sprintf("priority %s (rule %s)", a.Priority, a.Rule), nil)
	case rules.Tag:
		return tx.UpdateTicket(ctx, id, storage.TicketUpdate{AddTags: []string{a.Tag}})
	case rules.Schedule:
		return tx.Schedule(ctx, id, a.Timer, x.due(sc, ev.Now, a.After, a.BusinessTime))
	case rules.Cancel:
		return tx.Cancel(ctx, id, a.Timer)
	case rules.Record:
		u := storage.TicketUpdate{}
		switch a.Note {
		case rules.RecordRepeatContact:
			u.RepeatContacts = 1
			if ev.Type == vocab.EventTicketCreated {
				// A new subject from a customer already waiting carries
				// the count of their other waiting tickets.
				u.RepeatContacts += ev.Ticket.CustomerRepeatContacts
			}
			sc.v.RepeatContacts += u.RepeatContacts
		case rules.RecordBreach:
			yes := true
			u.Breached = &yes
			sc.v.Breached = true
		}
		if u.RepeatContacts != 0 || u.Breached != nil {
			sc.change(u)
		}
		return tx.AddEvent(ctx, id, vocab.EventRuleRecord, "", fmt.Sprintf("%s (rule %s)", a.Note, a.Rule), nil)
	case rules.Suppress:
		reason := "hard bounce"
		if ev.Outbox != nil {
			reason = ev.Outbox.Reason
		}
		if err := tx.Suppress(ctx, a.Address, ev.Now.Add(a.After), reason); err != nil {
			return err
		}
		return tx.AddEvent(ctx, id, vocab.EventContactSuppressed, "", fmt.Sprintf("no automatic mail to %s until %s: %s", a.Address, ev.Now.Add(a.After).Format("2006-01-02"), reason), nil)
	case rules.OpenLinked:
		return x.openLinked(sc)
	}
	return fmt.Errorf("unknown action %q", a.Kind)
}

// setState moves the ticket and puts the change on the timeline.
func (x *Executor) setState(sc *scope, state vocab.State, reason, by string) error {
	if state == sc.v.State {
		return nil
	}
	u := storage.TicketUpdate{State: &state}
	if state == vocab.StateClosed {
		u.CloseReason = &reason
	}
	if err := sc.tx.UpdateTicket(sc.ctx, sc.v.ID, u); err != nil {
		return err
	}
	if state == vocab.StateResolved || state == vocab.StateClosed {
		// Done is done: no follow-up brings a finished ticket back.
		if err := x.wake(sc, "ticket "+string(state)+": follow-up cancelled"); err != nil {
			return err
		}
	}
	detail := fmt.Sprintf("%s → %s (%s)", sc.v.State, state, by)
	if reason != "" {
		detail += ": " + reason
	}
	kind := vocab.EventStateChanged
	if (sc.v.State == vocab.StateResolved || sc.v.State == vocab.StateClosed) && state != vocab.StateResolved && state != vocab.StateClosed {
		kind = vocab.EventReopened // counted by the stats
	}
	sc.v.State = state
	return sc.tx.AddEvent(sc.ctx, sc.v.ID, kind, "", detail, nil)
}

func (x *Executor) assign(sc *scope, ag *storage.Agent, by string) error {
	if err := sc.tx.UpdateTicket(sc.ctx, sc.v.ID, storage.TicketUpdate{AssigneeID: &ag.ID}); err != nil {
		return err
	}
	sc.v.Assignee = ag
	if err := sc.tx.AddParticipants(sc.ctx, sc.v.ID, []string{ag.Email}, "agent"); err != nil {
		return err
	}
	return sc.tx.AddEvent(sc.ctx, sc.v.ID, vocab.EventAssigned, "", fmt.Sprintf("assigned to %s <%s> (%s)", ag.Name, ag.Email, by), nil)
}

// findAgent finds an agent by email, name or first name, case-insensitive.
func findAgent(agents []storage.Agent, who string) *storage.Agent {
	who = strings.ToLower(strings.TrimSpace(who))
	for i, a := range agents {
		name := strings.ToLower(a.Name)
		first, _, _ := strings.Cut(name, " ")
		local, _, _ := strings.Cut(a.Email, "@")
		if who == a.Email || who == name || who == first || who == local {
			return &agents[i]
		}
	}
	return nil
}

// unverified reports whether agents must be told that a received
// message's sender is not proven: verification ran and did not
// authenticate it, or it joined its ticket on weak evidence (ingest then
// kept its To/Cc off the ticket) with nothing checked at all.
func unverified(m *storage.Message) bool {
	if m.Direction != storage.DirectionIn || m.Auth.Authenticated() {
		return false
	}
	if m.Auth.Method != "" {
		return true
	}
	var rows []struct {
		Kind threading.EvidenceKind `json:"kind"`
	}
	_ = json.Unmarshal([]byte(m.Evidence), &rows) // unreadable evidence: no weak join recorded
	for _, r := range rows {
		if r.Kind == threading.EvidenceSenderAuth {
			return true
		}
	}
	return false
}

// describeAuth is the stored verdict in a few words.
func describeAuth(a storage.SenderAuth) string {
	if a.Method == "" {
		return ""
	}
	s := fmt.Sprintf("dkim=%s spf=%s dmarc=%s", a.DKIM, a.SPF, a.DMARC)
	if a.FromDomain != "" {
		s += " for " + a.FromDomain
	}
	return s
}
