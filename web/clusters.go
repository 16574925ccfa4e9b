package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/vocab"
)

// defaultClusterWindow is Options.ClusterWindow's default.
const defaultClusterWindow = 7 * 24 * time.Hour

// clusterView is a cluster as the queue's side panel and /api/clusters
// show it.
type clusterView struct {
	ID        int64   `json:"id"`
	Label     string  `json:"label"`
	Headline  string  `json:"headline"` // "14 customers this week: invoice PDF empty"
	Tickets   []int64 `json:"tickets"`
	Customers int64   `json:"customers"`
	Open      int64   `json:"open"`
}

// clusters are the groups of open or recent tickets about the same thing,
// largest first.
func (s *Server) clusters(ctx context.Context, inbox string, visible []string, limit int) ([]clusterView, error) {
	since := s.opts.Clock.Now().Add(-s.opts.ClusterWindow)
	cs, err := s.store.ContentClusters(ctx, inbox, visible, since, 2, limit)
	if err != nil {
		return nil, err
	}
	out := make([]clusterView, len(cs))
	for i, c := range cs {
		out[i] = clusterView{ID: c.ID, Label: c.Label, Tickets: c.Tickets, Customers: c.Customers, Open: c.Open,
			Headline: headline(c, s.opts.ClusterWindow)}
	}
	return out, nil
}

// headline says a cluster in one line, as a lead reads it.
func headline(c storage.ContentCluster, window time.Duration) string {
	who := "customers"
	if c.Customers == 1 {
		who = "customer"
	}
	when := "recently"
	switch {
	case window <= 24*time.Hour:
		when = "today"
	case window <= 7*24*time.Hour:
		when = "this week"
	case window <= 31*24*time.Hour:
		when = "this month"
	}
	label := c.Label
	if label == "" {
		label = "(no subject)"
	}
	return fmt.Sprintf("%d %s %s: %s", c.Customers, who, when, label)
}

// apiClusters is GET /api/clusters: {"clusters": [...]}, with inbox= as
// on the queue.
func (s *Server) apiClusters(w http.ResponseWriter, r *http.Request) error {
	visible, err := s.visibleInboxes(r.Context())
	if err != nil {
		return err
	}
	cs, err := s.clusters(r.Context(), strings.ToLower(r.URL.Query().Get("inbox")), visible, 50)
	if err != nil {
		return err
	}
	if cs == nil {
		cs = []clusterView{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"clusters": cs})
	return nil
}

// clusterPage is /clusters/{id}: the cluster's tickets, every state.
func (s *Server) clusterPage(w http.ResponseWriter, r *http.Request, sess storage.SessionInfo) {
	id, err := strconv.ParseInt(r.PathValue("cluster"), 10, 64)
	if err != nil || id < 1 {
		http.NotFound(w, r)
		return
	}
	visible, err := s.visibleInboxes(r.Context())
	if err != nil {
		s.fail(w, r, "cluster", err)
		return
	}
	rows, err := s.store.ClusterTickets(r.Context(), id, visible)
	if err != nil {
		s.fail(w, r, "cluster", err)
		return
	}
	if len(rows) == 0 {
		http.NotFound(w, r)
		return
	}
	customers := map[string]bool{}
	open := 0
	for _, t := range rows {
		customers[t.Customer] = true
		if t.State != vocab.StateResolved && t.State != vocab.StateClosed {
			open++
		}
	}
	s.render(w, "cluster.html", http.StatusOK, map[string]any{
		"Agent": sess.Agent, "CSRF": sess.CSRF, "ID": id, "Label": rows[0].Subject, "Rows": rows,
		"Customers": len(customers), "Open": open, "CanUpdate": canAct(sess.Agent.Role) && s.opts.Answer != nil && open > 0,
		"Done": r.URL.Query().Get("told"), "Failed": r.URL.Query().Get("failed"),
	})
}

// clusterUpdate is POST /clusters/{cluster}/update: a lead tells every
// customer of the cluster's open tickets the same thing. Each is a normal
// reply on its own ticket, as the lead's mail (mail/webreply): the
// follow-through, commands, the mail fuse and the collision warning apply
// to each, and each customer sees only their own ticket.
func (s *Server) clusterUpdate(w http.ResponseWriter, r *http.Request, sess storage.SessionInfo) {
	id, err := strconv.ParseInt(r.PathValue("cluster"), 10, 64)
	if err != nil || id < 1 {
		http.NotFound(w, r)
		return
	}
	if !canAct(sess.Agent.Role) {
		http.Error(w, "only leads and admins tell a whole cluster", http.StatusForbidden)
		return
	}
	if s.opts.Answer == nil {
		http.Error(w, errNoAnswers.Error(), http.StatusNotImplemented)
		return
	}
	visible, err := s.visibleInboxes(r.Context())
	if err != nil {
		s.fail(w, r, "cluster update", err)
		return
	}
	rows, err := s.store.ClusterTickets(r.Context(), id, visible)
	if err != nil {
		s.fail(w, r, "cluster update", err)
		return
	}
	if len(rows) == 0 {
		http.NotFound(w, r)
		return
	}
	text := r.PostFormValue("text")
	told, failed := 0, 0
	for _, t := range rows {
		if t.State == vocab.StateResolved || t.State == vocab.StateClosed {
			continue // done is done: a finished ticket is not reopened by a broadcast
		}
		err := s.answer(r.Context(), Answer{Ticket: t.Number, Agent: sess.Agent, Text: text})
		var bad badRequest
		if errors.As(err, &bad) {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err != nil {
			// One ticket's failure must not silently stop the others: it
			// is counted, logged and shown, and the lead can retry.
			s.log.Warn("cluster update", "cluster", id, "ticket", t.Number, "err", err)
			failed++
			continue
		}
		told++
	}
	s.log.Info("cluster update", "cluster", id, "told", told, "failed", failed, "by", sess.Agent.Email)
	http.Redirect(w, r, fmt.Sprintf("/clusters/%d?told=%d&failed=%d", id, told, failed), http.StatusSeeOther)
}
