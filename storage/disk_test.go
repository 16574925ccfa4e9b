package storage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// bigIncoming is incoming with a body of size bytes, random as a
// compressed attachment's (the same for the same msgID and size): their
// packing (packing.go) cannot shrink them, so the test sees every byte.
func bigIncoming(from, msgID string, size int) *storage.Incoming {
	in := incoming(from, msgID, "big "+msgID, "")
	blob := make([]byte, size)
	_, _ = rand.NewChaCha8(sha256.Sum256([]byte(msgID + itoa(int64(size))))).Read(blob)
	in.Raw = append(in.Raw, blob...)
	in.Hash = hashOf(in.Raw)
	return in
}

// TestCompactSegmentsReclaimsGarbage stores messages in SQLite's segment
// files along with every kind of garbage: a duplicate (its bytes are
// appended before the committer knows), an aborted append (the
// transaction failed after the bytes were written) and an erased message
// (no message row refers to its raw bytes any more). Compaction, run while
// intake goes on, leaves segment files holding only the live messages,
// each still readable byte for byte.
func TestCompactSegmentsReclaimsGarbage(t *testing.T) {
	ctx := context.Background()
	opts, s := openReopenable(t, "sqlite", storagetest.NewFakeClock(t0), "support@acme.test")
	defer s.Close()
	dir := opts.DataDir
	c := committer(t, s)
	const size = 256 << 10
	keep := bigIncoming("ann@example.com", "keep@example.com", size)
	if _, err := c.Deliver(ctx, keep); err != nil {
		t.Fatal(err)
	}
	if d, err := c.Deliver(ctx, bigIncoming("ann@example.com", "keep@example.com", size)); err != nil || !d.Duplicate {
		t.Fatalf("duplicate: %+v, %v", d, err)
	}
	storage.SetFaults(s, func(phase string) error {
		if phase == storage.FaultCommit {
			return errors.New("injected: the transaction fails after the append")
		}
		return nil
	})
	if _, err := c.Deliver(ctx, bigIncoming("bob@example.com", "aborted@example.com", size)); err == nil {
		t.Fatal("aborted delivery succeeded")
	}
	storage.SetFaults(s, nil)
	erased := bigIncoming("cy@example.com", "erased@example.com", size)
	ed, err := c.Deliver(ctx, erased)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{"DELETE FROM works", "DELETE FROM events WHERE message_row_id IS NOT NULL", "DELETE FROM message_refs"} {
		if err := storage.ExecForTest(ctx, s, stmt); err != nil {
			t.Fatal(err)
		}
	}
	if err := storage.ExecForTest(ctx, s, "DELETE FROM messages WHERE id = "+itoa(ed.MessageRowID)); err != nil {
		t.Fatal(err)
	}
	rawDir := filepath.Join(dir, "raw")
	before := storagetest.DirBytes(t, rawDir)
	if before < 4*size {
		t.Fatalf("segments hold %d bytes, want the 4 appends", before)
	}

	// Intake goes on during the compaction.
	var wg sync.WaitGroup
	var during []*storage.Incoming
	for i := range 5 {
		during = append(during, bigIncoming("dan@example.com", "during"+itoa(int64(i))+"@example.com", 1024))
	}
	errs := make(chan error, len(during))
	for _, in := range during {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Deliver(ctx, in)
			errs <- err
		}()
	}
	st, err := s.CompactSegments(ctx, 0.25)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("delivery during compaction: %v", err)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if st.Erased != 1 || st.Segments == 0 {
		t.Errorf("compaction: %+v, want one erased message and a segment rewritten", st)
	}
	after := storagetest.DirBytes(t, rawDir)
	live := int64(len(keep.Raw))
	for _, in := range during {
		live += int64(len(in.Raw))
	}
	if after > live+int64(len(during))*1200 {
		t.Errorf("segments hold %d bytes after compaction, live messages %d", after, live)
	}
	for _, in := range append(during, keep) {
		got, err := s.Raw(ctx, in.Hash)
		if err != nil || !bytes.Equal(got, in.Raw) {
			t.Errorf("raw of %s after compaction: %d bytes, %v", in.MessageID, len(got), err)
		}
	}
	if _, err := s.Raw(ctx, erased.Hash); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("erased message's raw bytes: %v, want not found", err)
	}
	t.Logf("segments: %d bytes before, %d after; %+v", before, after, st)
}

// TestWALIsBounded writes far more than the WAL size limit in one burst:
// after the maintenance checkpoint the write-ahead log is back under the
// limit instead of keeping the burst's size.
func TestWALIsBounded(t *testing.T) {
	ctx := context.Background()
	s, wal := walBurst(t)
	fi, err := os.Stat(wal)
	if err != nil {
		t.Fatal(err)
	}
	peak := fi.Size()
	if peak < 8*walLimit {
		t.Fatalf("the burst made a WAL of only %d bytes", peak)
	}
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if fi, err = os.Stat(wal); err != nil {
		t.Fatal(err)
	}
	if fi.Size() > walLimit {
		t.Errorf("WAL is %d bytes after a checkpoint (peak %d), want at most journal_size_limit %d", fi.Size(), peak, walLimit)
	}
}

// TestWALTruncateNeverWaits checkpoints after a burst while a reader is
// still in the log: the checkpoint must not wait for it (a TRUNCATE that
// waits holds the writer's lock all the while, and every commit of the
// door queues behind it), and a write meanwhile goes through. Once the
// reader has left, the next checkpoint brings the log back under the
// limit.
func TestWALTruncateNeverWaits(t *testing.T) {
	ctx := context.Background()
	s, wal := walBurst(t)
	release, err := storage.HoldSnapshot(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	// The deadline is far below the busy timeout (15 s) a waiting
	// checkpoint would sit out, and far above what one that does not
	// wait takes.
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.Checkpoint(dctx); err != nil {
		t.Fatalf("checkpoint with a reader in the log: %v", err)
	}
	if err := storage.ExecForTest(dctx, s, "INSERT INTO burst VALUES (randomblob(16))"); err != nil {
		t.Fatalf("write after the checkpoint: %v", err)
	}
	release()
	for range 2 { // the first copies the last write, the second truncates
		if err := s.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(wal)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > walLimit {
		t.Errorf("WAL is %d bytes once the reader left, want at most %d", fi.Size(), walLimit)
	}
}

// walLimit is the WAL size limit of walBurst's store.
const walLimit = 1 << 20

// walBurst opens a SQLite store with a WAL size limit of walLimit and
// writes 16 times that into it at once; it returns the store and the
// path of its write-ahead log.
func walBurst(t *testing.T) (*storage.Store, string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := storage.Open(ctx, storage.Options{Driver: storage.DriverSQLite, DataDir: dir, Clock: storagetest.NewFakeClock(t0), WALSizeLimit: walLimit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := storage.ExecForTest(ctx, s, "CREATE TABLE burst (b BLOB)"); err != nil {
		t.Fatal(err)
	}
	for range 16 {
		if err := storage.ExecForTest(ctx, s, "INSERT INTO burst VALUES (randomblob(1048576))"); err != nil {
			t.Fatal(err)
		}
	}
	return s, filepath.Join(dir, "tend.db-wal")
}

// TestPruneOutboxKeepsMetadata prunes the bodies of outgoing mail sent
// longer ago than the retention: their composed bytes and, for
// notifications, the copied text are gone; recipient, status and
// Message-ID stay; newer and unsent mail is untouched.
func TestPruneOutboxKeepsMetadata(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		d, err := c.Deliver(ctx, incoming("ann@example.com", "p1@example.com", "Prune", ""))
		if err != nil {
			t.Fatal(err)
		}
		queue := func(kind, text string) int64 {
			var id int64
			err := s.InTx(ctx, func(tx *storage.Tx) error {
				tk := d.Ticket
				o := storage.OutboxMail{TicketID: &tk, Kind: kind, EnvTo: "alice@acme.test"}
				m := storage.Message{Text: text, Role: "system"}
				if kind == storage.OutboxToCustomer {
					m.TicketID = &tk
				}
				var err error
				id, err = tx.QueueMail(ctx, o, m, func(id int64) (storage.Composed, error) {
					return storage.Composed{MessageID: "out" + itoa(id) + "@acme.test", EnvFrom: "bounce@acme.test", Raw: storagetest.Fixed([]byte("Subject: x\r\n\r\n" + text))}, nil
				})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			return id
		}
		send := func(id int64) {
			if _, err := s.ClaimOutbox(ctx, "me", 10, time.Minute); err != nil {
				t.Fatal(err)
			}
			if err := s.InTx(ctx, func(tx *storage.Tx) error {
				_, err := tx.FinishOutbox(ctx, id, "me", storage.OutboxResult{Sent: true})
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		old := queue(storage.OutboxToStaff, strings.Repeat("customer text ", 100))
		send(old)
		unsent := queue(storage.OutboxToCustomer, "still waiting")
		clock.Advance(31 * 24 * time.Hour)
		recent := queue(storage.OutboxToCustomer, "sent yesterday")
		send(recent)
		n, err := s.PruneOutbox(ctx, "", clock.Now().Add(-30*24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("pruned %d mails, want 1", n)
		}
		rows, err := s.Outbox(ctx, d.Ticket)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range rows {
			if o.Raw, err = storage.OutboxRaw(ctx, s, o.ID); err != nil {
				t.Fatal(err)
			}
			switch o.ID {
			case old:
				if o.Raw != nil || o.Status != storage.OutboxSent || o.MessageID == "" || o.EnvTo != "alice@acme.test" {
					t.Errorf("pruned mail: raw %d bytes, status %s, message-id %q, to %q", len(o.Raw), o.Status, o.MessageID, o.EnvTo)
				}
			case unsent, recent:
				if o.Raw == nil {
					t.Errorf("mail %d (%s) lost its body", o.ID, o.Status)
				}
			}
		}
	})
}

// TestDropBodyAtRelay: staff mail finished with DropBody (what the
// sender does by default, retention.notification_bodies 0) keeps only
// its metadata and its copy of the customer's text is gone, while mail to
// the customer keeps its body and text; PruneOutbox by kind prunes staff
// mail only.
func TestDropBodyAtRelay(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		queue := outboxQueuer(t, s, "drop@example.com")
		send := func(dropStaff bool) {
			rows, err := s.ClaimOutbox(ctx, "me", 10, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range rows {
				if err := s.InTx(ctx, func(tx *storage.Tx) error {
					_, err := tx.FinishOutbox(ctx, o.ID, "me", storage.OutboxResult{Sent: true, DropBody: dropStaff && o.Kind == storage.OutboxToStaff})
					return err
				}); err != nil {
					t.Fatal(err)
				}
			}
		}
		check := func(id int64, wantBody bool) {
			t.Helper()
			if raw, text := outboxBody(t, s, id); raw != wantBody || text != wantBody {
				t.Errorf("outbox %d: body %v, text %v; want body kept %v", id, raw, text, wantBody)
			}
		}
		staff, cust := queue(storage.OutboxToStaff), queue(storage.OutboxToCustomer)
		send(true)
		check(staff, false)
		check(cust, true)

		kept, cust2 := queue(storage.OutboxToStaff), queue(storage.OutboxToCustomer)
		send(false)
		check(kept, true)
		clock.Advance(time.Hour)
		n, err := s.PruneOutbox(ctx, storage.OutboxToStaff, clock.Now())
		if err != nil || n != 1 {
			t.Errorf("pruned %d staff mails, %v; want 1", n, err)
		}
		check(kept, false)
		check(cust, true)
		check(cust2, true)
	})
}

// outboxQueuer delivers a customer's mail and returns a function that
// queues one small outgoing mail of a kind on its ticket, its message row
// holding text (on the ticket for customer mail, as Executor.queue makes
// them), and returns its outbox row.
func outboxQueuer(t *testing.T, s *storage.Store, customer string) func(kind string) int64 {
	t.Helper()
	d, err := committer(t, s).Deliver(context.Background(), incoming("ann@example.com", customer, "Outbox", ""))
	if err != nil {
		t.Fatal(err)
	}
	return func(kind string) int64 { return queueOutbox(t, s, d.Ticket, kind) }
}

// outboxBody reports whether outbox row id still has its composed bytes
// and its message row its text.
func outboxBody(t *testing.T, s *storage.Store, id int64) (raw, text bool) {
	t.Helper()
	ctx := context.Background()
	b, err := storage.OutboxRaw(ctx, s, id)
	if err != nil {
		t.Fatal(err)
	}
	txt, err := storage.OutboxMessageText(ctx, s, id)
	if err != nil {
		t.Fatal(err)
	}
	return b != nil, txt != ""
}

func queueOutbox(t *testing.T, s *storage.Store, ticket int64, kind string) int64 {
	t.Helper()
	ctx := context.Background()
	var id int64
	err := s.InTx(ctx, func(tx *storage.Tx) error {
		tk := ticket
		m := storage.Message{Text: "customer text " + kind, Role: "system"}
		if kind == storage.OutboxToCustomer {
			m.TicketID = &tk
		}
		var err error
		id, err = tx.QueueMail(ctx, storage.OutboxMail{TicketID: &tk, Kind: kind, EnvTo: "alice@acme.test"}, m, func(id int64) (storage.Composed, error) {
			return storage.Composed{MessageID: "out" + itoa(id) + "@acme.test", EnvFrom: "bounce@acme.test", Raw: storagetest.Fixed([]byte("Subject: x\r\n\r\nbody"))}, nil
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func hashOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestSQLiteMemoryPragmas: every connection runs with the pragmas that
// bound the pure-Go SQLite's memory (a 1 MiB page cache; savepoint
// journals in memory, which Tx.Release keeps to one message's pages)
// besides the durable WAL ones.
func TestSQLiteMemoryPragmas(t *testing.T) {
	ctx := context.Background()
	s := storagetest.OpenSQLite(t, storagetest.NewFakeClock(t0))
	want := map[string]string{"temp_store": "2", "cache_size": "-1024", "journal_mode": "wal", "synchronous": "2"}
	// More than one connection: each must have them.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name, v := range want {
				if got, err := storage.Pragma(ctx, s, name); err != nil || got != v {
					t.Errorf("PRAGMA %s = %q, %v; want %q", name, got, err, v)
				}
			}
		}()
	}
	wg.Wait()
}

// TestDroppedBodiesFreePages: on SQLite, dropping the bodies of sent
// staff mail gives their pages back to the free list (and so to
// Reclaim), not only their overflow pages: a body under 4 KB lives in
// the row's leaf page, and an UPDATE that empties it left one nearly
// empty page per mail (three quarters of the outbox table under load).
func TestDroppedBodiesFreePages(t *testing.T) {
	ctx := context.Background()
	s := storagetest.OpenSQLite(t, storagetest.NewFakeClock(t0))
	if err := s.SyncInboxes(ctx, []storage.InboxSpec{{Address: "support@acme.test"}}); err != nil {
		t.Fatal(err)
	}
	d, err := committer(t, s).Deliver(ctx, incoming("ann@example.com", "pages@example.com", "Pages", ""))
	if err != nil {
		t.Fatal(err)
	}
	const mails = 120
	body := strings.Repeat("a notification of about three kilobytes ", 85)
	// Bytes compression cannot shrink (a body that packs is stored in a
	// fraction of a page, packing.go): each body fills most of a page.
	rnd := rand.New(rand.NewPCG(3, 4))
	for range mails {
		raw := make([]byte, len(body))
		for i := range raw {
			raw[i] = byte(rnd.Uint32())
		}
		err := s.InTx(ctx, func(tx *storage.Tx) error {
			tk := d.Ticket
			_, err := tx.QueueMail(ctx, storage.OutboxMail{TicketID: &tk, Kind: storage.OutboxToStaff, EnvTo: "alice@acme.test"},
				storage.Message{Text: body, Role: "system"}, func(id int64) (storage.Composed, error) {
					return storage.Composed{MessageID: "out" + itoa(id) + "@acme.test", EnvFrom: "bounce@acme.test", Raw: storagetest.Fixed(append([]byte("Subject: x\r\n\r\n"), raw...))}, nil
				})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	free := func() int {
		v, err := storage.Pragma(ctx, s, "freelist_count")
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := free()
	rows, err := s.ClaimOutbox(ctx, "me", mails, time.Minute)
	if err != nil || len(rows) != mails {
		t.Fatalf("claimed %d mails, %v", len(rows), err)
	}
	for _, o := range rows {
		if err := s.InTx(ctx, func(tx *storage.Tx) error {
			_, err := tx.FinishOutbox(ctx, o.ID, "me", storage.OutboxResult{Sent: true, DropBody: true})
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range rows {
		if raw, err := storage.OutboxRaw(ctx, s, o.ID); err != nil || raw != nil {
			t.Fatalf("outbox %d after the drop: %d bytes, %v", o.ID, len(raw), err)
		}
	}
	// Each mail had a page of its own in the outbox and one for its
	// message row's text: most of them must be free now.
	if freed := free() - before; freed < mails {
		t.Errorf("dropping %d bodies of 3 KB freed %d pages, want at least %d", mails, freed, mails)
	}
}
