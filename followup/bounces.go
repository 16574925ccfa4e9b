package followup

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tendhq/tend/mail/classify"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/threading"
)

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
	raw, err := tx.Raw(ctx, msg.RawHash)
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
