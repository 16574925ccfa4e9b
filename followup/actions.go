package followup

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tendhq/tend/rules"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/threading"
	"github.com/tendhq/tend/vocab"
)

// ErrUnknownAgent is returned when an assignment names nobody.
var ErrUnknownAgent = errors.New("no such agent")

// onTicket runs fn on ticket in one transaction.
func (x *Executor) onTicket(ctx context.Context, ticket int64, fn func(sc *scope) error) error {
	return x.opts.Store.InTx(ctx, func(tx *storage.Tx) error {
		sc, err := x.open(ctx, tx, ticket, nil)
		if err != nil {
			return err
		}
		return fn(sc)
	})
}

// Resolve proposes resolution of ticket on behalf of by (a lead in the web
// view): the customer is asked to confirm; nothing is marked solved yet.
func (x *Executor) Resolve(ctx context.Context, ticket int64, by string) error {
	return x.onTicket(ctx, ticket, func(sc *scope) error { return x.requestResolve(sc, by) })
}

// Reopen puts ticket back to open.
func (x *Executor) Reopen(ctx context.Context, ticket int64, by string) error {
	return x.onTicket(ctx, ticket, func(sc *scope) error { return x.changeState(sc, vocab.StateOpen, "", by) })
}

// Close closes ticket, always with a reason (spam, duplicate of #N, no
// response, …).
func (x *Executor) Close(ctx context.Context, ticket int64, reason, by string) error {
	if reason == "" {
		return errors.New("close: a reason is required")
	}
	return x.onTicket(ctx, ticket, func(sc *scope) error { return x.changeState(sc, vocab.StateClosed, reason, by) })
}

// Assign gives ticket to the agent with that email (or name).
func (x *Executor) Assign(ctx context.Context, ticket int64, agent, by string) error {
	return x.onTicket(ctx, ticket, func(sc *scope) error {
		ag := findAgent(sc.agents, agent)
		if ag == nil {
			return fmt.Errorf("assign %q: %w", agent, ErrUnknownAgent)
		}
		return x.assign(sc, ag, by)
	})
}

// Confirm applies a customer's click on a signed confirmation link. It
// returns the ticket and the answer the link stood for.
func (x *Executor) Confirm(ctx context.Context, token string) (int64, string, error) {
	purpose, ticket, err := x.opts.Signer.VerifyLinkToken(token, x.opts.Clock.Now())
	if err != nil {
		return 0, "", err
	}
	answer := "yes"
	if purpose == linkNotSolved {
		answer = "no"
	} else if purpose != linkSolved {
		return 0, "", fmt.Errorf("confirm: link purpose %q", purpose)
	}
	err = x.onTicket(ctx, ticket, func(sc *scope) error {
		if err := sc.tx.AddEvent(ctx, sc.v.ID, vocab.EventConfirmationClicked, sc.v.Customer.Email, "customer clicked: "+purpose, nil); err != nil {
			return err
		}
		ev, err := x.event(sc, vocab.EventConfirmationClicked)
		if err != nil {
			return err
		}
		ev.Answer = answer
		return x.run(sc, ev)
	})
	return ticket, answer, err
}

// openLinked moves the triggering message (a reply long after the ticket
// was resolved) to a new ticket linked to this one, and lets the rules
// treat it as the new ticket it is: acknowledged, with its own promise.
func (x *Executor) openLinked(sc *scope) error {
	msg := sc.trigger
	if msg == nil {
		return nil
	}
	n, err := sc.tx.SplitMessage(sc.ctx, msg.ID, storage.SplitOptions{
		By: "rules", LinkedTo: sc.v.ID, NormSubject: threading.NormalizeSubject(msg.Subject),
	})
	if err != nil {
		return err
	}
	nsc, err := x.open(sc.ctx, sc.tx, n, msg)
	if err != nil {
		return err
	}
	x.detectLanguage(nsc, msg)
	ev, err := x.event(nsc, vocab.EventTicketCreated)
	if err != nil {
		return err
	}
	if ev.Message, err = x.customerMessage(nsc, msg, rules.RoleCustomer); err != nil {
		return err
	}
	return x.run(nsc, ev)
}

// Merge merges ticket into another (a lead's decision): messages,
// participants and timers move, the old number redirects. When the merged
// ticket has another customer, that customer is told (the rules' notice
// of a close, with the reason "merged into #N") and answers on the
// surviving ticket reach them as a Cc: nobody is left unanswered. The
// notice is queued before the merge, on the merged ticket, so that its
// mail fuse counts it; it moves with the ticket's other mail, and the
// timeline says what became of it.
func (x *Executor) Merge(ctx context.Context, ticket, into int64, by string) error {
	return x.opts.Store.InTx(ctx, func(tx *storage.Tx) error {
		// The merged ticket as its customer knows it, read before it
		// becomes a redirect.
		src, err := x.open(ctx, tx, ticket, nil)
		if err != nil {
			return err
		}
		dst, err := tx.TicketView(ctx, into)
		if err != nil {
			return err
		}
		other := !strings.EqualFold(src.v.Customer.Email, dst.Customer.Email) && src.v.ID != dst.ID
		if other {
			reason := fmt.Sprintf("merged into #%d, where the answer will come", dst.ID)
			prev := src.v.State
			src.v.State, src.v.CloseReason = vocab.StateClosed, reason
			ev, err := x.event(src, vocab.EventStateChanged)
			if err != nil {
				return err
			}
			ev.Ticket.PrevState, ev.NewState, ev.Reason = prev, vocab.StateClosed, reason
			if err := x.run(src, ev); err != nil {
				return err
			}
		}
		if err := tx.MergeTickets(ctx, ticket, into, by); err != nil {
			return err
		}
		if !other {
			return nil
		}
		return tx.AddEvent(ctx, dst.ID, vocab.EventMergeCustomerTold, by, fmt.Sprintf("%s (the customer of #%d) %s, and gets the answers on this ticket",
			src.v.Customer.Email, src.v.ID, x.toldOf(src.notices)), nil)
	})
}

// toldOf says, for a text written now, what became of the customer
// notices the rules just sent: a timeline line must not say "is told" of
// a notice the fuse holds.
func (x *Executor) toldOf(ns []notice) string {
	if len(ns) == 0 {
		return "is not told: no rule sends them a notice"
	}
	n := ns[len(ns)-1]
	switch {
	case n.suppressed != "":
		return "is not told (" + n.suppressed + ")"
	case n.q.held:
		return "is not told yet: the notice is held by the mail fuse until a lead releases this ticket's mail"
	case n.q.due.After(x.opts.Clock.Now()):
		return "is not told yet: the notice is held until " + n.q.due.UTC().Format("Mon 2 Jan 15:04 MST")
	}
	return "is told (the notice is on its way)"
}

// Split moves one message off into a new ticket of its own.
func (x *Executor) Split(ctx context.Context, messageRowID int64, by string) (int64, error) {
	var n int64
	err := x.opts.Store.InTx(ctx, func(tx *storage.Tx) error {
		m, err := tx.Message(ctx, messageRowID)
		if err != nil {
			return err
		}
		n, err = tx.SplitMessage(ctx, messageRowID, storage.SplitOptions{By: by, NormSubject: threading.NormalizeSubject(m.Subject)})
		return err
	})
	return n, err
}
