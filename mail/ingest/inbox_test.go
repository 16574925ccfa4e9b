package ingest_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/threading/threadingtest"
)

// TestReplyKeepsTicketInbox: a reply that reaches no inbox address (read
// from an IMAP mailbox, or sent to a signed reply address) joins its
// ticket without making another inbox see it. The pipeline used to fall
// back to the first configured inbox (support) for such mail, so a
// billing ticket was listed under the support filter after the
// customer's first reply.
func TestReplyKeepsTicketInbox(t *testing.T) {
	support, billing := threadingtest.CorpusInboxes[0], threadingtest.CorpusInboxes[1]
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			clock := storagetest.NewFakeClock(time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC))
			ci := newCorpusInstall(t, b, clock)
			mail := func(id, irt string) []byte {
				h := fmt.Sprintf("From: Bea <bea@example.com>\r\nTo: %s\r\nSubject: Invoice twice\r\nMessage-ID: <%s>\r\nDate: Thu, 01 Jan 2026 09:00:00 +0000\r\n", billing, id)
				if irt != "" {
					h += "In-Reply-To: <" + irt + ">\r\nReferences: <" + irt + ">\r\n"
				}
				return []byte(h + "\r\nPlease fix it.\r\n")
			}
			first, err := ci.pipe.Deliver(ctx, mail("bea-1@example.com", ""), ingest.Envelope{From: "bea@example.com", To: []string{billing}, Source: "smtp"})
			if err != nil || !first.NewTicket {
				t.Fatalf("first mail: %+v, %v", first, err)
			}
			for i, env := range []ingest.Envelope{
				{From: "bea@example.com", Source: "imap"},                                                        // read from a mailbox: no envelope
				{From: "bea@example.com", To: []string{"reply+x@" + threadingtest.CorpusDomain}, Source: "smtp"}, // not an inbox address
			} {
				clock.Advance(time.Minute)
				d, err := ci.pipe.Deliver(ctx, mail(fmt.Sprintf("bea-%d@example.com", i+2), "bea-1@example.com"), env)
				if err != nil || d.Ticket != first.Ticket {
					t.Fatalf("reply %d: %+v, %v; want ticket %d", i, d, err, first.Ticket)
				}
			}
			got, err := ci.store.TicketInboxes(ctx, first.Ticket)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, []string{billing}) {
				t.Errorf("ticket inboxes = %v, want only %s (not %s)", got, billing, support)
			}
		})
	}
}
