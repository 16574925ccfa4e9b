package storage

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/tendhq/tend/vocab"
)

// StatsFilter selects the tickets a report covers: those created in
// [From, To), not merged away.
type StatsFilter struct {
	From, To time.Time
	Inbox    string // an inbox address that sees the ticket; "" = all
	Agent    string // the assignee's address; "" = all
	// Visible restricts as QueueFilter.Visible does (an agent's access).
	Visible []string
}

// Durations summarises how long something took over a set of tickets.
type Durations struct {
	Count   int     `json:"count"`
	MedianS float64 `json:"median_s"`
	P90S    float64 `json:"p90_s"`
}

// Figures are the follow-through figures of a set of tickets.
type Figures struct {
	Tickets int `json:"tickets"`
	// FirstResponse: from the ticket's creation to the first answer by a
	// person (acknowledgements do not count).
	FirstResponse Durations `json:"first_response"`
	// Resolution: from creation to the customer's confirmation, over the
	// tickets in state resolved.
	Resolution Durations `json:"time_to_resolution"`
	// Resolved are confirmed by the customer; Unconfirmed ran out of
	// nudges with no answer; ConfirmedRate is Resolved over both (closed
	// tickets, spam and duplicates, are no resolution either way).
	Resolved      int     `json:"resolved"`
	Unconfirmed   int     `json:"unconfirmed"`
	ConfirmedRate float64 `json:"confirmed_resolution_rate"`
	// Reopened tickets were resolved or closed and came back.
	Reopened int `json:"reopened"`
	// Breaches are tickets whose promised first response time passed.
	Breaches int `json:"breaches"`
	// RepeatContacts counts the customers' extra mails sent while waiting
	// for an answer; RepeatTickets the tickets with at least one.
	RepeatContacts int `json:"repeat_contacts"`
	RepeatTickets  int `json:"repeat_tickets"`
	// Satisfaction: questions asked, answers, the average score (1..5).
	Satisfaction SatisfactionFigures `json:"satisfaction"`
}

// SatisfactionFigures are the satisfaction answers of a set of tickets.
type SatisfactionFigures struct {
	Asked   int     `json:"asked"`
	Rated   int     `json:"rated"`
	Average float64 `json:"average"`
}

// StatsGroup is the figures of one agent or inbox.
type StatsGroup struct {
	Key  string `json:"key"` // address; "" for unassigned tickets
	Name string `json:"name"`
	Figures
}

// StatsDay is one day's tickets and first response, for the charts.
type StatsDay struct {
	Date          string  `json:"date"` // YYYY-MM-DD, UTC
	Tickets       int     `json:"tickets"`
	FirstResponse float64 `json:"first_response_median_s"`
}

// StatsReport is the report of one StatsFilter.
type StatsReport struct {
	From, To time.Time
	Figures
	ByAgent []StatsGroup `json:"by_agent"`
	ByInbox []StatsGroup `json:"by_inbox"`
	Daily   []StatsDay   `json:"daily"`
}

// statsRow is what the report reads of a ticket.
type statsRow struct {
	ID                  int64
	State               vocab.State
	CreatedAt           time.Time
	FirstResponseAt     *time.Time
	ResolvedAt          *time.Time
	Breached            bool
	RepeatContacts      int
	SatisfactionAskedAt *time.Time
	SatisfactionScore   int
	Inbox, InboxName    string
	Agent, AgentName    string
}

// Stats computes the report of f: two queries (the tickets, then which of
// them were reopened), served by the index on tickets.created_at and
// events(kind, created_at); the medians are computed here because SQLite
// has no percentile function.
func (s *Store) Stats(ctx context.Context, f StatsFilter) (StatsReport, error) {
	return (&Tx{db: s.db, s: s}).Stats(ctx, f)
}

// Stats is Store.Stats inside a transaction (and where TestQueryPlans
// captures its queries).
func (t *Tx) Stats(ctx context.Context, f StatsFilter) (StatsReport, error) {
	if !f.To.After(f.From) {
		return StatsReport{}, fmt.Errorf("stats: empty range %s..%s", f.From.Format(time.RFC3339), f.To.Format(time.RFC3339))
	}
	q := t.db.WithContext(ctx).Table("tickets").
		Select(`tickets.id, tickets.state, tickets.created_at, tickets.first_response_at, tickets.resolved_at,
			tickets.breached, tickets.repeat_contacts, tickets.satisfaction_asked_at, tickets.satisfaction_score,
			inboxes.address AS inbox, inboxes.name AS inbox_name,
			COALESCE(agents.email, '') AS agent, COALESCE(agents.name, '') AS agent_name`).
		Joins("JOIN inboxes ON inboxes.id = tickets.inbox_id").
		Joins("LEFT JOIN agents ON agents.id = tickets.assignee_id").
		Where("tickets.merged_into IS NULL AND tickets.created_at >= ? AND tickets.created_at < ?", f.From, f.To)
	if f.Inbox != "" {
		q = q.Where(inboxExists, f.Inbox)
	}
	if f.Agent != "" {
		q = q.Where("agents.email = ?", f.Agent)
	}
	q = restrictVisible(q, f.Visible)
	var rows []statsRow
	if err := q.Scan(&rows).Error; err != nil {
		return StatsReport{}, fmt.Errorf("stats: tickets: %w", err)
	}
	// Reopens happen after creation, so events since From cover every
	// ticket of the range.
	var reopenedIDs []int64
	if err := t.flushEvents(ctx); err != nil {
		return StatsReport{}, err
	}
	if err := t.db.WithContext(ctx).Table("events").Distinct("ticket_id").
		Where("kind = ? AND created_at >= ?", vocab.EventReopened, f.From).Pluck("ticket_id", &reopenedIDs).Error; err != nil {
		return StatsReport{}, fmt.Errorf("stats: reopened: %w", err)
	}
	reopened := make(map[int64]bool, len(reopenedIDs))
	for _, id := range reopenedIDs {
		reopened[id] = true
	}
	return buildReport(f, rows, reopened), nil
}

// buildReport aggregates the rows: overall, per agent, per inbox, per day.
func buildReport(f StatsFilter, rows []statsRow, reopened map[int64]bool) StatsReport {
	rep := StatsReport{From: f.From, To: f.To}
	all := &figuresAcc{}
	agents, inboxes, days := map[string]*figuresAcc{}, map[string]*figuresAcc{}, map[string]*figuresAcc{}
	names := map[string]string{}
	group := func(m map[string]*figuresAcc, key string) *figuresAcc {
		if m[key] == nil {
			m[key] = &figuresAcc{}
		}
		return m[key]
	}
	for _, r := range rows {
		re := reopened[r.ID]
		all.add(r, re)
		group(agents, r.Agent).add(r, re)
		names["agent:"+r.Agent] = r.AgentName
		group(inboxes, r.Inbox).add(r, re)
		names["inbox:"+r.Inbox] = r.InboxName
		group(days, r.CreatedAt.UTC().Format(time.DateOnly)).add(r, re)
	}
	rep.Figures = all.figures()
	groups := func(m map[string]*figuresAcc, prefix string) []StatsGroup {
		out := make([]StatsGroup, 0, len(m))
		for k, acc := range m {
			out = append(out, StatsGroup{Key: k, Name: names[prefix+k], Figures: acc.figures()})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
		return out
	}
	rep.ByAgent, rep.ByInbox = groups(agents, "agent:"), groups(inboxes, "inbox:")
	// Every day of the range, empty ones included, so a chart's gaps are
	// days without mail rather than missing bars.
	for d := f.From.UTC().Truncate(24 * time.Hour); d.Before(f.To) && len(rep.Daily) < 366; d = d.Add(24 * time.Hour) {
		key := d.Format(time.DateOnly)
		day := StatsDay{Date: key}
		if acc := days[key]; acc != nil {
			fig := acc.figures()
			day.Tickets, day.FirstResponse = fig.Tickets, fig.FirstResponse.MedianS
		}
		rep.Daily = append(rep.Daily, day)
	}
	return rep
}

// figuresAcc accumulates Figures.
type figuresAcc struct {
	f                  Figures
	firstResp, resolve []float64
	scoreSum           int
}

func (a *figuresAcc) add(r statsRow, reopened bool) {
	a.f.Tickets++
	if r.FirstResponseAt != nil {
		a.firstResp = append(a.firstResp, r.FirstResponseAt.Sub(r.CreatedAt).Seconds())
	}
	switch r.State {
	case vocab.StateResolved:
		a.f.Resolved++
		if r.ResolvedAt != nil {
			a.resolve = append(a.resolve, r.ResolvedAt.Sub(r.CreatedAt).Seconds())
		}
	case vocab.StateUnconfirmed:
		a.f.Unconfirmed++
	}
	if reopened {
		a.f.Reopened++
	}
	if r.Breached {
		a.f.Breaches++
	}
	if r.RepeatContacts > 0 {
		a.f.RepeatContacts += r.RepeatContacts
		a.f.RepeatTickets++
	}
	if r.SatisfactionAskedAt != nil {
		a.f.Satisfaction.Asked++
	}
	if r.SatisfactionScore > 0 {
		a.f.Satisfaction.Rated++
		a.scoreSum += r.SatisfactionScore
	}
}

func (a *figuresAcc) figures() Figures {
	f := a.f
	f.FirstResponse = summarise(a.firstResp)
	f.Resolution = summarise(a.resolve)
	if n := f.Resolved + f.Unconfirmed; n > 0 {
		f.ConfirmedRate = round3(float64(f.Resolved) / float64(n))
	}
	if f.Satisfaction.Rated > 0 {
		f.Satisfaction.Average = round3(float64(a.scoreSum) / float64(f.Satisfaction.Rated))
	}
	return f
}

// summarise gives the count, median and 90th percentile of seconds, by
// the nearest-rank method (a reported figure is one a ticket really had).
func summarise(secs []float64) Durations {
	if len(secs) == 0 {
		return Durations{}
	}
	sort.Float64s(secs)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(secs)))) - 1
		return math.Round(secs[max(i, 0)])
	}
	return Durations{Count: len(secs), MedianS: rank(0.5), P90S: rank(0.9)}
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
