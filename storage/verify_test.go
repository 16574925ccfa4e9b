package storage_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// rawWorld is a store holding small messages, a large one (a segment
// record or a message file beside SQLite, raw_chunks on PostgreSQL) and a
// duplicate delivery.
type rawWorld struct {
	s     *storage.Store
	dir   string // data_dir (SQLite)
	small []*storage.Incoming
	rows  []int64 // message rows of small
	big   *storage.Incoming
	file  *storage.Incoming // a large spool file, moved in as a file of its own (SQLite)
}

func newRawWorld(t *testing.T, backend string) *rawWorld {
	t.Helper()
	ctx := context.Background()
	clock := storagetest.NewFakeClock(t0)
	w := &rawWorld{dir: t.TempDir()}
	opts := storage.Options{Driver: storage.DriverSQLite, DataDir: w.dir, Clock: clock}
	if backend == "postgres" {
		opts = storage.Options{Driver: storage.DriverPostgres, DSN: storagetest.PostgresDSN(t), Clock: clock}
	}
	s, err := storage.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	w.s = s
	if err := s.SyncInboxes(ctx, []storage.InboxSpec{{Address: "support@acme.test"}}); err != nil {
		t.Fatal(err)
	}
	c := committer(t, s)
	for i := range 5 {
		in := incoming("ann@example.com", "small"+itoa(int64(i))+"@example.com", "Printer "+itoa(int64(i)), "")
		d, err := c.Deliver(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		w.small, w.rows = append(w.small, in), append(w.rows, d.MessageRowID)
	}
	// A duplicate: beside SQLite its bytes are appended again, garbage.
	if d, err := c.Deliver(ctx, incoming("ann@example.com", "small0@example.com", "Printer 0", "")); err != nil || !d.Duplicate {
		t.Fatalf("duplicate: %+v, %v", d, err)
	}
	w.big = bigIncoming("bob@example.com", "big@example.com", 2<<20)
	if _, err := c.Deliver(ctx, w.big); err != nil {
		t.Fatal(err)
	}
	if backend == "sqlite" {
		w.file = bigIncoming("cy@example.com", "file@example.com", 3<<20)
		path := filepath.Join(t.TempDir(), "spool")
		if err := os.WriteFile(path, w.file.Raw, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
		w.file.Body = fileBody{f, int64(len(w.file.Raw))}
		if _, err := c.Deliver(ctx, w.file); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// TestVerifyRawClean: a store as intake leaves it verifies with nothing
// bad; every body is counted, and the duplicate's copy (SQLite) is
// garbage, not an error.
func TestVerifyRawClean(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			w := newRawWorld(t, b.Name)
			rep, err := w.s.VerifyRaw(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Bad) != 0 {
				t.Errorf("clean store: %v", rep.Bad)
			}
			var want int64
			for _, in := range w.small {
				want += int64(len(in.Raw))
			}
			want += int64(len(w.big.Raw))
			records := int64(len(w.small) + 1)
			orphans := int64(0)
			if b.Name == "sqlite" {
				want += int64(len(w.file.Raw)) + int64(len(w.small[0].Raw)) // the file, the duplicate's copy
				records += 2
				orphans = 1
			}
			if rep.Records != records || rep.Bytes != want || rep.Orphaned != orphans || rep.Legacy != 0 {
				t.Errorf("report %+v, want %d records, %d bytes, %d orphaned", rep, records, want, orphans)
			}
		})
	}
}

// TestVerifyRawFindsDamage breaks a SQLite segment file the ways a disk
// or a crash does and checks that verify names the file, the offset and
// the message, and nothing else.
func TestVerifyRawFindsDamage(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		victim int // index into small, or -1 for the big message
		damage func(t *testing.T, path string, body int64)
		want   string
	}{
		{"flipped body byte", 2, func(t *testing.T, path string, body int64) { flip(t, path, body+3) }, "does not match the SHA-256 in its header"},
		{"flipped header byte", 3, func(t *testing.T, path string, body int64) {
			flip(t, path, body-storage.RecordHeaderLen+10) // in the length field
		}, "no sound record header before the body (the body itself is intact)"},
		{"truncated file", -1, func(t *testing.T, path string, body int64) {
			if err := os.Truncate(path, body+100); err != nil {
				t.Fatal(err)
			}
		}, "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newRawWorld(t, "sqlite")
			in, row := w.big, int64(0)
			if tc.victim >= 0 {
				in, row = w.small[tc.victim], w.rows[tc.victim]
			}
			seg, off, _, err := storage.RawLocation(ctx, w.s, in.Hash)
			if err != nil || seg <= 0 {
				t.Fatalf("location: %d, %v", seg, err)
			}
			path := storage.SegmentPath(w.s, seg)
			tc.damage(t, path, off)
			rep, err := w.s.VerifyRaw(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Bad) != 1 {
				t.Fatalf("found %d problems, want 1: %v", len(rep.Bad), rep.Bad)
			}
			p := rep.Bad[0]
			if p.File != path || p.Offset != off || p.Hash != in.Hash || !strings.Contains(p.Problem, tc.want) {
				t.Errorf("problem %s; want %s at %d, raw %s: %q", p, path, off, in.Hash, tc.want)
			}
			if row != 0 && p.Message != row {
				t.Errorf("problem names message %d, want %d", p.Message, row)
			}
			if row == 0 && p.Message == 0 {
				t.Errorf("problem names no message: %s", p)
			}
			// The messages after the damage are still found and checked.
			if tc.victim == 2 {
				if rep.Records < int64(len(w.small)+3) {
					t.Errorf("only %d records checked after the damage", rep.Records)
				}
			}
		})
	}
}

// TestVerifyRawFindsDamagedFile: a large message kept as a file of its
// own whose bytes changed, and one whose file is gone.
func TestVerifyRawFindsDamagedFile(t *testing.T) {
	ctx := context.Background()
	w := newRawWorld(t, "sqlite")
	path := filepath.Join(w.dir, "raw", "msg-"+w.file.Hash+".eml")
	flip(t, path, 1000)
	rep, err := w.s.VerifyRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Bad) != 1 || rep.Bad[0].File != path || rep.Bad[0].Message == 0 {
		t.Fatalf("flipped message file: %v", rep.Bad)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if rep, err = w.s.VerifyRaw(ctx); err != nil || len(rep.Bad) != 1 || !strings.Contains(rep.Bad[0].Problem, "missing") {
		t.Fatalf("missing message file: %v, %v", rep.Bad, err)
	}
	// The segment file goes too: each message in it is named.
	if err := os.Remove(storage.SegmentPath(w.s, 1)); err != nil {
		t.Fatal(err)
	}
	rep, err = w.s.VerifyRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	missing := map[int64]bool{}
	for _, p := range rep.Bad {
		if p.File == storage.SegmentPath(w.s, 1) && strings.Contains(p.Problem, "segment file is missing") {
			missing[p.Message] = true
		}
	}
	for _, row := range w.rows {
		if !missing[row] {
			t.Errorf("message %d of the removed segment not reported: %v", row, rep.Bad)
		}
	}
	if len(rep.Bad) != len(w.rows)+2 { // the small ones, the big one, the file
		t.Errorf("%d problems, want %d: %v", len(rep.Bad), len(w.rows)+2, rep.Bad)
	}
}

// TestVerifyRawPostgres: a small message's row and a large message's
// chunk changed on the server are found, by raw hash and message; chunks
// no row points at are orphaned, not bad.
func TestVerifyRawPostgres(t *testing.T) {
	ctx := context.Background()
	w := newRawWorld(t, "postgres")
	for _, stmt := range []string{
		"UPDATE raw_messages SET data = decode('00', 'hex') || data WHERE hash = '" + w.small[1].Hash + "'",
		"UPDATE raw_chunks SET data = overlay(data placing decode('ff', 'hex') from 7 for 1) WHERE hash = '" + w.big.Hash + "' AND seq = 1",
		"INSERT INTO raw_chunks (hash, seq, data, created_at) VALUES ('" + strings.Repeat("ab", 32) + "', 0, decode('0102', 'hex'), now())",
	} {
		if err := storage.ExecForTest(ctx, w.s, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	rep, err := w.s.VerifyRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]storage.RawProblem{}
	for _, p := range rep.Bad {
		got[p.Hash] = p
	}
	if p, ok := got[w.small[1].Hash]; len(rep.Bad) != 2 || !ok || p.File != "raw_messages" || p.Message != w.rows[1] {
		t.Errorf("problems %v; want the row of message %d", rep.Bad, w.rows[1])
	}
	if p, ok := got[w.big.Hash]; !ok || p.File != "raw_chunks" || p.Message == 0 {
		t.Errorf("problems %v; want the chunks of %s", rep.Bad, w.big.Hash)
	}
	if rep.Orphaned != 1 || rep.OrphanedBytes != 2 {
		t.Errorf("orphaned %d (%d bytes), want the one stray chunk", rep.Orphaned, rep.OrphanedBytes)
	}
}

// TestVerifyRawMissingRow: a received message whose raw row is gone is
// bad on both backends.
func TestVerifyRawMissingRow(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			w := newRawWorld(t, b.Name)
			if err := storage.ExecForTest(ctx, w.s, "DELETE FROM raw_messages WHERE hash = '"+w.small[4].Hash+"'"); err != nil {
				t.Fatal(err)
			}
			rep, err := w.s.VerifyRaw(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Bad) != 1 || rep.Bad[0].Message != w.rows[4] || !strings.Contains(rep.Bad[0].Problem, "no raw row") {
				t.Errorf("problems %v, want message %d's missing row", rep.Bad, w.rows[4])
			}
		})
	}
}

// TestUpgradeLegacySegments opens a data directory whose segment file
// predates record headers: its messages read as before and verify
// through the database's offsets (a flipped byte is still found); new
// mail goes to a new segment with headers, never into the old file; and
// compaction rewrites the old file whatever its garbage, after which
// every segment has headers and verifies record by record.
func TestUpgradeLegacySegments(t *testing.T) {
	ctx := context.Background()
	w := newRawWorld(t, "sqlite")
	if err := storage.MakeLegacySegments(ctx, w.s); err != nil {
		t.Fatal(err)
	}
	if err := w.s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := storage.Open(ctx, storage.Options{Driver: storage.DriverSQLite, DataDir: w.dir, Clock: storagetest.NewFakeClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	all := append(append([]*storage.Incoming{}, w.small...), w.big, w.file)
	for _, in := range all {
		if got, err := s.Raw(ctx, in.Hash); err != nil || !bytes.Equal(got, in.Raw) {
			t.Fatalf("legacy read of %s: %d bytes, %v", in.MessageID, len(got), err)
		}
	}
	rep, err := s.VerifyRaw(ctx)
	if err != nil || len(rep.Bad) != 0 || rep.Legacy != 1 || rep.Records != int64(len(all)) {
		t.Fatalf("legacy verify: %+v, %v", rep, err)
	}
	legacy := storage.SegmentPath(s, 1)
	before, err := os.ReadFile(legacy)
	if err != nil {
		t.Fatal(err)
	}
	newer := incoming("dan@example.com", "after@example.com", "After the upgrade", "")
	if _, err := committer(t, s).Deliver(ctx, newer); err != nil {
		t.Fatal(err)
	}
	if seg, _, _, err := storage.RawLocation(ctx, s, newer.Hash); err != nil || seg != 2 {
		t.Errorf("new mail in segment %d (%v), want a new segment 2", seg, err)
	}
	if after, err := os.ReadFile(legacy); err != nil || !bytes.Equal(after, before) {
		t.Errorf("the legacy segment changed on append (%d → %d bytes, %v)", len(before), len(after), err)
	}
	all = append(all, newer)

	// A flipped byte in a legacy segment is found through the database.
	_, off, _, err := storage.RawLocation(ctx, s, w.small[1].Hash)
	if err != nil {
		t.Fatal(err)
	}
	flip(t, legacy, off+5)
	if rep, err = s.VerifyRaw(ctx); err != nil || len(rep.Bad) != 1 || rep.Bad[0].File != legacy || rep.Bad[0].Offset != off {
		t.Fatalf("flipped byte in a legacy segment: %v, %v", rep.Bad, err)
	}
	flip(t, legacy, off+5)

	// Compaction upgrades it although it holds no garbage at all.
	st, err := s.CompactSegments(ctx, 0.99)
	if err != nil {
		t.Fatal(err)
	}
	if st.Segments != 1 || st.Moved != len(all)-2 { // the file and the new message stay
		t.Errorf("compaction: %+v, want the legacy segment's %d messages moved", st, len(all)-2)
	}
	if _, err := os.Stat(legacy); !os.IsNotExist(err) {
		t.Errorf("legacy segment still there: %v", err)
	}
	rep, err = s.VerifyRaw(ctx)
	if err != nil || len(rep.Bad) != 0 || rep.Legacy != 0 || rep.Records != int64(len(all)) || rep.Orphaned != 0 {
		t.Errorf("after the upgrade: %+v, %v", rep, err)
	}
	for _, in := range all {
		if got, err := s.Raw(ctx, in.Hash); err != nil || !bytes.Equal(got, in.Raw) {
			t.Errorf("after the upgrade %s: %d bytes, %v", in.MessageID, len(got), err)
		}
	}
}

// flip inverts the byte at off of the file at path.
func flip(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}
