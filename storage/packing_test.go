package storage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// textIncoming is a customer's mail of about size bytes of prose, as
// compressible as real mail is.
func textIncoming(msgID string, size int) *storage.Incoming {
	words := strings.Fields("my order arrived late and the invoice shows the wrong address please tell me when the refund is processed thanks")
	r := rand.New(rand.NewPCG(uint64(len(msgID)), uint64(size)))
	var b strings.Builder
	for b.Len() < size {
		b.WriteString(words[r.IntN(len(words))])
		b.WriteString(" ")
	}
	in := incoming("ann@example.com", msgID, "Order "+msgID, "")
	in.Raw = append(in.Raw, b.String()...)
	in.Hash = hashOf(in.Raw)
	return in
}

// noiseIncoming is a mail whose body is random bytes: nothing to gain.
func noiseIncoming(msgID string, size int) *storage.Incoming {
	in := incoming("bob@example.com", msgID, "Noise "+msgID, "")
	blob := make([]byte, size)
	seed := sha256.Sum256([]byte(msgID))
	_, _ = rand.NewChaCha8(seed).Read(blob)
	in.Raw = append(in.Raw, blob...)
	in.Hash = hashOf(in.Raw)
	return in
}

// base64Incoming is a mail with an attachment of size random bytes, in
// base64 as mail clients send it.
func base64Incoming(msgID string, size int) *storage.Incoming {
	in := noiseIncoming(msgID, size)
	head := incoming("cy@example.com", msgID, "Scan "+msgID, "").Raw
	b64 := base64.StdEncoding.EncodeToString(in.Raw[len(in.Raw)-size:])
	var b strings.Builder
	for len(b64) > 76 {
		b.WriteString(b64[:76] + "\r\n")
		b64 = b64[76:]
	}
	in.Raw = append(head, b.String()+b64+"\r\n"...)
	in.Hash = hashOf(in.Raw)
	return in
}

// TestRawPacking: on both databases a compressible message is stored
// zstd-compressed (in far fewer bytes than it has) and read back byte
// for byte; a message compression cannot shrink, and a tiny one, are
// stored as they are; tend verify-raw checks the packed ones against
// their SHA-256 and counts the messages' own bytes.
func TestRawPacking(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, _ *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		cases := []struct {
			name   string
			in     *storage.Incoming
			packed bool
		}{
			{"prose", textIncoming("prose@example.com", 40<<10), true},
			{"noise", noiseIncoming("noise@example.com", 40<<10), false},
			// A PDF or a photo is compressed data, but base64 has only
			// six bits in each byte.
			{"attachment", base64Incoming("scan@example.com", 60<<10), true},
			{"tiny", incoming("ann@example.com", "tiny@example.com", "Hi", ""), false},
		}
		var total int64
		for _, tc := range cases {
			if _, err := c.Deliver(ctx, tc.in); err != nil {
				t.Fatal(err)
			}
			total += int64(len(tc.in.Raw))
		}
		for _, tc := range cases {
			got, err := s.Raw(ctx, tc.in.Hash)
			if err != nil || !bytes.Equal(got, tc.in.Raw) {
				t.Errorf("%s: read back %d bytes, %v; want the %d stored", tc.name, len(got), err, len(tc.in.Raw))
			}
			size, packed, err := storage.RawPacked(ctx, s, tc.in.Hash)
			if err != nil {
				t.Fatal(err)
			}
			if size != int64(len(tc.in.Raw)) || (packed > 0) != tc.packed {
				t.Errorf("%s: size %d, packed %d; want size %d, packed %v", tc.name, size, packed, len(tc.in.Raw), tc.packed)
			}
			if tc.name == "prose" && packed > size/2 {
				t.Errorf("%s: packed into %d of %d bytes, want at most half", tc.name, packed, size)
			}
		}
		rep, err := s.VerifyRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Bad) > 0 || rep.Records != int64(len(cases)) || rep.Bytes != total {
			t.Errorf("verify-raw: %+v; want %d sound records of %d bytes", rep, len(cases), total)
		}
	})
}

// TestPackedSegmentsUpgrade: beside SQLite, segment records written
// before packing (version 1, the message as it is) and packed ones
// (version 2) share a segment file and are all read back; tend
// verify-raw walks both; compaction packs the old ones as it moves them,
// so an upgraded data directory shrinks, and they still read back. A
// packed record whose bytes are damaged is reported by verify-raw.
func TestPackedSegmentsUpgrade(t *testing.T) {
	ctx := context.Background()
	opts, s := openReopenable(t, "sqlite", storagetest.NewFakeClock(t0), "support@acme.test")
	defer s.Close()
	c := committer(t, s)
	var ins []*storage.Incoming
	storage.SetPacking(s, false)
	for i := range 3 {
		in := textIncoming(fmt.Sprintf("old%d@example.com", i), 30<<10)
		if _, err := c.Deliver(ctx, in); err != nil {
			t.Fatal(err)
		}
		ins = append(ins, in)
	}
	storage.SetPacking(s, true)
	for i := range 2 {
		in := textIncoming(fmt.Sprintf("new%d@example.com", i), 30<<10)
		if _, err := c.Deliver(ctx, in); err != nil {
			t.Fatal(err)
		}
		ins = append(ins, in)
	}
	readAll := func(when string) {
		t.Helper()
		for _, in := range ins {
			got, err := s.Raw(ctx, in.Hash)
			if err != nil || !bytes.Equal(got, in.Raw) {
				t.Errorf("%s: %s read back %d bytes, %v", when, in.MessageID, len(got), err)
			}
		}
	}
	verify := func(when string, wantBad int) storage.RawReport {
		t.Helper()
		rep, err := s.VerifyRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Bad) != wantBad || rep.Records != int64(len(ins)) {
			t.Errorf("%s: verify-raw %+v; want %d records, %d bad", when, rep, len(ins), wantBad)
		}
		return rep
	}
	packedCount := func() int {
		n := 0
		for _, in := range ins {
			if _, p, err := storage.RawPacked(ctx, s, in.Hash); err != nil {
				t.Fatal(err)
			} else if p > 0 {
				n++
			}
		}
		return n
	}
	readAll("mixed")
	verify("mixed", 0)
	if n := packedCount(); n != 2 {
		t.Fatalf("%d messages packed before compaction, want the 2 new ones", n)
	}
	rawDir := filepath.Join(opts.DataDir, "raw")
	before := storagetest.DirBytes(t, rawDir)
	if _, err := s.CompactSegments(ctx, 0); err != nil {
		t.Fatal(err)
	}
	after := storagetest.DirBytes(t, rawDir)
	if n := packedCount(); n != len(ins) {
		t.Errorf("%d of %d messages packed after compaction", n, len(ins))
	}
	if after > before/2 {
		t.Errorf("segments hold %d bytes after compaction, %d before: the old records were not packed", after, before)
	}
	readAll("compacted")
	verify("compacted", 0)

	// Damage the middle of the last packed record's body.
	paths, err := filepath.Glob(filepath.Join(rawDir, "seg-*.dat"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("segments: %v, %v", paths, err)
	}
	last := paths[len(paths)-1]
	b, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-200] ^= 0xff
	if err := os.WriteFile(last, b, 0o640); err != nil {
		t.Fatal(err)
	}
	if rep := verify("damaged", 1); len(rep.Bad) == 1 && rep.Bad[0].Hash != ins[len(ins)-1].Hash {
		t.Errorf("damaged record reported as %v, want %s", rep.Bad[0], ins[len(ins)-1].MessageID)
	}
}

// TestOutboxBodiesPacked: an outgoing mail's bytes are stored compressed
// when that saves enough, and every reader gets them back as composed:
// the sender (LoadOutboxBodies), the ticket page (OutboxRaw), the size
// on its message row. Bytes that do not shrink are stored as they are,
// a requeued mail that no longer packs is not read as packed, and bytes
// that no longer unpack fail their own mail, not the others loaded
// with it.
func TestOutboxBodiesPacked(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s := openInbox(t, b, storagetest.NewFakeClock(t0))
			d, err := committer(t, s).Deliver(ctx, incoming("ann@example.com", "packed@example.com", "Packed", ""))
			if err != nil {
				t.Fatal(err)
			}
			text := []byte("Subject: [#1] Ann: Packed\r\n\r\n" + strings.Repeat("Ann wrote: my export stops at 80 percent.\r\n", 400))
			rnd := rand.New(rand.NewPCG(5, 6))
			noise := make([]byte, 3000)
			for i := range noise {
				noise[i] = byte(rnd.Uint32())
			}
			noise = append([]byte("Subject: noise\r\n\r\n"), noise...)
			queue := func(raw []byte) int64 {
				var id int64
				err := s.InTx(ctx, func(tx *storage.Tx) error {
					tk := d.Ticket
					var err error
					id, err = tx.QueueMail(ctx, storage.OutboxMail{TicketID: &tk, Kind: storage.OutboxToStaff, EnvTo: "alice@acme.test"},
						storage.Message{Role: "system"}, func(id int64) (storage.Composed, error) {
							return storage.Composed{MessageID: "p" + itoa(id) + "@acme.test", EnvFrom: "bounce@acme.test", Raw: storagetest.Fixed(raw)}, nil
						})
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				return id
			}
			packed, plain, requeued := queue(text), queue(noise), queue(text)
			if err := s.InTx(ctx, func(tx *storage.Tx) error {
				_, err := tx.RequeueMail(ctx, requeued, storagetest.Fixed(noise), 2)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			want := map[int64][]byte{packed: text, plain: noise, requeued: noise}
			stored := func(id int64) (n, size int64) {
				t.Helper()
				var err error
				if n, err = storage.QueryInt(ctx, s, "SELECT LENGTH(raw) FROM outbox_bodies WHERE outbox_id = "+itoa(id)); err != nil {
					t.Fatal(err)
				}
				if size, err = storage.QueryInt(ctx, s, "SELECT size FROM messages WHERE outbox_id = "+itoa(id)); err != nil {
					t.Fatal(err)
				}
				return n, size
			}
			if n, size := stored(packed); n >= int64(len(text))/4 || size != int64(len(text)) {
				t.Errorf("a text of %d bytes is stored in %d, its message row says %d bytes", len(text), n, size)
			}
			for _, id := range []int64{plain, requeued} {
				if n, size := stored(id); n != int64(len(noise)) || size != int64(len(noise)) {
					t.Errorf("outbox %d: %d bytes that do not shrink are stored in %d, the message row says %d", id, len(noise), n, size)
				}
			}
			for id, w := range want {
				if got, err := storage.OutboxRaw(ctx, s, id); err != nil || !bytes.Equal(got, w) {
					t.Errorf("OutboxRaw(%d) = %d bytes, %v; want the %d composed", id, len(got), err, len(w))
				}
			}
			rows, err := s.ClaimOutbox(ctx, "sender", 10, time.Minute)
			if err == nil {
				err = s.LoadOutboxBodies(ctx, rows)
			}
			if err != nil || len(rows) != len(want) {
				t.Fatalf("claimed %d mails, %v; want %d", len(rows), err, len(want))
			}
			for _, o := range rows {
				if !bytes.Equal(o.Raw, want[o.ID]) {
					t.Errorf("the sender got %d bytes of outbox %d, want the %d composed", len(o.Raw), o.ID, len(want[o.ID]))
				}
			}
			// Stored bytes that no longer unpack fail their own mail only.
			if err := storage.ExecForTest(ctx, s, "UPDATE outbox_bodies SET packed = packed + 1 WHERE outbox_id = "+itoa(packed)); err != nil {
				t.Fatal(err)
			}
			if err := s.LoadOutboxBodies(ctx, rows); err != nil {
				t.Fatalf("one body that does not unpack failed the whole load: %v", err)
			}
			// Nor does a mail whose bytes are gone altogether go out empty.
			if err := storage.ExecForTest(ctx, s, "DELETE FROM outbox_bodies WHERE outbox_id = "+itoa(plain)); err != nil {
				t.Fatal(err)
			}
			if err := s.LoadOutboxBodies(ctx, rows); err != nil {
				t.Fatalf("a mail without its bytes failed the whole load: %v", err)
			}
			for _, o := range rows {
				bad := o.ID == packed || o.ID == plain
				if bad && (o.RawErr == nil || o.Raw != nil) || !bad && (o.RawErr != nil || !bytes.Equal(o.Raw, want[o.ID])) {
					t.Errorf("outbox %d after the corruption: %d bytes, error %v", o.ID, len(o.Raw), o.RawErr)
				}
			}
		})
	}
}
