package followup

import (
	"context"
	"fmt"

	"github.com/tendhq/tend/rules"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/vocab"
)

// Unprocessable reports a message whose after-work (parse, rules) failed
// for the last time; it is the ingest Processor's GiveUp hook and runs in
// its transaction. The message is marked "could not be processed" on its
// ticket with the error, and the rules run once more on what the header
// block gives (the text replaced by a notice), so the customer still gets
// the acknowledgement and the agents are told. If the rules fail again the
// agents are notified directly.
func (x *Executor) Unprocessable(ctx context.Context, tx *storage.Tx, msg storage.Message, cause error) error {
	return x.UnprocessableVia(x.HandleMessage)(ctx, tx, msg, cause)
}

// UnprocessableVia is Unprocessable running the rules through handle
// instead of HandleMessage directly (the wiring's access guard around
// it), so that a message given up on is held where it would have been.
func (x *Executor) UnprocessableVia(handle func(ctx context.Context, tx *storage.Tx, msg storage.Message) error) func(ctx context.Context, tx *storage.Tx, msg storage.Message, cause error) error {
	return func(ctx context.Context, tx *storage.Tx, msg storage.Message, cause error) error {
		return x.unprocessable(ctx, tx, msg, cause, handle)
	}
}

func (x *Executor) unprocessable(ctx context.Context, tx *storage.Tx, msg storage.Message, cause error, handle func(ctx context.Context, tx *storage.Tx, msg storage.Message) error) error {
	if msg.TicketID == nil {
		return nil
	}
	reason := fmt.Sprintf("could not be processed: %v", cause)
	if err := tx.AddEvent(ctx, *msg.TicketID, vocab.EventUnprocessable, msg.FromAddr, reason, &msg.ID); err != nil {
		return err
	}
	msg.Text = fmt.Sprintf("[This message %s. It is kept as received: open the ticket to download it.]", reason)
	msg.HTML = ""
	if err := tx.Savepoint("unprocessable"); err != nil {
		return err
	}
	err := handle(ctx, tx, msg)
	if err == nil || msg.AgentID != nil {
		// An agent's own mail is on the timeline; there is no one else to tell.
		return err
	}
	x.log.Error("rules failed on an unprocessable message; telling the agents directly", "ticket", *msg.TicketID, "message", msg.ID, "err", err)
	if rerr := tx.RollbackTo("unprocessable"); rerr != nil {
		return rerr
	}
	if _, err := tx.MarkHandled(ctx, msg.ID); err != nil {
		return err
	}
	sc, err := x.open(ctx, tx, *msg.TicketID, &msg)
	if err != nil {
		return err
	}
	ev, err := x.event(sc, vocab.EventMessageReceived)
	if err != nil {
		return err
	}
	ev.Message = x.ruleMessage(&msg, rules.RoleCustomer)
	return x.notify(sc, ev, "notify_customer_message", rules.ToAssigneeOrAgents, "unprocessable", 0)
}
