package web

// maxSearch bounds a search query ("q" on the queue and the API), in
// bytes; the storage parser reads at most eight terms of it anyway.
const maxSearch = 500

// clearSearch is the queue URL without the search.
func clearSearch(q queueQuery) string {
	if q.Search == "" {
		return ""
	}
	return q.with(func(q *queueQuery) { q.Search = "" })
}
