package imappoll

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// RunAll runs every poller as its own worker until ctx is done and then
// returns nil. A Poller's Run never returns early (it absorbs its own
// failures with backoff) and recovers from panics in its session, so one
// failing mailbox (bad credentials, an expired token, a message that
// cannot be fetched) never stops the others.
func RunAll(ctx context.Context, pollers []*Poller) error {
	var g errgroup.Group // not WithContext: one worker's error must not cancel the rest
	for _, p := range pollers {
		g.Go(func() error { return p.Run(ctx) })
	}
	return g.Wait()
}
