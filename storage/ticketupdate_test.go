package storage_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

// TestTicketUpdateMerge: updates merged and applied once leave the row
// as the same updates applied one after the other.
func TestTicketUpdateMerge(t *testing.T) {
	str := func(s string) *string { return &s }
	state := func(s vocab.State) *vocab.State { return &s }
	yes := true
	t1, t2 := t0.Add(time.Hour), t0.Add(2*time.Hour)
	cases := []struct {
		name string
		us   []storage.TicketUpdate
	}{
		{"language, repeat contact, priority", []storage.TicketUpdate{{Language: str("de")}, {RepeatContacts: 2}, {Priority: str("high")}}},
		{"later values win, repeats add up", []storage.TicketUpdate{{Priority: str("high"), RepeatContacts: 1}, {Priority: str("urgent"), RepeatContacts: 3}, {Language: str("fr")}, {Language: str("nl")}}},
		{"first response stands, last agent moves", []storage.TicketUpdate{{FirstResponseAt: &t1, LastAgentAt: &t1}, {FirstResponseAt: &t2, LastAgentAt: &t2}}},
		{"tags join", []storage.TicketUpdate{{AddTags: []string{"vip"}}, {AddTags: []string{"billing", "vip"}}}},
		{"state, reason, breach", []storage.TicketUpdate{{State: state(vocab.StateOpen), Breached: &yes}, {State: state(vocab.StateClosed), CloseReason: str("spam")}}},
	}
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s := openInbox(t, b, storagetest.NewFakeClock(t0))
			c := committer(t, s)
			for i, tc := range cases {
				// Two customers: one customer's second ticket would be
				// linked to the first.
				n := itoa(int64(i))
				one := deliver(t, c, incoming("a"+n+"@example.com", n+"a@example.com", "One by one "+n, "")).Ticket
				merged := deliver(t, c, incoming("b"+n+"@example.com", n+"b@example.com", "Merged "+n, "")).Ticket
				var m storage.TicketUpdate
				for _, u := range tc.us {
					m.Merge(u)
				}
				if err := s.InTx(ctx, func(tx *storage.Tx) error {
					for _, u := range tc.us {
						if err := tx.UpdateTicket(ctx, one, u); err != nil {
							return err
						}
					}
					return tx.UpdateTicket(ctx, merged, m)
				}); err != nil {
					t.Fatal(err)
				}
				a, err := storage.RawTicket(ctx, s, one)
				if err != nil {
					t.Fatal(err)
				}
				z, err := storage.RawTicket(ctx, s, merged)
				if err != nil {
					t.Fatal(err)
				}
				// What tells the two tickets apart by construction.
				z.ID, z.Subject, z.NormSubject, z.CustomerID = a.ID, a.Subject, a.NormSubject, a.CustomerID
				if !reflect.DeepEqual(a, z) {
					t.Errorf("%s:\none by one %+v\nmerged     %+v", tc.name, a, z)
				}
			}
		})
	}
}
