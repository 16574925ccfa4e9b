package ingest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/threading/threadingtest"
)

// TestDeliverSpoolsThreadsInOrder: messages handed over together (an IMAP
// FETCH's worth) are threaded in their order through the real threader,
// though they are judged side by side and committed together: a chain of
// replies, each answering the one before, lands on one ticket.
func TestDeliverSpoolsThreadsInOrder(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			clock := storagetest.NewFakeClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
			s := b.Open(t, clock)
			inbox := threadingtest.CorpusInboxes[0]
			if err := s.SyncInboxes(ctx, []storage.InboxSpec{{Address: inbox, Name: "Support", ResponseTime: time.Hour}}); err != nil {
				t.Fatal(err)
			}
			c := s.NewCommitter(16, nil) // the chain spans several batches
			done := make(chan struct{})
			go func() { _ = c.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			cfg := threadingtest.CorpusConfig()
			cfg.Clock = clock
			p, err := ingest.New(ingest.Options{Committer: c, Threader: ingest.DecisionThreader{Config: cfg}, Inboxes: []string{inbox}})
			if err != nil {
				t.Fatal(err)
			}
			const n = 40
			sps, envs := make([]*ingest.Spool, n), make([]ingest.Envelope, n)
			for i := range n {
				refs := ""
				if i > 0 {
					refs = fmt.Sprintf("In-Reply-To: <chain-%d@example.com>\r\nReferences: <chain-0@example.com> <chain-%d@example.com>\r\n", i-1, i-1)
				}
				raw := fmt.Sprintf("From: Ann <ann@example.com>\r\nTo: %s\r\nMessage-ID: <chain-%d@example.com>\r\n%sSubject: Re: printer %d\r\nDate: Mon, 2 Mar 2026 09:%02d:00 +0000\r\n\r\nmessage %d\r\n", inbox, i, refs, i, i, i)
				sps[i] = ingest.SpoolBytes([]byte(raw))
				envs[i] = ingest.Envelope{To: []string{inbox}, Source: fmt.Sprintf("imap:%s/INBOX/1/%d", inbox, i+1), Imported: true, Unknown: true}
			}
			ds, errs := p.DeliverSpools(ctx, sps, envs)
			for i, err := range errs {
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if ds[i].Ticket != ds[0].Ticket || ds[i].NewTicket != (i == 0) {
					t.Fatalf("message %d: %+v, want ticket %d", i, ds[i], ds[0].Ticket)
				}
			}
		})
	}
}
