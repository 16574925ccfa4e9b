package storage_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

// deliver commits in and fails the test on error.
func deliver(t *testing.T, c *storage.Committer, in *storage.Incoming) storage.Delivered {
	t.Helper()
	d, err := c.Deliver(context.Background(), in)
	if err != nil {
		t.Fatalf("deliver %s: %v", in.MessageID, err)
	}
	return d
}

// inTx runs fn in a transaction of s and fails the test on error.
func inTx(t *testing.T, s *storage.Store, fn func(ctx context.Context, tx *storage.Tx) error) {
	t.Helper()
	ctx := context.Background()
	if err := s.InTx(ctx, func(tx *storage.Tx) error { return fn(ctx, tx) }); err != nil {
		t.Fatal(err)
	}
}

// queueReply records an agent reply on ticket as the follow-through
// executor does.
func queueReply(t *testing.T, s *storage.Store, ticket int64, msgID string) int64 {
	t.Helper()
	var id int64
	inTx(t, s, func(ctx context.Context, tx *storage.Tx) error {
		var err error
		id, err = tx.QueueMail(ctx, storage.OutboxMail{TicketID: &ticket, Kind: storage.OutboxToCustomer, EnvTo: "x@example.com"},
			storage.Message{TicketID: &ticket, FromAddr: "support@acme.test", Subject: "Re: reply"},
			func(int64) (storage.Composed, error) {
				return storage.Composed{MessageID: msgID, EnvFrom: "bounces@acme.test", Raw: storagetest.Fixed([]byte("Message-ID: <" + msgID + ">\r\n\r\nhi\r\n"))}, nil
			})
		return err
	})
	return id
}

func hasEvent(evs []storage.Event, kind vocab.EventKind, detail string) bool {
	return slices.ContainsFunc(evs, func(e storage.Event) bool { return e.Kind == kind && strings.Contains(e.Detail, detail) })
}

func TestMergeTickets(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		a := deliver(t, c, incoming("ann@example.com", "a1@example.com", "Printer on fire", "")).Ticket
		bIn := incoming("ann@example.com", "b1@example.com", "Printer still on fire", "", "billing@acme.test")
		bIn.ThreadRoot = "AQHcB-root"
		bIn.Place = func(context.Context, *storage.Tx) (storage.Placement, error) {
			return storage.Placement{Participants: []string{"boss@example.com"}}, nil
		}
		b := deliver(t, c, bIn).Ticket
		clock.Advance(time.Minute)
		deliver(t, c, incoming("ann@example.com", "b2@example.com", "Re: Printer still on fire", "b1@example.com"))
		cTicket := deliver(t, c, incoming("ann@example.com", "c1@example.com", "Printer, third time", "")).Ticket
		queueReply(t, s, b, "out-b@tend.acme.test")
		inTx(t, s, func(ctx context.Context, tx *storage.Tx) error {
			return errors.Join(
				tx.UpdateTicket(ctx, b, storage.TicketUpdate{AddTags: []string{"hardware", "urgent"}}),
				tx.UpdateTicket(ctx, a, storage.TicketUpdate{AddTags: []string{"hardware"}}),
				tx.Schedule(ctx, a, "nudge", t0.Add(2*time.Hour)),
				tx.Schedule(ctx, b, "nudge", t0.Add(time.Hour)),
				tx.Schedule(ctx, b, "sla", t0.Add(3*time.Hour)),
				tx.Schedule(ctx, a, "close", t0.Add(4*time.Hour)),
			)
		})
		// C was merged into B earlier: after B goes into A, C must point at
		// A directly, not through a chain.
		if err := s.MergeTickets(ctx, cTicket, b, "lead@acme.test"); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Minute)
		if err := s.MergeTickets(ctx, b, a, "lead@acme.test"); err != nil {
			t.Fatal(err)
		}

		d, err := s.GetTicket(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		if d.Number != a {
			t.Fatalf("GetTicket(#%d) = #%d, want the surviving #%d", b, d.Number, a)
		}
		var ids []string
		for _, m := range d.Messages {
			ids = append(ids, m.MessageID)
		}
		want := []string{"a1@example.com", "b1@example.com", "b2@example.com", "c1@example.com", "out-b@tend.acme.test"}
		if fmt.Sprint(ids) != fmt.Sprint(want) {
			t.Errorf("messages of #%d = %v, want %v", a, ids, want)
		}
		if fmt.Sprint(d.Inboxes) != "[support@acme.test billing@acme.test]" {
			t.Errorf("inboxes = %v, want both", d.Inboxes)
		}
		if d.Tags != "hardware urgent" {
			t.Errorf("tags = %q, want the union", d.Tags)
		}
		if !hasEvent(d.Events, vocab.EventMerged, fmt.Sprintf("#%d merged into this ticket", b)) {
			t.Errorf("no merge event on #%d: %+v", a, d.Events)
		}
		if !hasEvent(d.Events, "message.received", "") || len(d.Events) < 5 {
			t.Errorf("timeline of #%d did not take #%d's entries: %+v", a, b, d.Events)
		}
		out, err := s.Outbox(ctx, a)
		if err != nil || len(out) != 1 {
			t.Errorf("outbox of #%d = %d rows, %v; want the one queued on #%d", a, len(out), err, b)
		}

		for _, n := range []int64{b, cTicket} {
			raw, err := storage.RawTicket(ctx, s, n)
			if err != nil {
				t.Fatal(err)
			}
			// C's close reason keeps naming B: that is what happened to it.
			into := map[int64]int64{b: a, cTicket: b}[n]
			if raw.MergedInto == nil || *raw.MergedInto != a || raw.State != vocab.StateClosed || raw.CloseReason != fmt.Sprintf("merged into #%d", into) {
				t.Errorf("#%d after merge: merged_into=%v state=%s reason=%q", n, raw.MergedInto, raw.State, raw.CloseReason)
			}
		}
		evs, err := storage.RawEvents(ctx, s, b)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].Kind != vocab.EventMerged || evs[0].Actor != "lead@acme.test" {
			t.Errorf("events left on #%d = %+v, want only the merge", b, evs)
		}

		inTx(t, s, func(ctx context.Context, tx *storage.Tx) error {
			info, ok, err := tx.Ticket(ctx, b)
			if err != nil || !ok || info.Number != a {
				t.Errorf("Tx.Ticket(#%d) = %+v %v %v, want #%d", b, info, ok, err, a)
			}
			for _, who := range []string{"ann@example.com", "boss@example.com"} {
				if p, err := tx.IsParticipant(ctx, a, []string{who}); err != nil || !p {
					t.Errorf("%s on #%d: %v %v, want a participant", who, a, p, err)
				}
				if p, _ := tx.IsParticipant(ctx, b, []string{who}); p {
					t.Errorf("%s still a participant of the redirect #%d", who, b)
				}
			}
			if n, ok, err := tx.TicketByThreadRoot(ctx, "AQHcB-root"); err != nil || !ok || n != a {
				t.Errorf("thread root now on #%d %v %v, want #%d", n, ok, err, a)
			}
			refs, err := tx.TicketsByMessageIDs(ctx, []string{"b1@example.com", "out-b@tend.acme.test"})
			if err != nil || len(refs) != 2 || refs[0].Ticket != a || refs[1].Ticket != a || !refs[1].Outbound {
				t.Errorf("message ids now on %+v %v, want both on #%d", refs, err, a)
			}
			if n, ok, _ := tx.RecentTicketBySubject(ctx, "ann@example.com", "Printer still on fire", t0); ok {
				t.Errorf("subject lookup found the merged #%d", n)
			}
			return nil
		})

		timers, err := s.PendingTimers(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, tm := range timers {
			got = append(got, fmt.Sprintf("%s@%s", tm.Name, tm.DueAt.Sub(t0)))
		}
		if fmt.Sprint(got) != "[nudge@1h0m0s sla@3h0m0s close@4h0m0s]" {
			t.Errorf("timers of #%d = %v: want the earlier nudge kept, sla moved, close untouched", a, got)
		}
		if left, _ := s.PendingTimers(ctx, b); len(left) != 0 {
			t.Errorf("#%d still has pending timers %+v", b, left)
		}
	})
}

func TestMergeRefusals(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, _ *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		a := deliver(t, c, incoming("ann@example.com", "a1@example.com", "One", "")).Ticket
		b := deliver(t, c, incoming("bob@example.com", "b1@example.com", "Two", "")).Ticket
		d := deliver(t, c, incoming("dan@example.com", "d1@example.com", "Three", "")).Ticket
		if err := s.MergeTickets(ctx, b, a, "lead@acme.test"); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name     string
			from, to int64
			want     error
		}{
			{"into itself", a, a, storage.ErrConflict},
			{"into a merged ticket", d, b, storage.ErrConflict},
			{"a merged ticket again", b, d, storage.ErrConflict},
			{"unknown source", 99999, a, storage.ErrNotFound},
			{"unknown target", d, 99999, storage.ErrNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := s.MergeTickets(ctx, tt.from, tt.to, "lead@acme.test")
				if !errors.Is(err, tt.want) {
					t.Fatalf("MergeTickets(#%d, #%d) = %v, want %v", tt.from, tt.to, err, tt.want)
				}
			})
		}
		// A refused merge changes nothing.
		raw, err := storage.RawTicket(ctx, s, d)
		if err != nil || raw.MergedInto != nil || raw.State != vocab.StateNew {
			t.Errorf("#%d after refused merges: %+v %v", d, raw, err)
		}
	})
}

func TestSplitMessage(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		a := deliver(t, c, incoming("ann@example.com", "a1@example.com", "Printer on fire", "", "support@acme.test", "billing@acme.test")).Ticket
		clock.Advance(time.Hour)
		stray := deliver(t, c, incoming("carol@example.com", "c1@example.com", "Re: Printer on fire (also: my VPN)", "a1@example.com"))
		if stray.Ticket != a {
			t.Fatalf("setup: carol's mail on #%d, want #%d", stray.Ticket, a)
		}
		if err := s.InTx(ctx, func(tx *storage.Tx) error {
			return tx.SaveParsed(ctx, stray.MessageRowID, storage.Parsed{Text: "vpn", Attachments: []storage.ParsedAttachment{{Part: 0, Filename: "vpn.log", Size: 10}}})
		}); err != nil {
			t.Fatal(err)
		}
		n, err := s.SplitMessage(ctx, stray.MessageRowID, "lead@acme.test")
		if err != nil {
			t.Fatal(err)
		}
		if n == a || n == 0 {
			t.Fatalf("split opened #%d", n)
		}
		nd, err := s.GetTicket(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if nd.Customer != "carol@example.com" || nd.Subject != "Re: Printer on fire (also: my VPN)" || nd.State != vocab.StateNew {
			t.Errorf("split ticket = %+v", nd.TicketRow)
		}
		if len(nd.Messages) != 1 || nd.Messages[0].ID != stray.MessageRowID {
			t.Errorf("split ticket messages = %+v, want row %d", nd.Messages, stray.MessageRowID)
		}
		if fmt.Sprint(nd.Inboxes) != "[support@acme.test billing@acme.test]" {
			t.Errorf("split ticket inboxes = %v, want the old ticket's", nd.Inboxes)
		}
		if !hasEvent(nd.Events, "ticket.created", "ticket opened") || !hasEvent(nd.Events, vocab.EventSplit, fmt.Sprintf("split off #%d into this ticket", a)) ||
			!hasEvent(nd.Events, "message.received", "") {
			t.Errorf("split ticket timeline = %+v", nd.Events)
		}
		att, err := s.Attachments(ctx, []int64{stray.MessageRowID})
		if err != nil || len(att[stray.MessageRowID]) != 1 {
			t.Errorf("attachments after split = %+v %v", att, err)
		}
		od, err := s.GetTicket(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if len(od.Messages) != 1 || !hasEvent(od.Events, vocab.EventSplit, fmt.Sprintf("split off into #%d", n)) {
			t.Errorf("old ticket: %d messages, events %+v", len(od.Messages), od.Events)
		}
		inTx(t, s, func(ctx context.Context, tx *storage.Tx) error {
			if p, _ := tx.IsParticipant(ctx, n, []string{"carol@example.com"}); !p {
				t.Errorf("carol is not on the split ticket")
			}
			refs, err := tx.TicketsByMessageIDs(ctx, []string{"c1@example.com"})
			if err != nil || len(refs) != 1 || refs[0].Ticket != n {
				t.Errorf("c1 now on %+v %v, want #%d", refs, err, n)
			}
			return nil
		})
	})
}

// TestSplitLinked is the follow-through executor's use: a late reply
// moves to a new ticket linked to the old one, findable by its subject.
func TestSplitLinked(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		a := deliver(t, c, incoming("ann@example.com", "a1@example.com", "Printer on fire", "")).Ticket
		clock.Advance(60 * 24 * time.Hour)
		late := deliver(t, c, incoming("ann@example.com", "a2@example.com", "Re: Printer on fire", "a1@example.com"))
		var n int64
		inTx(t, s, func(ctx context.Context, tx *storage.Tx) error {
			var err error
			n, err = tx.SplitMessage(ctx, late.MessageRowID, storage.SplitOptions{By: "system", LinkedTo: a, NormSubject: "printer on fire"})
			return err
		})
		raw, err := storage.RawTicket(ctx, s, n)
		if err != nil {
			t.Fatal(err)
		}
		if raw.LinkedTo == nil || *raw.LinkedTo != a || raw.NormSubject != "printer on fire" {
			t.Errorf("linked ticket = linked_to %v, subject key %q", raw.LinkedTo, raw.NormSubject)
		}
		evs, err := storage.RawEvents(ctx, s, n)
		if err != nil || !hasEvent(evs, "ticket.created", fmt.Sprintf("linked to #%d", a)) {
			t.Errorf("linked ticket events = %+v %v", evs, err)
		}
		inTx(t, s, func(ctx context.Context, tx *storage.Tx) error {
			got, ok, err := tx.RecentTicketBySubject(ctx, "ann@example.com", "printer on fire", clock.Now().Add(-time.Hour))
			if err != nil || !ok || got != n {
				t.Errorf("subject lookup = #%d %v %v, want the linked #%d", got, ok, err, n)
			}
			return nil
		})
	})
}

func TestSplitRefusals(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, _ *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		only := deliver(t, c, incoming("ann@example.com", "a1@example.com", "Alone", ""))
		two := deliver(t, c, incoming("bob@example.com", "b1@example.com", "Pair", "")).Ticket
		deliver(t, c, incoming("bob@example.com", "b2@example.com", "Re: Pair", "b1@example.com"))
		queueReply(t, s, two, "out-b@tend.acme.test")
		bounce := incoming("mailer-daemon@example.com", "dsn1@example.com", "Undeliverable", "")
		bounce.Place = func(context.Context, *storage.Tx) (storage.Placement, error) {
			return storage.Placement{NoTicket: true}, nil
		}
		loose := deliver(t, c, bounce)
		d, err := s.GetTicket(ctx, two)
		if err != nil {
			t.Fatal(err)
		}
		var outRow int64
		for _, m := range d.Messages {
			if m.Direction == storage.DirectionOut {
				outRow = m.ID
			}
		}
		tests := []struct {
			name string
			row  int64
			want error
		}{
			{"only message of its ticket", only.MessageRowID, storage.ErrConflict},
			{"mail we sent", outRow, storage.ErrConflict},
			{"message on no ticket", loose.MessageRowID, storage.ErrConflict},
			{"unknown message", 99999, storage.ErrNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if _, err := s.SplitMessage(ctx, tt.row, "lead@acme.test"); !errors.Is(err, tt.want) {
					t.Fatalf("SplitMessage(%d) = %v, want %v", tt.row, err, tt.want)
				}
			})
		}
		if rows, _, err := s.ListTickets(ctx, storage.TicketFilter{State: "all"}); err != nil || len(rows) != 2 {
			t.Errorf("refused splits left %d tickets (%v), want 2", len(rows), err)
		}
	})
}

// TestMergeConcurrent merges two tickets into each other at once: one
// merge wins, the other is refused, and no cycle of redirects is left.
func TestMergeConcurrent(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, _ *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		for round := range 5 {
			a := deliver(t, c, incoming("ann@example.com", fmt.Sprintf("a%d@example.com", round), "One", "")).Ticket
			b := deliver(t, c, incoming("bob@example.com", fmt.Sprintf("b%d@example.com", round), "Two", "")).Ticket
			start := make(chan struct{})
			errs := make(chan error, 2)
			for _, p := range [][2]int64{{a, b}, {b, a}} {
				go func() {
					<-start
					errs <- s.MergeTickets(ctx, p[0], p[1], "lead@acme.test")
				}()
			}
			close(start)
			e1, e2 := <-errs, <-errs
			if (e1 == nil) == (e2 == nil) || !errors.Is(errors.Join(e1, e2), storage.ErrConflict) {
				t.Fatalf("round %d: merges returned %v and %v, want one success and one conflict", round, e1, e2)
			}
			for _, n := range []int64{a, b} {
				if _, err := s.GetTicket(ctx, n); err != nil {
					t.Fatalf("round %d: ticket #%d no longer resolves: %v", round, n, err)
				}
			}
		}
	})
}
