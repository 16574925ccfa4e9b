package storage_test

import (
	"context"
	"sync"
	"testing"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestIngestWaitingForABatch: a processing batch that updated a ticket
// holds it (SQLite: the one writer; PostgreSQL: the row's lock) until it
// commits, and a reply arriving on that ticket waits for it. IngestWaiting
// must say so, for the processor to end its batch (Interrupt): on
// PostgreSQL it always said no, and tend bench at C=4 saw 250s after 1 s.
func TestIngestWaitingForABatch(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		first := deliver(t, c, incoming("ann@example.com", "first@example.com", "Export stuck", ""))
		if s.IngestWaiting() {
			t.Fatal("IngestWaiting with nothing running")
		}
		holding, release, batchDone := make(chan struct{}), make(chan struct{}), make(chan error, 1)
		en := "en"
		go func() {
			batchDone <- s.InTx(ctx, func(tx *storage.Tx) error {
				if err := tx.UpdateTicket(ctx, first.Ticket, storage.TicketUpdate{Language: &en}); err != nil {
					return err
				}
				close(holding)
				<-release
				return nil
			})
		}()
		<-holding
		replied := make(chan error, 1)
		go func() {
			_, err := c.Deliver(ctx, incoming("ann@example.com", "second@example.com", "Re: Export stuck", "first@example.com"))
			replied <- err
		}()
		var once sync.Once
		end := func() { once.Do(func() { close(release) }) }
		defer end() // a failed wait must not leave the batch open
		waitUntil(t, "IngestWaiting while a reply waits for a batch's ticket", s.IngestWaiting)
		end()
		if err := <-batchDone; err != nil {
			t.Fatal(err)
		}
		if err := <-replied; err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "IngestWaiting false once the reply is stored", func() bool { return !s.IngestWaiting() })
	})
}
