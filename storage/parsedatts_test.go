package storage_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestAttachmentsOfTheParseJustSaved: the attachments a transaction's
// SaveParsed wrote are what Attachments and AttachmentNames return in it
// (in part order, with their row IDs), without reading them back; a
// rollback to a savepoint forgets them, and a later transaction reads
// the same rows from the table.
func TestAttachmentsOfTheParseJustSaved(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, _ *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		d := deliver(t, c, incoming("ann@example.com", "a1@example.com", "Logs", "", "support@acme.test"))
		parsed := storage.Parsed{Text: "logs attached", Attachments: []storage.ParsedAttachment{
			{Part: 2, Filename: "b.log", Size: 20},
			{Part: 1, Filename: "logo.png", Size: 5, Inline: true},
			{Part: 0, Filename: "a.log", Size: 10},
		}}
		var inTxRows []storage.Attachment
		var names []string
		queries, err := storage.CaptureRun(ctx, s, func(ctx context.Context) error {
			return s.InTx(ctx, func(tx *storage.Tx) error {
				if err := tx.SaveParsed(ctx, d.MessageRowID, parsed); err != nil {
					return err
				}
				var err error
				if inTxRows, err = tx.Attachments(ctx, d.MessageRowID); err != nil {
					return err
				}
				names, err = tx.AttachmentNames(ctx, d.MessageRowID)
				return err
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range queries {
			if strings.Contains(q.SQL, "FROM `attachments`") || strings.Contains(q.SQL, "FROM \"attachments\"") {
				t.Errorf("read the attachments just written: %s", q.SQL)
			}
		}
		if got := fmt.Sprint(names); got != "[a.log b.log]" {
			t.Errorf("names = %s, want [a.log b.log]", got)
		}
		var stored []storage.Attachment
		inTx(t, s, func(ctx context.Context, tx *storage.Tx) error {
			var err error
			stored, err = tx.Attachments(ctx, d.MessageRowID)
			return err
		})
		if fmt.Sprint(inTxRows) != fmt.Sprint(stored) || len(stored) != 3 || stored[0].ID == 0 {
			t.Errorf("in the transaction %+v, stored %+v", inTxRows, stored)
		}

		// Saved again inside a savepoint that is rolled back: the rows
		// read are the table's, not the rolled-back parse's.
		inTx(t, s, func(ctx context.Context, tx *storage.Tx) error {
			if err := tx.Savepoint("p"); err != nil {
				return err
			}
			if err := tx.SaveParsed(ctx, d.MessageRowID, storage.Parsed{Text: "none"}); err != nil {
				return err
			}
			if got, err := tx.Attachments(ctx, d.MessageRowID); err != nil || len(got) != 0 {
				t.Errorf("after a parse without attachments: %+v, %v", got, err)
			}
			if err := tx.RollbackTo("p"); err != nil {
				return err
			}
			got, err := tx.Attachments(ctx, d.MessageRowID)
			if err != nil {
				return err
			}
			if fmt.Sprint(got) != fmt.Sprint(stored) {
				t.Errorf("after the rollback %+v, want the stored %+v", got, stored)
			}
			return tx.Release("p")
		})
	})
}
