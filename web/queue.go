package web

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tendhq/tend/storage"
)

// queuePageSize is how many tickets one queue page shows.
const queuePageSize = 50

// queueQuery is the queue's filter as it appears in the URL.
type queueQuery struct {
	State   string // "" (needs attention), a state, or "all"
	Inbox   string
	Subject string // a cluster's normalized subject
	Page    int    // 1-based

	// Search is the full-text search ("q"; see storage.SearchTerms).
	Search string
}

// parseQueueQuery reads and checks the queue filter from the URL.
func parseQueueQuery(v url.Values) (queueQuery, error) {
	q := queueQuery{State: v.Get("state"), Inbox: strings.ToLower(strings.TrimSpace(v.Get("inbox"))), Subject: v.Get("subject"), Page: 1}
	if q.State != "" && q.State != "all" && !slices.Contains(storage.AllStates(), q.State) {
		return q, badRequest("unknown state " + strconv.Quote(q.State))
	}
	q.Search = strings.TrimSpace(v.Get("q"))
	if len(q.Inbox) > 320 || len(q.Subject) > 1000 || len(q.Search) > maxSearch {
		return q, badRequest("filter too long")
	}
	if p := v.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 10000 {
			return q, badRequest("page must be 1..10000")
		}
		q.Page = n
	}
	return q, nil
}

// url returns the queue URL for q under path, with empty fields left out
// so that links stay short and stable.
func (q queueQuery) url(path string) string {
	v := url.Values{}
	for k, s := range map[string]string{"state": q.State, "inbox": q.Inbox, "subject": q.Subject, "q": q.Search} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Page > 1 {
		v.Set("page", strconv.Itoa(q.Page))
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// with returns a copy of q changed by fn, back on page 1: a new filter
// starts from the top.
func (q queueQuery) with(fn func(*queueQuery)) string {
	fn(&q)
	q.Page = 1
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
	// RefreshMS is queue.js's polling period in milliseconds.
	RefreshMS int64
	States    []filterLink
	Inboxes   []filterLink
	Counts    [storage.AttentionDone + 1]int64
	Clusters  []clusterView
	Status    []InboxStatus
	AllURL    string // the queue without the subject filter

	// Found is how many tickets the search matches (at most
	// storage.SearchCountLimit; FoundMore: more than that); ClearURL is
	// the queue without the search.
	Found     int64
	FoundMore bool
	ClearURL  string
}

type clusterView struct {
	storage.Cluster
	URL string
	On  bool
}

func (s *Server) queue(w http.ResponseWriter, r *http.Request, sess storage.SessionInfo) {
	s.serveQueue(w, r, sess, "queue.html")
}

// queueLive serves the part of the queue that queue.js refreshes: several
// replicas share one database, so polling it is what keeps every lead's
// view current without a message bus.
func (s *Server) queueLive(w http.ResponseWriter, r *http.Request, sess storage.SessionInfo) {
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
		s.internalError(w, "queue", err)
		return
	}
	d.Agent, d.CSRF, d.RefreshMS = sess.Agent, sess.CSRF, s.opts.QueueRefresh.Milliseconds()
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
	rows, more, err := s.store.Queue(ctx, storage.QueueFilter{
		State: q.State, Inbox: q.Inbox, Visible: visible, Subject: q.Subject, Limit: queuePageSize, Offset: (q.Page - 1) * queuePageSize,
		Query: q.Search,
	})
	if err != nil {
		return queueData{}, err
	}
	found, foundMore, clearURL, err := s.searchCount(ctx, q, visible)
	if err != nil {
		return queueData{}, err
	}
	d := queueData{Q: q, LiveURL: q.url("/queue/live"), AllURL: q.with(func(q *queueQuery) { q.Subject = "" }),
		Found: found, FoundMore: foundMore, ClearURL: clearURL}
	for _, row := range rows {
		d.Rows = append(d.Rows, queueRow{QueueRow: row, Reason: reason(row), WaitingSince: waitingSince(row.TicketRow)})
	}
	if q.Page > 1 {
		prev := q
		prev.Page--
		d.PrevURL = prev.url("/")
	}
	if more {
		next := q
		next.Page++
		d.NextURL = next.url("/")
	}
	if d.Counts, err = s.store.AttentionCounts(ctx, q.Inbox, visible); err != nil {
		return queueData{}, err
	}
	clusters, err := s.store.Clusters(ctx, q.Inbox, visible, 2, 8)
	if err != nil {
		return queueData{}, err
	}
	for _, c := range clusters {
		d.Clusters = append(d.Clusters, clusterView{Cluster: c, On: c.NormSubject == q.Subject,
			URL: q.with(func(q *queueQuery) { q.Subject = c.NormSubject })})
	}
	inboxes, err := s.store.Inboxes(ctx)
	if err != nil {
		return queueData{}, err
	}
	d.States = stateLinks(q)
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
	for _, st := range append(storage.AllStates(), "all") {
		out = append(out, filterLink{Label: st, URL: q.with(func(q *queueQuery) { q.State = st }), On: q.State == st})
	}
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
