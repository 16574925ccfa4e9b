package web

import (
	"context"
	"encoding/csv"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tendhq/tend/storage"
)

// statsRange is the default report: the last 30 days.
const statsRange = 30 * 24 * time.Hour

// statsMaxRange bounds one report (the rows are aggregated in memory).
const statsMaxRange = 366 * 24 * time.Hour

// statsFilter reads from, to, inbox and agent. from and to are dates
// (2026-11-01, whole days in UTC, to inclusive) or RFC 3339 instants.
func (s *Server) statsFilter(ctx context.Context, q url.Values) (storage.StatsFilter, error) {
	now := s.opts.Clock.Now()
	f := storage.StatsFilter{To: now, Inbox: strings.ToLower(q.Get("inbox")), Agent: strings.ToLower(q.Get("agent"))}
	var err error
	if v := q.Get("to"); v != "" {
		if f.To, err = parseStatsTime(v, true); err != nil {
			return f, badRequest("to: " + err.Error())
		}
	}
	f.From = f.To.Add(-statsRange)
	if v := q.Get("from"); v != "" {
		if f.From, err = parseStatsTime(v, false); err != nil {
			return f, badRequest("from: " + err.Error())
		}
	}
	if !f.To.After(f.From) {
		return f, badRequest("from must be before to")
	}
	if f.To.Sub(f.From) > statsMaxRange {
		return f, badRequest("the range is at most 366 days")
	}
	if f.Visible, err = s.visibleInboxes(ctx); err != nil {
		return f, err
	}
	return f, nil
}

// parseStatsTime reads a date or an RFC 3339 time; a date as the end of a
// range includes that whole day.
func parseStatsTime(v string, end bool) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	d, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a date (2006-01-02) nor an RFC 3339 time", v)
	}
	if end {
		d = d.Add(24 * time.Hour)
	}
	return d, nil
}

// apiStats is GET /api/stats: the report as JSON, or CSV with format=csv.
func (s *Server) apiStats(w http.ResponseWriter, r *http.Request) error {
	f, err := s.statsFilter(r.Context(), r.URL.Query())
	if err != nil {
		return err
	}
	rep, err := s.store.Stats(r.Context(), f)
	if err != nil {
		return err
	}
	if r.URL.Query().Get("format") == "csv" {
		writeStatsCSV(w, rep)
		return nil
	}
	writeJSON(w, http.StatusOK, statsJSON(rep, f))
	return nil
}

// statsJSON is the API's shape: the figures at the top level, the filter
// echoed, the groups and days below.
func statsJSON(rep storage.StatsReport, f storage.StatsFilter) map[string]any {
	out := map[string]any{
		"from": rep.From.UTC().Format(time.RFC3339), "to": rep.To.UTC().Format(time.RFC3339),
		"inbox": f.Inbox, "agent": f.Agent,
		"by_agent": rep.ByAgent, "by_inbox": rep.ByInbox, "daily": rep.Daily,
	}
	fig := rep.Figures
	for k, v := range map[string]any{
		"tickets": fig.Tickets, "first_response": fig.FirstResponse, "time_to_resolution": fig.Resolution,
		"resolved": fig.Resolved, "unconfirmed": fig.Unconfirmed, "confirmed_resolution_rate": fig.ConfirmedRate,
		"reopened": fig.Reopened, "breaches": fig.Breaches, "repeat_contacts": fig.RepeatContacts,
		"repeat_tickets": fig.RepeatTickets, "satisfaction": fig.Satisfaction,
	} {
		out[k] = v
	}
	return out
}

// statsColumns are the CSV's columns, one row per group.
var statsColumns = []string{"group", "key", "name", "tickets", "first_response_median_s", "first_response_p90_s",
	"resolution_median_s", "resolution_p90_s", "resolved", "unconfirmed", "confirmed_resolution_rate",
	"reopened", "breaches", "repeat_contacts", "satisfaction_asked", "satisfaction_rated", "satisfaction_average"}

// writeStatsCSV writes the report as CSV: the total, then every agent and
// inbox, for a spreadsheet.
func writeStatsCSV(w http.ResponseWriter, rep storage.StatsReport) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="tend-stats-%s-%s.csv"`,
		rep.From.UTC().Format(time.DateOnly), rep.To.UTC().Format(time.DateOnly)))
	cw := csv.NewWriter(w)
	_ = cw.Write(statsColumns)
	row := func(group, key, name string, f storage.Figures) {
		n := func(v int) string { return strconv.Itoa(v) }
		x := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
		_ = cw.Write([]string{group, key, csvSafe(name), n(f.Tickets), x(f.FirstResponse.MedianS), x(f.FirstResponse.P90S),
			x(f.Resolution.MedianS), x(f.Resolution.P90S), n(f.Resolved), n(f.Unconfirmed), x(f.ConfirmedRate),
			n(f.Reopened), n(f.Breaches), n(f.RepeatContacts), n(f.Satisfaction.Asked), n(f.Satisfaction.Rated), x(f.Satisfaction.Average)})
	}
	row("total", "", "", rep.Figures)
	for _, g := range rep.ByAgent {
		row("agent", g.Key, g.Name, g.Figures)
	}
	for _, g := range rep.ByInbox {
		row("inbox", g.Key, g.Name, g.Figures)
	}
	cw.Flush()
}

// csvSafe keeps a name from being read as a formula by a spreadsheet
// (CSV injection): names come from the configuration, but a cell that
// starts with = + - @ is quoted with a leading apostrophe all the same.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// statsPage is /stats: the figures, per agent and inbox, two small charts
// and the CSV link, for leads (agents see their inboxes' figures).
func (s *Server) statsPage(w http.ResponseWriter, r *http.Request, sess storage.SessionInfo) {
	f, err := s.statsFilter(r.Context(), r.URL.Query())
	if err != nil {
		s.fail(w, "stats", err)
		return
	}
	rep, err := s.store.Stats(r.Context(), f)
	if err != nil {
		s.fail(w, "stats", err)
		return
	}
	if r.URL.Query().Get("format") == "csv" {
		writeStatsCSV(w, rep)
		return
	}
	inboxes, err := s.store.Inboxes(r.Context())
	if err != nil {
		s.fail(w, "stats", err)
		return
	}
	agents, err := s.store.Agents(r.Context())
	if err != nil {
		s.fail(w, "stats", err)
		return
	}
	q := r.URL.Query()
	q.Set("format", "csv")
	last := rep.To.Add(-time.Nanosecond) // the "to" date field shows the last day included
	s.render(w, "stats.html", http.StatusOK, map[string]any{
		"Agent": sess.Agent, "CSRF": sess.CSRF, "Report": rep, "Filter": f,
		"FromDate": rep.From.UTC().Format(time.DateOnly), "ToDate": last.UTC().Format(time.DateOnly),
		"Inboxes": inboxes, "Agents": agents, "CSVURL": "/stats?" + q.Encode(),
		"TicketsChart":  barChart("Tickets per day", rep.Daily, func(d storage.StatsDay) float64 { return float64(d.Tickets) }, "%.0f"),
		"ResponseChart": barChart("Median first response per day, hours", rep.Daily, func(d storage.StatsDay) float64 { return d.FirstResponse / 3600 }, "%.1f h"),
	})
}

// barChart draws one bar per day as inline SVG, server-side: no script,
// no external asset. Every bar has a title (the day and its value), and
// the chart a text alternative, for screen readers.
func barChart(title string, days []storage.StatsDay, value func(storage.StatsDay) float64, format string) template.HTML {
	const w, h, pad = 600.0, 120.0, 18.0
	top := 0.0
	for _, d := range days {
		top = math.Max(top, value(d))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s">`, w, h+pad, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<title>%s</title>`, template.HTMLEscapeString(title))
	if len(days) > 0 {
		bw := w / float64(len(days))
		for i, d := range days {
			v := value(d)
			bh := 0.0
			if top > 0 {
				bh = v / top * h
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %s</title></rect>`,
				float64(i)*bw+1, h-bh, math.Max(bw-2, 1), bh, d.Date, template.HTMLEscapeString(fmt.Sprintf(format, v)))
		}
		fmt.Fprintf(&b, `<text x="0" y="%.0f">%s</text><text x="%.0f" y="%.0f" text-anchor="end">%s</text>`,
			h+pad-4, days[0].Date, w, h+pad-4, days[len(days)-1].Date)
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="12" text-anchor="end">max %s</text></svg>`, w, template.HTMLEscapeString(fmt.Sprintf(format, top)))
	return template.HTML(b.String()) // built from numbers and escaped text only
}
