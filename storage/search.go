package storage

import (
	"context"
	"fmt"
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

// searchWhere restricts a ticket listing to the tickets matching query
// (see SearchTerms); "" leaves it alone, and a query without a single
// word matches nothing. One IN per term; each IN is the union of the
// three indexes, so every term is answered from an index.
func (s *Store) searchWhere(q *gorm.DB, query string) *gorm.DB {
	if strings.TrimSpace(query) == "" {
		return q
	}
	terms := SearchTerms(query)
	if len(terms) == 0 {
		return q.Where("1 = 0")
	}
	if s.driver == DriverPostgres {
		// = ANY(ARRAY(…)): the matches are collected once (an
		// InitPlan) and looked up by primary key. As a semi-join the
		// planner, guessing the number of matches, may hash-join
		// against every ticket instead. One array for all terms (their
		// INTERSECT): a second = ANY would be a linear filter per row.
		parts := make([]string, len(terms))
		var args []any
		for i, term := range terms {
			parts[i] = `(SELECT tickets.id FROM tickets WHERE tend_search_doc(tickets.subject) @@ tend_search_query(?)
				UNION SELECT tickets.id FROM tickets WHERE tickets.customer_id = ANY(ARRAY(
					SELECT contacts.id FROM contacts WHERE tend_search_doc(contacts.name || ' ' || contacts.email) @@ tend_search_query(?)))
				UNION SELECT messages.ticket_id FROM messages
					WHERE tend_search_doc(left(messages.text, ` + fmt.Sprint(searchTextLimit) + `)) @@ tend_search_query(?))`
			args = append(args, term, term, term)
		}
		return q.Where("tickets.id = ANY(ARRAY("+strings.Join(parts, " INTERSECT ")+"))", args...)
	}
	for _, term := range terms {
		// FTS5 string syntax: a term has no quote in it (SearchTerms).
		match := `"` + term + `"`
		q = q.Where(`tickets.id IN (
			SELECT rowid FROM search_tickets WHERE search_tickets MATCH ?
			UNION SELECT tickets.id FROM tickets WHERE tickets.customer_id IN (SELECT rowid FROM search_contacts WHERE search_contacts MATCH ?)
			UNION SELECT messages.ticket_id FROM messages WHERE messages.id IN (SELECT rowid FROM search_messages WHERE search_messages MATCH ?))`,
			match, match, match)
	}
	return q
}

// SearchCountLimit bounds QueueCount: past it the queue says "more than".
const SearchCountLimit = 1000

// QueueCount counts the tickets of f (every page; f.Limit and f.Offset
// are ignored) up to limit, and whether there are more: the search's
// result count. The filters are Queue's.
func (s *Store) QueueCount(ctx context.Context, f QueueFilter, limit int) (int64, bool, error) {
	limit = max(limit, 1)
	q := s.searchWhere(f.where(s.db.WithContext(ctx).Table("tickets").Select("tickets.id"), s.now()), f.Query)
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
