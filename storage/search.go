package storage

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	"gorm.io/gorm"
)

// Full-text search over ticket subjects, customer names and addresses and
// message text (QueueFilter.Query, TicketFilter.Query).
//
// SQLite: three contentless FTS5 tables with the unicode61 tokenizer and
// remove_diacritics 2 (search_tickets: subject, rowid = ticket id;
// search_contacts: name and address, rowid = contact id; search_messages:
// text, rowid = message id), kept by triggers on tickets, contacts and
// messages, so every path that writes those rows (ingest, the full parse,
// merges, retention, forget) updates the index in its own transaction.
// unicode61 rather than trigram: trigram cannot drop diacritics in
// SQLite 3.41 (the version tend first shipped), matches nothing under three characters
// and makes the index about three times larger; a helpdesk searches for
// words, names and addresses, not for substrings.
//
// PostgreSQL: GIN expression indexes over tend_search_doc(…) of the same
// columns, which PostgreSQL maintains with the rows themselves. The text
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

// searchDenseHits is how many index hits (subjects, customers' tickets and
// messages) a term may have for the listed plan; a term with more is
// dense. At that size the listed plan reads its tickets by primary key
// and sorts them in a few milliseconds.
const searchDenseHits = 1000

// searchPlan is a parsed query and how it restricts a ticket listing.
//
// A term's matches are either listed (the union of the three indexes'
// hits, gathered whole and read by primary key) or checked per ticket (a
// correlated probe of the ticket's messages, subject and customer by key
// on each ticket the listing reads). Listing costs the whole match set:
// "hello" in every message lists 3,000,000 hits at a million tickets.
// Checking costs a few index probes per ticket read. So on SQLite the
// plan probes each term's hits up to searchDenseHits (a LIMIT, cheap for
// any term there): the rarest term with at most that many is listed and
// the others are checked on its few tickets. When every term is dense,
// every term is listed, as before: checking along the queue's walk was
// measured too slow to replace it (an FTS5 MATCH restricted to one rowid
// costs some 70 µs at three million messages, and a count of 1,000
// matches checks thousands of tickets). PostgreSQL lists every term (one
// INTERSECT): under a LIMIT its planner scans tickets for a rare word
// instead of reading the GIN index, so it has no cheap probe yet.
// Every plan returns exactly the tickets matching every term.
type searchPlan struct {
	terms []string // nil: no query
	none  bool     // a query without a single word matches nothing
	seed  int      // the listed term, -1 when every term is listed
	// checked checks every term per ticket (tests only: see
	// SetSearchDense).
	checked bool
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
	switch {
	case s.searchDense < 0:
		p.checked = true
		return p, nil
	case s.driver == DriverPostgres && s.searchDense == searchDenseHits:
		return p, nil // see searchPlan
	}
	best := s.searchDense + 1 // a term must have fewer hits to be listed
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
	return p, nil
}

// searchHits counts term's index hits up to limit, without ordering them:
// each index is read only until the limit is reached.
func (s *Store) searchHits(ctx context.Context, term string, limit int) (int, error) {
	var q string
	var args []any
	if s.driver == DriverPostgres {
		lit := pgSearchQuery(term)
		q = `SELECT COUNT(*) FROM (SELECT 1 FROM tickets WHERE tend_search_doc(tickets.subject) @@ ` + lit + `
			UNION ALL SELECT 1 FROM contacts JOIN tickets ON tickets.customer_id = contacts.id
				WHERE tend_search_doc(contacts.name || ' ' || contacts.email) @@ ` + lit + `
			UNION ALL SELECT 1 FROM messages WHERE ` + pgMessageDoc("messages") + ` @@ ` + lit + `
			LIMIT ?) AS hits`
		args = []any{limit}
	} else {
		match := ftsPhrase(term)
		q = `SELECT COUNT(*) FROM (SELECT rowid FROM search_tickets WHERE search_tickets MATCH ?
			UNION ALL SELECT tickets.id FROM search_contacts JOIN tickets ON tickets.customer_id = search_contacts.rowid
				WHERE search_contacts MATCH ? AND tickets.merged_into IS NULL
			UNION ALL SELECT rowid FROM search_messages WHERE search_messages MATCH ?
			LIMIT ` + strconv.Itoa(limit) + `)` // not bound: see similarQuerySQLite
		args = []any{match, match, match}
	}
	var n int
	if err := s.db.WithContext(ctx).Raw(q, args...).Row().Scan(&n); err != nil {
		return 0, fmt.Errorf("search probe: %w", err)
	}
	return n, nil
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

// pgHits is the union of term's ticket ids from the three indexes
// (PostgreSQL).
func pgHits(term string) string {
	lit := pgSearchQuery(term)
	return `SELECT tickets.id FROM tickets WHERE tend_search_doc(tickets.subject) @@ ` + lit + `
		UNION SELECT tickets.id FROM tickets WHERE tickets.customer_id = ANY(ARRAY(
			SELECT contacts.id FROM contacts WHERE tend_search_doc(contacts.name || ' ' || contacts.email) @@ ` + lit + `))
		UNION SELECT messages.ticket_id FROM messages WHERE ` + pgMessageDoc("messages") + ` @@ ` + lit
}

// searchListed keeps the tickets among term's hits, gathered from the
// three indexes.
func searchListed(q *gorm.DB, driver, term string) *gorm.DB {
	if driver == DriverPostgres {
		// = ANY(ARRAY(…)): the matches are collected once (an
		// InitPlan) and looked up by primary key. As a semi-join the
		// planner, guessing the number of matches, may hash-join
		// against every ticket instead.
		return q.Where("tickets.id = ANY(ARRAY(" + pgHits(term) + "))")
	}
	match := ftsPhrase(term)
	return q.Where(`tickets.id IN (
		SELECT rowid FROM search_tickets WHERE search_tickets MATCH ?
		UNION SELECT tickets.id FROM tickets WHERE tickets.customer_id IN (SELECT rowid FROM search_contacts WHERE search_contacts MATCH ?)
		UNION SELECT messages.ticket_id FROM messages WHERE messages.id IN (SELECT rowid FROM search_messages WHERE search_messages MATCH ?))`,
		match, match, match)
}

// searchChecked keeps the tickets matching term, checked on each ticket
// the query reads: its messages first (a common word is most often in
// the text), then its subject, then its customer, each by key.
func searchChecked(q *gorm.DB, driver, term string) *gorm.DB {
	if driver == DriverPostgres {
		lit := pgSearchQuery(term)
		return q.Where(`(EXISTS (SELECT 1 FROM messages m WHERE m.ticket_id = tickets.id AND ` + pgMessageDoc("m") + ` @@ ` + lit + `)
			OR tend_search_doc(tickets.subject) @@ ` + lit + `
			OR EXISTS (SELECT 1 FROM contacts c WHERE c.id = tickets.customer_id AND tend_search_doc(c.name || ' ' || c.email) @@ ` + lit + `))`)
	}
	match := ftsPhrase(term)
	// CROSS JOIN keeps messages the outer loop: the ticket's few
	// messages, each probed in the index by rowid, never the other way.
	return q.Where(`(EXISTS (SELECT 1 FROM messages m CROSS JOIN search_messages WHERE m.ticket_id = tickets.id
			AND search_messages.rowid = m.id AND search_messages MATCH ?)
		OR EXISTS (SELECT 1 FROM search_tickets WHERE search_tickets MATCH ? AND search_tickets.rowid = tickets.id)
		OR EXISTS (SELECT 1 FROM search_contacts WHERE search_contacts MATCH ? AND search_contacts.rowid = tickets.customer_id))`,
		match, match, match)
}

// ftsPhrase is term as an FTS5 phrase: a term has no quote in it
// (SearchTerms).
func ftsPhrase(term string) string { return `"` + term + `"` }

// pgSearchQuery is term's tsquery as an expression over a literal, not a
// parameter: PostgreSQL then computes it once while planning, and plans
// each term with its own frequency (see tagCondition). A term is only
// letters, digits, marks and spaces (SearchTerms).
func pgSearchQuery(term string) string { return "tend_search_query(" + pgEscapeString(term) + ")" }

// pgMessageDoc is the indexed expression of idx_search_messages over the
// messages row named alias.
func pgMessageDoc(alias string) string {
	return "tend_search_doc(left(" + alias + ".text, " + fmt.Sprint(searchTextLimit) + "))"
}

// SearchCountLimit bounds QueueCount: past it the queue says "more than".
const SearchCountLimit = 1000

// QueueCount counts the tickets of f (every page; f.Limit and f.Offset
// are ignored) up to limit, and whether there are more: the search's
// result count. The filters are Queue's.
func (s *Store) QueueCount(ctx context.Context, f QueueFilter, limit int) (int64, bool, error) {
	limit = max(limit, 1)
	p, err := s.planSearch(ctx, f.Query)
	if err != nil {
		return 0, false, fmt.Errorf("queue count: %w", err)
	}
	q := p.where(f.where(s.db.WithContext(ctx).Table("tickets").Select("tickets.id"), s.now()), s.driver)
	var n int64
	if err := s.db.WithContext(ctx).Table("(?) AS hits", q.Limit(limit+1)).Count(&n).Error; err != nil {
		return 0, false, fmt.Errorf("queue count: %w", err)
	}
	if n > int64(limit) {
		return int64(limit), true, nil
	}
	return n, false, nil
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
	if tx.Dialector.Name() != "postgres" {
		return nil
	}
	var enc string
	if err := tx.Raw("SELECT getdatabaseencoding()").Scan(&enc).Error; err != nil {
		return err
	}
	if enc != "UTF8" {
		return nil
	}
	stmts := []string{
		`CREATE OR REPLACE FUNCTION tend_search_fold(text) RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
			AS $fold$ SELECT translate(normalize(regexp_replace(regexp_replace(normalize($1, NFD),
				'[\u0300-\u036f]', '', 'g'), '[!-/:-@\[-` + "`" + `{-~]', ' ', 'g'), NFC), 'øØđĐłŁħĦ', 'oOdDlLhH') $fold$`,
	}
	for _, idx := range []string{"idx_search_tickets", "idx_search_contacts", "idx_search_messages"} {
		stmts = append(stmts, "REINDEX INDEX "+idx)
	}
	for _, st := range stmts {
		if err := tx.Exec(st).Error; err != nil {
			return fmt.Errorf("search folding: %w", err)
		}
	}
	return nil
}

// optimizeSearch (SQLite) merges each search table into one b-tree: a
// delete in FTS5 only adds a tombstone, and until the segments are merged
// the deleted words stay in the file. Forget runs it before its VACUUM so
// that erased text leaves the index on disk too.
func (s *Store) optimizeSearch(ctx context.Context) error {
	if s.driver != DriverSQLite {
		return nil
	}
	for _, tbl := range []string{"search_tickets", "search_contacts", "search_messages"} {
		if err := s.db.WithContext(ctx).Exec("INSERT INTO " + tbl + "(" + tbl + ") VALUES ('optimize')").Error; err != nil {
			return fmt.Errorf("optimize %s: %w", tbl, err)
		}
	}
	return nil
}
