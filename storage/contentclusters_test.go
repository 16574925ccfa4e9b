package storage_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

// TestContentClustersAsGrouped: ContentClusters, which starts from the
// open and recent tickets that joined a cluster, finds what grouping
// every open and recent ticket by cluster found (the query it replaced,
// kept here as the oracle): on a history of singletons and clusters,
// open, closed, old and new, merged, in two inboxes, with each inbox
// filter and restriction.
func TestContentClustersAsGrouped(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		rng := rand.New(rand.NewPCG(7, 13))
		var heads []int64
		var all []int64
		closed := vocab.StateClosed
		for i := range 160 {
			box := []string{"support@acme.test", "billing@acme.test"}[rng.IntN(2)]
			from := fmt.Sprintf("c%d@example.com", rng.IntN(40))
			d := deliver(t, c, incoming(from, fmt.Sprintf("cc%d@example.com", i), fmt.Sprintf("Problem %d", i), "", box))
			tk := d.Ticket
			cluster := tk
			if len(heads) > 0 && rng.IntN(3) > 0 {
				cluster = heads[rng.IntN(len(heads))]
			} else {
				heads = append(heads, tk)
			}
			inTx(t, s, func(ctx context.Context, tx *storage.Tx) error {
				if err := tx.SetCluster(ctx, tk, cluster, []string{"x"}, nil); err != nil {
					return err
				}
				if rng.IntN(2) == 0 {
					return tx.UpdateTicket(ctx, tk, storage.TicketUpdate{State: &closed})
				}
				return nil
			})
			all = append(all, tk)
			clock.Advance(time.Duration(rng.IntN(6)) * time.Hour)
		}
		for range 8 {
			a, b := all[rng.IntN(len(all))], all[rng.IntN(len(all))]
			if a != b {
				_ = s.MergeTickets(ctx, a, b, "lead@acme.test") // some pairs are already merged: no matter
			}
		}
		since := clock.Now().Add(-3 * 24 * time.Hour)
		for _, v := range []struct {
			inbox   string
			visible []string
		}{{"", nil}, {"billing@acme.test", nil}, {"", []string{"support@acme.test"}}, {"", []string{}}} {
			for _, minCount := range []int{2, 4} {
				got, err := s.ContentClusters(ctx, v.inbox, v.visible, since, minCount, 50)
				if err != nil {
					t.Fatal(err)
				}
				want, err := storage.GroupedClustersForTest(ctx, s, v.inbox, v.visible, since, minCount, 50)
				if err != nil {
					t.Fatal(err)
				}
				if len(want) == 0 && v.inbox == "" && v.visible == nil {
					t.Fatal("the oracle found no cluster: the test proves nothing")
				}
				t.Logf("inbox %q visible %v min %d: %d clusters", v.inbox, v.visible, minCount, len(want))
				if !reflect.DeepEqual(got, want) {
					t.Errorf("inbox %q visible %v min %d:\n got %+v\nwant %+v", v.inbox, v.visible, minCount, got, want)
				}
			}
		}
	})
}
