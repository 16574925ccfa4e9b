package storage_test

import (
	"context"
	"slices"
	"testing"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

// TestEventsHeldUntilCommit: timeline entries are inserted together, yet
// a read in the transaction sees them, a rollback to a savepoint drops
// exactly those taken since it (whether or not a read inserted them
// meanwhile), and the commit keeps the rest in order.
func TestEventsHeldUntilCommit(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s := openInbox(t, b, storagetest.NewFakeClock(t0))
			tk := deliver(t, committer(t, s), incoming("ann@example.com", "events@example.com", "Events", "")).Ticket
			add := func(tx *storage.Tx, detail string) {
				t.Helper()
				if err := tx.AddEvent(ctx, tk, vocab.EventRuleRecord, "", detail, nil); err != nil {
					t.Fatal(err)
				}
			}
			details := func(evs []storage.Event) []string {
				var out []string
				for _, e := range evs {
					if e.Kind == vocab.EventRuleRecord {
						out = append(out, e.Detail)
					}
				}
				return out
			}
			err := s.InTx(ctx, func(tx *storage.Tx) error {
				add(tx, "before")
				if err := tx.Savepoint("a"); err != nil {
					return err
				}
				add(tx, "in a, read")
				evs, err := tx.Events(ctx, tk)
				if err != nil {
					return err
				}
				if got := details(evs); !slices.Equal(got, []string{"before", "in a, read"}) {
					t.Errorf("read in the transaction: %q", got)
				}
				add(tx, "in a, held")
				if err := tx.RollbackTo("a"); err != nil {
					return err
				}
				add(tx, "after a")
				if err := tx.Savepoint("b"); err != nil {
					return err
				}
				add(tx, "in b")
				return tx.Release("b")
			})
			if err != nil {
				t.Fatal(err)
			}
			evs, err := storage.RawEvents(ctx, s, tk)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := details(evs), []string{"before", "after a", "in b"}; !slices.Equal(got, want) {
				t.Errorf("timeline after commit: %q, want %q", got, want)
			}
		})
	}
}
