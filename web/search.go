package web

import (
	"context"

	"github.com/tendhq/tend/storage"
)

// maxSearch bounds a search query ("q" on the queue and the API), in
// bytes; the storage parser reads at most eight terms of it anyway.
const maxSearch = 500

// searchCount counts what the queue's search matches, across pages, and
// returns the queue URL without the search. Nothing to count without a
// search.
func (s *Server) searchCount(ctx context.Context, q queueQuery, visible []string) (int64, bool, string, error) {
	if q.Search == "" {
		return 0, false, "", nil
	}
	f := q.filter(visible, 0)
	f.After, f.Before = nil, nil // the count is of the whole result, not of this page
	n, more, err := s.store.QueueCount(ctx, f, storage.SearchCountLimit)
	return n, more, q.with(func(q *queueQuery) { q.Search = "" }), err
}
