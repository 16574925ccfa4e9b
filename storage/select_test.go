package storage_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestSelectRowsAsGorm reads the same rows through gorm's Find and
// through selectRows, on every backend, and wants the same structs:
// nil and set pointers, times, booleans, embedded columns, omitted
// columns left zero, no rows at all.
func TestSelectRowsAsGorm(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			clock := storagetest.NewFakeClock(t0)
			s := openInbox(t, b, clock)
			tk := deliver(t, committer(t, s), incoming("ann@example.com", "a1@example.com", "Printer", "")).Ticket
			now := clock.Now()
			later := now.Add(90 * time.Minute)
			agent := int64(1)
			create(t, ctx, s, []storage.Agent{{Email: "lena@acme.test", Name: "Lena", Role: "lead", Inboxes: "support@acme.test"}})
			create(t, ctx, s, []storage.Ticket{{
				Subject: "Second", NormSubject: "second", State: "open", Priority: "high", CustomerID: 1, InboxID: 1, AssigneeID: &agent,
				Breached: true, RepeatContacts: 2, Tags: "vip billing", LinkedTo: &tk, FirstResponseAt: &later, SnoozedUntil: &later,
				Language: "de", SatisfactionScore: 4, SatisfactionComment: "ok",
			}})
			create(t, ctx, s, []storage.Message{{
				TicketID: &tk, Direction: storage.DirectionOut, MessageID: "o1@acme.test", RawHash: "h1", ReceivedAt: now, Text: "hello", HTML: "<p>hello</p>",
				Date: &later, Class: "auto", Role: "system", Parsed: true, Handled: true, AgentID: &agent, Size: 123, Evidence: `["ref"]`,
				Auth: storage.SenderAuth{Method: "authres", DKIM: "pass", DKIMDomain: "example.com", Aligned: true},
			}})
			create(t, ctx, s, []storage.Participant{{TicketID: tk, Email: "carol@example.com", Role: "cc"}})
			create(t, ctx, s, []storage.Contact{{Email: "dan@example.com", Name: "Dan", SuppressedUntil: &later, SuppressReason: "hard bounce"}})

			same[storage.Ticket](t, ctx, s, nil, "id", "id > ?", 0)
			same[storage.Ticket](t, ctx, s, []string{"stems"}, "id", "id = ?", tk)
			same[storage.Message](t, ctx, s, nil, "id", "id > ?", 0)
			same[storage.Message](t, ctx, s, []string{"text", "html", "evidence"}, "id", "ticket_id = ?", tk)
			same[storage.Participant](t, ctx, s, nil, "created_at, email", "ticket_id = ?", tk)
			same[storage.Contact](t, ctx, s, nil, "id", "id > ?", 0)
			same[storage.Inbox](t, ctx, s, nil, "id", "id > ?", 0)
			same[storage.Agent](t, ctx, s, nil, "id", "id > ?", 0)
			same[storage.Agent](t, ctx, s, nil, "id", "id < ?", 0) // none

			// The ticket the rules read: its parts as gorm reads them.
			for _, id := range []int64{tk, tk + 1} {
				var v storage.TicketView
				if err := s.InTx(ctx, func(tx *storage.Tx) error {
					var err error
					v, err = tx.TicketView(ctx, id)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				tks, err := storage.GormFind[storage.Ticket](ctx, s, []string{"stems"}, "id", "id = ?", id)
				if err != nil || len(tks) != 1 {
					t.Fatalf("ticket %d by gorm: %d rows, %v", id, len(tks), err)
				}
				cs, err := storage.GormFind[storage.Contact](ctx, s, nil, "id", "id = ?", tks[0].CustomerID)
				if err != nil || len(cs) != 1 {
					t.Fatalf("customer of %d by gorm: %d rows, %v", id, len(cs), err)
				}
				is, err := storage.GormFind[storage.Inbox](ctx, s, nil, "id", "id = ?", tks[0].InboxID)
				if err != nil || len(is) != 1 {
					t.Fatalf("inbox of %d by gorm: %d rows, %v", id, len(is), err)
				}
				got := v.Ticket
				got.Customer, got.Inbox, got.Assignee = nil, nil, nil
				if !reflect.DeepEqual(got, tks[0]) || !reflect.DeepEqual(v.Customer, cs[0]) || !reflect.DeepEqual(v.Inbox, is[0]) {
					t.Errorf("TicketView(%d):\n%+v\n%+v\n%+v\nby gorm:\n%+v\n%+v\n%+v", id, got, v.Customer, v.Inbox, tks[0], cs[0], is[0])
				}
				if (v.Assignee != nil) != (tks[0].AssigneeID != nil) {
					t.Errorf("TicketView(%d): assignee %+v for assignee id %v", id, v.Assignee, tks[0].AssigneeID)
				}
			}
		})
	}
}

func create[T any](t *testing.T, ctx context.Context, s *storage.Store, rows []T) {
	t.Helper()
	if err := storage.GormCreate(ctx, s, rows, false); err != nil {
		t.Fatal(err)
	}
}

// same reads T's rows where where holds, ordered, both ways.
func same[T any](t *testing.T, ctx context.Context, s *storage.Store, omit []string, order, where string, args ...any) {
	t.Helper()
	want, err := storage.GormFind[T](ctx, s, omit, order, where, args...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := storage.SelectRows[T](ctx, s, omit, "WHERE "+where+" ORDER BY "+order, args...)
	if err != nil {
		t.Fatal(err)
	}
	name := reflect.TypeFor[T]().Name()
	if len(want) == 0 && len(got) == 0 {
		if (want == nil) != (got == nil) {
			t.Errorf("%s where %s: no rows as %#v by gorm, %#v by selectRows", name, where, want, got)
		}
		return
	}
	if !reflect.DeepEqual(want, got) {
		t.Errorf("%s where %s (omit %v):\nby gorm       %+v\nby selectRows %+v", name, where, omit, want, got)
	}
}
