package ingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/tendhq/tend/mail/ingest"
)

// thunderbird is a message as Thunderbird sends it, CRLF line ends.
const thunderbird = "From: Ann Example <ann@example.com>\r\nTo: Acme Support <support@acme.test>\r\n" +
	"Subject: =?UTF-8?Q?Drucker_f=C3=A4llt_aus?=\r\nMessage-ID: <c0ffee@example.com>\r\n" +
	"Date: Mon, 2 Mar 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8; format=flowed\r\n" +
	"Content-Transfer-Encoding: 8bit\r\nUser-Agent: Mozilla/5.0 Thunderbird/128.3.0\r\n\r\nDer Drucker in Raum 4 brennt.\r\n"

// chunkings feed the same bytes in different pieces: what the spool
// learns must not depend on where reads end.
var chunkings = map[string]func(io.Reader) io.Reader{
	"whole":    func(r io.Reader) io.Reader { return r },
	"one byte": iotest.OneByteReader,
	"halves":   iotest.HalfReader,
	"data+eof": iotest.DataErrReader,
}

// TestSpoolStreams: a message spooled in any chunking is on disk byte for
// byte, with the SHA-256 of its bytes, and its header block parsed as
// the whole-message parse does.
func TestSpoolStreams(t *testing.T) {
	t.Parallel()
	big := thunderbird + strings.Repeat("0123456789abcdef\r\n", 200_000) // 3.6 MB: many buffers
	headerless := strings.Repeat("a script's output, no header at all\n", 40_000)
	for _, raw := range []string{thunderbird, big, headerless, "", "Subject: only a header"} {
		sum := sha256.Sum256([]byte(raw))
		want := ingest.ParseHeaders([]byte(raw))
		for name, chunk := range chunkings {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				sp, err := ingest.NewSpooler(filepath.Join(t.TempDir(), "spool"), ingest.DiskGuard{}).Spool(context.Background(), chunk(strings.NewReader(raw)))
				if err != nil {
					t.Fatal(err)
				}
				defer sp.Close()
				got, err := io.ReadAll(io.NewSectionReader(sp, 0, sp.Size()))
				if err != nil || string(got) != raw {
					t.Fatalf("spooled %d bytes (%v), want the %d sent", len(got), err, len(raw))
				}
				if sp.Hash != hex.EncodeToString(sum[:]) || sp.ContentHash != want.ContentHash {
					t.Errorf("hashes %s %s, want %x %s", sp.Hash, sp.ContentHash, sum, want.ContentHash)
				}
				if sp.MessageID != want.MessageID || sp.Subject != want.Subject || sp.From != want.From || sp.BodyOffset != want.BodyOffset {
					t.Errorf("headers %q %q %q %d, want %q %q %q %d", sp.MessageID, sp.Subject, sp.From, sp.BodyOffset,
						want.MessageID, want.Subject, want.From, want.BodyOffset)
				}
			})
		}
	}
	if want := "Drucker fällt aus"; ingest.ParseHeaders([]byte(thunderbird)).Subject != want {
		t.Errorf("subject not %q", want)
	}
}

// TestSpoolLeavesNothing: Close removes the spool file, and CleanSpool
// what a crash left, so that the data directory does not fill with
// spools. The message is larger than what is spooled in memory.
func TestSpoolLeavesNothing(t *testing.T) {
	t.Parallel()
	large := thunderbird + strings.Repeat("0123456789abcdef\r\n", 10_000)
	dir := filepath.Join(t.TempDir(), "spool")
	s := ingest.NewSpooler(dir, ingest.DiskGuard{})
	sp, err := s.Spool(context.Background(), strings.NewReader(large))
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Spool(context.Background(), io.MultiReader(strings.NewReader(large), iotest.ErrReader(io.ErrUnexpectedEOF))); err == nil {
		t.Fatal("a broken stream was spooled")
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("spool dir holds %v (%v) after Close and a failed spool", ents, err)
	}
	// A crash: the spool is never closed.
	if _, err := s.Spool(context.Background(), strings.NewReader(large)); err != nil {
		t.Fatal(err)
	}
	if err := ingest.CleanSpool(dir); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("CleanSpool left %v", ents)
	}
}

// TestContentHash: deduplication's hash ignores what hops add and the
// line ends, and nothing else.
func TestContentHash(t *testing.T) {
	t.Parallel()
	base := ingest.ParseHeaders([]byte(thunderbird))
	tests := []struct {
		name string
		raw  string
		same bool
	}{
		{"another Received", "Received: from mx2.acme.test by mx1.acme.test;\r\n\tMon, 2 Mar 2026 10:00:05 +0100\r\n" + thunderbird, true},
		{"a delivering Postfix's fields", "Return-Path: <ann@example.com>\r\nDelivered-To: support@acme.test\r\nX-Original-To: support@acme.test\r\n" + thunderbird, true},
		{"verifiers' verdicts", "Authentication-Results: mx.acme.test; dkim=pass\r\nARC-Seal: i=1; cv=none\r\nARC-Message-Signature: i=1; b=x\r\nReceived-SPF: pass\r\n" + thunderbird, true},
		{"a relay's signature and filters", "DKIM-Signature: v=1; d=acme.test; b=x\r\nX-Spam-Status: No\r\nX-Virus-Scanned: amavisd-new\r\n" + thunderbird, true},
		{"trace field in the middle", strings.Replace(thunderbird, "MIME-Version", "Received: by relay;\r\n  Mon, 2 Mar 2026\r\nMIME-Version", 1), true},
		{"LF line ends (IMAP store)", strings.ReplaceAll(thunderbird, "\r\n", "\n"), true},
		{"other body", strings.Replace(thunderbird, "brennt", "raucht", 1), false},
		{"other subject", strings.Replace(thunderbird, "Drucker_f", "Kopierer_f", 1), false},
		{"a field that is not trace", "X-Mailer: other\r\n" + thunderbird, false},
		{"trace name in the body", thunderbird + "Received: not a header here\r\n", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := ingest.ParseHeaders([]byte(tc.raw))
			if (h.ContentHash == base.ContentHash) != tc.same {
				t.Errorf("same content hash = %v, want %v", h.ContentHash == base.ContentHash, tc.same)
			}
			if h.Hash == base.Hash {
				t.Error("raw hash unchanged: the case tests nothing")
			}
		})
	}
}

// TestSpoolDiskFills: the spool checks the disk as it writes and stops
// with ErrInsufficientStorage when it nears full.
func TestSpoolDiskFills(t *testing.T) {
	t.Parallel()
	disk := &scriptDisk{free: []uint64{100 << 20, 100 << 20, 1 << 20}}
	s := ingest.NewSpooler(t.TempDir(), ingest.DiskGuard{Disk: disk, MinFree: 10 << 20})
	_, err := s.Spool(context.Background(), io.LimitReader(zeros{}, 20<<20))
	if !errors.Is(err, ingest.ErrInsufficientStorage) {
		t.Fatalf("spooling onto a filling disk: %v, want ErrInsufficientStorage", err)
	}
	if disk.calls != 3 {
		t.Errorf("disk checked %d times, want 3 (every 4 MiB)", disk.calls)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type scriptDisk struct {
	free  []uint64
	calls int
}

func (d *scriptDisk) Free() (uint64, error) {
	i := min(d.calls, len(d.free)-1)
	d.calls++
	return d.free[i], nil
}

// FuzzSpool: whatever the bytes and wherever reads end, the spool keeps
// them exactly, hashes them as one piece, and yields storable headers.
func FuzzSpool(f *testing.F) {
	f.Add([]byte(thunderbird), uint16(7))
	f.Add([]byte("Received: x\r\n\r\n"), uint16(1))
	f.Add([]byte("\r\r\r\n\n"), uint16(2))
	if corpus, err := filepath.Glob("../../../shared/corpus/*/*.eml"); err == nil {
		for _, p := range corpus[:min(len(corpus), 20)] {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b, uint16(len(b)/3+1))
			}
		}
	}
	dir := f.TempDir()
	s := ingest.NewSpooler(dir, ingest.DiskGuard{})
	f.Fuzz(func(t *testing.T, raw []byte, chunk uint16) {
		whole := ingest.ParseHeaders(raw)
		sp, err := s.Spool(context.Background(), &chunked{b: raw, n: int(chunk%4096) + 1})
		if err != nil {
			t.Fatal(err)
		}
		defer sp.Close()
		got, err := io.ReadAll(io.NewSectionReader(sp, 0, sp.Size()))
		if err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("spool changed the bytes (%v)", err)
		}
		if sp.Hash != whole.Hash || sp.ContentHash != whole.ContentHash || sp.MessageID != whole.MessageID {
			t.Fatalf("chunked spool %s/%s/%s, whole %s/%s/%s", sp.Hash, sp.ContentHash, sp.MessageID, whole.Hash, whole.ContentHash, whole.MessageID)
		}
		if sp.MessageID == "" || !utf8.ValidString(sp.MessageID) || sp.BodyOffset > len(raw) {
			t.Fatalf("message id %q, body offset %d of %d", sp.MessageID, sp.BodyOffset, len(raw))
		}
	})
}

// chunked reads b n bytes at a time.
type chunked struct {
	b []byte
	n int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), c.n)], c.b)
	c.b = c.b[k:]
	return k, nil
}

// TestSpoolSpills: a message up to 64 KiB is spooled in memory, without a
// file; one byte more and it is all in a temporary file, which a failed
// stream removes. Either way the bytes read back are the bytes sent.
func TestSpoolSpills(t *testing.T) {
	t.Parallel()
	const max = 64 << 10
	dir := filepath.Join(t.TempDir(), "spool")
	s := ingest.NewSpooler(dir, ingest.DiskGuard{})
	files := func() int { ents, _ := os.ReadDir(dir); return len(ents) }
	for _, tc := range []struct {
		size   int
		inFile bool
	}{{len(thunderbird), false}, {max, false}, {max + 1, true}, {3 * max, true}} {
		raw := thunderbird + strings.Repeat("x", tc.size-len(thunderbird))
		for _, sized := range []bool{false, true} {
			var sp *ingest.Spool
			var err error
			if sized {
				sp, err = s.SpoolSized(context.Background(), iotest.HalfReader(strings.NewReader(raw)), int64(len(raw)))
			} else {
				sp, err = s.Spool(context.Background(), iotest.HalfReader(strings.NewReader(raw)))
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := sp.Name() != ""; got != tc.inFile || files() != map[bool]int{false: 0, true: 1}[tc.inFile] {
				t.Errorf("%d bytes (sized %v): in a file %v with %d files, want %v", tc.size, sized, got, files(), tc.inFile)
			}
			got, err := io.ReadAll(io.NewSectionReader(sp, 0, sp.Size()))
			if err != nil || string(got) != raw {
				t.Errorf("%d bytes: read back %d (%v)", tc.size, len(got), err)
			}
			if err := sp.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	broken := io.MultiReader(strings.NewReader(strings.Repeat("y", 2*max)), iotest.ErrReader(io.ErrUnexpectedEOF))
	if _, err := s.Spool(context.Background(), broken); err == nil {
		t.Fatal("a broken stream was spooled")
	}
	if n := files(); n != 0 {
		t.Errorf("%d files left after closing and a failed spool", n)
	}
}
