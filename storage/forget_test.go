package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

// forgetWorld is what the erasure tests store: Ann (to be forgotten) with
// a ticket of her own, a large message kept as a file, a duplicate copy, a
// reply quoting her, and a message on Bob's ticket; Bob and Carol, who
// must keep everything.
type forgetWorld struct {
	annTicket, bobTicket, carolTicket int64
	annRaw                            [][]byte // every raw message of Ann's
	keep                              map[string][]byte
	secrets                           []string // strings that only Ann's mail holds
}

func seedForget(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) forgetWorld {
	t.Helper()
	ctx := context.Background()
	if err := s.SyncInboxes(ctx, []storage.InboxSpec{{Address: "support@acme.test"}}); err != nil {
		t.Fatal(err)
	}
	c := committer(t, s)
	w := forgetWorld{keep: map[string][]byte{}, secrets: []string{"ANN-SECRET-7f3a9c", "ANN-BIG-SECRET-41d2", "ANN-ON-BOB-88e1", "ANN-QUOTED-5b0c", "ann.erased@example.com"}}
	deliver := func(in *storage.Incoming) storage.Delivered {
		t.Helper()
		d, err := c.Deliver(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Minute)
		return d
	}
	withBody := func(in *storage.Incoming, body string) *storage.Incoming {
		in.Raw = []byte(strings.Replace(string(in.Raw), "\r\n\r\n", "\r\n\r\n"+body+"\r\n", 1))
		in.Hash = hashOf(in.Raw)
		return in
	}
	bob := deliver(withBody(incoming("bob@example.com", "bob1@example.com", "Bob's printer", ""), "BOB-KEEP-1"))
	w.bobTicket = bob.Ticket
	w.keep["bob1"] = nil
	queue(t, s, storage.OutboxMail{TicketID: &w.bobTicket, Kind: storage.OutboxToStaff, EnvTo: "alice@acme.test"}, nil, "notification BOB-KEEP-NOTE", true)
	clock.Advance(time.Minute)

	annIn := withBody(incoming("ann.erased@example.com", "ann1@example.com", "Ann's invoice", ""), "ANN-SECRET-7f3a9c")
	ann := deliver(annIn)
	w.annTicket = ann.Ticket
	w.annRaw = append(w.annRaw, annIn.Raw)
	// The same mail again: its bytes are appended before the duplicate is
	// recognised, garbage in a segment.
	if d, err := c.Deliver(ctx, withBody(incoming("ann.erased@example.com", "ann1@example.com", "Ann's invoice", ""), "ANN-SECRET-7f3a9c")); err != nil || !d.Duplicate {
		t.Fatalf("duplicate: %+v %v", d, err)
	}
	// A large one, handed over as a file: beside SQLite it is kept as a
	// file of its own.
	big := "From: ann.erased@example.com\r\nMessage-ID: <ann2@example.com>\r\nSubject: logs\r\n\r\nANN-BIG-SECRET-41d2\r\n" + strings.Repeat("log line of ann\r\n", 80_000)
	bigIn := incoming("ann.erased@example.com", "ann2@example.com", "logs", "ann1@example.com")
	bigIn.Raw, bigIn.Hash = []byte(big), hashOf([]byte(big))
	path := filepath.Join(t.TempDir(), "spool-1")
	if err := os.WriteFile(path, bigIn.Raw, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	bigIn.Body = fileBody{f, int64(len(big))}
	if d := deliver(bigIn); d.Ticket != w.annTicket {
		t.Fatalf("large message on ticket %d, want %d", d.Ticket, w.annTicket)
	}
	w.annRaw = append(w.annRaw, bigIn.Raw)
	// The agent's answer quotes her.
	queue(t, s, storage.OutboxMail{TicketID: &w.annTicket, Kind: storage.OutboxToCustomer, EnvTo: "ann.erased@example.com"}, &w.annTicket, "> ANN-QUOTED-5b0c", false)

	// Ann writes on Bob's ticket too (a CC replying).
	onBob := withBody(incoming("ann.erased@example.com", "ann3@example.com", "Re: Bob's printer", "bob1@example.com"), "ANN-ON-BOB-88e1")
	if d := deliver(onBob); d.Ticket != w.bobTicket {
		t.Fatalf("Ann's reply on ticket %d, want Bob's %d", d.Ticket, w.bobTicket)
	}
	w.annRaw = append(w.annRaw, onBob.Raw)
	if err := s.InTx(ctx, func(tx *storage.Tx) error {
		return tx.AddParticipants(ctx, w.bobTicket, []string{"ann.erased@example.com"}, "cc")
	}); err != nil {
		t.Fatal(err)
	}
	queue(t, s, storage.OutboxMail{TicketID: &w.bobTicket, Kind: storage.OutboxToStaff, EnvTo: "alice@acme.test"}, nil, "notification: ANN-ON-BOB-88e1", false)

	bob2 := withBody(incoming("bob@example.com", "bob2@example.com", "Re: Bob's printer", "ann3@example.com"), "BOB-KEEP-2")
	deliver(bob2)
	carolIn := withBody(incoming("carol@example.com", "carol1@example.com", "Carol's login", ""), "CAROL-KEEP-1")
	w.carolTicket = deliver(carolIn).Ticket
	for _, in := range []*storage.Incoming{bob2, carolIn} {
		w.keep[in.MessageID] = in.Raw
	}
	delete(w.keep, "bob1")
	// The full parse stores the text in the database as well.
	if err := storage.ExecForTest(ctx, s, "UPDATE messages SET text = 'parsed: ' || message_id || ' ' || subject || ' ' || from_addr"); err != nil {
		t.Fatal(err)
	}
	if err := storage.ExecForTest(ctx, s, "UPDATE messages SET text = text || ' ANN-SECRET-7f3a9c' WHERE message_id = 'ann1@example.com'"); err != nil {
		t.Fatal(err)
	}
	return w
}

// queue commits one outgoing mail with body text.
func queue(t *testing.T, s *storage.Store, o storage.OutboxMail, msgTicket *int64, body string, sent bool) {
	t.Helper()
	ctx := context.Background()
	err := s.InTx(ctx, func(tx *storage.Tx) error {
		id, err := tx.QueueMail(ctx, o, storage.Message{TicketID: msgTicket, FromAddr: "support@acme.test", Text: body},
			func(id int64) (storage.Composed, error) {
				mid := fmt.Sprintf("out%d@mail.acme.test", id)
				return storage.Composed{MessageID: mid, EnvFrom: "bounce@mail.acme.test", Raw: storagetest.Fixed([]byte("Message-ID: <" + mid + ">\r\nTo: " + o.EnvTo + "\r\n\r\n" + body + "\r\n"))}, nil
			})
		if err != nil || !sent {
			return err
		}
		_, err = tx.FinishOutbox(ctx, id, "", storage.OutboxResult{Sent: true})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkForgotten checks what the database says after Ann's erasure.
func checkForgotten(t *testing.T, s *storage.Store, w forgetWorld, st storage.ForgetStats) {
	t.Helper()
	ctx := context.Background()
	if len(st.Tickets) != 1 || st.Tickets[0] != w.annTicket || len(st.Touched) != 1 || st.Touched[0] != w.bobTicket {
		t.Errorf("erased tickets %v, touched %v; want [%d] and [%d]", st.Tickets, st.Touched, w.annTicket, w.bobTicket)
	}
	if st.RawMessages != 3 {
		t.Errorf("%d raw messages erased, want 3: %+v", st.RawMessages, st)
	}
	if _, err := s.GetTicket(ctx, w.annTicket); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Ann's ticket after the erasure: %v", err)
	}
	for _, raw := range w.annRaw {
		if _, err := s.Raw(ctx, hashOf(raw)); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Ann's raw message still readable: %v", err)
		}
	}
	for id, raw := range w.keep {
		if got, err := s.Raw(ctx, hashOf(raw)); err != nil || !bytes.Equal(got, raw) {
			t.Errorf("%s: %d bytes, %v after the erasure", id, len(got), err)
		}
	}
	if n, err := s.PersonTickets(ctx, "Ann.Erased@example.com"); err != nil || len(n) != 0 {
		t.Errorf("Ann still takes part in %v (%v)", n, err)
	}
	bob, err := s.GetTicket(ctx, w.bobTicket)
	if err != nil {
		t.Fatal(err)
	}
	var audit bool
	for _, e := range bob.Events {
		audit = audit || (e.Kind == vocab.EventErased && e.Actor == "dpo" && !strings.Contains(e.Detail, "ann"))
	}
	if !audit {
		t.Errorf("Bob's ticket has no erasure event: %+v", bob.Events)
	}
	for _, m := range bob.Messages {
		if m.FromAddr == "ann.erased@example.com" {
			t.Errorf("Ann's message %s is still on Bob's ticket", m.MessageID)
		}
	}
	if len(bob.Messages) != 2 {
		t.Errorf("Bob's ticket has %d messages, want his 2", len(bob.Messages))
	}
	if _, err := s.GetTicket(ctx, w.carolTicket); err != nil {
		t.Errorf("Carol's ticket: %v", err)
	}
	out, err := s.Outbox(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var keptNote bool
	for _, o := range out {
		if strings.Contains(o.EnvTo, "ann") {
			t.Errorf("outbox row %d to %s survived", o.ID, o.EnvTo)
		}
		if raw, _ := s.OutboxRaw(ctx, o.ID); bytes.Contains(raw, []byte("BOB-KEEP-NOTE")) {
			keptNote = true
		}
	}
	if !keptNote || len(out) != 1 {
		t.Errorf("outbox after the erasure: %d rows, Bob's earlier notification kept: %v", len(out), keptNote)
	}
	es, err := s.Erasures(ctx)
	if err != nil || len(es) != 1 || es[0].SubjectHash != storage.SubjectHash("ann.erased@example.com") || es[0].ID != st.Erasure {
		t.Errorf("audit records: %+v %v", es, err)
	}
}

// TestForgetErasesFromDisk is issue 13's check of tend forget: after the
// erasure no file of the SQLite data directory holds a byte string that
// only the erased person's mail held (her text, the raw bytes of her large
// message kept as a file, the copy of a duplicate left in a segment, the
// agent's reply quoting her, her address), while the other customers' mail
// reads back byte for byte.
func TestForgetErasesFromDisk(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clock := storagetest.NewFakeClock(t0)
	s, err := storage.Open(ctx, storage.Options{Driver: storage.DriverSQLite, DataDir: dir, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	w := seedForget(t, s, clock)
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	// Before: the secrets are on disk (the test would prove nothing
	// otherwise).
	for _, sec := range w.secrets {
		if found := storagetest.FilesContaining(t, dir, []byte(sec)); len(found) == 0 {
			t.Fatalf("%q is nowhere on disk before the erasure", sec)
		}
	}
	// The server has the directory open: forget refuses.
	if _, err := storage.Open(ctx, storage.Options{Driver: storage.DriverSQLite, DataDir: dir, Exclusive: true}); !errors.Is(err, storage.ErrInUse) {
		t.Fatalf("exclusive open beside an open store: %v, want ErrInUse", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = storage.Open(ctx, storage.Options{Driver: storage.DriverSQLite, DataDir: dir, Clock: clock, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := storage.Open(ctx, storage.Options{Driver: storage.DriverSQLite, DataDir: dir}); !errors.Is(err, storage.ErrInUse) {
		t.Fatalf("open during the erasure: %v, want ErrInUse", err)
	}
	// Descriptors opened on the raw files before the erasure still read
	// the blocks of the files it removes: those must hold zeros then.
	var held []*os.File
	names, _ := filepath.Glob(filepath.Join(dir, "raw", "*"))
	for _, p := range names {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		held = append(held, f)
	}
	st, err := s.Forget(ctx, "Ann.Erased@example.com", "dpo")
	if err != nil {
		t.Fatal(err)
	}
	checkForgotten(t, s, w, st)
	for _, f := range held {
		b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<30))
		if err != nil {
			t.Fatal(err)
		}
		for _, sec := range w.secrets {
			if bytes.Contains(b, []byte(sec)) {
				t.Errorf("%q still in the blocks of removed file %s", sec, filepath.Base(f.Name()))
			}
		}
	}
	for _, sec := range w.secrets {
		if found := storagetest.FilesContaining(t, dir, []byte(sec)); len(found) > 0 {
			t.Errorf("%q still on disk after the erasure, in %v", sec, found)
		}
	}
	for _, raw := range w.annRaw {
		if found := storagetest.FilesContaining(t, dir, raw[len(raw)/2:]); len(found) > 0 {
			t.Errorf("the raw bytes of Ann's mail still on disk, in %v", found)
		}
	}
	for _, keep := range []string{"BOB-KEEP-2", "CAROL-KEEP-1", "BOB-KEEP-NOTE"} {
		if len(storagetest.FilesContaining(t, dir, []byte(keep))) == 0 {
			t.Errorf("%q is gone too", keep)
		}
	}
	t.Logf("%+v", st)
}

// TestForgetPostgres erases the same on PostgreSQL, where it deletes rows,
// and then finds the erased strings in no row of any table.
func TestForgetPostgres(t *testing.T) {
	clock := storagetest.NewFakeClock(t0)
	s := storagetest.OpenPostgres(t, clock)
	w := seedForget(t, s, clock)
	ctx := context.Background()
	for _, sec := range w.secrets {
		if found, err := storage.TablesContaining(ctx, s, sec); err != nil || len(found) == 0 {
			t.Fatalf("%q is in no table before the erasure (%v)", sec, err)
		}
	}
	st, err := s.Forget(ctx, "ann.erased@example.com", "dpo")
	if err != nil {
		t.Fatal(err)
	}
	checkForgotten(t, s, w, st)
	// Whatever table holds raw bytes (whole or in chunks), no row keeps
	// the erased mail.
	for _, sec := range w.secrets {
		if found, err := storage.TablesContaining(ctx, s, sec); err != nil || len(found) > 0 {
			t.Errorf("%q still in tables %v after the erasure (%v)", sec, found, err)
		}
	}
	for _, keep := range []string{"BOB-KEEP-2", "CAROL-KEEP-1", "BOB-KEEP-NOTE"} {
		if found, err := storage.TablesContaining(ctx, s, keep); err != nil || len(found) == 0 {
			t.Errorf("%q is gone too (%v)", keep, err)
		}
	}
}
