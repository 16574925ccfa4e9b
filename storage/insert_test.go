package storage_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestInsertRowsAsGorm: the rows the pipeline inserts itself
// (insertRows) come out as gorm's Create makes them: two stores on one
// clock, fed the same rows, one through each, hold the same rows after,
// and the callers' structs are left alike (keys, defaults, times set).
// Zero fields with defaults, keys set and unset, conflicts skipped and a
// batch of many rows are among them.
func TestInsertRowsAsGorm(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			clock := storagetest.NewFakeClock(t0)
			viaGorm, viaRows := b.Open(t, clock), b.Open(t, clock)
			var tk int64
			for _, s := range []*storage.Store{viaGorm, viaRows} {
				if err := s.SyncInboxes(ctx, []storage.InboxSpec{{Address: "support@acme.test", Name: "Acme Support"}}); err != nil {
					t.Fatal(err)
				}
				tk = deliver(t, committer(t, s), incoming("ann@example.com", "a1@example.com", "Printer", "")).Ticket
			}
			now := clock.Now()
			many := make([]storage.TicketBand, 700)
			for i := range many {
				many[i] = storage.TicketBand{Band: int64(i), TicketID: tk}
			}
			check(t, ctx, viaGorm, viaRows, "id", false, []storage.Message{
				{TicketID: &tk, Direction: storage.DirectionOut, MessageID: "o1@acme.test", RawHash: "h1", ReceivedAt: now, Text: "hello"},
				{Direction: storage.DirectionOut, MessageID: "o2@acme.test", RawHash: "h2", ReceivedAt: now, Class: "auto", Role: "system", Parsed: true},
			})
			check(t, ctx, viaGorm, viaRows, "id", false, []storage.Event{{TicketID: tk, Kind: "note"}, {TicketID: tk, Kind: "note", Actor: "lena@acme.test", Detail: "d", CreatedAt: now.Add(-time.Hour)}})
			check(t, ctx, viaGorm, viaRows, "id", false, []storage.OutboxMail{
				{ID: 100, TicketID: &tk, Kind: storage.OutboxToCustomer, EnvTo: "ann@example.com", Status: storage.OutboxPending, NextAttemptAt: now},
				{ID: 101, Kind: storage.OutboxToStaff, EnvTo: "lena@acme.test", Status: storage.OutboxHeld, NextAttemptAt: now, Stream: "s:1", Count: 2},
			})
			check(t, ctx, viaGorm, viaRows, "id", false, []storage.OutboxMail{{TicketID: &tk, Kind: storage.OutboxToCustomer, EnvTo: "b@example.com", Status: storage.OutboxPending, NextAttemptAt: now}})
			check(t, ctx, viaGorm, viaRows, "id", false, []storage.Work{{Kind: storage.WorkProcess, MessageRowID: 1, NotBefore: now}})
			check(t, ctx, viaGorm, viaRows, "id", false, []storage.Ticket{{Subject: "Second", State: "new", CustomerID: 1, InboxID: 1}})
			check(t, ctx, viaGorm, viaRows, "id", false, []storage.Timer{{TicketID: tk, Name: "followup", DueAt: now.Add(time.Hour), Status: storage.TimerPending}})
			check(t, ctx, viaGorm, viaRows, "id", false, []storage.Attachment{{MessageRowID: 1, Part: 1, Filename: "a.log"}, {MessageRowID: 1, Part: 2, Inline: true}})
			check(t, ctx, viaGorm, viaRows, "ticket_id, email", true, []storage.Participant{{TicketID: tk, Email: "ann@example.com", Role: "cc"}, {TicketID: tk, Email: "carol@example.com", Role: "cc"}})
			check(t, ctx, viaGorm, viaRows, "ticket_id, inbox_id", true, []storage.TicketInbox{{TicketID: tk, InboxID: 1}})
			check(t, ctx, viaGorm, viaRows, "ref, message_row_id", true, []storage.MessageRef{{Ref: "r@x", MessageRowID: 1}, {Ref: "r@x", MessageRowID: 1}})
			check(t, ctx, viaGorm, viaRows, "band, ticket_id", false, many)
		})
	}
}

// check inserts rows into a through gorm's Create and into b through
// insertRows, and compares the structs after and the tables' rows.
func check[T any](t *testing.T, ctx context.Context, a, b *storage.Store, order string, doNothing bool, rows []T) {
	t.Helper()
	ra, rb := append([]T(nil), rows...), append([]T(nil), rows...)
	if err := storage.GormCreate(ctx, a, ra, doNothing); err != nil {
		t.Fatal(err)
	}
	if err := storage.InsertRows(ctx, b, rb, doNothing); err != nil {
		t.Fatal(err)
	}
	name := reflect.TypeFor[T]().Name()
	if !reflect.DeepEqual(ra, rb) {
		t.Errorf("%s: structs after gorm %s\nafter insertRows %s", name, show(ra), show(rb))
	}
	ta, err := storage.ReadAll[T](ctx, a, order)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := storage.ReadAll[T](ctx, b, order)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ta, tb) {
		t.Errorf("%s: rows by gorm %s\nby insertRows %s", name, show(ta), show(tb))
	}
}

func show[T any](rows []T) string {
	if len(rows) > 3 {
		return fmt.Sprintf("%d rows, first %+v", len(rows), rows[0])
	}
	return fmt.Sprintf("%+v", rows)
}
