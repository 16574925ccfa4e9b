package ingest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestLargeMessageFromBytesStored: mail that reaches the pipeline as
// bytes, not as a door's spool file (the IMAP poller, tend import), is
// stored whatever its size. A spool made from bytes has no file, and a
// large one was once handed to the committer to be moved into place like
// a spool file: every IMAP message of 1 MiB or more failed for good.
func TestLargeMessageFromBytesStored(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s := b.Open(t, storagetest.NewFakeClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)))
			if err := s.SyncInboxes(ctx, []storage.InboxSpec{{Address: "support@acme.test", Name: "Support", ResponseTime: time.Hour}}); err != nil {
				t.Fatal(err)
			}
			c := s.NewCommitter(16, nil)
			done := make(chan struct{})
			go func() { _ = c.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			p, err := ingest.New(ingest.Options{Committer: c, Threader: noThreader{}, Inboxes: []string{"support@acme.test"}})
			if err != nil {
				t.Fatal(err)
			}
			for _, size := range []int{100, 2 << 20} {
				raw := fmt.Sprintf("From: ann@example.com\r\nMessage-ID: <big-%d@example.com>\r\nSubject: big\r\n\r\n%s", size, strings.Repeat("x", size))
				d, err := p.Deliver(ctx, []byte(raw), ingest.Envelope{To: []string{"support@acme.test"}, Source: "imap:support@acme.test/INBOX/1/1", Unknown: true})
				if err != nil {
					t.Fatalf("%d-byte message from bytes: %v", len(raw), err)
				}
				m, err := s.GetMessage(ctx, d.MessageRowID)
				if err != nil {
					t.Fatal(err)
				}
				if got, err := s.Raw(ctx, m.RawHash); err != nil || string(got) != raw {
					t.Fatalf("%d-byte message read back as %d bytes (%v)", len(raw), len(got), err)
				}
			}
		})
	}
}
