package storage_test

import (
	"context"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

// TestQueuePlans explains every query the queue page and the API list
// run, for each filter, on the first page, a deep one and back, and fails
// on a full scan of tickets, messages or ticket_inboxes, or on a sort (a
// temp B-tree on SQLite, a Sort node on PostgreSQL): the order must come
// from an index, read until the page is full. Two kinds of sort are
// allowed, over sets an index bounds: the clusters sort their groups by
// size, which no index can give, over the open and recent tickets only;
// and the filters that seek one customer or
// one cluster, or a tag among the open tickets, may sort what the seek
// found when the planner estimates it small.
func TestQueuePlans(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		tickets := fillQueue(t, s, clock, planFill)
		// The ticket page reads the timeline: give every ticket one entry.
		if err := storage.ExecForTest(ctx, s, "INSERT INTO events (ticket_id, kind, actor, detail, created_at) SELECT id, 'opened', '', '', created_at FROM tickets"); err != nil {
			t.Fatal(err)
		}
		// Text for the dense searches: "hello" in every message.
		if err := storage.ExecForTest(ctx, s, "UPDATE messages SET text = "+searchBenchText); err != nil {
			t.Fatal(err)
		}
		if err := s.Optimize(ctx); err != nil {
			t.Fatal(err)
		}
		mid := tickets[len(tickets)/2]
		// bounded are the filters whose matching rows an index seek finds,
		// so that sorting them is cheap whatever the store's size.
		bounded := map[string]bool{"customer": true, "cluster": true, "tag": true, "rare tag all": true}
		filters := map[string]storage.QueueFilter{
			"default":        {},
			"all":            {State: "all"},
			"closed":         {State: string(vocab.StateClosed)},
			"waiting":        {State: string(vocab.StateWaiting)},
			"inbox":          {Inbox: "billing@acme.test"},
			"inbox all":      {Inbox: "billing@acme.test", State: "all"},
			"assignee":       {Assignee: "agent3@acme.example"},
			"unassigned all": {Assignee: storage.AssigneeNone, State: "all"},
			"customer":       {Customer: mid.Customer, State: "all"},
			"tag":            {Tag: "vip"},
			"rare tag all":   {Tag: "rare", State: "all"}, // one ticket in 997 (BenchFill)
			"cluster":        {Subject: strings.ToLower(mid.Subject), State: "all"},
			"visible":        {Visible: []string{"support@acme.test"}},
			"api open":       {Snoozed: true},
		}
		for name, f := range filters {
			deep, err := storage.QueueCursorAt(ctx, s, f, 5)
			if err != nil {
				t.Fatal(err)
			}
			for _, page := range []string{"first", "deep", "back"} {
				f := f
				switch page {
				case "deep":
					f.After = &deep
				case "back":
					f.Before = &deep
				}
				checkPlans(t, s, name+" "+page, bounded[name], func(ctx context.Context) error { _, _, err := s.Queue(ctx, f); return err })
			}
		}
		for _, inbox := range []string{"", "billing@acme.test"} {
			checkPlans(t, s, "AttentionCounts "+inbox, false, func(ctx context.Context) error { _, err := s.AttentionCounts(ctx, inbox, nil); return err })
			checkPlans(t, s, "ContentClusters "+inbox, true, func(ctx context.Context) error {
				_, err := s.ContentClusters(ctx, inbox, nil, clock.Now().Add(-7*24*time.Hour), 2, 8)
				return err
			})
		}
		// Searches whose every term is dense walk the listing in its
		// order and check each chunk's tickets by key (walkSearch); the
		// page and the count are then read by primary key.
		for name, f := range map[string]storage.QueueFilter{
			"search every message all": {Query: "hello", State: "all"},
			"search two words inbox":   {Query: "hello refund", Inbox: "support@acme.test"},
			"search word closed":       {Query: "refund", State: string(vocab.StateClosed)},
		} {
			// The sorts allowed are of the matches read by key, at most
			// a page; the walk itself is the queue's ordered walk. (The
			// API list walks the primary key, which SQLite's plan shows
			// as the table's SCAN, as it does for the list unsearched.)
			checkPlans(t, s, name, true, func(ctx context.Context) error {
				if _, _, err := s.Queue(ctx, f); err != nil {
					return err
				}
				_, _, _, err := s.QueueFound(ctx, f, storage.SearchCountLimit)
				return err
			})
		}
		// A ticket's own messages, events and inboxes: sorting them is
		// bounded by the ticket.
		checkPlans(t, s, "GetTicket", true, func(ctx context.Context) error { _, err := s.GetTicket(ctx, mid.ID); return err })
	})
}

// fillQueue fills s with n tickets of three messages each and what the
// queue ranks and filters by (BenchSpec.Queue).
func fillQueue(t *testing.T, s *storage.Store, clock *storagetest.FakeClock, n int) []storage.BenchTicket {
	t.Helper()
	spec := planSpec(clock.Now(), 3*n)
	spec.PerTicket, spec.Queue = 3, true
	tickets, err := storage.BenchFill(context.Background(), s, spec)
	if err != nil {
		t.Fatal(err)
	}
	return tickets
}

// checkPlans runs fn, explains each query it ran and fails on a problem;
// sorts only when maySort.
func checkPlans(t *testing.T, s *storage.Store, name string, maySort bool, fn func(ctx context.Context) error) {
	t.Run(name, func(t *testing.T) {
		ctx := context.Background()
		qs, err := storage.CaptureRun(ctx, s, fn)
		if err != nil {
			t.Fatal(err)
		}
		if len(qs) == 0 {
			t.Fatal("ran no query")
		}
		for _, q := range qs {
			if strings.HasPrefix(q.SQL, "EXPLAIN ") {
				continue // the search's estimate (PostgreSQL) reads no row
			}
			plan, err := storage.Explain(ctx, s, q)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s\n\t%s", q.SQL, strings.Join(plan, "\n\t"))
			if p := listPlanProblem(s.Driver(), plan, maySort); p != "" {
				t.Errorf("%s: %s", name, p)
			}
		}
	})
}

// pgSortRows reads the planner's row estimate of a PostgreSQL Sort node.
var pgSortRows = regexp.MustCompile(`Sort\s+\(cost=[0-9.]+\.\.[0-9.]+ rows=([0-9]+) `)

// smallSortRows is the largest sort PostgreSQL may choose over an index
// order: when the planner, with current statistics (Optimize), expects
// this few rows, fetching them by the filter's index and sorting them
// costs less than walking the order index, and stays under a millisecond.
const smallSortRows = 1000

func smallSort(line string) bool {
	m := pgSortRows.FindStringSubmatch(line)
	if m == nil {
		return false
	}
	n, err := strconv.Atoi(m[1])
	return err == nil && n <= smallSortRows
}

// ftsMatch is SQLite's plan line for a full-text table read through its
// MATCH (the constraint codes after the colon: M for MATCH, = for a
// rowid).
var ftsMatch = regexp.MustCompile(`^SCAN search_\w+ (?:EXISTS )?VIRTUAL TABLE INDEX \d+:\S*M`)

// listPlanProblem is planProblem for listings: an ordered walk of an index
// ("SCAN tickets USING INDEX", read until LIMIT) is what they should do;
// a walk of a table, a search without an index or (unless maySort) a sort
// is not.
func listPlanProblem(driver string, plan []string, maySort bool) string {
	indexed := false
	for _, line := range plan {
		l := strings.TrimLeft(line, " ->")
		switch {
		case driver == storage.DriverSQLite && ftsMatch.MatchString(l):
			indexed = true // a full-text index read by its MATCH
			continue
		case driver == storage.DriverSQLite && (strings.HasPrefix(l, "SCAN json_each VIRTUAL TABLE") || strings.HasPrefix(l, "SCAN (subquery-") || l == "SCAN hits"):
			continue // a list the query made: ids, a subquery's or a count's rows
		case driver == storage.DriverSQLite && l == "SEARCH tickets":
			// MAX(id) of tickets (the search's density sample): SQLite
			// seeks to the end of the rowid b-tree.
			indexed = true
			continue
		case driver == storage.DriverSQLite && strings.HasPrefix(l, "SCAN ") && !strings.Contains(l, " USING "):
			return "scans a table: " + l
		case driver == storage.DriverSQLite && strings.HasPrefix(l, "SEARCH ") && !strings.Contains(l, " USING "):
			return "searches without an index: " + l
		case strings.Contains(l, "Seq Scan on tickets"), strings.Contains(l, "Seq Scan on messages"),
			strings.Contains(l, "Seq Scan on ticket_inboxes"), strings.Contains(l, "Seq Scan on contacts"):
			return "scans a table: " + l
		case !maySort && strings.Contains(l, "USE TEMP B-TREE"):
			return "sorts: " + l
		case !maySort && (strings.HasPrefix(l, "Sort  (") || strings.HasPrefix(l, "Incremental Sort  (")) && !smallSort(l):
			return "sorts: " + l
		}
		indexed = indexed || strings.Contains(l, " USING ") || strings.Contains(l, "Index Scan") ||
			strings.Contains(l, "Index Only Scan") || strings.Contains(l, "Bitmap Index Scan")
	}
	if !indexed {
		return "no index in the plan: " + strings.Join(plan, " | ")
	}
	return ""
}

// TestQueueTagFilter: a tag matches whole tags only, and quotes,
// backslashes and LIKE's wildcards in it are literal on both backends
// (PostgreSQL reads the tag as a quoted literal, tagCondition).
func TestQueueTagFilter(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		tickets := fillQueue(t, s, clock, 20)
		if err := storage.ExecForTest(ctx, s, "UPDATE tickets SET tags = ''"); err != nil {
			t.Fatal(err)
		}
		a, b := tickets[3].ID, tickets[7].ID
		for id, tags := range map[int64]string{a: `o'brien a\b vip`, b: `vip% x_y why? $1`} {
			if err := storage.ExecForTest(ctx, s, "UPDATE tickets SET tags = '"+strings.ReplaceAll(tags, "'", "''")+"' WHERE id = "+strconv.FormatInt(id, 10)); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			tag  string
			want []int64
		}{
			{"o'brien", []int64{a}}, {`a\b`, []int64{a}}, {"vip", []int64{a}}, {"vip%", []int64{b}},
			{"x_y", []int64{b}}, {"x", nil}, {"%", nil}, {"brien", nil}, {`'`, nil}, {`\`, nil},
			{"a\x00b", nil},
			// A placeholder's mark in the literal stays text; a quote
			// cannot end it.
			{"why?", []int64{b}}, {"$1", []int64{b}}, {"?", nil}, {"x'); DROP TABLE tickets; --", nil}, {`'); DROP TABLE tickets; --`, nil},
		} {
			rows, _, err := s.Queue(ctx, storage.QueueFilter{Tag: c.tag, State: "all"})
			if err != nil {
				t.Fatalf("tag %q: %v", c.tag, err)
			}
			var got []int64
			for _, r := range rows {
				got = append(got, r.Number)
			}
			slices.Sort(got)
			if !slices.Equal(got, c.want) {
				t.Errorf("tag %q: tickets %v, want %v", c.tag, got, c.want)
			}
		}
	})
}
