package storage_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// randomIncoming is incoming with size bytes of random body (a
// repeated byte would hide a chunk written twice or out of order).
func randomIncoming(from, msgID string, size int, seed uint64) *storage.Incoming {
	in := incoming(from, msgID, "big "+msgID, "")
	body := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range body {
		body[i] = 'A' + byte(r.IntN(26))
	}
	in.Raw = append(in.Raw, body...)
	in.Hash = hashOf(in.Raw)
	return in
}

// openPostgresStore is a fresh PostgreSQL store with the support inbox.
func openPostgresStore(t *testing.T, clock storage.Clock) *storage.Store {
	t.Helper()
	s := storagetest.OpenPostgres(t, clock)
	if err := s.SyncInboxes(context.Background(), []storage.InboxSpec{{Address: "support@acme.test"}}); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRawChunksRoundTrip stores a 24 MB message on PostgreSQL: its bytes
// go to raw_chunks in 1 MiB rows, not into the raw row, and read back
// byte for byte; a large message stored whole in its row (as before
// raw_chunks) still reads too.
func TestRawChunksRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := openPostgresStore(t, storagetest.NewFakeClock(t0))
	c := committer(t, s)
	const size = 24 << 20
	big := randomIncoming("ann@example.com", "scans@example.com", size, 1)
	if _, err := c.Deliver(ctx, big); err != nil {
		t.Fatal(err)
	}
	seg, chunks, err := storage.RawLayout(ctx, s, big.Hash)
	if err != nil {
		t.Fatal(err)
	}
	want := (int64(len(big.Raw)) + storage.ChunkSize - 1) / storage.ChunkSize
	if seg == 0 || chunks != want {
		t.Errorf("raw row segment %d with %d chunks, want raw_chunks with %d", seg, chunks, want)
	}
	got, err := s.Raw(ctx, big.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big.Raw) {
		t.Fatalf("read back %d bytes, not the %d stored", len(got), len(big.Raw))
	}

	// The same message again is a duplicate and reads the same.
	if d, err := c.Deliver(ctx, randomIncoming("ann@example.com", "scans@example.com", size, 1)); err != nil || !d.Duplicate {
		t.Fatalf("duplicate: %+v, %v", d, err)
	}
	if got, err := s.Raw(ctx, big.Hash); err != nil || !bytes.Equal(got, big.Raw) {
		t.Fatalf("after the duplicate: %d bytes, %v", len(got), err)
	}

	old := randomIncoming("bob@example.com", "old@example.com", 3<<20, 2)
	if err := storage.PutRawInline(ctx, s, old.Hash, old.Raw); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Raw(ctx, old.Hash); err != nil || !bytes.Equal(got, old.Raw) {
		t.Fatalf("a large row stored inline: %d bytes, %v", len(got), err)
	}
	// Small mail stays in its row.
	small := incoming("cy@example.com", "small@example.com", "hello", "")
	if _, err := c.Deliver(ctx, small); err != nil {
		t.Fatal(err)
	}
	if seg, chunks, err := storage.RawLayout(ctx, s, small.Hash); err != nil || seg != 0 || chunks != 0 {
		t.Errorf("small message: segment %d, %d chunks, %v; want it in its row", seg, chunks, err)
	}
}

// TestSmallMailNotHeldBehindChunks holds the writer of a large message
// after its first chunk and delivers small mail meanwhile: the small
// messages are committed while the large one is still unwritten (none of
// its chunks committed, no raw row), so the group commit never waits for
// a large body's bytes. Meanwhile the committer says it is busy, so that
// background work steps aside.
func TestSmallMailNotHeldBehindChunks(t *testing.T) {
	ctx := context.Background()
	s := openPostgresStore(t, storagetest.NewFakeClock(t0))
	c := committer(t, s)
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	storage.SetFaults(s, func(phase string) error {
		if phase == storage.FaultChunk {
			once.Do(func() { close(started); <-release })
		}
		return nil
	})
	big := randomIncoming("ann@example.com", "big@example.com", 8<<20, 3)
	bigDone := make(chan error, 1)
	go func() {
		_, err := c.Deliver(ctx, big)
		bigDone <- err
	}()
	<-started
	if !c.Busy() {
		t.Error("Busy is false while a large body is being written: the processor would not step aside")
	}
	for i := range 5 {
		in := incoming("bob@example.com", "small"+itoa(int64(i))+"@example.com", "question "+itoa(int64(i)), "")
		d, err := c.Deliver(ctx, in)
		if err != nil || d.Ticket == 0 {
			t.Fatalf("small message %d while the large one is written: %+v, %v", i, d, err)
		}
	}
	select {
	case err := <-bigDone:
		t.Fatalf("the large message finished (%v) while its writer was held", err)
	default:
	}
	if seg, chunks, err := storage.RawLayout(ctx, s, big.Hash); err != nil || seg != 0 || chunks != 0 {
		t.Fatalf("while held: segment %d, %d chunks committed, %v; want nothing yet", seg, chunks, err)
	}
	close(release)
	select {
	case err := <-bigDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute): // a bound on a hang, not synchronisation
		t.Fatal("the large message was not delivered after its writer was released")
	}
	if got, err := s.Raw(ctx, big.Hash); err != nil || !bytes.Equal(got, big.Raw) {
		t.Fatalf("large message: %d bytes, %v", len(got), err)
	}
}

// TestReclaimChunks leaves orphan chunks the way a crash or a failed
// delivery does (chunks written, the batch never committed) beside a live
// large message and a delivery still under way: reclaiming deletes only
// the orphans older than the grace period, and the live message still
// reads byte for byte.
func TestReclaimChunks(t *testing.T) {
	ctx := context.Background()
	clock := storagetest.NewFakeClock(t0)
	s := openPostgresStore(t, clock)
	c := committer(t, s)
	live := randomIncoming("ann@example.com", "live@example.com", 5<<20, 4)
	if _, err := c.Deliver(ctx, live); err != nil {
		t.Fatal(err)
	}
	// failAfter makes the writer fail once n chunks are written in a
	// transaction that commits, as a crash after them would leave them.
	failAfter := func(n int) {
		written := 0
		storage.SetFaults(s, func(phase string) error {
			if phase != storage.FaultChunk {
				return nil
			}
			if written++; written > n {
				return errors.New("injected: the writer dies")
			}
			return nil
		})
	}
	old := randomIncoming("bob@example.com", "crashed@example.com", 10<<20, 5)
	failAfter(4) // one transaction of chunks commits
	if _, err := c.Deliver(ctx, old); err == nil {
		t.Fatal("the failing delivery succeeded")
	}
	if _, n, _ := storage.RawLayout(ctx, s, old.Hash); n == 0 {
		t.Fatal("the failed delivery left no chunks to reclaim")
	}
	clock.Advance(2 * storage.ChunkGrace)
	young := randomIncoming("cy@example.com", "underway@example.com", 10<<20, 6)
	failAfter(4)
	if _, err := c.Deliver(ctx, young); err == nil {
		t.Fatal("the failing delivery succeeded")
	}
	storage.SetFaults(s, nil)

	n, err := s.ReclaimChunks(ctx, clock.Now().Add(-storage.ChunkGrace))
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("reclaimed %d chunks, want the 4 the old failure left", n)
	}
	for _, tc := range []struct {
		name string
		hash string
		keep bool
	}{{"live", live.Hash, true}, {"old orphan", old.Hash, false}, {"young orphan", young.Hash, true}} {
		_, chunks, err := storage.RawLayout(ctx, s, tc.hash)
		if err != nil {
			t.Fatal(err)
		}
		if (chunks > 0) != tc.keep {
			t.Errorf("%s: %d chunks left, keep=%v", tc.name, chunks, tc.keep)
		}
	}
	if got, err := s.Raw(ctx, live.Hash); err != nil || !bytes.Equal(got, live.Raw) {
		t.Fatalf("live message after reclaiming: %d bytes, %v", len(got), err)
	}
	// The old message, delivered again, is whole.
	if _, err := c.Deliver(ctx, old); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Raw(ctx, old.Hash); err != nil || !bytes.Equal(got, old.Raw) {
		t.Fatalf("redelivered message: %d bytes, %v", len(got), err)
	}
}

// TestHousekeepingReclaimsChunks: the background housekeeping deletes
// orphan chunks by itself, on its CompactEvery period.
func TestHousekeepingReclaimsChunks(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clock := storagetest.NewFakeClock(t0)
	s := openPostgresStore(t, clock)
	c := committer(t, s)
	storage.SetFaults(s, func(phase string) error {
		if phase == storage.FaultChunk {
			return errors.New("injected: the writer dies")
		}
		return nil
	})
	orphan := randomIncoming("bob@example.com", "crashed@example.com", 2<<20, 7)
	if _, err := c.Deliver(ctx, orphan); err == nil {
		t.Fatal("the failing delivery succeeded")
	}
	storage.SetFaults(s, nil)
	// The failed transaction left nothing; chunks committed by an
	// earlier try of the same message are what a crash leaves.
	if err := storage.ExecForTest(ctx, s, "INSERT INTO raw_chunks (hash, seq, data, created_at) VALUES ('"+orphan.Hash+"', 0, 'x', '2026-03-02 09:00:00')"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * storage.ChunkGrace)
	done := make(chan error, 1)
	go func() {
		done <- s.RunHousekeeping(ctx, storage.HousekeepingOptions{CompactEvery: 10 * time.Millisecond})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, n, err := storage.RawLayout(ctx, s, orphan.Hash)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("housekeeping left %d orphan chunks", n)
		}
		runtime.Gosched()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
