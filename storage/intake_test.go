package storage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// streamed builds an Incoming whose bytes come from a Body (as the doors'
// spools give them), not from Raw.
func streamed(msgID, content, raw string) *storage.Incoming {
	in := incoming("ann@example.com", msgID, "Streamed", "")
	h := sha256.Sum256([]byte(raw))
	in.Raw, in.Body, in.Hash, in.ContentHash = nil, bytes.NewReader([]byte(raw)), hex.EncodeToString(h[:]), content
	return in
}

// TestStreamedBodyStored: a body handed over as a reader is stored byte
// for byte (a segment file beside SQLite, the row on PostgreSQL), with its
// size, and several in one group commit land where their rows say.
func TestStreamedBodyStored(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, _ *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		raws := []string{"Subject: a\r\n\r\n" + strings.Repeat("a", 3<<20), "Subject: b\r\n\r\nb", "Subject: c\r\n\r\n" + strings.Repeat("c", 1<<20+7)}
		type res struct {
			raw string
			d   storage.Delivered
			err error
		}
		out := make(chan res, len(raws))
		for i, raw := range raws {
			go func() {
				d, err := c.Deliver(ctx, streamed(string(rune('a'+i))+"@example.com", "", raw))
				out <- res{raw, d, err}
			}()
		}
		for range raws {
			r := <-out
			if r.err != nil {
				t.Fatal(r.err)
			}
			m, err := s.GetMessage(ctx, r.d.MessageRowID)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Raw(ctx, m.RawHash)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != r.raw || m.Size != int64(len(r.raw)) {
				t.Errorf("message %d: stored %d bytes (size %d), want %d", m.ID, len(got), m.Size, len(r.raw))
			}
		}
	})
}

// TestDuplicateByContent: a copy with the same Message-ID and content
// hash but other bytes (one more hop's trace fields) is a duplicate; the
// same content under another Message-ID is not.
func TestDuplicateByContent(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, _ *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		body := "Subject: x\r\n\r\nsame\r\n"
		first, err := c.Deliver(ctx, streamed("hop@example.com", "c1", "Received: by mx1\r\n"+body))
		if err != nil || first.Duplicate {
			t.Fatalf("first copy: %+v %v", first, err)
		}
		again, err := c.Deliver(ctx, streamed("hop@example.com", "c1", "Received: by mx2\r\nReceived: by mx1\r\n"+body))
		if err != nil || !again.Duplicate || again.MessageRowID != first.MessageRowID || again.Ticket != first.Ticket {
			t.Fatalf("copy through another hop: %+v %v, want a duplicate of %+v", again, err, first)
		}
		other, err := c.Deliver(ctx, streamed("other@example.com", "c1", "Received: by mx1\r\n"+body))
		if err != nil || other.Duplicate {
			t.Fatalf("same content, other Message-ID: %+v %v, want a new message", other, err)
		}
	})
}
