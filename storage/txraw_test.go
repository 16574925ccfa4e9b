package storage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestTxRawUsesItsConnection: a transaction reads raw mail on its own
// connection. Through the Store it took a second one from the pool while
// holding the first, so that batches running at once (processing
// workers) could hold every connection, each waiting for another: here,
// with a pool of one, that read would wait until the deadline. Small and
// large (chunked on PostgreSQL) mail.
func TestTxRawUsesItsConnection(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		if err := s.SyncInboxes(ctx, []storage.InboxSpec{{Address: "support@acme.test", Name: "Acme Support"}}); err != nil {
			t.Fatal(err)
		}
		c := storagetest.StartCommitter(t, s, 4)
		var hashes []string
		var raws [][]byte
		for i, body := range []string{"small", strings.Repeat("a large log line\r\n", 3<<20/18)} {
			in := incoming("ann@example.com", fmt.Sprintf("raw%d@example.com", i), "s", "")
			// The helper's mail with this body instead.
			in.Raw = []byte(strings.Replace(string(in.Raw), "\r\n\r\n", "\r\n\r\n"+body+"\r\n", 1))
			h := sha256.Sum256(in.Raw)
			in.Hash = hex.EncodeToString(h[:])
			raw := in.Raw
			if _, err := c.Deliver(ctx, in); err != nil {
				t.Fatal(err)
			}
			hashes, raws = append(hashes, in.Hash), append(raws, raw)
		}
		if err := storage.SetMaxConns(s, 1); err != nil {
			t.Fatal(err)
		}
		tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		err := s.InTx(tctx, func(tx *storage.Tx) error {
			for i, h := range hashes {
				b, err := tx.Raw(tctx, h)
				if err != nil {
					return err
				}
				if !bytes.Equal(b, raws[i]) {
					t.Errorf("message %d: read %d bytes, not what was stored", i, len(b))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("reading raw mail inside a transaction with one connection: %v", err)
		}
	})
}
