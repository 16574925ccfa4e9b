package storage_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

// TestStats builds a week of tickets whose figures are known by
// construction and checks every figure of the report, overall and per
// agent and inbox, on both backends.
func TestStats(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		c := committer(t, s)
		if err := s.SyncAgents(ctx, []storage.AgentSpec{
			{Email: "alice@acme.test", Name: "Alice", Role: "agent"},
			{Email: "bob@acme.test", Name: "Bob", Role: "agent"},
		}); err != nil {
			t.Fatal(err)
		}
		agents, err := s.Agents(ctx)
		if err != nil {
			t.Fatal(err)
		}
		agentID := map[string]int64{}
		for _, a := range agents {
			agentID[a.Email] = a.ID
		}
		start := clock.Now()
		// Each ticket: created at day d, answered after respond (0: never),
		// assigned, ended in state, reopened once or not, breached, with
		// repeat contacts, satisfaction score (0: not asked).
		type spec struct {
			day      int
			inbox    string
			agent    string
			respond  time.Duration
			resolve  time.Duration // after creation, for resolved ones
			state    vocab.State
			reopened bool
			breached bool
			repeats  int
			score    int
		}
		specs := []spec{
			{0, "support@acme.test", "alice@acme.test", 10 * time.Minute, 2 * time.Hour, vocab.StateResolved, false, false, 0, 5},
			{0, "support@acme.test", "alice@acme.test", 30 * time.Minute, 5 * time.Hour, vocab.StateResolved, true, false, 1, 4},
			{1, "support@acme.test", "bob@acme.test", 2 * time.Hour, 0, vocab.StateUnconfirmed, false, false, 0, 0},
			{2, "billing@acme.test", "bob@acme.test", 5 * time.Hour, 0, vocab.StateOpen, false, true, 2, 0},
			{3, "billing@acme.test", "", 0, 0, vocab.StateNew, false, true, 3, 0},
			{3, "support@acme.test", "alice@acme.test", time.Hour, 26 * time.Hour, vocab.StateResolved, false, false, 0, 0},
		}
		for i, sp := range specs {
			clock.Set(start.Add(time.Duration(sp.day) * 24 * time.Hour).Add(time.Duration(i) * time.Minute))
			created := clock.Now()
			res, err := c.Deliver(ctx, incoming(fmt.Sprintf("c%d@example.com", i), fmt.Sprintf("s%d@example.com", i), fmt.Sprintf("Ticket %d", i), "", sp.inbox))
			if err != nil {
				t.Fatal(err)
			}
			err = s.InTx(ctx, func(tx *storage.Tx) error {
				u := storage.TicketUpdate{RepeatContacts: sp.repeats, Breached: &sp.breached}
				if sp.agent != "" {
					id := agentID[sp.agent]
					u.AssigneeID = &id
				}
				if sp.respond > 0 {
					at := created.Add(sp.respond)
					u.FirstResponseAt = &at
				}
				return tx.UpdateTicket(ctx, res.Ticket, u)
			})
			if err != nil {
				t.Fatal(err)
			}
			if sp.reopened {
				clock.Set(created.Add(time.Hour))
				mustState(t, s, res.Ticket, vocab.StateResolved)
				if err := s.InTx(ctx, func(tx *storage.Tx) error {
					return tx.AddEvent(ctx, res.Ticket, vocab.EventReopened, "", "resolved → open", nil)
				}); err != nil {
					t.Fatal(err)
				}
				mustState(t, s, res.Ticket, vocab.StateOpen)
			}
			if sp.resolve > 0 {
				clock.Set(created.Add(sp.resolve))
			}
			mustState(t, s, res.Ticket, sp.state)
			if sp.score > 0 {
				if err := s.InTx(ctx, func(tx *storage.Tx) error {
					if _, err := tx.MarkSatisfactionAsked(ctx, res.Ticket); err != nil {
						return err
					}
					_, err := tx.RecordSatisfaction(ctx, res.Ticket, sp.score, "")
					return err
				}); err != nil {
					t.Fatal(err)
				}
			}
		}
		week := storage.StatsFilter{From: start, To: start.Add(7 * 24 * time.Hour)}
		rep, err := s.Stats(ctx, week)
		if err != nil {
			t.Fatal(err)
		}
		want := storage.Figures{
			Tickets: 6,
			// 10m, 30m, 1h, 2h, 5h: median 1h, p90 (rank 5 of 5) 5h.
			FirstResponse: storage.Durations{Count: 5, MedianS: 3600, P90S: 5 * 3600},
			// 2h, 5h, 26h.
			Resolution:     storage.Durations{Count: 3, MedianS: 5 * 3600, P90S: 26 * 3600},
			Resolved:       3,
			Unconfirmed:    1,
			ConfirmedRate:  0.75,
			Reopened:       1,
			Breaches:       2,
			RepeatContacts: 6, RepeatTickets: 3,
			Satisfaction: storage.SatisfactionFigures{Asked: 2, Rated: 2, Average: 4.5},
		}
		if rep.Figures != want {
			t.Errorf("figures\n got %+v\nwant %+v", rep.Figures, want)
		}
		byAgent := map[string]storage.Figures{}
		for _, g := range rep.ByAgent {
			byAgent[g.Key] = g.Figures
		}
		if a := byAgent["alice@acme.test"]; a.Tickets != 3 || a.Resolved != 3 || a.FirstResponse.MedianS != 1800 || a.Reopened != 1 {
			t.Errorf("alice: %+v", a)
		}
		if b := byAgent["bob@acme.test"]; b.Tickets != 2 || b.Unconfirmed != 1 || b.ConfirmedRate != 0 || b.Breaches != 1 {
			t.Errorf("bob: %+v", b)
		}
		if u := byAgent[""]; u.Tickets != 1 || u.FirstResponse.Count != 0 {
			t.Errorf("unassigned: %+v", u)
		}
		if len(rep.ByInbox) != 2 || rep.ByInbox[0].Key != "billing@acme.test" || rep.ByInbox[0].Tickets != 2 || rep.ByInbox[0].Name != "Acme Billing" {
			t.Errorf("by inbox: %+v", rep.ByInbox)
		}
		// Seven days from 09:00 touch eight calendar days.
		if len(rep.Daily) != 8 || rep.Daily[0].Tickets != 2 || rep.Daily[3].Tickets != 2 || rep.Daily[4].Tickets != 0 {
			t.Errorf("daily: %+v", rep.Daily)
		}

		// Filters: an inbox, an agent, a narrower range, an agent's access.
		for _, tt := range []struct {
			name    string
			f       storage.StatsFilter
			tickets int
		}{
			{"inbox", storage.StatsFilter{From: week.From, To: week.To, Inbox: "billing@acme.test"}, 2},
			{"agent", storage.StatsFilter{From: week.From, To: week.To, Agent: "bob@acme.test"}, 2},
			{"first two days", storage.StatsFilter{From: week.From, To: week.From.Add(48 * time.Hour)}, 3},
			{"visible support only", storage.StatsFilter{From: week.From, To: week.To, Visible: []string{"support@acme.test"}}, 4},
			{"visible none", storage.StatsFilter{From: week.From, To: week.To, Visible: []string{}}, 0},
			{"before anything", storage.StatsFilter{From: week.From.Add(-48 * time.Hour), To: week.From}, 0},
		} {
			got, err := s.Stats(ctx, tt.f)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if got.Tickets != tt.tickets {
				t.Errorf("%s: %d tickets, want %d", tt.name, got.Tickets, tt.tickets)
			}
		}
		if _, err := s.Stats(ctx, storage.StatsFilter{From: week.To, To: week.From}); err == nil {
			t.Error("an empty range was accepted")
		}
	})
}

// mustState moves ticket to state.
func mustState(t *testing.T, s *storage.Store, ticket int64, state vocab.State) {
	t.Helper()
	if err := s.InTx(context.Background(), func(tx *storage.Tx) error {
		return tx.UpdateTicket(context.Background(), ticket, storage.TicketUpdate{State: &state})
	}); err != nil {
		t.Fatal(err)
	}
}
