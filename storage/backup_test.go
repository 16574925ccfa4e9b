package storage_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestBackupWhileDelivering copies a SQLite store while messages, small
// ones into segments and large ones moved in as files of their own, are
// committed beside it: the copy opens, and every message in it reads back
// with the bytes its hash names; everything committed before the copy
// began is in it.
func TestBackupWhileDelivering(t *testing.T) {
	ctx := context.Background()
	_, s := openReopenable(t, "sqlite", storagetest.NewFakeClock(t0), "support@acme.test")
	defer s.Close()
	c := committer(t, s)
	spool := t.TempDir()
	var committed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d@example.com", w, i)
				in := incoming("load@example.com", id, "load "+id, "")
				if w == 0 && i%4 == 0 {
					// Large, handed over as a spool file.
					raw := string(in.Raw) + strings.Repeat("large "+id+"\r\n", (1<<20)/20)
					p := filepath.Join(spool, "spool-"+id)
					if err := os.WriteFile(p, []byte(raw), 0o600); err != nil {
						errs <- err
						return
					}
					f, err := os.Open(p)
					if err != nil {
						errs <- err
						return
					}
					in.Raw, in.Hash, in.Body = []byte(raw), hashOf([]byte(raw)), fileBody{f, int64(len(raw))}
					_, err = c.Deliver(ctx, in)
					_ = f.Close()
					if err != nil {
						errs <- err
						return
					}
				} else if _, err := c.Deliver(ctx, in); err != nil {
					errs <- err
					return
				}
				committed.Add(1)
			}
		}()
	}
	stopAll := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	defer stopAll()
	for committed.Load() < 20 {
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
		// Waits on real commits rather than on a guess of time.
		if _, err := c.Deliver(ctx, incoming("pace@example.com", fmt.Sprintf("pace%d@example.com", committed.Load()), "pace", "")); err != nil {
			t.Fatal(err)
		}
	}
	// Between the database copy and the copy of the files, more mail is
	// committed (its bytes land in the segments and the raw directory
	// after the snapshot), and on the first try a compaction rewrites the
	// segment the snapshot points into, which makes the copy be taken
	// again.
	var tries, compacted int
	storage.SetAfterSnapshot(s, func() {
		tries++
		for i := range 3 {
			if _, err := c.Deliver(ctx, incoming("late@example.com", fmt.Sprintf("late%d-%d@example.com", tries, i), "late", "")); err != nil {
				t.Error(err)
			}
		}
		if tries == 1 {
			dup := incoming("late@example.com", "late1-0@example.com", "late", "")
			if d, err := c.Deliver(ctx, dup); err != nil || !d.Duplicate {
				t.Errorf("duplicate: %+v %v", d, err)
			}
			cs, err := s.CompactSegments(ctx, 1e-9)
			if err != nil {
				t.Error(err)
			}
			compacted = cs.Segments
		}
	})
	backup := filepath.Join(t.TempDir(), "copy")
	before := committed.Load()
	st, err := s.Backup(ctx, backup)
	stopAll()
	close(errs)
	for err := range errs {
		t.Errorf("delivery: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if compacted == 0 || tries != 2 {
		t.Errorf("compaction during the copy rewrote %d segments, copy taken %d times: want a segment rewritten and a second try", compacted, tries)
	}
	if st.Files == 0 || st.Segments == 0 {
		t.Errorf("backup %+v: want segment and message files", st)
	}
	if _, err := s.Backup(ctx, backup); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("backup into a non-empty directory: %v", err)
	}

	b, err := storage.Open(ctx, storage.Options{Driver: storage.DriverSQLite, DataDir: backup, Existing: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if bad, err := b.CheckRaw(ctx); err != nil || len(bad) > 0 {
		t.Fatalf("copy: %d raw messages missing (%v)", len(bad), err)
	}
	var n int64
	for cursor := int64(0); ; {
		rows, next, err := b.ListTickets(ctx, storage.TicketFilter{State: "all", Limit: 500, Before: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			d, err := b.GetTicket(ctx, r.Number)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range d.Messages {
				raw, err := b.Raw(ctx, m.RawHash)
				if err != nil || hashOf(raw) != m.RawHash {
					t.Errorf("copy: message %s: %d bytes, %v", m.MessageID, len(raw), err)
				}
				if strings.HasPrefix(m.MessageID, "w") {
					n++
				}
			}
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	if n < before {
		t.Errorf("copy holds %d messages, want at least the %d committed before it began", n, before)
	}
	t.Logf("backup %+v; %d messages in the copy, %d committed before it began", st, n, before)
}

// TestBackupPostgresUnsupported: PostgreSQL's copy is pg_dump's job.
func TestBackupPostgresUnsupported(t *testing.T) {
	s := storagetest.OpenPostgres(t, storagetest.NewFakeClock(t0))
	if _, err := s.Backup(context.Background(), t.TempDir()); !errors.Is(err, storage.ErrBackupUnsupported) {
		t.Errorf("backup on PostgreSQL: %v", err)
	}
}
