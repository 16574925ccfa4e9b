package followup_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/tendhq/tend/internal/testenv"
	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
)

// BenchmarkHandleMessage measures what the executor costs inside the
// processing transaction (on SQLite, the one writer's time) for a new
// customer's first mail: the acknowledgement, the agents' notifications,
// the timers and the timeline. Each mail comes from another customer
// (one customer's many would be a flood, and get no acknowledgement).
// It reports the handling's time per mail (tx-µs/msg), on a store that
// already holds 200 such tickets.
func BenchmarkHandleMessage(b *testing.B) {
	var inTx testenv.Part
	w := newWorldWith(b, nil, &worldTweaks{proc: func(_ *world, o *ingest.ProcessorOptions) {
		next := o.AfterParse
		o.AfterParse = func(ctx context.Context, tx *storage.Tx, m storage.Message) error {
			return inTx.Time(func() error { return next(ctx, tx, m) })
		}
	}})
	n := 0
	one := func() {
		n++
		from := fmt.Sprintf("c%d@example.com", n)
		raw := fmt.Sprintf("From: Customer %d <%s>\r\nTo: Acme Support <%s>\r\nSubject: Export stuck at 80%% (order %d)\r\n"+
			"Message-ID: <bench.%d@example.com>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\n"+
			"Content-Type: text/plain; charset=utf-8\r\n\r\nHello,\r\n\r\nsince the last update the export of our monthly reports "+
			"stops at 80 percent. We tried two browsers and cleared the cache. Order %d.\r\n\r\nRegards,\r\nCustomer %d\r\n",
			n, from, inbox, n, n, n, n)
		w.mustSend(from, []string{inbox}, raw)
		w.capture.take()
	}
	inTx.Loop(b, 200, one, "tx-µs/msg")
}
