package storage

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	"gorm.io/gorm"
)

// Full-text search over ticket subjects, customer names and addresses and
// message text (QueueFilter.Query, TicketFilter.Query).
//
// SQLite: one FTS5 table, search_docs (schema step 16; contentless, with
// contentless_delete, the unicode61 tokenizer and remove_diacritics 2),
// that holds each ticket's words as a run of rows keyed by the ticket:
// rowid = ticket id << 32 + part, part 0 the subject, part 1 the
// customer's name and address, and part 2 + (id mod 2^32 - 2) each message's
// text. So a ticket's words are one rowid range, and checking a term on a
// ticket is one MATCH over that range (searchChecked), where three tables
// (subjects, customers, messages by id) took five; and a term's tickets are
// its rowids shifted, with no join. Triggers on tickets, contacts and
// messages keep it, so every path that writes those rows (ingest, the full
// parse, merges, retention, forget) updates the index in its own
// transaction; a customer's new name is rewritten on each of its tickets.
// unicode61 rather than trigram: trigram matches nothing under three
// characters and makes the index about three times larger; a helpdesk
// searches for words, names and addresses, not for substrings.
//
// PostgreSQL: a table of the same shape (schema step 17), search_docs
// (ticket_id, part, doc): part 0 the subject, 1 the customer, 2 + id each
// message, doc the stored tsvector tend_search_doc(…) of its text, with
// one GIN index over doc and the primary key (ticket_id, part) for the
// check of one ticket. plpgsql triggers keep it as SQLite's do. The text
// search configuration is 'simple' (no stemming, no stop words) because
// tickets arrive in many languages and a stemmer for one mangles the
// others; it also answers like SQLite's unicode61. tend_search_fold
// lowers diacritics of the Latin, Greek and Cyrillic letters to their
// base letter and turns ASCII punctuation into spaces (an address is its
// words: "ann@example.com" is found by "ann"), without the unaccent
// extension, which a managed database may not offer.
//
// Only the first searchTextLimit characters of a message's text are
// indexed, so that a huge mail does not bloat the index.

// searchTextLimit is how many characters of a message's text are indexed.
const searchTextLimit = 65536

// Search query limits: beyond them the rest of the query is ignored.
const (
	searchMaxTerms   = 8
	searchMaxWords   = 16  // words in one term (a quoted phrase)
	searchMaxWordLen = 200 // characters; a longer "word" is dropped
)

// SearchTerms parses a search query the way the queue and the API do:
// each term is a whitespace-separated word or a "quoted phrase"; a word
// with punctuation inside (an address, "log-in") is the phrase of its
// parts. A ticket matches when every term matches its subject, its
// customer's name or address, or one of its messages. Each term is
// returned as its words joined by single spaces; words are runs of
// letters, digits and combining marks, so a term never carries syntax of
// FTS5 MATCH or tsquery. An unterminated quote runs to the end.
func SearchTerms(q string) []string {
	var terms []string
	var words []string
	flush := func() {
		if len(words) > 0 && len(terms) < searchMaxTerms {
			terms = append(terms, strings.Join(words, " "))
		}
		words = words[:0]
	}
	addWord := func(w string) {
		if w != "" && utf8.RuneCountInString(w) <= searchMaxWordLen && len(words) < searchMaxWords {
			words = append(words, w)
		}
	}
	quoted := false
	var word strings.Builder
	endWord := func() { addWord(word.String()); word.Reset() }
	for _, r := range q {
		switch {
		case r == '"':
			endWord()
			flush()
			quoted = !quoted
		case unicode.IsSpace(r):
			endWord()
			if !quoted {
				flush()
			}
		case unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.M, r):
			word.WriteRune(r)
		default:
			// Punctuation splits words but not the term: "log-in" is
			// the phrase "log in", as both indexes see it.
			endWord()
		}
	}
	endWord()
	flush()
	return terms
}

// searchSeedHits is how many index hits (subjects, customers' tickets and
// messages) a term may have to be listed as the seed of a plan (see
// searchPlan). At that size the listed plan reads its tickets by primary
// key and sorts them in a few milliseconds.
const searchSeedHits = 1000

// A term is dense when a listing in its order meets a match every few
// tickets, so that walking it (walkSearch) fills a page long before
// searchWalkTickets, while listing the term costs all its hits (at a
// million tickets a word in 1% of the messages has 30,000). SQLite
// measures the share of the newest searchSampleTickets tickets the term
// is on; PostgreSQL estimates the share of documents (search_docs rows).
const (
	searchDenseTickets  = 0.05
	searchDenseDocs     = 0.01
	searchSampleTickets = 1000
)

// searchPart is the span of search_docs rowids one ticket's words take
// (see the header of this file): ticket id << 32 up to the next ticket's.
const searchPart = 1 << 32

// searchWalkTickets bounds how many tickets walkSearch checks before it
// gives up and lists: a term dense in the whole store may be rare under
// the filters (a word of old closed tickets searched in the open queue).
const searchWalkTickets = 2000

// searchTuning is how plans are chosen (the constants above); tests
// force one plan to run a query through each (see SetSearchPlan).
type searchTuning struct {
	force       searchForce
	seedHits    int
	walkTickets int
}

// searchForce forces a plan on every search (tests only).
type searchForce int

const (
	searchChoose     searchForce = iota // by the terms' hits and shares
	searchList                          // every term listed
	searchCheck                         // every term checked, unbounded
	searchWalkAll                       // every term walked
	searchSeedRarest                    // the rarest term listed, however many hits it has
)

// searchPlan is a parsed query and how it restricts a ticket listing.
//
// A term's matches are either listed (its search_docs hits, gathered
// whole and read by primary key) or checked per ticket (a correlated
// probe of the ticket's search_docs rows on each ticket the listing
// reads). Listing costs the whole match set: "hello" in every message
// lists 3,000,000 hits at a million tickets. Checking costs one index
// probe per ticket read (tens of µs). So the plan probes the terms
// first:
//
//   - a term with at most searchSeedHits hits (SQLite counts them
//     exactly, to that limit; PostgreSQL estimates them) is the seed: it is listed and the others
//     are checked on its few tickets;
//   - when every term is dense (on searchDenseTickets of the newest
//     tickets on SQLite, counted; in searchDenseDocs of the documents
//     by PostgreSQL's estimate), the listing is
//     walked in its own order and every term checked on each ticket
//     until the page (or the count) is full: walkSearch. A dense term
//     matches every few tickets, so the walk stops after a few hundred;
//     if searchWalkTickets pass without filling it, the terms are listed;
//   - otherwise every term is listed (on PostgreSQL one INTERSECT).
//
// Every plan returns exactly the tickets matching every term
// (TestSearchPlansAgree).
type searchPlan struct {
	terms []string // nil: no query
	none  bool     // a query without a single word matches nothing
	seed  int      // the listed term, -1 when none is the seed
	// checked checks every term per ticket (tests only: see
	// SetSearchPlan).
	checked bool
	// walk: every term is dense; the caller runs walkSearch, which
	// sets matched and ids, or clears walk when it lists instead.
	walk    bool
	matched bool
	ids     []int64 // walkSearch's matches, in the listing's order
}

// planSearch parses query and probes its terms (see searchPlan).
func (s *Store) planSearch(ctx context.Context, query string) (searchPlan, error) {
	p := searchPlan{seed: -1}
	if strings.TrimSpace(query) == "" {
		return p, nil
	}
	p.terms = SearchTerms(query)
	if len(p.terms) == 0 {
		p.none = true
		return p, nil
	}
	switch s.search.force {
	case searchList:
		return p, nil
	case searchCheck:
		p.checked = true
		return p, nil
	case searchWalkAll:
		p.walk = true
		return p, nil
	}
	if s.driver == DriverPostgres {
		return s.planSearchPostgres(ctx, p)
	}
	best := s.search.seedHits + 1 // a term must have fewer hits to be the seed
	if s.search.force == searchSeedRarest {
		best = 1 << 30
	}
	for i, term := range p.terms {
		n, err := s.searchHits(ctx, term, best)
		if err != nil {
			return p, err
		}
		if n < best {
			best, p.seed = n, i
		}
		if n == 0 {
			break // nothing can be rarer
		}
	}
	if p.seed >= 0 || s.search.force == searchSeedRarest {
		return p, nil
	}
	var top int64
	if err := s.db.WithContext(ctx).Raw("SELECT COALESCE(MAX(id), 0) FROM tickets").Row().Scan(&top); err != nil {
		return p, fmt.Errorf("search sample: %w", err)
	}
	p.walk = true
	shares := make([]float64, len(p.terms))
	for i, term := range p.terms {
		share, err := s.searchShareSQLite(ctx, term, top)
		if err != nil {
			return p, err
		}
		if share < searchDenseTickets {
			p.walk = false
			break
		}
		shares[i] = share
	}
	if p.walk {
		p.rarestFirst(shares)
	}
	return p, nil
}

// rarestFirst orders a walked plan's terms by how common they are, the
// rarest first: the walk's check of a ticket stops at the first term it
// lacks, so the rarest term rules most tickets out with one probe.
func (p *searchPlan) rarestFirst(share []float64) {
	order := make([]int, len(p.terms))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(share[a], share[b]) })
	terms := make([]string, len(order))
	for i, o := range order {
		terms[i] = p.terms[o]
	}
	p.terms = terms
}

// planSearchPostgres chooses by the planner's estimate of each term's
// documents (search_docs rows): counting hits under a LIMIT, as on
// SQLite, is not cheap there (the planner may scan the table for a rare
// word it takes for common instead of reading the GIN index), and
// EXPLAIN costs a fraction of a millisecond. The estimate of a word
// PostgreSQL has no statistics for is a small share of the rows, so a
// rare word is never taken for dense.
func (s *Store) planSearchPostgres(ctx context.Context, p searchPlan) (searchPlan, error) {
	docs, err := s.pgPlanRows(ctx, "SELECT 1 FROM search_docs")
	if err != nil {
		return p, err
	}
	p.walk = true
	rarest := -1.0
	estimates := make([]float64, len(p.terms))
	for i, term := range p.terms {
		n, err := s.pgPlanRows(ctx, pgHits(term))
		if err != nil {
			return p, err
		}
		estimates[i] = n
		p.walk = p.walk && n >= searchDenseDocs*docs
		if rarest < 0 || n < rarest {
			rarest, p.seed = n, i
		}
	}
	if s.search.force == searchSeedRarest || rarest <= float64(s.search.seedHits) {
		p.walk = false
	} else {
		p.seed = -1
	}
	if p.walk {
		p.rarestFirst(estimates)
	}
	return p, nil
}

// pgPlanRows is PostgreSQL's estimate of the rows query returns.
func (s *Store) pgPlanRows(ctx context.Context, query string) (float64, error) {
	var out string
	if err := s.db.WithContext(ctx).Raw("EXPLAIN (FORMAT JSON) " + query).Row().Scan(&out); err != nil {
		return 0, fmt.Errorf("search estimate: %w", err)
	}
	var plan []struct {
		Plan struct {
			Rows float64 `json:"Plan Rows"`
		} `json:"Plan"`
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil || len(plan) == 0 {
		return 0, fmt.Errorf("search estimate: %q: %w", out, err)
	}
	return plan[0].Plan.Rows, nil
}

// searchShareSQLite is the share of the newest searchSampleTickets
// tickets (top is the highest ticket id) that term is on (SQLite): the
// index reads only the rowids of those tickets.
func (s *Store) searchShareSQLite(ctx context.Context, term string, top int64) (float64, error) {
	var n int64
	err := s.db.WithContext(ctx).Raw("SELECT COUNT(DISTINCT rowid >> 32) FROM search_docs WHERE search_docs MATCH ? AND rowid >= ?",
		ftsPhrase(term), max(top-searchSampleTickets+1, 0)*searchPart).Row().Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("search sample: %w", err)
	}
	return float64(n) / float64(max(min(top, searchSampleTickets), 1)), nil
}

// searchHits counts term's index hits (subjects, customers on tickets,
// messages) up to limit, without ordering them: the index is read only
// until the limit is reached (SQLite).
func (s *Store) searchHits(ctx context.Context, term string, limit int) (int, error) {
	q := `SELECT COUNT(*) FROM (SELECT rowid FROM search_docs WHERE search_docs MATCH ? LIMIT ` + strconv.Itoa(limit) + `)` // not bound: see similarQuerySQLite
	var n int
	if err := s.db.WithContext(ctx).Raw(q, ftsPhrase(term)).Row().Scan(&n); err != nil {
		return 0, fmt.Errorf("search probe: %w", err)
	}
	return n, nil
}

// walkKey is a ticket's place in a listing's order: its number and, in
// the queue, its attention rank and wait key.
type walkKey struct {
	ID         int64
	Attention  int
	QueueSince time.Time
}

// walkFunc reads the next limit tickets of a listing in its order, without
// the search: after last, or from the listing's own start when last is
// nil, selecting walkKey's columns.
type walkFunc func(last *walkKey, limit int) *gorm.DB

// walkSearch runs a plan whose terms are all dense: it reads the listing
// in its order in growing chunks and checks every term on each chunk's
// tickets (one query per chunk), until want tickets match, the listing
// ends (then p holds the exact result: matched and ids) or
// searchWalkTickets were read (then p lists every term instead).
func (s *Store) walkSearch(ctx context.Context, p *searchPlan, want int, walk walkFunc) error {
	if !p.walk {
		return nil
	}
	p.walk = false
	var last *walkKey
	walked, chunk := 0, max(2*want, 32)
	for walked < s.search.walkTickets {
		n := min(chunk, s.search.walkTickets-walked)
		var keys []walkKey
		if err := walk(last, n).Scan(&keys).Error; err != nil {
			return fmt.Errorf("search walk: %w", err)
		}
		if len(keys) > 0 {
			ids := make([]int64, len(keys))
			for i, k := range keys {
				ids[i] = k.ID
			}
			q := idsIn(s.db.WithContext(ctx).Table("tickets"), s.driver, ids)
			for _, term := range p.terms {
				q = searchChecked(q, s.driver, term)
			}
			var hits []int64
			if err := q.Pluck("tickets.id", &hits).Error; err != nil {
				return fmt.Errorf("search walk: %w", err)
			}
			hit := make(map[int64]bool, len(hits))
			for _, id := range hits {
				hit[id] = true
			}
			for _, k := range keys {
				if hit[k.ID] {
					p.ids = append(p.ids, k.ID)
				}
				if len(p.ids) == want {
					p.matched = true
					return nil
				}
			}
		}
		if len(keys) < n {
			p.matched = true // the listing ended
			return nil
		}
		walked += n
		last = &keys[len(keys)-1]
		chunk *= 2
	}
	p.ids = nil
	return nil
}

// idsIn keeps the tickets of ids: one statement for any number of them
// (an array on PostgreSQL, a JSON array on SQLite), so that the prepared
// statement is reused whatever the chunk's size.
func idsIn(q *gorm.DB, driver string, ids []int64) *gorm.DB {
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(id, 10))
	}
	if driver == DriverPostgres {
		return q.Where("tickets.id = ANY(?::bigint[])", "{"+b.String()+"}")
	}
	return q.Where("tickets.id IN (SELECT value FROM json_each(?))", "["+b.String()+"]")
}

// where restricts a tickets query to the plan's matches: the seed term
// by its listed hits, the others by a check on each ticket.
func (p searchPlan) where(q *gorm.DB, driver string) *gorm.DB {
	if p.none {
		return q.Where("1 = 0")
	}
	if len(p.terms) == 0 {
		return q
	}
	if p.matched {
		if len(p.ids) == 0 {
			return q.Where("1 = 0")
		}
		return idsIn(q, driver, p.ids)
	}
	if p.seed < 0 && !p.checked {
		return searchListedAll(q, driver, p.terms)
	}
	for i, term := range p.terms {
		if i == p.seed {
			q = searchListed(q, driver, term)
		} else {
			q = searchChecked(q, driver, term)
		}
	}
	return q
}

// searchListedAll lists every term's hits: on PostgreSQL one array of
// their INTERSECT (a second = ANY would be a linear filter per row), on
// SQLite one IN per term.
func searchListedAll(q *gorm.DB, driver string, terms []string) *gorm.DB {
	if driver != DriverPostgres {
		for _, term := range terms {
			q = searchListed(q, driver, term)
		}
		return q
	}
	parts := make([]string, len(terms))
	for i, term := range terms {
		parts[i] = "(" + pgHits(term) + ")"
	}
	return q.Where("tickets.id = ANY(ARRAY(" + strings.Join(parts, " INTERSECT ") + "))")
}

// pgHits is term's ticket ids from search_docs (PostgreSQL).
func pgHits(term string) string {
	return `SELECT ticket_id FROM search_docs WHERE doc @@ ` + pgSearchQuery(term)
}

// searchListed keeps the tickets among term's hits: the ticket ids of
// its search_docs rows.
func searchListed(q *gorm.DB, driver, term string) *gorm.DB {
	if driver == DriverPostgres {
		// = ANY(ARRAY(…)): the matches are collected once (an
		// InitPlan) and looked up by primary key. As a semi-join the
		// planner, guessing the number of matches, may hash-join
		// against every ticket instead.
		return q.Where("tickets.id = ANY(ARRAY(" + pgHits(term) + "))")
	}
	return q.Where(`tickets.id IN (SELECT rowid >> 32 FROM search_docs WHERE search_docs MATCH ?)`, ftsPhrase(term))
}

// searchChecked keeps the tickets matching term, checked on each ticket
// the query reads: one probe of the ticket's search_docs rows (on SQLite
// a MATCH over its rowid range; on PostgreSQL its rows by the primary
// key, their stored tsvectors tested).
func searchChecked(q *gorm.DB, driver, term string) *gorm.DB {
	if driver == DriverPostgres {
		// OFFSET 0 keeps the probe correlated, by key: as a join the
		// planner would gather every document with the word first (a
		// dense word's millions).
		return q.Where(`EXISTS (SELECT 1 FROM search_docs d WHERE d.ticket_id = tickets.id AND d.doc @@ ` + pgSearchQuery(term) + ` OFFSET 0)`)
	}
	return q.Where(`EXISTS (SELECT 1 FROM search_docs WHERE search_docs MATCH ?
		AND search_docs.rowid >= tickets.id * `+strconv.Itoa(searchPart)+` AND search_docs.rowid < (tickets.id + 1) * `+strconv.Itoa(searchPart)+`)`,
		ftsPhrase(term))
}

// ftsPhrase is term as an FTS5 phrase: a term has no quote in it
// (SearchTerms).
func ftsPhrase(term string) string { return `"` + term + `"` }

// pgSearchQuery is term's tsquery as an expression over a literal, not a
// parameter: PostgreSQL then computes it once while planning, and plans
// each term with its own frequency (see tagCondition). A term is only
// letters, digits, marks and spaces (SearchTerms).
func pgSearchQuery(term string) string { return "tend_search_query(" + pgEscapeString(term) + ")" }

// SearchCountLimit is the count the web queue asks QueueFound for: past
// it the queue says "more than".
const SearchCountLimit = 100

// SearchCount is how many tickets a search matches over all its pages:
// N, at most the limit asked for, and whether there are More.
type SearchCount struct {
	N    int64
	More bool
}

// QueueFound is Queue's page of f and, when f searches and limit is
// positive, the count of its matches over every page (f.After and
// f.Before aside) up to limit: the queue page with its "N found". Both share one search plan, and on the
// first page one walk of a dense search (see searchPlan) serves both: it
// reads the listing until limit+1 tickets match, of which the page is
// the first.
func (s *Store) QueueFound(ctx context.Context, f QueueFilter, limit int) ([]QueueRow, bool, SearchCount, error) {
	f.Limit = queueLimit(f.Limit)
	p, err := s.planSearch(ctx, f.Query)
	if err != nil {
		return nil, false, SearchCount{}, fmt.Errorf("queue: %w", err)
	}
	now := s.now()
	whole := f
	whole.After, whole.Before = nil, nil
	count := p
	first := f.After == nil && f.Before == nil
	want := f.Limit + 1
	counted := limit > 0 && len(p.terms) > 0
	if first && counted {
		want = max(want, limit+1)
	}
	if err := s.walkSearch(ctx, &p, want, s.queueWalk(ctx, f, now)); err != nil {
		return nil, false, SearchCount{}, fmt.Errorf("queue: %w", err)
	}
	rows, more, err := s.queuePage(ctx, f, p, now)
	if err != nil || !counted {
		return rows, more, SearchCount{}, err
	}
	if first {
		count = p
	} else if err := s.walkSearch(ctx, &count, limit+1, s.queueWalk(ctx, whole, now)); err != nil {
		return nil, false, SearchCount{}, fmt.Errorf("queue count: %w", err)
	}
	found, err := s.queueCount(ctx, whole, count, now, limit)
	return rows, more, found, err
}

// queueCount counts the tickets of f under the search plan p, walked, up
// to limit: a walk that matched has them in hand.
func (s *Store) queueCount(ctx context.Context, f QueueFilter, p searchPlan, now time.Time, limit int) (SearchCount, error) {
	n := int64(len(p.ids))
	if !p.matched {
		q := p.where(f.where(s.db.WithContext(ctx).Table("tickets").Select("tickets.id"), now), s.driver)
		if err := s.db.WithContext(ctx).Table("(?) AS hits", q.Limit(limit+1)).Count(&n).Error; err != nil {
			return SearchCount{}, fmt.Errorf("queue count: %w", err)
		}
	}
	if n > int64(limit) {
		return SearchCount{N: int64(limit), More: true}, nil
	}
	return SearchCount{N: n}, nil
}

// searchFold is the diacritic folding tend_search_fold applies on
// PostgreSQL, as the two arguments of translate(): every letter of
// Latin-1 Supplement, Latin Extended-A and -B, Latin Extended
// Additional, Greek and Cyrillic whose canonical decomposition is a
// letter plus marks maps to that letter; a few letters with a stroke,
// which do not decompose, to their base; ASCII punctuation to a space.
// Changing it changes the indexed expression: a migration must then
// recreate the function and rebuild the indexes.
func searchFold() (from, to string) {
	var f, t strings.Builder
	add := func(a, b rune) { f.WriteRune(a); t.WriteRune(b) }
	for _, rg := range [][2]rune{{0x00C0, 0x024F}, {0x0386, 0x03CE}, {0x0400, 0x04FF}, {0x1E00, 0x1EFF}} {
		for r := rg[0]; r <= rg[1]; r++ {
			d := []rune(norm.NFD.String(string(r)))
			if len(d) < 2 || !unicode.IsLetter(d[0]) {
				continue
			}
			marks := true
			for _, m := range d[1:] {
				marks = marks && unicode.Is(unicode.Mn, m)
			}
			if marks {
				add(r, d[0])
			}
		}
	}
	for _, p := range [][2]rune{{'ø', 'o'}, {'Ø', 'O'}, {'đ', 'd'}, {'Đ', 'D'}, {'ł', 'l'}, {'Ł', 'L'}, {'ħ', 'h'}, {'Ħ', 'H'}} {
		add(p[0], p[1])
	}
	for r := rune(0x21); r < 0x7F; r++ {
		if unicode.IsPunct(r) || unicode.IsSymbol(r) {
			add(r, ' ')
		}
	}
	return f.String(), t.String()
}

// sqlString quotes s as an SQL string literal.
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// searchSchema creates the search index and fills it from the rows
// already stored (the schema step "full-text search").
func searchSchema(tx *gorm.DB) error {
	var stmts []string
	limit := fmt.Sprint(searchTextLimit)
	if tx.Dialector.Name() == "postgres" {
		from, to := searchFold()
		stmts = []string{
			`CREATE OR REPLACE FUNCTION tend_search_fold(text) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
				AS $fold$ SELECT translate($1, ` + sqlString(from) + `, ` + sqlString(to) + `) $fold$`,
			`CREATE OR REPLACE FUNCTION tend_search_doc(text) RETURNS tsvector LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
				AS $doc$ SELECT to_tsvector('simple'::regconfig, tend_search_fold($1)) $doc$`,
			`CREATE OR REPLACE FUNCTION tend_search_query(text) RETURNS tsquery LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
				AS $q$ SELECT phraseto_tsquery('simple'::regconfig, tend_search_fold($1)) $q$`,
			`CREATE INDEX IF NOT EXISTS idx_search_tickets ON tickets USING GIN (tend_search_doc(subject))`,
			`CREATE INDEX IF NOT EXISTS idx_search_contacts ON contacts USING GIN (tend_search_doc(name || ' ' || email))`,
			`CREATE INDEX IF NOT EXISTS idx_search_messages ON messages USING GIN (tend_search_doc(left(text, ` + limit + `)))`,
		}
	} else {
		body := func(v string) string { return "substr(" + v + ".text, 1, " + limit + ")" }
		// The step rebuilds the index whole, so that it also repairs a
		// database whose version records were lost.
		for _, tbl := range []string{"tickets", "contacts", "messages"} {
			for _, tr := range []string{"ai", "au", "ad"} {
				stmts = append(stmts, "DROP TRIGGER IF EXISTS search_"+tbl+"_"+tr)
			}
			stmts = append(stmts, "DROP TABLE IF EXISTS search_"+tbl)
		}
		stmts = append(stmts,
			`CREATE VIRTUAL TABLE search_tickets USING fts5(subject, content='', tokenize='unicode61 remove_diacritics 2')`,
			`CREATE VIRTUAL TABLE search_contacts USING fts5(name, email, content='', tokenize='unicode61 remove_diacritics 2')`,
			`CREATE VIRTUAL TABLE search_messages USING fts5(body, content='', tokenize='unicode61 remove_diacritics 2')`,
			// A contentless table deletes by the values it indexed: the
			// triggers hand back exactly the old ones, and index a row
			// only when it has text, so a delete always matches an insert.
			`CREATE TRIGGER search_tickets_ai AFTER INSERT ON tickets BEGIN
				INSERT INTO search_tickets(rowid, subject) VALUES (new.id, new.subject); END`,
			`CREATE TRIGGER search_tickets_au AFTER UPDATE OF subject ON tickets BEGIN
				INSERT INTO search_tickets(search_tickets, rowid, subject) VALUES ('delete', old.id, old.subject);
				INSERT INTO search_tickets(rowid, subject) VALUES (new.id, new.subject); END`,
			`CREATE TRIGGER search_tickets_ad AFTER DELETE ON tickets BEGIN
				INSERT INTO search_tickets(search_tickets, rowid, subject) VALUES ('delete', old.id, old.subject); END`,
			`CREATE TRIGGER search_contacts_ai AFTER INSERT ON contacts BEGIN
				INSERT INTO search_contacts(rowid, name, email) VALUES (new.id, new.name, new.email); END`,
			`CREATE TRIGGER search_contacts_au AFTER UPDATE OF name, email ON contacts BEGIN
				INSERT INTO search_contacts(search_contacts, rowid, name, email) VALUES ('delete', old.id, old.name, old.email);
				INSERT INTO search_contacts(rowid, name, email) VALUES (new.id, new.name, new.email); END`,
			`CREATE TRIGGER search_contacts_ad AFTER DELETE ON contacts BEGIN
				INSERT INTO search_contacts(search_contacts, rowid, name, email) VALUES ('delete', old.id, old.name, old.email); END`,
			`CREATE TRIGGER search_messages_ai AFTER INSERT ON messages WHEN new.text <> '' BEGIN
				INSERT INTO search_messages(rowid, body) VALUES (new.id, `+body("new")+`); END`,
			`CREATE TRIGGER search_messages_au AFTER UPDATE OF text ON messages BEGIN
				INSERT INTO search_messages(search_messages, rowid, body) SELECT 'delete', old.id, `+body("old")+` WHERE old.text <> '';
				INSERT INTO search_messages(rowid, body) SELECT new.id, `+body("new")+` WHERE new.text <> ''; END`,
			`CREATE TRIGGER search_messages_ad AFTER DELETE ON messages WHEN old.text <> '' BEGIN
				INSERT INTO search_messages(search_messages, rowid, body) VALUES ('delete', old.id, `+body("old")+`); END`,
			`INSERT INTO search_tickets(rowid, subject) SELECT id, subject FROM tickets`,
			`INSERT INTO search_contacts(rowid, name, email) SELECT id, name, email FROM contacts`,
			`INSERT INTO search_messages(rowid, body) SELECT id, `+body("messages")+` FROM messages WHERE text <> ''`,
		)
	}
	for _, st := range stmts {
		if err := tx.Exec(st).Error; err != nil {
			return fmt.Errorf("search index: %w", err)
		}
	}
	return nil
}

// pgFoldPunct is the ASCII punctuation and symbols search folding turns
// into spaces, as a PostgreSQL regular expression's bracket.
const pgFoldPunct = `'[!-/:-@\[-` + "`" + `{-~]'`

// pgFoldNormalized is step 12's folding of $1 (searchFoldNormalize).
const pgFoldNormalized = `translate(normalize(regexp_replace(regexp_replace(normalize($1, NFD),
				'[\u0300-\u036f]', '', 'g'), ` + pgFoldPunct + `, ' ', 'g'), NFC), 'øØđĐłŁħĦ', 'oOdDlLhH')`

// searchFoldASCII is migration step 18 (PostgreSQL, UTF8 databases, as
// step 12): tend_search_fold leaves the two normalizations and the
// translation out for text that is all ASCII (each byte a character),
// which they leave as it is, and only turns punctuation into spaces. The
// normalizations were most of the cost of storing a message's text
// (3.5 ms of 4 for 23 KB, and to_tsvector 3 more, in every SaveParsed:
// PostgreSQL's busiest statement in tend bench). What it returns is
// unchanged for every text (TestSearchFold), so the stored documents
// stand.
func searchFoldASCII(tx *gorm.DB) error {
	if ok, err := pgUTF8(tx); err != nil || !ok {
		return err
	}
	st := `CREATE OR REPLACE FUNCTION tend_search_fold(text) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
			AS $fold$ SELECT CASE WHEN octet_length($1) = char_length($1) THEN regexp_replace($1, ` + pgFoldPunct + `, ' ', 'g')
				ELSE ` + pgFoldNormalized + ` END $fold$`
	if err := tx.Exec(st).Error; err != nil {
		return fmt.Errorf("search folding: %w", err)
	}
	return nil
}

// pgUTF8 reports whether tx is on a PostgreSQL database encoded in UTF8,
// which normalize() needs.
func pgUTF8(tx *gorm.DB) (bool, error) {
	if tx.Dialector.Name() != "postgres" {
		return false, nil
	}
	var enc string
	if err := tx.Raw("SELECT getdatabaseencoding()").Scan(&enc).Error; err != nil {
		return false, err
	}
	return enc == "UTF8", nil
}

// searchFoldNormalize is migration step 12 (PostgreSQL): tend_search_fold
// by Unicode normalization instead of translate(), which looks each
// character of the text up in its list of some 900: 17 ms for 6 KB of
// text, paid in every insert and update of a message's text (two thirds
// of PostgreSQL's CPU per message in tend bench). Now: NFD, the
// combining diacritical marks (U+0300-U+036F) dropped, NFC again (so
// that Hangul and the marks of other scripts come back composed), the
// letters with a stroke and ASCII punctuation as before; about 1 ms for
// the same text. It folds every letter the old list did to the same
// base letter (TestSearchFold), and polytonic Greek too. The indexes over
// the function are rebuilt, so the words already stored are found the new
// way. normalize() needs a UTF8 database (PostgreSQL 13 or later): any
// other keeps the old function.
func searchFoldNormalize(tx *gorm.DB) error {
	if ok, err := pgUTF8(tx); err != nil || !ok {
		return err
	}
	stmts := []string{
		`CREATE OR REPLACE FUNCTION tend_search_fold(text) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
			AS $fold$ SELECT ` + pgFoldNormalized + ` $fold$`,
	}
	old, err := pgOldSearchIndexes(tx)
	if err != nil {
		return err
	}
	for _, idx := range old {
		stmts = append(stmts, "REINDEX INDEX "+idx)
	}
	for _, st := range stmts {
		if err := tx.Exec(st).Error; err != nil {
			return fmt.Errorf("search folding: %w", err)
		}
	}
	return nil
}

// searchMergePages is how many pages of merged index one merge step of
// mergeSearch writes (a few milliseconds' work): between steps the
// write lock is free for intake.
const searchMergePages = 256

// mergeSearch (SQLite) merges the search index's segments in steps until
// it is one b-tree or budget has passed, and reports whether it
// finished. Every insert into an FTS5 table adds a segment; FTS5 merges
// them only once several pile up on one level, and each MATCH reads each
// segment. An index as the fill's bulk update left it answered a probe
// five times slower than merged (dense words are checked ticket by ticket,
// see searchPlan), so Optimize merges what accumulated since it last ran.
// A step is FTS5's 'merge' with a negative page count, which merges
// segments whatever their level; a step that wrote nothing (the
// connection's change count grew by the command's own row only) means the
// table is one b-tree.
func (s *Store) mergeSearch(ctx context.Context, budget time.Duration) (bool, error) {
	if s.driver != DriverSQLite {
		return true, nil
	}
	deadline := s.now().Add(budget)
	done := true
	err := s.db.WithContext(ctx).Connection(func(db *gorm.DB) error {
		for {
			var before, after int64
			if err := db.Raw("SELECT total_changes()").Row().Scan(&before); err != nil {
				return err
			}
			if err := db.Exec("INSERT INTO search_docs(search_docs, rank) VALUES ('merge', -" + strconv.Itoa(searchMergePages) + ")").Error; err != nil {
				return err
			}
			if err := db.Raw("SELECT total_changes()").Row().Scan(&after); err != nil {
				return err
			}
			if after-before <= 1 {
				return nil
			}
			if !s.now().Before(deadline) {
				done = false
				return nil
			}
		}
	})
	if err != nil {
		return false, fmt.Errorf("search merge: %w", err)
	}
	return done, nil
}

// optimizeSearch (SQLite) merges each search table into one b-tree: a
// delete in FTS5 only adds a tombstone, and until the segments are merged
// the deleted words stay in the file. Forget runs it before its VACUUM so
// that erased text leaves the index on disk too.
func (s *Store) optimizeSearch(ctx context.Context) error {
	if s.driver != DriverSQLite {
		return nil
	}
	if err := s.db.WithContext(ctx).Exec("INSERT INTO search_docs(search_docs) VALUES ('optimize')").Error; err != nil {
		return fmt.Errorf("optimize search_docs: %w", err)
	}
	return nil
}

// searchByTicket is schema step 16 (SQLite): the three search tables of
// step 8 (subjects, customers, messages by their own ids) become
// search_docs, keyed by ticket (see the header of this file), filled from
// the stored rows. contentless_delete (SQLite 3.43, bundled) deletes a
// row by its rowid: the triggers no longer hand back the exact words
// they indexed, which a customer's rename on each of its tickets could
// not.
func searchByTicket(tx *gorm.DB) error {
	if tx.Dialector.Name() == "postgres" {
		return nil
	}
	part := strconv.Itoa(searchPart)
	body := func(v string) string { return "substr(" + v + ".text, 1, " + strconv.Itoa(searchTextLimit) + ")" }
	var stmts []string
	for _, tbl := range []string{"tickets", "contacts", "messages"} {
		for _, tr := range []string{"ai", "au", "ad"} {
			stmts = append(stmts, "DROP TRIGGER IF EXISTS search_"+tbl+"_"+tr)
		}
		stmts = append(stmts, "DROP TABLE IF EXISTS search_"+tbl)
	}
	for _, tr := range []string{"tickets_ai", "tickets_subject", "tickets_customer", "tickets_ad", "contacts_au", "messages_ai", "messages_au", "messages_ad"} {
		stmts = append(stmts, "DROP TRIGGER IF EXISTS search_docs_"+tr)
	}
	stmts = append(stmts, "DROP TABLE IF EXISTS search_docs",
		`CREATE VIRTUAL TABLE search_docs USING fts5(body, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 2')`,
		`CREATE TRIGGER search_docs_tickets_ai AFTER INSERT ON tickets BEGIN
			INSERT INTO search_docs(rowid, body) VALUES (new.id * `+part+`, new.subject);
			INSERT INTO search_docs(rowid, body) SELECT new.id * `+part+` + 1, name || ' ' || email FROM contacts WHERE id = new.customer_id; END`,
		`CREATE TRIGGER search_docs_tickets_subject AFTER UPDATE OF subject ON tickets BEGIN
			DELETE FROM search_docs WHERE rowid = old.id * `+part+`;
			INSERT INTO search_docs(rowid, body) VALUES (new.id * `+part+`, new.subject); END`,
		`CREATE TRIGGER search_docs_tickets_customer AFTER UPDATE OF customer_id ON tickets BEGIN
			DELETE FROM search_docs WHERE rowid = old.id * `+part+` + 1;
			INSERT INTO search_docs(rowid, body) SELECT new.id * `+part+` + 1, name || ' ' || email FROM contacts WHERE id = new.customer_id; END`,
		`CREATE TRIGGER search_docs_tickets_ad AFTER DELETE ON tickets BEGIN
			DELETE FROM search_docs WHERE rowid IN (old.id * `+part+`, old.id * `+part+` + 1); END`,
		`CREATE TRIGGER search_docs_contacts_au AFTER UPDATE OF name, email ON contacts BEGIN
			DELETE FROM search_docs WHERE rowid IN (SELECT id * `+part+` + 1 FROM tickets WHERE customer_id = new.id);
			INSERT INTO search_docs(rowid, body) SELECT id * `+part+` + 1, new.name || ' ' || new.email FROM tickets WHERE customer_id = new.id; END`,
		`INSERT INTO search_docs(rowid, body) SELECT id * `+part+`, subject FROM tickets`,
		`INSERT INTO search_docs(rowid, body) SELECT tickets.id * `+part+` + 1, contacts.name || ' ' || contacts.email
			FROM tickets JOIN contacts ON contacts.id = tickets.customer_id`,
		`INSERT INTO search_docs(rowid, body) SELECT `+sqliteMessageKey("messages")+`, `+body("messages")+`
			FROM messages WHERE text <> '' AND ticket_id IS NOT NULL`,
	)
	stmts = append(stmts, sqliteMessageTriggers()...)
	for _, st := range stmts {
		if err := tx.Exec(st).Error; err != nil {
			return fmt.Errorf("search by ticket: %w", err)
		}
	}
	return nil
}

// sqliteMessageTriggers (re)create the triggers that keep search_docs'
// message rows (SQLite): only a message on a ticket has one. A message
// on no ticket (one tend logs but places nowhere) would insert a NULL
// rowid, for which FTS5 picks the next rowid, the next part of the
// newest ticket's range: its words were found on that ticket.
func sqliteMessageTriggers() []string {
	part := strconv.Itoa(searchPart)
	body := func(v string) string { return "substr(" + v + ".text, 1, " + strconv.Itoa(searchTextLimit) + ")" }
	return []string{
		"DROP TRIGGER IF EXISTS search_docs_messages_ai",
		"DROP TRIGGER IF EXISTS search_docs_messages_au",
		"DROP TRIGGER IF EXISTS search_docs_messages_ad",
		`CREATE TRIGGER search_docs_messages_ai AFTER INSERT ON messages WHEN new.text <> '' AND new.ticket_id IS NOT NULL BEGIN
			INSERT INTO search_docs(rowid, body) VALUES (` + sqliteMessageKey("new") + `, ` + body("new") + `); END`,
		`CREATE TRIGGER search_docs_messages_au AFTER UPDATE OF text, ticket_id ON messages BEGIN
			DELETE FROM search_docs WHERE rowid = ` + sqliteMessageKey("old") + `;
			INSERT INTO search_docs(rowid, body) SELECT ` + sqliteMessageKey("new") + `, ` + body("new") + `
				WHERE new.text <> '' AND new.ticket_id IS NOT NULL; END`,
		`CREATE TRIGGER search_docs_messages_ad AFTER DELETE ON messages BEGIN
			DELETE FROM search_docs WHERE rowid = ` + sqliteMessageKey("old") + `; END`,
		// The rows of step 16's triggers for messages on no ticket: a
		// message part no message of a ticket has.
		`DELETE FROM search_docs WHERE rowid IN (SELECT rowid FROM search_docs WHERE rowid % ` + part + ` >= 2
			EXCEPT SELECT ` + sqliteMessageKey("messages") + ` FROM messages WHERE ticket_id IS NOT NULL AND text <> '')`,
	}
}

// sqliteMessageKey is the search_docs rowid of the messages row named v.
func sqliteMessageKey(v string) string {
	return v + ".ticket_id * " + strconv.Itoa(searchPart) + " + 2 + " + v + ".id % " + strconv.Itoa(searchPart-2)
}

// searchDocs is schema step 17. On PostgreSQL the search index becomes
// a table keyed by ticket as SQLite's is (step 16): search_docs holds
// each ticket's words as tsvectors, part 0 its subject, part 1 its
// customer's name and address, part 2 + id each message's text, with one
// GIN index over them. The expression indexes it replaces could find a
// word's rows but not tell whether one ticket has it: that check
// recomputed tend_search_doc over each message's text (some 10 µs for a
// line, a millisecond for a page), and a dense word checks a thousand
// tickets a page. Now it reads the stored tsvectors by the primary key.
// The old indexes also recomputed their expression on every update of a
// ticket or message row that was not HOT (a state change, a message
// marked handled); the triggers compute a document only when its text
// changes. Triggers, not generated columns: a tsvector column on the rows
// themselves would travel with every SELECT * gorm runs.
//
// On SQLite the step mends the message triggers of step 16
// (sqliteMessageTriggers).
func searchDocs(tx *gorm.DB) error {
	stmts := sqliteMessageTriggers()
	if tx.Dialector.Name() == "postgres" {
		stmts = pgSearchDocs()
	}
	for _, st := range stmts {
		if err := tx.Exec(st).Error; err != nil {
			return fmt.Errorf("search documents: %w", err)
		}
	}
	return nil
}

// pgOldSearchIndexes are the expression indexes of step 8 that exist:
// steps 10 and 12 run again, when some version records were lost, after
// step 17 dropped them (and step 8 did not run again to make them).
func pgOldSearchIndexes(tx *gorm.DB) ([]string, error) {
	var names []string
	for _, idx := range []string{"idx_search_tickets", "idx_search_contacts", "idx_search_messages"} {
		var ok bool
		if err := tx.Raw("SELECT to_regclass(?) IS NOT NULL", idx).Row().Scan(&ok); err != nil {
			return nil, fmt.Errorf("search index %s: %w", idx, err)
		}
		if ok {
			names = append(names, idx)
		}
	}
	return names, nil
}

// pgSearchDocs is step 17's statements on PostgreSQL (see searchDocs):
// the table, its triggers, the fill from the stored rows, the index built
// once over the filled table, and the old indexes dropped. It rebuilds
// the table whole, so that it also repairs a database whose version
// records were lost.
func pgSearchDocs() []string {
	limit := strconv.Itoa(searchTextLimit)
	return []string{
		`CREATE TABLE IF NOT EXISTS search_docs (ticket_id bigint NOT NULL, part bigint NOT NULL, doc tsvector NOT NULL,
			PRIMARY KEY (ticket_id, part))`,
		`DROP INDEX IF EXISTS idx_search_docs`,
		`TRUNCATE search_docs`,
		// A trigger computes a document only when its words changed:
		// UPDATE OF fires whenever the column is set, even to itself.
		`CREATE OR REPLACE FUNCTION tend_search_tickets_sync() RETURNS trigger LANGUAGE plpgsql AS $f$
		BEGIN
			IF TG_OP = 'DELETE' THEN
				DELETE FROM search_docs WHERE ticket_id = OLD.id AND part IN (0, 1);
				RETURN NULL;
			END IF;
			IF TG_OP = 'INSERT' OR NEW.subject IS DISTINCT FROM OLD.subject THEN
				INSERT INTO search_docs (ticket_id, part, doc) VALUES (NEW.id, 0, tend_search_doc(COALESCE(NEW.subject, '')))
					ON CONFLICT (ticket_id, part) DO UPDATE SET doc = EXCLUDED.doc;
			END IF;
			IF TG_OP = 'INSERT' OR NEW.customer_id IS DISTINCT FROM OLD.customer_id THEN
				DELETE FROM search_docs WHERE ticket_id = NEW.id AND part = 1;
				INSERT INTO search_docs (ticket_id, part, doc)
					SELECT NEW.id, 1, tend_search_doc(c.name || ' ' || c.email) FROM contacts c WHERE c.id = NEW.customer_id;
			END IF;
			RETURN NULL;
		END $f$`,
		`CREATE OR REPLACE FUNCTION tend_search_contacts_sync() RETURNS trigger LANGUAGE plpgsql AS $f$
		BEGIN
			IF NEW.name IS DISTINCT FROM OLD.name OR NEW.email IS DISTINCT FROM OLD.email THEN
				UPDATE search_docs d SET doc = tend_search_doc(NEW.name || ' ' || NEW.email) FROM tickets t
					WHERE t.customer_id = NEW.id AND d.ticket_id = t.id AND d.part = 1;
			END IF;
			RETURN NULL;
		END $f$`,
		`CREATE OR REPLACE FUNCTION tend_search_messages_sync() RETURNS trigger LANGUAGE plpgsql AS $f$
		BEGIN
			IF TG_OP = 'UPDATE' AND NEW.text IS NOT DISTINCT FROM OLD.text AND NEW.ticket_id IS NOT DISTINCT FROM OLD.ticket_id THEN
				RETURN NULL;
			END IF;
			IF TG_OP <> 'INSERT' AND OLD.ticket_id IS NOT NULL THEN
				DELETE FROM search_docs WHERE ticket_id = OLD.ticket_id AND part = OLD.id + 2;
			END IF;
			IF TG_OP <> 'DELETE' AND NEW.ticket_id IS NOT NULL AND NEW.text <> '' THEN
				INSERT INTO search_docs (ticket_id, part, doc) VALUES (NEW.ticket_id, NEW.id + 2, tend_search_doc(left(NEW.text, ` + limit + `)));
			END IF;
			RETURN NULL;
		END $f$`,
		`DROP TRIGGER IF EXISTS search_docs_tickets ON tickets`,
		`DROP TRIGGER IF EXISTS search_docs_contacts ON contacts`,
		`DROP TRIGGER IF EXISTS search_docs_messages ON messages`,
		`CREATE TRIGGER search_docs_tickets AFTER INSERT OR DELETE OR UPDATE OF subject, customer_id ON tickets
			FOR EACH ROW EXECUTE FUNCTION tend_search_tickets_sync()`,
		`CREATE TRIGGER search_docs_contacts AFTER UPDATE OF name, email ON contacts
			FOR EACH ROW EXECUTE FUNCTION tend_search_contacts_sync()`,
		`CREATE TRIGGER search_docs_messages AFTER INSERT OR DELETE OR UPDATE OF text, ticket_id ON messages
			FOR EACH ROW EXECUTE FUNCTION tend_search_messages_sync()`,
		`INSERT INTO search_docs (ticket_id, part, doc) SELECT id, 0, tend_search_doc(subject) FROM tickets`,
		`INSERT INTO search_docs (ticket_id, part, doc) SELECT t.id, 1, tend_search_doc(c.name || ' ' || c.email)
			FROM tickets t JOIN contacts c ON c.id = t.customer_id`,
		`INSERT INTO search_docs (ticket_id, part, doc) SELECT ticket_id, id + 2, tend_search_doc(left(text, ` + limit + `))
			FROM messages WHERE ticket_id IS NOT NULL AND text <> ''`,
		// Without a pending list, as step 10 set the old ones.
		`CREATE INDEX idx_search_docs ON search_docs USING GIN (doc) WITH (fastupdate = off)`,
		`DROP INDEX IF EXISTS idx_search_tickets`,
		`DROP INDEX IF EXISTS idx_search_contacts`,
		`DROP INDEX IF EXISTS idx_search_messages`,
	}
}
