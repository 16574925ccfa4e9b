package imappoll

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/tendhq/tend/internal/fuzzseed"
	"github.com/tendhq/tend/storage/storagetest"
)

// sharedCorpus is the real-world corpus beside the repository.
const sharedCorpus = "../../../shared/corpus"

// recorder keeps every delivery's bytes, and tells a waiter when a number
// of them has arrived.
type recorder struct {
	mu   sync.Mutex
	got  [][]byte
	cond *sync.Cond
}

func newRecorder() *recorder {
	r := &recorder{}
	r.cond = sync.NewCond(&r.mu)
	return r
}

// recSpool is a message the recorder spooled, in memory.
type recSpool []byte

func (recSpool) Close() error { return nil }

func (r *recorder) Spool(_ context.Context, src io.Reader, _ int64) (Spooled, error) {
	raw, err := io.ReadAll(src)
	return recSpool(raw), err
}

func (r *recorder) Deliver(_ context.Context, ms []Spooled, _ []Delivery) ([]DeliveryResult, []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range ms {
		r.got = append(r.got, bytes.Clone(m.(recSpool)))
	}
	r.cond.Broadcast()
	return make([]DeliveryResult, len(ms)), make([]error, len(ms))
}

// waitFor waits until n deliveries in all have arrived, or d passes.
func (r *recorder) waitFor(n int, d time.Duration) [][]byte {
	stop := time.AfterFunc(d, func() { r.mu.Lock(); r.cond.Broadcast(); r.mu.Unlock() })
	defer stop.Stop()
	deadline := time.Now().Add(d)
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.got) < n && time.Now().Before(deadline) {
		r.cond.Wait()
	}
	return append([][]byte(nil), r.got...)
}

// FuzzMessageData puts arbitrary messages in a mailbox that a running
// poller reads (deleting after delivery): each is delivered exactly
// once and byte for byte as the server sends it, however its header,
// literal or line ends are shaped, and the poller keeps reading mail after
// it.
func FuzzMessageData(f *testing.F) {
	for _, b := range append(fuzzseed.Files(f, "testdata/*.eml"), fuzzseed.Corpus(f, sharedCorpus, 40)...) {
		f.Add(b)
	}
	for _, s := range []string{"", "x", "\r\n\r\n", "Subject: {5}\r\n\r\n)\r\n* BYE", "\x00\xff\r\n.\r\n", "A1 OK done\r\n", "Subject: a\rb\n\nc"} {
		f.Add([]byte(s))
	}
	srv := startMem(f, fullCaps)
	clock := storagetest.NewFakeClock(t0)
	rec := newRecorder()
	opts := testOptions(f, srv.addr, clock)
	opts.Logger = slog.New(slog.DiscardHandler) // F's methods must not be called while the target runs
	opts.After = After{Action: AfterDelete}
	// Polling, briefly: the memory server's IDLE does not always see mail
	// appended beside the protocol, and then each input would wait for
	// the IDLE restart.
	opts.DisableIdle, opts.PollInterval = true, 5*time.Millisecond
	p, err := New(opts, rec, newFakeStore(clock))
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	f.Cleanup(func() { cancel(); <-done })
	seq := 0
	f.Fuzz(func(t *testing.T, raw []byte) {
		// Each input unique, so that what arrives can be told apart; a
		// trailing line after it, so that the poller must read past it.
		seq++
		msg := append([]byte(fmt.Sprintf("X-Fuzz-Seq: %d\r\n", seq)), raw...)
		next := []byte(fmt.Sprintf("X-Fuzz-Seq: %d-next\r\nSubject: after\r\n\r\nok\r\n", seq))
		before := len(rec.waitFor(0, 0))
		srv.append(t, "INBOX", msg, time.Time{})
		srv.append(t, "INBOX", next, time.Time{})
		got := rec.waitFor(before+2, 10*time.Second)
		if len(got) < before+2 {
			t.Fatalf("%d of 2 delivered within 10 s", len(got)-before)
		}
		got = got[before:]
		// What the server sends for BODY[]: go-imap's memory server
		// rewrites the header (LF to CRLF) and sends nothing for a
		// header it cannot read. The poller must hand on exactly that.
		want := imapserver.ExtractBodySection(bytes.NewReader(msg), &imap.FetchItemBodySection{})
		if want == nil {
			want = []byte{}
		}
		if !bytes.Equal(got[0], want) || !bytes.Equal(got[1], next) {
			t.Fatalf("delivered %q, %q; the server sent %q, %q", got[0], got[1], want, next)
		}
		// Nothing delivered twice: the mailbox is empty again.
		if late := rec.waitFor(before+3, 0); len(late) != before+2 {
			t.Fatalf("%d deliveries, want 2", len(late)-before)
		}
	})
}
