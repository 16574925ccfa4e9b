package followup

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tendhq/tend/mail/classify"
	"github.com/tendhq/tend/rules"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/threading"
)

// HandleTimer fires a claimed timer: timer.due for the rules. A timer that
// was cancelled meanwhile, or taken over by another replica, does nothing.
func (x *Executor) HandleTimer(ctx context.Context, t storage.Timer, owner string) error {
	return x.opts.Store.InTx(ctx, func(tx *storage.Tx) error {
		ok, err := tx.FireTimer(ctx, t.ID, owner)
		if err != nil || !ok {
			return err
		}
		sc, err := x.open(ctx, tx, t.TicketID, nil)
		if err != nil {
			return err
		}
		if t.Name == storage.TimerFollowUp {
			if err := x.followUpDue(sc, t); err != nil {
				return err
			}
		}
		ev, err := x.event(sc, rules.EventTimerDue)
		if err != nil {
			return err
		}
		ev.Timer = &rules.Timer{Name: t.Name, DueAt: t.DueAt, Seq: t.ID}
		if t.Name == storage.TimerFollowUp {
			ev.Reason = "follow-up set for " + x.localTime(sc, t.DueAt)
		}
		return x.run(sc, ev)
	})
}

// outboxFailed tells the rules that a mail could not be delivered.
func (x *Executor) outboxFailed(ctx context.Context, tx *storage.Tx, o storage.OutboxMail, reason string, permanent bool) error {
	if o.TicketID == nil {
		return nil
	}
	sc, err := x.open(ctx, tx, *o.TicketID, nil)
	if err != nil {
		return err
	}
	if err := tx.AddEvent(ctx, sc.v.ID, "mail.failed", "", fmt.Sprintf("not delivered to %s: %s", o.EnvTo, reason), nil); err != nil {
		return err
	}
	if o.Kind == storage.OutboxToStaff {
		// A notification that cannot reach an agent is on the timeline;
		// mailing staff about mail to staff failing could loop.
		return nil
	}
	ev, err := x.event(sc, rules.EventOutboxFailed)
	if err != nil {
		return err
	}
	ev.Outbox = &rules.Outbox{To: o.EnvTo, Reason: reason, Permanent: permanent}
	return x.run(sc, ev)
}

// bounce handles a delivery status notification that threading kept off
// every ticket: it finds the outbox row it reports on (by the VERP return
// path it was sent to, else by the original Message-ID), marks that row
// failed and tells the rules. It is never answered.
func (x *Executor) bounce(ctx context.Context, tx *storage.Tx, msg storage.Message) error {
	id := int64(0)
	for _, rcpt := range strings.Split(msg.EnvTo, ",") {
		if threading.Domain(rcpt) != x.opts.Domain {
			continue
		}
		if n, err := x.opts.Signer.ParseBounceAddress(threading.LocalPart(rcpt)); err == nil {
			id = n
			break
		}
	}
	raw, err := x.opts.Store.Raw(ctx, msg.RawHash)
	if err != nil {
		return err
	}
	dsn, derr := classify.ParseDSN(raw)
	if id == 0 && dsn != nil && dsn.OriginalMessageID != "" {
		if n, ok, err := tx.OutboxByMessageID(ctx, dsn.OriginalMessageID); err != nil {
			return err
		} else if ok {
			id = n
		}
	}
	if id == 0 {
		x.log.Info("bounce matches no outgoing mail", "message", msg.ID)
		return nil
	}
	reason, permanent := "delivery failed (bounce)", true
	if dsn != nil {
		if failed := dsn.Failed(); len(failed) > 0 {
			f := failed[0]
			reason = strings.TrimSpace(fmt.Sprintf("%s %s %s", f.Address, f.Status, f.Diagnostic))
			permanent = f.Permanent
		} else if len(dsn.Recipients) > 0 {
			// Only delays: not a failure.
			return nil
		}
	} else if derr != nil && !errors.Is(derr, classify.ErrNotDSN) {
		reason += ": " + derr.Error()
	}
	o, ok, err := tx.FailOutbox(ctx, id, reason)
	if err != nil || !ok {
		return err
	}
	// The operator hears of a bounce in the log too, not only on the
	// ticket's timeline: a run of them is how a broken relay shows.
	x.log.Warn("bounce report", "outbox", id, "to", o.EnvTo, "permanent", permanent, "reason", reason, "message", msg.ID)
	return x.outboxFailed(ctx, tx, o, reason, permanent)
}
