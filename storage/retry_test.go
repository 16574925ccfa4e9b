package storage_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// flaky injects err at one phase of the group commit, times times.
type flaky struct {
	mu    sync.Mutex
	phase string
	err   error
	times int
}

func (f *flaky) fault(phase string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if phase != f.phase || f.times == 0 {
		return nil
	}
	f.times--
	return f.err
}

// TestCommitterRetriesConflicts injects, at each phase of the group
// commit, the errors another writer causes (PostgreSQL serialization
// failure and deadlock, SQLITE_BUSY): the committer runs the transaction
// again and the message is stored once, with no 451. An error that is no
// conflict is not retried, and a conflict that outlasts the retries is a
// 451 (ErrUnavailable).
func TestCommitterRetriesConflicts(t *testing.T) {
	conflicts := map[string]error{
		"serialization": &pgconn.PgError{Code: "40001", Message: "could not serialize access due to concurrent update"},
		"deadlock":      fmt.Errorf("event: %w", &pgconn.PgError{Code: "40P01", Message: "deadlock detected"}),
		"sqlite busy":   errors.New("database is locked (5) (SQLITE_BUSY)"),
	}
	suite(t, func(t *testing.T, s *storage.Store, _ *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		c.SetRetries(3, time.Millisecond)
		n := 0
		for _, phase := range []string{storage.FaultBegin, storage.FaultDeliver, storage.FaultCommit} {
			for name, cerr := range conflicts {
				t.Run(phase+"/"+name, func(t *testing.T) {
					n++
					f := &flaky{phase: phase, err: cerr, times: 3}
					storage.SetFaults(s, f.fault)
					defer storage.SetFaults(s, nil)
					before := c.Retried()
					id := fmt.Sprintf("retry%d@example.com", n)
					d, err := c.Deliver(ctx, incoming("ann@example.com", id, "Retry "+id, ""))
					if err != nil {
						t.Fatalf("deliver after 3 conflicts with 3 retries: %v", err)
					}
					if got := c.Retried() - before; got != 3 {
						t.Errorf("retried %d times, want 3", got)
					}
					tk, err := s.GetTicket(ctx, d.Ticket)
					if err != nil {
						t.Fatal(err)
					}
					if len(tk.Messages) != 1 {
						t.Errorf("ticket has %d messages, want 1", len(tk.Messages))
					}
				})
			}
		}
		t.Run("outlasts the retries", func(t *testing.T) {
			storage.SetFaults(s, (&flaky{phase: storage.FaultCommit, err: conflicts["deadlock"], times: 4}).fault)
			defer storage.SetFaults(s, nil)
			_, err := c.Deliver(ctx, incoming("ann@example.com", "never@example.com", "Never", ""))
			if !errors.Is(err, storage.ErrUnavailable) {
				t.Fatalf("deliver = %v, want ErrUnavailable (451)", err)
			}
		})
		t.Run("not a conflict", func(t *testing.T) {
			storage.SetFaults(s, (&flaky{phase: storage.FaultDeliver, err: errors.New("disk on fire"), times: 1}).fault)
			defer storage.SetFaults(s, nil)
			before := c.Retried()
			if _, err := c.Deliver(ctx, incoming("ann@example.com", "fire@example.com", "Fire", "")); err == nil {
				t.Fatal("deliver succeeded through an injected failure")
			}
			if c.Retried() != before {
				t.Errorf("a failure that is no conflict was retried")
			}
		})
	})
}

// TestCommitterRetriesRealDeadlock makes PostgreSQL detect a real
// deadlock between the committer and another session: the other session
// holds the ticket row the reply must update, the committer holds the raw
// message's key, and the other session then inserts that same key. The
// other session's deadlock_timeout is long, so the committer's transaction
// is the one PostgreSQL aborts with 40P01; the reply must still be stored,
// without a 451.
func TestCommitterRetriesRealDeadlock(t *testing.T) {
	dsn := storagetest.PostgresDSN(t)
	ctx := context.Background()
	s, err := storage.Open(ctx, storage.Options{Driver: storage.DriverPostgres, DSN: dsn, Clock: storagetest.NewFakeClock(t0)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SyncInboxes(ctx, []storage.InboxSpec{{Address: "support@acme.test", Name: "Acme Support"}}); err != nil {
		t.Fatal(err)
	}
	c := committer(t, s)
	first, err := c.Deliver(ctx, incoming("ann@example.com", "dl1@example.com", "Deadlock", ""))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	other, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Rollback() }()
	var otherPID int
	if err := other.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&otherPID); err != nil {
		t.Fatal(err)
	}
	if _, err := other.ExecContext(ctx, "SET LOCAL deadlock_timeout = '60s'"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.ExecContext(ctx, "UPDATE tickets SET updated_at = updated_at WHERE id = $1", first.Ticket); err != nil {
		t.Fatal(err)
	}
	reply := incoming("ann@example.com", "dl2@example.com", "Re: Deadlock", "dl1@example.com")
	done := make(chan error, 1)
	go func() {
		d, err := c.Deliver(ctx, reply)
		if err == nil && d.Ticket != first.Ticket {
			err = fmt.Errorf("reply on ticket %d, want %d", d.Ticket, first.Ticket)
		}
		done <- err
	}()
	// Wait until the committer waits for the ticket row.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> $1 AND wait_event_type = 'Lock'`, otherPID).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the committer never waited for the ticket row")
		}
		select {
		case err := <-done:
			t.Fatalf("the reply was delivered while another session held its ticket: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	before := c.Retried()
	if _, err := other.ExecContext(ctx, `INSERT INTO raw_messages (hash, size, segment, "offset", created_at) VALUES ($1, 1, 0, 0, now())`, reply.Hash); err != nil {
		t.Fatalf("the other session was the deadlock's victim, not the committer: %v", err)
	}
	if err := other.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("deliver after a deadlock: %v (want it retried, not 451)", err)
	}
	if c.Retried() == before {
		t.Error("the committer was not retried: no deadlock happened")
	}
}
