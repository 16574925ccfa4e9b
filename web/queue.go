package web

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/vocab"
)

// queuePageSize is how many tickets one queue page shows.
const queuePageSize = 50

// queueQuery is the queue's filter as it appears in the URL.
type queueQuery struct {
	State    string // "" (needs attention), a state, or "all"
	Inbox    string
	Subject  string // a cluster's normalized subject
	Assignee string // an agent's address, or storage.AssigneeNone
	Customer string // the customer's address
	Tag      string
	// After and Before are the keyset cursors of the page (storage.Cursor
	// strings); both empty is the first page.
	After, Before string
	// Search is the full-text search ("q"; see storage.SearchTerms).
	Search string
}

// parseQueueQuery reads and checks the queue filter from the URL.
func parseQueueQuery(v url.Values) (queueQuery, error) {
	q := queueQuery{
		State: v.Get("state"), Inbox: lowerTrim(v.Get("inbox")), Subject: v.Get("subject"),
		Assignee: lowerTrim(v.Get("assignee")), Customer: lowerTrim(v.Get("customer")), Tag: lowerTrim(v.Get("tag")),
		After: v.Get("after"), Before: v.Get("before"),
	}
	if q.State != "" && q.State != "all" && !vocab.State(q.State).Valid() {
		return q, badRequest("unknown state " + strconv.Quote(q.State))
	}
	q.Search = strings.TrimSpace(v.Get("q"))
	if len(q.Inbox) > 320 || len(q.Subject) > 1000 || len(q.Assignee) > 320 || len(q.Customer) > 320 || len(q.Tag) > 100 || len(q.Search) > maxSearch {
		return q, badRequest("filter too long")
	}
	if strings.ContainsAny(q.Tag, " \t") {
		return q, badRequest("a tag has no spaces")
	}
	for _, c := range []string{q.After, q.Before} {
		if c == "" {
			continue
		}
		if _, err := storage.ParseCursor(c); err != nil {
			return q, badRequest("bad cursor")
		}
	}
	if q.After != "" && q.Before != "" {
		return q, badRequest("after or before, not both")
	}
	return q, nil
}

func lowerTrim(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// filter is the storage filter of q, its page included.
func (q queueQuery) filter(visible []string, limit int) storage.QueueFilter {
	f := storage.QueueFilter{
		State: q.State, Inbox: q.Inbox, Visible: visible, Subject: q.Subject,
		Assignee: q.Assignee, Customer: q.Customer, Tag: q.Tag, Limit: limit, Query: q.Search,
	}
	// parseQueueQuery checked both cursors.
	if c, err := storage.ParseCursor(q.After); err == nil {
		f.After = &c
	}
	if c, err := storage.ParseCursor(q.Before); err == nil {
		f.Before = &c
	}
	return f
}

// url returns the queue URL for q under path, with empty fields left out
// so that links stay short and stable.
func (q queueQuery) url(path string) string {
	v := url.Values{}
	for k, s := range map[string]string{
		"state": q.State, "inbox": q.Inbox, "subject": q.Subject, "assignee": q.Assignee,
		"customer": q.Customer, "tag": q.Tag, "after": q.After, "before": q.Before, "q": q.Search,
	} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// with returns a copy of q changed by fn, back on the first page: a new
// filter starts from the top.
func (q queueQuery) with(fn func(*queueQuery)) string {
	q.After, q.Before = "", ""
	fn(&q)
	return q.url("/")
}

// queueRow is one ticket as the queue shows it.
type queueRow struct {
	storage.QueueRow
	// Reason says in words why the ticket ranks where it does; empty for
	// the ordinary "open, oldest first".
	Reason string
	// WaitingSince is the oldest unanswered customer message (or when
	// the customer last wrote, or the ticket opened).
	WaitingSince time.Time
}

// filterLink is one entry of the state filter bar.
type filterLink struct {
	Label, URL string
	On         bool
}

// queueData is what queue.html renders.
type queueData struct {
	Agent   storage.Agent
	CSRF    string
	Q       queueQuery
	Rows    []queueRow
	PrevURL string
	NextURL string
	LiveURL string
	// RefreshMS is live.js's slow redraw period in milliseconds; Live:
	// the server has an event stream.
	RefreshMS int64
	Live      bool
	States    []filterLink
	Inboxes   []filterLink
	Counts    [storage.AttentionDone + 1]int64
	Clusters  []clusterView
	Status    []InboxStatus
	AllURL    string // the queue without the subject filter
	// Agents are who the assignee filter offers.
	Agents []storage.Agent

	// Found is how many tickets the search matches (at most
	// storage.SearchCountLimit; FoundMore: more than that); ClearURL is
	// the queue without the search.
	Found     int64
	FoundMore bool
	ClearURL  string
}

func (s *Server) queue(w http.ResponseWriter, r *http.Request, sess storage.SessionInfo) {
	s.serveQueue(w, r, sess, "queue.html")
}

// queueLive serves the part of the queue that live.js fetches again when
// /api/events reports a change (see sharedRenders).
func (s *Server) queueLive(w http.ResponseWriter, r *http.Request, sess storage.SessionInfo) {
	if s.opts.Live != nil {
		// Tabs that ask together after a change share one render.
		s.sharedQueueLive(w, r, sess)
		return
	}
	s.serveQueue(w, r, sess, "live")
}

func (s *Server) serveQueue(w http.ResponseWriter, r *http.Request, sess storage.SessionInfo, tmpl string) {
	q, err := parseQueueQuery(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	d, err := s.queueData(r.Context(), q)
	if err != nil {
		s.internalError(w, r, "queue", err)
		return
	}
	d.Agent, d.CSRF, d.RefreshMS, d.Live = sess.Agent, sess.CSRF, s.opts.QueueRefresh.Milliseconds(), s.opts.Live != nil
	s.render(w, tmpl, http.StatusOK, d)
}

// queueData runs the queue's queries: the page of tickets, the attention
// counts, the clusters and the inbox list. Four queries whatever the
// number of tickets.
func (s *Server) queueData(ctx context.Context, q queueQuery) (queueData, error) {
	visible, err := s.visibleInboxes(ctx)
	if err != nil {
		return queueData{}, err
	}
	rows, more, found, err := s.store.QueueFound(ctx, q.filter(visible, queuePageSize), storage.SearchCountLimit)
	if err != nil {
		return queueData{}, err
	}
	d := queueData{Q: q, LiveURL: q.url("/queue/live"), AllURL: q.with(func(q *queueQuery) { q.Subject = "" }),
		Found: found.N, FoundMore: found.More, ClearURL: clearSearch(q)}
	for _, row := range rows {
		d.Rows = append(d.Rows, queueRow{QueueRow: row, Reason: reason(row), WaitingSince: waitingSince(row.TicketRow)})
	}
	// Keyset paging: a page links to the rows after its last and before
	// its first. Going forward there is a previous page whenever the page
	// did not start at the top; going back, a next one always.
	hasPrev, hasNext := q.After != "", more
	if q.Before != "" {
		hasPrev, hasNext = more, true
	}
	if len(d.Rows) > 0 {
		if hasPrev {
			prev := q
			prev.After, prev.Before = "", d.Rows[0].Cursor().String()
			d.PrevURL = prev.url("/")
		}
		if hasNext {
			next := q
			next.After, next.Before = d.Rows[len(d.Rows)-1].Cursor().String(), ""
			d.NextURL = next.url("/")
		}
	}
	if d.Counts, err = s.store.AttentionCounts(ctx, q.Inbox, visible); err != nil {
		return queueData{}, err
	}
	if d.Clusters, err = s.clusters(ctx, q.Inbox, visible, 8); err != nil {
		return queueData{}, err
	}
	inboxes, err := s.store.Inboxes(ctx)
	if err != nil {
		return queueData{}, err
	}
	d.States = stateLinks(q)
	if d.Agents, err = s.store.Agents(ctx); err != nil {
		return queueData{}, err
	}
	d.Inboxes = []filterLink{{Label: "all inboxes", URL: q.with(func(q *queueQuery) { q.Inbox = "" }), On: q.Inbox == ""}}
	for _, in := range inboxes {
		if !viewerOf(ctx).SeesInbox(in.Address) {
			continue
		}
		label := in.Address
		if in.Name != "" {
			label = in.Name
		}
		d.Inboxes = append(d.Inboxes, filterLink{Label: label, URL: q.with(func(q *queueQuery) { q.Inbox = in.Address }), On: q.Inbox == in.Address})
	}
	if s.opts.InboxStatus != nil {
		d.Status = s.opts.InboxStatus()
	}
	return d, nil
}

func stateLinks(q queueQuery) []filterLink {
	out := []filterLink{{Label: "needs attention", URL: q.with(func(q *queueQuery) { q.State = "" }), On: q.State == ""}}
	for _, st := range vocab.States() {
		out = append(out, filterLink{Label: string(st), URL: q.with(func(q *queueQuery) { q.State = string(st) }), On: q.State == string(st)})
	}
	out = append(out, filterLink{Label: "all", URL: q.with(func(q *queueQuery) { q.State = "all" }), On: q.State == "all"})
	return out
}

// reason names a queue row's attention rank for the lead.
func reason(r storage.QueueRow) string {
	if r.SnoozedUntil != nil {
		// Only listed outside the default view, or once due (the
		// follow-up timer clears it right after).
		return "put aside until " + r.SnoozedUntil.UTC().Format("2006-01-02 15:04 UTC")
	}
	switch r.Attention {
	case storage.AttentionBreached:
		return "response time breached"
	case storage.AttentionRepeat:
		if r.RepeatContacts == 1 {
			return "wrote again without an answer"
		}
		return "wrote " + strconv.Itoa(r.RepeatContacts) + " more times without an answer"
	case storage.AttentionUnconfirmed:
		return "resolution not confirmed"
	}
	return ""
}

// waitingSince is the customer's oldest message that has no answer
// after it (someone who wrote three times has waited since the first),
// else when they last wrote, or when the ticket opened.
func waitingSince(t storage.TicketRow) time.Time {
	if t.WaitingSince != nil {
		return *t.WaitingSince
	}
	if t.LastCustomerAt != nil {
		return *t.LastCustomerAt
	}
	return t.CreatedAt
}
