package ingest

import (
	"context"

	"github.com/tendhq/tend/threading"
)

// Recipients decides RCPT TO: configured inboxes and, on our domain, the
// signed agent addresses and VERP bounce addresses whose tokens verify.
// Anything else is refused: tend is never a relay, and a forged or stale
// token is refused before the message is even sent.
type Recipients struct {
	Pipeline *Pipeline
	Signer   *threading.Signer
	Domain   string
}

// Accept implements smtpd.RecipientChecker.
func (r Recipients) Accept(_ context.Context, addr string) (bool, error) {
	if r.Pipeline.IsInbox(addr) {
		return true, nil
	}
	if threading.Domain(addr) != r.Domain {
		return false, nil
	}
	lp := threading.LocalPart(addr)
	if _, err := r.Signer.Verify(lp); err == nil {
		return true, nil
	}
	if _, err := r.Signer.ParseBounceAddress(lp); err == nil {
		return true, nil
	}
	return false, nil
}
