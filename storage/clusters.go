package storage

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/tendhq/tend/vocab"
)

// SimilarTicket is an earlier ticket that shares a content band with a
// new one (package similar decides whether they are alike).
type SimilarTicket struct {
	Ticket  int64
	Cluster int64
	Stems   []string
}

// Unclustered says whether ticket has no cluster yet: only the first
// customer message of a ticket places it.
func (t *Tx) Unclustered(ctx context.Context, ticket int64) (bool, error) {
	var n int64
	if err := t.db.WithContext(ctx).Model(&Ticket{}).Where("id = ? AND cluster_id IS NULL AND merged_into IS NULL", ticket).Count(&n).Error; err != nil {
		return false, fmt.Errorf("ticket %d cluster: %w", ticket, err)
	}
	return n == 1, nil
}

// SimilarCandidates returns up to limit tickets created since since that
// share one of bands, other than ticket, newest first.
//
// Each band contributes only its newest bandDepth(limit) tickets, read
// backwards along ticket_bands' primary key: a burst of look-alikes (an
// outage everybody writes about, a bulk mailing) puts every new ticket in
// the same bands, and reading all of each band's rows made placing the
// n-th such ticket cost n, the burst n². The newest of them are the ones
// Best would choose among anyway.
func (t *Tx) SimilarCandidates(ctx context.Context, ticket int64, bands []int64, since time.Time, limit int) ([]SimilarTicket, error) {
	if len(bands) == 0 || limit < 1 {
		return nil, nil
	}
	var q string
	var vars []any
	if t.s.driver == DriverPostgres {
		q, vars = similarQueryPostgres(bands, bandDepth(limit))
		vars = append(vars, ticket, since, limit)
	} else {
		q, vars = similarQuerySQLite(bands, bandDepth(limit), limit)
		vars = append(vars, ticket, since)
	}
	rs, err := queryRows(ctx, t.db, t.s.driver == DriverPostgres, q, vars...)
	if err != nil {
		return nil, fmt.Errorf("similar candidates of %d: %w", ticket, err)
	}
	defer rs.Close()
	var out []SimilarTicket
	for rs.Next() {
		var id int64
		var cluster sql.NullInt64
		var stems string
		if err := rs.Scan(&id, &cluster, &stems); err != nil {
			return nil, fmt.Errorf("similar candidates of %d: %w", ticket, err)
		}
		c := SimilarTicket{Ticket: id, Cluster: id, Stems: strings.Fields(stems)}
		if cluster.Valid {
			c.Cluster = cluster.Int64
		}
		out = append(out, c)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("similar candidates of %d: %w", ticket, err)
	}
	return out, nil
}

// similarQuerySQLite is SimilarCandidates' query on SQLite: each band's
// newest depth tickets in a UNION ALL, as an IN list. Only clustered
// tickets have bands (SetCluster writes both). As an IN list (a set:
// UNION ALL, no second pass to drop duplicates) SQLite walks the bands'
// tickets by number, newest first, and stops at the limit; joined to
// their UNION, it read and sorted every one. NOT INDEXED keeps it that
// way once ANALYZE has run: with statistics SQLite preferred to walk
// every ticket of the window by created_at and test each against the
// list, then sort them (4 ms a new ticket on tend bench's 1,200 tickets,
// a quarter of its processing; the rowid lookups still serve the list).
//
// The LIMITs are written into the text, not bound: SQLite compiles a
// statement again whenever a LIMIT parameter is bound (the planner may
// use its value), and so this one, cached but re-bound for every ticket,
// was compiled anew each time: a third of the placing's time
// (BenchmarkClusterPlace). depth and limit are constants, so the text
// still repeats and the compiled statement is reused.
func similarQuerySQLite(bands []int64, depth, limit int) (string, []any) {
	seen := make(map[int64]bool, len(bands))
	parts := make([]string, 0, len(bands))
	vars := make([]any, 0, len(bands)+2)
	for _, b := range bands {
		if seen[b] {
			continue
		}
		seen[b] = true
		// The alias and the outer SELECT let each band's ORDER BY and
		// LIMIT stand inside a UNION.
		parts = append(parts, fmt.Sprintf("SELECT ticket_id FROM (SELECT ticket_id FROM ticket_bands WHERE band = ? ORDER BY ticket_id DESC LIMIT %d) b%d", depth, len(parts)))
		vars = append(vars, b)
	}
	return "SELECT tickets.id, tickets.cluster_id, tickets.stems FROM tickets NOT INDEXED WHERE tickets.id IN (" + strings.Join(parts, " UNION ALL ") +
		") AND tickets.id <> ? AND tickets.created_at >= ? AND tickets.merged_into IS NULL ORDER BY tickets.id DESC LIMIT " + strconv.Itoa(limit), vars
}

// similarQueryPostgres is SimilarCandidates' query on PostgreSQL: one
// text for any number of bands, the bands an array, each band's newest
// depth tickets by a lateral join. The UNION of one branch per band took
// PostgreSQL 6 ms to plan, twice what it took to run, and its text
// changed with the number of distinct bands, so no plan was reused. As a
// join, not an IN list: for an IN list PostgreSQL walked the tickets
// newest first and ran the bands' subquery again for each (13-17 s a
// message once the store held a few thousand tickets). The candidates are
// sorted first and each ticket is then looked up by key until the limit
// is reached (the OFFSET 0 fences keep the planner from flattening the
// lookup into a join): joined as a set, with a young table's statistics
// PostgreSQL read and sorted every ticket of the window, stems and all,
// for each new ticket (tend bench's busiest query, and growing with the
// window).
func similarQueryPostgres(bands []int64, depth int) (string, []any) {
	keys := make([]string, len(bands))
	for i, b := range bands {
		keys[i] = strconv.FormatInt(b, 10)
	}
	return "SELECT t.id, t.cluster_id, t.stems FROM (SELECT DISTINCT tb.ticket_id FROM unnest(?::bigint[]) AS b(band) " +
			"CROSS JOIN LATERAL (SELECT ticket_id FROM ticket_bands WHERE ticket_bands.band = b.band ORDER BY ticket_id DESC LIMIT ?) tb " +
			"ORDER BY tb.ticket_id DESC OFFSET 0) c " +
			"CROSS JOIN LATERAL (SELECT tickets.id, tickets.cluster_id, tickets.stems FROM tickets WHERE tickets.id = c.ticket_id " +
			"AND tickets.id <> ? AND tickets.created_at >= ? AND tickets.merged_into IS NULL OFFSET 0) t ORDER BY c.ticket_id DESC LIMIT ?",
		[]any{"{" + strings.Join(keys, ",") + "}", depth}
}

// bandDepth is how many of a band's newest tickets SimilarCandidates
// reads for limit candidates: more than limit, so that merged tickets and
// imported history (new rows, old dates, outside the window) among the
// newest still leave limit candidates.
func bandDepth(limit int) int { return 2 * limit }

// SetCluster places ticket in cluster (its own number to start one) and
// records its stems and band keys for the tickets after it.
func (t *Tx) SetCluster(ctx context.Context, ticket, cluster int64, stems []string, bands []int64) error {
	db := t.db.WithContext(ctx)
	if err := db.Model(&Ticket{}).Where("id = ?", ticket).
		Updates(map[string]any{"cluster_id": cluster, "stems": strings.Join(stems, " ")}).Error; err != nil {
		return fmt.Errorf("cluster of %d: %w", ticket, err)
	}
	if len(bands) == 0 {
		return nil
	}
	rows := make([]TicketBand, 0, len(bands))
	seen := map[int64]bool{}
	for _, b := range bands {
		if !seen[b] {
			seen[b] = true
			rows = append(rows, TicketBand{Band: b, TicketID: ticket})
		}
	}
	if err := insertRows(ctx, t.s, db, rows, false); err != nil {
		return fmt.Errorf("bands of %d: %w", ticket, err)
	}
	return nil
}

// PruneBands deletes the band keys and stems of tickets created before
// cutoff: they no longer gather look-alikes, and the table stays the size
// of the cluster window, not of the history.
func (s *Store) PruneBands(ctx context.Context, cutoff time.Time) (int64, error) {
	res := s.db.WithContext(ctx).Where("ticket_id IN (SELECT id FROM tickets WHERE created_at < ?)", cutoff).Delete(&TicketBand{})
	if res.Error != nil {
		return 0, fmt.Errorf("prune bands: %w", res.Error)
	}
	return res.RowsAffected, nil
}

// ContentCluster is a group of tickets about the same thing, by content.
type ContentCluster struct {
	ID        int64   // the cluster's number (the ticket that started it)
	Label     string  // the subject of its oldest ticket still there
	Tickets   []int64 // open or recent tickets, oldest first
	Customers int64   // distinct customers among them
	Open      int64   // how many are still open
}

// ContentClusters returns the clusters of at least minCount tickets that
// are open or were created since since, largest first, at most limit.
// inbox and visible restrict as in the queue.
//
// It reads the open or recent tickets that joined a cluster (two small
// partial indexes, migration step 14) and then the first tickets of
// their clusters by key: a cluster of two or more such tickets has at
// least one that joined it. Grouping every open and recent ticket, as it
// did, read the whole backlog for each queue render (26 ms twice a render
// on PostgreSQL in tend bench, and growing with the backlog).
func (s *Store) ContentClusters(ctx context.Context, inbox string, visible []string, since time.Time, minCount, limit int) ([]ContentCluster, error) {
	restrict := func(q *gorm.DB) *gorm.DB {
		if inbox != "" {
			q = q.Where(inboxExists, inbox)
		}
		return restrictVisible(q, visible)
	}
	type row struct {
		ID, ClusterID, CustomerID int64
		State                     vocab.State
		Subject                   string
		Attention                 int
		CreatedAt                 time.Time
	}
	const cols = "tickets.id, tickets.cluster_id, tickets.customer_id, tickets.state, tickets.subject, tickets.attention, tickets.created_at"
	var joined []row
	// UNION ALL: an IN list does not mind a ticket found twice. On
	// PostgreSQL as an array, so that the few are looked up by key: as a
	// set it hashed them against every ticket read whole.
	sub := "SELECT o.id FROM tickets o WHERE o.attention < ? AND " + grouped("o.") +
		" UNION ALL SELECT r.id FROM tickets r WHERE r.created_at >= ? AND " + grouped("r.")
	in := "tickets.id IN (" + sub + ")"
	if s.driver == DriverPostgres {
		in = "tickets.id = ANY (ARRAY(" + sub + "))"
	}
	if err := restrict(s.db.WithContext(ctx).Table("tickets").Select(cols).Where(in, AttentionDone, since)).
		Scan(&joined).Error; err != nil {
		return nil, fmt.Errorf("content clusters: %w", err)
	}
	if len(joined) == 0 {
		return nil, nil
	}
	heads := make([]int64, 0, len(joined))
	seen := map[int64]bool{}
	for _, r := range joined {
		if !seen[r.ClusterID] {
			seen[r.ClusterID] = true
			heads = append(heads, r.ClusterID)
		}
	}
	var first []row
	if err := inChunks(heads, func(ids []int64) error {
		// By key only; whether each is open or recent is judged here:
		// with that OR in the query SQLite walked every open ticket.
		var part []row
		err := restrict(s.db.WithContext(ctx).Table("tickets").Select(cols).
			Where("tickets.id IN ? AND tickets.cluster_id = tickets.id AND tickets.merged_into IS NULL", ids)).Scan(&part).Error
		for _, r := range part {
			if r.Attention < AttentionDone || !r.CreatedAt.Before(since) {
				first = append(first, r)
			}
		}
		return err
	}); err != nil {
		return nil, fmt.Errorf("content clusters: %w", err)
	}
	byCluster := map[int64][]row{}
	for _, r := range append(first, joined...) {
		byCluster[r.ClusterID] = append(byCluster[r.ClusterID], r)
	}
	open := map[vocab.State]bool{}
	for _, st := range openStates() {
		open[st] = true
	}
	var out []ContentCluster
	for id, rows := range byCluster {
		slices.SortFunc(rows, func(a, b row) int { return cmp.Compare(a.ID, b.ID) })
		rows = slices.CompactFunc(rows, func(a, b row) bool { return a.ID == b.ID })
		if len(rows) < max(minCount, 2) {
			continue
		}
		c := ContentCluster{ID: id, Label: rows[0].Subject}
		customers := map[int64]bool{}
		for _, r := range rows {
			c.Tickets = append(c.Tickets, r.ID)
			customers[r.CustomerID] = true
			if open[r.State] {
				c.Open++
			}
		}
		c.Customers = int64(len(customers))
		out = append(out, c)
	}
	// Largest first, then the oldest.
	slices.SortFunc(out, func(a, b ContentCluster) int {
		if n := cmp.Compare(len(b.Tickets), len(a.Tickets)); n != 0 {
			return n
		}
		return cmp.Compare(a.Tickets[0], b.Tickets[0])
	})
	return out[:min(len(out), max(limit, 1))], nil
}

// ClusterTickets lists a cluster's tickets, every state, oldest first.
func (s *Store) ClusterTickets(ctx context.Context, cluster int64, visible []string) ([]TicketRow, error) {
	var rows []TicketRow
	q := QueueFilter{State: "all", Visible: visible}.where(s.db.WithContext(ctx).Table("tickets").Select(ticketRowColumns), s.now())
	err := q.Where("tickets.cluster_id = ?", cluster).Order("tickets.id").Limit(500).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("cluster %d tickets: %w", cluster, err)
	}
	return rows, nil
}
