package storage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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

// fileBody is a spool file, as the doors hand them over.
type fileBody struct {
	*os.File
	size int64
}

func (f fileBody) Size() int64 { return f.size }

// TestLargeFileBodyMovedIn: a large body that is a file of its own is
// moved into the raw directory beside SQLite (no copy on the committer)
// and read back byte for byte; on PostgreSQL it is stored in the row.
// Small ones in the same burst still go to the segment.
func TestLargeFileBodyMovedIn(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, _ *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		for i, raw := range []string{"Subject: big\r\n\r\n" + strings.Repeat("0123456789\r\n", 200_000), "Subject: small\r\n\r\nsmall\r\n"} {
			path := filepath.Join(t.TempDir(), "spool-1")
			if err := os.WriteFile(path, []byte(raw), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			in := streamed(fmt.Sprintf("file%d@example.com", i), "", raw)
			in.Body = fileBody{f, int64(len(raw))}
			d, err := c.Deliver(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			m, err := s.GetMessage(ctx, d.MessageRowID)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Raw(ctx, m.RawHash)
			if err != nil || string(got) != raw {
				t.Fatalf("read back %d bytes (%v), want %d", len(got), err, len(raw))
			}
			_, statErr := os.Stat(path)
			if moved := errors.Is(statErr, fs.ErrNotExist); moved != (s.Driver() == storage.DriverSQLite && len(raw) > 1<<20) {
				t.Errorf("%d bytes on %s: spool file moved = %v", len(raw), s.Driver(), moved)
			}
		}
	})
}
