package storage_test

import (
	"context"
	"testing"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestUpgradeKeepsRows opens a database written by an "older binary" (a
// column, an index and the version records missing) with this one: the
// schema is brought up to date and no row is lost.
func TestUpgradeKeepsRows(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			clock := storagetest.NewFakeClock(t0)
			opts := storage.Options{Driver: storage.DriverSQLite, DataDir: t.TempDir(), Clock: clock}
			if backend == "postgres" {
				opts = storage.Options{Driver: storage.DriverPostgres, DSN: storagetest.PostgresDSN(t), Clock: clock}
			}
			s, err := storage.Open(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.SyncInboxes(ctx, []storage.InboxSpec{{Address: "support@acme.test"}}); err != nil {
				t.Fatal(err)
			}
			c := committer(t, s)
			d, err := c.Deliver(ctx, incoming("ann@example.com", "old@example.com", "Before the upgrade", ""))
			if err != nil {
				t.Fatal(err)
			}
			for _, stmt := range []string{
				"ALTER TABLE messages DROP COLUMN handled",
				"DROP INDEX idx_outbox_to_created",
				"DELETE FROM schema_versions",
			} {
				if err := storage.ExecForTest(ctx, s, stmt); err != nil {
					t.Fatalf("%s: %v", stmt, err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, err = storage.Open(ctx, opts)
			if err != nil {
				t.Fatalf("upgrade: %v", err)
			}
			defer s.Close()
			if v, err := s.SchemaVersion(ctx); err != nil || v != storage.LatestSchemaVersion() {
				t.Errorf("schema version %d, %v; want %d", v, err, storage.LatestSchemaVersion())
			}
			got, err := s.GetTicket(ctx, d.Ticket)
			if err != nil || len(got.Messages) != 1 || got.Messages[0].MessageID != "old@example.com" {
				t.Fatalf("after the upgrade: %+v, %v", got.Messages, err)
			}
			// The restored column works.
			if err := s.InTx(ctx, func(tx *storage.Tx) error {
				ok, err := tx.MarkHandled(ctx, got.Messages[0].ID)
				if err == nil && !ok {
					t.Error("restored handled column did not start false")
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
