package storage_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// upgradeStore opens a fresh store of backend, its inbox synced, and
// returns it with the options to open it again after the test has made
// it look like an older binary's.
func upgradeStore(t *testing.T, backend string) (*storage.Store, storage.Options) {
	t.Helper()
	opts, s := openReopenable(t, backend, storagetest.NewFakeClock(t0), "support@acme.test")
	return s, opts
}

// reopenOlder makes s look like an older binary's database by running
// stmts on it, closes it and opens it again with opts, which upgrades it;
// the upgraded store is closed when the test ends.
func reopenOlder(t *testing.T, s *storage.Store, opts storage.Options, stmts ...string) *storage.Store {
	t.Helper()
	ctx := context.Background()
	for _, stmt := range stmts {
		if err := storage.ExecForTest(ctx, s, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := storage.Open(ctx, opts)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestUpgradeKeepsRows opens a database written by an "older binary" (a
// column, an index and the version records missing) with this one: the
// schema is brought up to date and no row is lost.
func TestUpgradeKeepsRows(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			s, opts := upgradeStore(t, backend)
			c := committer(t, s)
			d, err := c.Deliver(ctx, incoming("ann@example.com", "old@example.com", "Before the upgrade", ""))
			if err != nil {
				t.Fatal(err)
			}
			s = reopenOlder(t, s, opts, []string{
				"ALTER TABLE messages DROP COLUMN handled",
				"ALTER TABLE messages DROP COLUMN auth_aligned",
				"ALTER TABLE messages DROP COLUMN auth_dkim",
				"DROP INDEX idx_outbox_to_created",
				"DELETE FROM schema_versions",
			}...)
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
			s, opts := upgradeStore(t, b.Name)
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
			s = reopenOlder(t, s, opts, []string{
				"ALTER TABLE messages DROP COLUMN no_auto_reply",
				"ALTER TABLE messages DROP COLUMN suspect",
				"ALTER TABLE messages DROP COLUMN class_reasons",
				"DELETE FROM schema_versions WHERE version >= 2",
			}...)
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

// TestUpgradeIndexesContentHash upgrades a database in which one message
// was stored twice before the content-hash index existed (two replicas at
// once): both rows are kept, the index is built, and a third copy is then
// a duplicate.
func TestUpgradeIndexesContentHash(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			s, opts := upgradeStore(t, backend)
			body := "Subject: twice\r\n\r\nstored twice\r\n"
			var ids []int64
			for i, hop := range []string{"mx1", "mx2"} {
				in := streamed("twice@example.com", "twice-content", "Received: by "+hop+"\r\n"+body)
				if i == 1 {
					// As an older binary stored it: the index was not
					// there, and the other replica's copy not visible.
					if err := storage.ExecForTest(ctx, s, "DROP INDEX idx_messages_content"); err != nil {
						t.Fatal(err)
					}
					in.MessageID = "other@example.com"
				}
				d, err := committer(t, s).Deliver(ctx, in)
				if err != nil || d.Duplicate {
					t.Fatalf("copy %d: %+v, %v", i, d, err)
				}
				ids = append(ids, d.MessageRowID)
			}
			s = reopenOlder(t, s, opts, []string{
				"UPDATE messages SET message_id = 'twice@example.com' WHERE id = " + itoa(ids[1]),
				"DELETE FROM schema_versions WHERE version >= 5",
			}...)
			for _, id := range ids {
				if _, err := s.GetMessage(ctx, id); err != nil {
					t.Errorf("message %d after the upgrade: %v", id, err)
				}
			}
			d, err := committer(t, s).Deliver(ctx, streamed("twice@example.com", "twice-content", "Received: by mx3\r\n"+body))
			if err != nil || !d.Duplicate || d.MessageRowID != ids[0] {
				t.Errorf("third copy: %+v, %v; want a duplicate of message %d", d, err, ids[0])
			}
			if err := storage.ExecForTest(ctx, s, "INSERT INTO messages (direction, message_id, raw_hash, content_hash, received_at) VALUES ('in', 'twice@example.com', 'x', 'twice-content', CURRENT_TIMESTAMP)"); err == nil {
				t.Error("a second row with the same Message-ID and content hash was stored: no unique index")
			}
		})
	}
}

// TestUpgradeBackfillsQueueOrder opens a database from before the queue's
// order columns (schema version 5: no tickets.attention, queue_since or
// their indexes) holding tickets of every rank: the upgrade gives each
// existing row its rank and wait key, the queue lists them in order, and
// a later change of state moves a ticket at once.
func TestUpgradeBackfillsQueueOrder(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			clock := storagetest.NewFakeClock(t0)
			opts := storage.Options{Driver: storage.DriverSQLite, DataDir: t.TempDir(), Clock: clock}
			if b.Name == "postgres" {
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
			// Oldest first; each set makes one rank.
			sets := []string{"state = 'waiting'", "state = 'open'", "state = 'open', breached = TRUE", "state = 'unconfirmed'", "state = 'new', repeat_contacts = 2", "state = 'closed'"}
			var n []int64
			for i, set := range sets {
				d, err := c.Deliver(ctx, incoming(fmt.Sprintf("c%d@example.com", i), fmt.Sprintf("m%d@example.com", i), "Question", ""))
				if err != nil {
					t.Fatal(err)
				}
				if err := storage.ExecForTest(ctx, s, fmt.Sprintf("UPDATE tickets SET %s WHERE id = %d", set, d.Ticket)); err != nil {
					t.Fatal(err)
				}
				n = append(n, d.Ticket)
				clock.Advance(time.Minute)
			}
			var stmts []string
			for _, ix := range []string{"idx_tickets_queue", "idx_tickets_queue_state", "idx_tickets_queue_assignee", "idx_tickets_queue_customer", "idx_tickets_queue_subject", "idx_tickets_grouped_open", "idx_tickets_grouped_recent"} {
				stmts = append(stmts, "DROP INDEX "+ix)
			}
			stmts = append(stmts, "ALTER TABLE tickets DROP COLUMN attention", "ALTER TABLE tickets DROP COLUMN queue_since", "DELETE FROM schema_versions WHERE version >= 6")
			s = reopenOlder(t, s, opts, stmts...)
			order := func() []int64 {
				rows, _, err := s.Queue(ctx, storage.QueueFilter{State: "all"})
				if err != nil {
					t.Fatal(err)
				}
				var out []int64
				for _, r := range rows {
					out = append(out, r.Number)
				}
				return out
			}
			// breached, repeat, unconfirmed, open, waiting, closed
			if got, want := order(), []int64{n[2], n[4], n[3], n[1], n[0], n[5]}; !slices.Equal(got, want) {
				t.Errorf("queue after the upgrade = %v, want %v", got, want)
			}
			if err := storage.ExecForTest(ctx, s, fmt.Sprintf("UPDATE tickets SET state = 'resolved' WHERE id = %d", n[2])); err != nil {
				t.Fatal(err)
			}
			if got, want := order(), []int64{n[4], n[3], n[1], n[0], n[2], n[5]}; !slices.Equal(got, want) {
				t.Errorf("queue after resolving #%d = %v, want %v", n[2], got, want)
			}
		})
	}
}

// TestSearchIndexesHaveNoPendingList (PostgreSQL): a message's words go
// into the GIN search index at once, not into a pending list the index
// keeps the pages of (issue 10: disk at most 1.5× the mail), and a
// database from before schema step 10, whose indexes had one, gets them
// merged and turned off by the upgrade, which also replaces them
// (step 17).
func TestSearchIndexesHaveNoPendingList(t *testing.T) {
	ctx := context.Background()
	s, opts := upgradeStore(t, "postgres")
	n := 0
	// pending stores a message with text on a ticket and returns how
	// many pages the search indexes' pending lists held, merging them.
	pending := func(s *storage.Store) int64 {
		t.Helper()
		n++
		d, err := committer(t, s).Deliver(ctx, incoming(fmt.Sprintf("c%d@example.com", n), fmt.Sprintf("pending%d@example.com", n), "Printer", ""))
		if err != nil {
			t.Fatal(err)
		}
		if err := storage.ExecForTest(ctx, s, fmt.Sprintf("UPDATE messages SET text = 'the printer prints blank pages again' WHERE id = %d", d.MessageRowID)); err != nil {
			t.Fatal(err)
		}
		idxs, err := storage.QueryStrings(ctx, s, `SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
			JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'gin' AND c.relname LIKE 'idx_search%'`)
		if err != nil || len(idxs) == 0 {
			t.Fatalf("search indexes %v: %v", idxs, err)
		}
		var pages int64
		for _, idx := range idxs {
			p, err := storage.QueryInt(ctx, s, "SELECT gin_clean_pending_list('"+idx+"'::regclass)")
			if err != nil {
				t.Fatal(err)
			}
			pages += p
		}
		return pages
	}
	if p := pending(s); p != 0 {
		t.Errorf("a new database's search indexes kept %d pending pages", p)
	}
	// As schema version 9 left them: GIN's default, a pending list.
	for _, stmt := range pgSearchBefore17(false) {
		if err := storage.ExecForTest(ctx, s, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if p := pending(s); p == 0 {
		t.Fatal("version 9's search index kept no pending list: the test shows nothing")
	}
	s = reopenOlder(t, s, opts, "DELETE FROM schema_versions WHERE version >= 10")
	if p := pending(s); p != 0 {
		t.Errorf("after the upgrade the search indexes kept %d pending pages", p)
	}
}

// pgSearchBefore17 turns PostgreSQL's search index back into the
// expression indexes of steps 8 to 16, direct (step 10) or with GIN's
// pending list (before it).
func pgSearchBefore17(direct bool) []string {
	with := ""
	if direct {
		with = " WITH (fastupdate = off)"
	}
	return []string{
		"DROP TRIGGER search_docs_tickets ON tickets", "DROP TRIGGER search_docs_contacts ON contacts",
		"DROP TRIGGER search_docs_messages ON messages", "DROP TABLE search_docs",
		"DROP FUNCTION tend_search_tickets_sync()", "DROP FUNCTION tend_search_contacts_sync()", "DROP FUNCTION tend_search_messages_sync()",
		"CREATE INDEX idx_search_tickets ON tickets USING GIN (tend_search_doc(subject))" + with,
		"CREATE INDEX idx_search_contacts ON contacts USING GIN (tend_search_doc(name || ' ' || email))" + with,
		"CREATE INDEX idx_search_messages ON messages USING GIN (tend_search_doc(left(text, 65536)))" + with,
	}
}

// TestUpgradeMovesOutboxBodies opens a database from before
// outbox_bodies (its outgoing mail's bytes in outbox_mails.raw) with
// this binary: a waiting mail is claimed with the same bytes, a sent
// mail keeps them, one whose body was dropped still has none, the old
// column is gone, and a body goes with its mail.
func TestUpgradeMovesOutboxBodies(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s, opts := upgradeStore(t, b.Name)
			// Such a database holds every mail's bytes as they are.
			storage.SetPacking(s, false)
			queue := outboxQueuer(t, s, "bodies@example.com")
			kept, dropped := queue(storage.OutboxToCustomer), queue(storage.OutboxToStaff)
			sent, err := s.ClaimOutbox(ctx, "me", 2, time.Minute)
			if err != nil || len(sent) != 2 {
				t.Fatalf("claimed %d mails, %v", len(sent), err)
			}
			if err := s.InTx(ctx, func(tx *storage.Tx) error {
				_, err := tx.FinishSentOutbox(ctx, "me", []int64{kept}, []int64{dropped})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			// Past SQLite's overflow page and PostgreSQL's TOAST
			// threshold, with bytes that are not text.
			big := []byte("Subject: big\r\n\r\n" + strings.Repeat("\x00\xff large body\r\n", 10_000))
			var pending int64
			if err := s.InTx(ctx, func(tx *storage.Tx) error {
				var err error
				pending, err = tx.QueueMail(ctx, storage.OutboxMail{Kind: storage.OutboxToStaff, EnvTo: "alice@acme.test"}, storage.Message{Role: "system"},
					func(id int64) (storage.Composed, error) {
						return storage.Composed{MessageID: "big" + itoa(id) + "@acme.test", EnvFrom: "bounce@acme.test", Raw: storagetest.Fixed(big)}, nil
					})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			want := map[int64][]byte{kept: []byte("Subject: x\r\n\r\nbody"), dropped: nil, pending: big}
			blob := "blob"
			if b.Name == "postgres" {
				blob = "bytea"
			}
			// As schema version 12 kept them.
			s = reopenOlder(t, s, opts,
				"ALTER TABLE outbox_mails ADD COLUMN raw "+blob,
				"UPDATE outbox_mails SET raw = (SELECT raw FROM outbox_bodies WHERE outbox_id = outbox_mails.id)",
				"DROP TABLE outbox_bodies",
				"DELETE FROM schema_versions WHERE version >= 13")
			if v, err := s.SchemaVersion(ctx); err != nil || v != storage.LatestSchemaVersion() {
				t.Errorf("schema version %d, %v; want %d", v, err, storage.LatestSchemaVersion())
			}
			if err := storage.ExecForTest(ctx, s, "UPDATE outbox_mails SET raw = NULL"); err == nil {
				t.Error("outbox_mails.raw is still there after the upgrade")
			}
			for id, w := range want {
				if got, err := s.OutboxRaw(ctx, id); err != nil || !bytes.Equal(got, w) || (got == nil) != (w == nil) {
					t.Errorf("outbox %d after the upgrade: %d bytes, %v; want %d", id, len(got), err, len(w))
				}
			}
			rows, err := s.ClaimOutbox(ctx, "sender", 10, time.Minute)
			if err == nil {
				err = s.LoadOutboxBodies(ctx, rows)
			}
			if err != nil || len(rows) != 1 || rows[0].ID != pending || !bytes.Equal(rows[0].Raw, big) {
				t.Fatalf("claimed %d mails after the upgrade, %v; want mail %d with its %d bytes", len(rows), err, pending, len(big))
			}
			if err := storage.ExecForTest(ctx, s, "DELETE FROM outbox_mails WHERE id = "+itoa(kept)); err != nil {
				t.Fatal(err)
			}
			if n, err := storage.QueryInt(ctx, s, "SELECT COUNT(*) FROM outbox_bodies WHERE outbox_id = "+itoa(kept)); err != nil || n != 0 {
				t.Errorf("a deleted mail left %d bodies, %v", n, err)
			}
		})
	}
}

// TestUpgradeDropsOutboxTicketIndex: a new database has one index of
// outgoing mail by ticket, (ticket_id, created_at), and a database from
// before schema step 15 loses its second, of ticket_id alone.
func TestUpgradeDropsOutboxTicketIndex(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			s, opts := upgradeStore(t, backend)
			count := func(s *storage.Store) int64 {
				t.Helper()
				q := "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'idx_outbox_mails_ticket_id'"
				if backend == "postgres" {
					q = "SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'idx_outbox_mails_ticket_id'"
				}
				n, err := storage.QueryInt(ctx, s, q)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			if n := count(s); n != 0 {
				t.Errorf("a new database has idx_outbox_mails_ticket_id (%d)", n)
			}
			s = reopenOlder(t, s, opts, "CREATE INDEX idx_outbox_mails_ticket_id ON outbox_mails (ticket_id)", "DELETE FROM schema_versions WHERE version >= 15")
			if n := count(s); n != 0 {
				t.Errorf("after the upgrade idx_outbox_mails_ticket_id is still there (%d)", n)
			}
		})
	}
}
