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
				"ALTER TABLE messages DROP COLUMN auth_aligned",
				"ALTER TABLE messages DROP COLUMN auth_dkim",
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
			// A message stored before sender authentication has no verdict.
			if a := got.Messages[0].Auth; a.Method != "" || a.Authenticated() {
				t.Errorf("old message has a verdict after the upgrade: %+v", a)
			}
			// The restored verdict columns store a new message's verdict.
			in := incoming("bob@example.com", "new@example.com", "After the upgrade", "")
			in.Auth = storage.SenderAuth{Method: "local", DKIM: "pass", DKIMDomain: "example.com", SPF: "none", DMARC: "none", FromDomain: "example.com", Aligned: true}
			d2, err := committer(t, s).Deliver(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			got2, err := s.GetTicket(ctx, d2.Ticket)
			if err != nil || len(got2.Messages) != 1 || got2.Messages[0].Auth != in.Auth {
				t.Fatalf("verdict after the upgrade: %+v, %v; want %+v", got2.Messages, err, in.Auth)
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

// TestUpgradeBackfillsClassificationFlags opens a database from before
// the classification flags (messages.no_auto_reply, suspect and
// class_reasons, schema version 1) with this binary: the columns appear,
// and every stored message that was not human is marked NoAutoReply, so
// re-running the rules on an old row can never answer a machine.
func TestUpgradeBackfillsClassificationFlags(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			clock := storagetest.NewFakeClock(t0)
			opts, s := openReopenable(t, b.Name, clock, "support@acme.test")
			c := committer(t, s)
			human, err := c.Deliver(ctx, incoming("ann@example.com", "human@example.com", "Printer", ""))
			if err != nil {
				t.Fatal(err)
			}
			in := incoming("ann@example.com", "ooo@example.com", "Out of office", "")
			in.Class = "auto-reply"
			auto, err := c.Deliver(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			for _, stmt := range []string{
				"ALTER TABLE messages DROP COLUMN no_auto_reply",
				"ALTER TABLE messages DROP COLUMN suspect",
				"ALTER TABLE messages DROP COLUMN class_reasons",
				"DELETE FROM schema_versions WHERE version >= 2",
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
			for _, tc := range []struct {
				row  int64
				want bool
			}{{human.MessageRowID, false}, {auto.MessageRowID, true}} {
				m, err := s.GetMessage(ctx, tc.row)
				if err != nil {
					t.Fatal(err)
				}
				if m.NoAutoReply != tc.want || m.Suspect {
					t.Errorf("%s message after the upgrade: NoAutoReply=%v Suspect=%v, want %v false", m.Class, m.NoAutoReply, m.Suspect, tc.want)
				}
			}
		})
	}
}
