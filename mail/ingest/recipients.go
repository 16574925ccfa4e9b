package ingest

import (
	"context"

	"github.com/tendhq/tend/threading"
)

// Recipients decides RCPT TO: configured inboxes (with the postmaster
// addresses the wiring adds to them) and, on our domain, the signed agent
// addresses and VERP bounce addresses whose tokens verify. Anything else is
// refused: tend is never a relay, and a forged or stale token is refused
// before the message is even sent.
type Recipients struct {
	Pipeline *Pipeline
	Signer   *threading.Signer
	Domain   string
	// MayReply, when set, decides whether the agent a valid reply token
	// names may still act on its ticket (agents[].inboxes); a token for a
	// ticket outside the agent's inboxes is refused like a forged one.
	MayReply func(ctx context.Context, ticket, agent int64) (bool, error)
}

// Accept implements smtpd.RecipientChecker.
func (r Recipients) Accept(ctx context.Context, addr string) (bool, error) {
	if r.Pipeline.IsInbox(addr) {
		return true, nil
	}
	if threading.Domain(addr) != r.Domain {
		return false, nil
	}
	lp := threading.LocalPart(addr)
	if tok, err := r.Signer.Verify(lp); err == nil {
		if r.MayReply == nil {
			return true, nil
		}
		return r.MayReply(ctx, tok.Ticket, tok.Agent)
	}
	if _, err := r.Signer.ParseBounceAddress(lp); err == nil {
		return true, nil
	}
	return false, nil
}
