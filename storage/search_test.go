package storage_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

// searchWorld is what the search tests store.
type searchWorld struct {
	invoice, vpn, login, big int64
}

// seedSearch stores four tickets through the delivery path, with their
// text saved by the full parse as the worker saves it.
func seedSearch(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) searchWorld {
	t.Helper()
	ctx := context.Background()
	c := committer(t, s)
	deliver := func(name, from, msgID, subject, text string, inboxes ...string) int64 {
		t.Helper()
		in := incoming(from, msgID, subject, "", inboxes...)
		in.FromName = name
		d, err := c.Deliver(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.InTx(ctx, func(tx *storage.Tx) error {
			return tx.SaveParsed(ctx, d.MessageRowID, storage.Parsed{Text: text})
		}); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Minute)
		return d.Ticket
	}
	var w searchWorld
	w.invoice = deliver("Zoë Müller", "zoe@example.com", "inv@example.com", "Invoice PDF is empty",
		"The attached invoice opens as a blank page in Acrobat.")
	w.vpn = deliver("Bob Stone", "bob@builder.test", "vpn@builder.test", "VPN drops",
		"Since the café wifi update the tunnel resets every hour.", "billing@acme.test")
	w.login = deliver("", "carol@example.com", "login@example.com", "Login fails",
		"I cannot log in after the password reset.")
	// Past the indexed part of a message's text, words are not found.
	w.big = deliver("Dan", "dan@example.com", "big@example.com", "Big log",
		"firstword "+strings.Repeat("x", 70_000)+" lastword")
	if err := storage.ExecForTest(ctx, s, fmt.Sprintf("UPDATE tickets SET state = 'closed' WHERE id = %d", w.login)); err != nil {
		t.Fatal(err)
	}
	return w
}

// TestSearch runs the full-text search through the queue page and its
// count on both backends.
func TestSearch(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		w := seedSearch(t, s, clock)
		for _, plan := range searchPlans {
			storage.SetSearchPlan(s, plan)
			searchCases(t, s, w, plan)
		}
		storage.SetSearchPlan(s, storage.SearchDefault)
		t.Run("count limit", func(t *testing.T) {
			_, _, found, err := s.QueueFound(ctx, storage.QueueFilter{Query: "example", State: "all"}, 2)
			if err != nil || found.N != 2 || !found.More {
				t.Errorf("count = %+v %v, want 2 and more", found, err)
			}
		})
		t.Run("index follows changes", func(t *testing.T) {
			// A later parse replaces the text; a new subject and a
			// renamed customer are found under their new words only.
			id := messageOf(t, s, w.invoice)
			if err := s.InTx(ctx, func(tx *storage.Tx) error {
				return tx.SaveParsed(ctx, id, storage.Parsed{Text: "now about a toaster"})
			}); err != nil {
				t.Fatal(err)
			}
			for _, stmt := range []string{
				fmt.Sprintf("UPDATE tickets SET subject = 'Kettle broken' WHERE id = %d", w.invoice),
				"UPDATE contacts SET name = 'Zoe Schmidt' WHERE email = 'zoe@example.com'",
			} {
				if err := storage.ExecForTest(ctx, s, stmt); err != nil {
					t.Fatal(err)
				}
			}
			for q, want := range map[string][]int64{
				"acrobat": nil, "toaster": {w.invoice}, "invoice": nil, "kettle": {w.invoice},
				"muller": nil, "schmidt": {w.invoice},
			} {
				rows, _, err := s.Queue(ctx, storage.QueueFilter{Query: q})
				if err != nil {
					t.Fatal(err)
				}
				if got := numbers(rows); !slices.Equal(got, want) {
					t.Errorf("after the changes %q = %v, want %v", q, got, want)
				}
			}
		})
		t.Run("a message on no ticket", func(t *testing.T) {
			// A message placed on no ticket (a bounce tend only logs)
			// has no ticket to be found under: on SQLite its row once
			// got an automatic rowid, which is the next part of the
			// newest ticket, and was found there.
			for _, stmt := range []string{
				`INSERT INTO messages (direction, message_id, raw_hash, text, received_at)
					VALUES ('in', 'stray@example.com', 'stray', 'strayword at first', CURRENT_TIMESTAMP)`,
				"UPDATE messages SET text = 'strayword again' WHERE message_id = 'stray@example.com'",
			} {
				if err := storage.ExecForTest(ctx, s, stmt); err != nil {
					t.Fatal(err)
				}
				for _, plan := range searchPlans {
					storage.SetSearchPlan(s, plan)
					rows, _, err := s.Queue(ctx, storage.QueueFilter{Query: "strayword", State: "all"})
					if err != nil {
						t.Fatal(err)
					}
					if len(rows) != 0 {
						t.Errorf("%s: %s: the text of a message on no ticket is found on %v", stmt[:6], plan, numbers(rows))
					}
				}
				storage.SetSearchPlan(s, storage.SearchDefault)
			}
		})
		t.Run("words follow a merge and a new customer", func(t *testing.T) {
			// The VPN ticket's message moves to the login ticket: its
			// words are found there, the merged ticket is gone from the
			// results. The big log's ticket changes customer: it is
			// found by the new one's name only.
			if err := s.MergeTickets(ctx, w.vpn, w.login, "lead@acme.test"); err != nil {
				t.Fatal(err)
			}
			if err := storage.ExecForTest(ctx, s, fmt.Sprintf("UPDATE tickets SET customer_id = (SELECT id FROM contacts WHERE email = 'carol@example.com') WHERE id = %d", w.big)); err != nil {
				t.Fatal(err)
			}
			for q, want := range map[string][]int64{
				"tunnel": {w.login}, "cafe": {w.login}, "dan": nil, "carol": {w.big, w.login},
			} {
				rows, _, err := s.Queue(ctx, storage.QueueFilter{Query: q, State: "all"})
				if err != nil {
					t.Fatal(err)
				}
				got := numbers(rows)
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("after the merge %q = %v, want %v", q, got, want)
				}
			}
		})
	})
}

// searchPlans run a search through each plan SetSearchPlan forces, and
// the default choice (see searchPlan).
var searchPlans = []string{storage.SearchListed, storage.SearchSeeded, storage.SearchChecked,
	storage.SearchWalked, storage.SearchWalkedShort, storage.SearchDefault}

// searchCases runs TestSearch's table through the queue and the queue
// with its count.
func searchCases(t *testing.T, s *storage.Store, w searchWorld, plan string) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		f     storage.QueueFilter
		want  []int64
		count int64
	}{
		{"subject and body", storage.QueueFilter{Query: "invoice"}, []int64{w.invoice}, 1},
		{"body only", storage.QueueFilter{Query: "acrobat"}, []int64{w.invoice}, 1},
		{"customer name without diacritics", storage.QueueFilter{Query: "muller"}, []int64{w.invoice}, 1},
		{"customer name, other case and diacritics", storage.QueueFilter{Query: "ZOË MÜLLER"}, []int64{w.invoice}, 1},
		{"customer address", storage.QueueFilter{Query: "zoe@example.com"}, []int64{w.invoice}, 1},
		{"address domain", storage.QueueFilter{Query: "builder"}, []int64{w.vpn}, 1},
		{"body diacritics folded", storage.QueueFilter{Query: "cafe"}, []int64{w.vpn}, 1},
		{"body with diacritics", storage.QueueFilter{Query: "Café"}, []int64{w.vpn}, 1},
		{"terms across fields", storage.QueueFilter{Query: "bob tunnel"}, []int64{w.vpn}, 1},
		{"every term must match", storage.QueueFilter{Query: "bob acrobat"}, nil, 0},
		{"no match", storage.QueueFilter{Query: "zebra"}, nil, 0},
		{"closed ticket not in the default view", storage.QueueFilter{Query: "login"}, nil, 0},
		{"closed ticket under all", storage.QueueFilter{Query: "login", State: "all"}, []int64{w.login}, 1},
		{"closed ticket under closed", storage.QueueFilter{Query: "login", State: string(vocab.StateClosed)}, []int64{w.login}, 1},
		{"open state excludes it", storage.QueueFilter{Query: "login", State: string(vocab.StateNew)}, nil, 0},
		{"phrase", storage.QueueFilter{Query: `"password reset"`, State: "all"}, []int64{w.login}, 1},
		{"phrase in the wrong order", storage.QueueFilter{Query: `"reset password"`, State: "all"}, nil, 0},
		{"hyphenated word is a phrase", storage.QueueFilter{Query: "log-in", State: "all"}, []int64{w.login}, 1},
		{"inbox filter", storage.QueueFilter{Query: "vpn", Inbox: "billing@acme.test"}, []int64{w.vpn}, 1},
		{"inbox filter excludes", storage.QueueFilter{Query: "vpn", Inbox: "support@acme.test"}, nil, 0},
		{"visible inboxes", storage.QueueFilter{Query: "vpn", Visible: []string{"support@acme.test"}}, nil, 0},
		{"word inside the indexed part", storage.QueueFilter{Query: "firstword"}, []int64{w.big}, 1},
		{"word past the indexed part", storage.QueueFilter{Query: "lastword"}, nil, 0},
		{"a term matching all, in attention order", storage.QueueFilter{Query: "example", State: "all"}, []int64{w.invoice, w.big, w.login}, 3},
		{"punctuation only", storage.QueueFilter{Query: "@@@ -- !!"}, nil, 0},
		{"FTS5 and tsquery syntax is text", storage.QueueFilter{Query: `invoice" OR "vpn`}, nil, 0},
		{"operators are words", storage.QueueFilter{Query: `NEAR(invoice acrobat) & ! | :* ' \`}, nil, 0},
		{"blank is no search (and no count)", storage.QueueFilter{Query: "  "}, []int64{w.invoice, w.vpn, w.big}, 0},
	} {
		t.Run(plan+"/"+tc.name, func(t *testing.T) {
			rows, _, err := s.Queue(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			got := numbers(rows)
			// Not yet answered, the three open tickets rank by wait.
			if !slices.Equal(got, tc.want) {
				t.Errorf("queue %q = %v, want %v", tc.f.Query, got, tc.want)
			}
			page, _, found, err := s.QueueFound(ctx, tc.f, storage.SearchCountLimit)
			if err != nil || found.N != tc.count || found.More {
				t.Errorf("count %q = %+v %v, want %d", tc.f.Query, found, err, tc.count)
			}
			if !slices.Equal(numbers(page), got) {
				t.Errorf("page with the count %q = %v, want %v", tc.f.Query, numbers(page), got)
			}
		})
	}
}

func messageOf(t *testing.T, s *storage.Store, ticket int64) int64 {
	t.Helper()
	d, err := s.GetTicket(context.Background(), ticket)
	if err != nil || len(d.Messages) == 0 {
		t.Fatalf("ticket %d: %v", ticket, err)
	}
	return d.Messages[0].ID
}

// TestSearchForgotten: after tend forget, the erased person's words find
// nothing, on both backends, and on SQLite the index pages on disk no
// longer hold them (an FTS5 delete alone leaves them in the file until
// the segments are merged).
func TestSearchForgotten(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			clock := storagetest.NewFakeClock(t0)
			dir := t.TempDir()
			var s *storage.Store
			if b.Name == "postgres" {
				s = b.Open(t, clock)
			} else {
				var err error
				if s, err = storage.Open(ctx, storage.Options{Driver: storage.DriverSQLite, DataDir: dir, Clock: clock, Exclusive: true}); err != nil {
					t.Fatal(err)
				}
				defer s.Close()
			}
			w := seedForget(t, s, clock)
			// Words of Ann's mail, on her ticket and on Bob's (the text of
			// her reply there names its Message-ID).
			words := []string{"7f3a9c", "ann3"}
			find := func(q string) []int64 {
				t.Helper()
				rows, _, err := s.Queue(ctx, storage.QueueFilter{Query: q, State: "all"})
				if err != nil {
					t.Fatal(err)
				}
				return numbers(rows)
			}
			if got := find("7f3a9c"); !slices.Equal(got, []int64{w.annTicket}) {
				t.Fatalf("before the erasure 7f3a9c finds %v, want [%d]", got, w.annTicket)
			}
			if got := find("ann3"); !slices.Equal(got, []int64{w.bobTicket}) {
				t.Fatalf("before the erasure ann3 finds %v, want Bob's [%d]", got, w.bobTicket)
			}
			if got := find("ann.erased@example.com"); !slices.Contains(got, w.annTicket) {
				t.Fatalf("before the erasure her address finds %v", got)
			}
			if _, err := s.Forget(ctx, "ann.erased@example.com", "dpo"); err != nil {
				t.Fatal(err)
			}
			for _, q := range append(words, "ann.erased@example.com", "erased") {
				if got := find(q); len(got) > 0 {
					t.Errorf("after the erasure %q finds %v", q, got)
				}
			}
			if got := find("printer"); !slices.Equal(got, []int64{w.bobTicket}) {
				t.Errorf("Bob's ticket is no longer found: %v", got)
			}
			if b.Name == "postgres" {
				return
			}
			if err := storage.ExecForTest(ctx, s, "INSERT INTO search_docs(search_docs, rank) VALUES ('integrity-check', 0)"); err != nil {
				t.Errorf("index integrity after the erasure: %v", err)
			}
			for _, word := range words[:1] {
				if found := storagetest.FilesContaining(t, dir, []byte(word)); len(found) > 0 {
					t.Errorf("%q still on disk after the erasure, in %v", word, found)
				}
			}
		})
	}
}

// TestSearchBackfill opens a database from before the search index
// (schema version 4), on SQLite one from before the index by ticket
// (version 15), and on both one from before step 17 (PostgreSQL: the
// expression indexes; SQLite: triggers that indexed the text of a
// message on no ticket): the upgrade indexes the tickets already stored,
// and no stray text is left.
func TestSearchBackfill(t *testing.T) {
	for _, b := range storagetest.Backends() {
		froms := []int{5, 17}
		if b.Name == storage.DriverSQLite {
			froms = append(froms, 16)
		}
		for _, from := range froms {
			t.Run(fmt.Sprintf("%s/before %d", b.Name, from), func(t *testing.T) {
				ctx := context.Background()
				clock := storagetest.NewFakeClock(t0)
				opts, s := openReopenable(t, b.Name, clock, "support@acme.test", "billing@acme.test")
				w := seedSearch(t, s, clock)
				drop := []string{fmt.Sprintf("DELETE FROM schema_versions WHERE version >= %d", from)}
				switch {
				case b.Name == "postgres":
					drop = append(drop, pgSearchBefore17(true)...)
					if from == 5 {
						drop = append(drop, "DROP INDEX idx_search_tickets", "DROP INDEX idx_search_contacts", "DROP INDEX idx_search_messages",
							"DROP FUNCTION tend_search_query(text)", "DROP FUNCTION tend_search_doc(text)", "DROP FUNCTION tend_search_fold(text)")
					}
				case from == 17:
					// Step 16's trigger, and the stray row it made.
					drop = append(drop, "DROP TRIGGER search_docs_messages_ai",
						`CREATE TRIGGER search_docs_messages_ai AFTER INSERT ON messages WHEN new.text <> '' BEGIN
							INSERT INTO search_docs(rowid, body) VALUES (new.ticket_id * 4294967296 + 2 + new.id % 4294967294, new.text); END`)
				default:
					for _, tr := range []string{"tickets_ai", "tickets_subject", "tickets_customer", "tickets_ad", "contacts_au", "messages_ai", "messages_au", "messages_ad"} {
						drop = append(drop, "DROP TRIGGER search_docs_"+tr)
					}
					drop = append(drop, "DROP TABLE search_docs")
				}
				drop = append(drop, `INSERT INTO messages (direction, message_id, raw_hash, text, received_at)
					VALUES ('in', 'stray@example.com', 'stray', 'strayword', CURRENT_TIMESTAMP)`)
				s = reopenOlder(t, s, opts, drop...)
				for q, want := range map[string][]int64{"acrobat": {w.invoice}, "muller": {w.invoice}, "vpn": {w.vpn}, "lastword": nil, "strayword": nil} {
					rows, _, err := s.Queue(ctx, storage.QueueFilter{Query: q, State: "all"})
					if err != nil {
						t.Fatal(err)
					}
					if got := numbers(rows); !slices.Equal(got, want) {
						t.Errorf("after the upgrade %q = %v, want %v", q, got, want)
					}
				}
			})
		}
	}
}

// TestSearchTerms is the query parser's table.
func TestSearchTerms(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"invoice", []string{"invoice"}},
		{"  invoice   pdf ", []string{"invoice", "pdf"}},
		{`"password reset" now`, []string{"password reset", "now"}},
		{`"unterminated phrase`, []string{"unterminated phrase"}},
		{"ann@example.com", []string{"ann example com"}},
		{"log-in", []string{"log in"}},
		{`a"b`, []string{"a", "b"}},
		{"Zoë", []string{"Zoë"}},
		{`" OR NEAR(x) *`, []string{"OR NEAR x"}},
		{"@@@ ''' ::", nil},
		{"a\x00b", []string{"a b"}},
		{"\xff\xfeword", []string{"word"}},
		{strings.Repeat("w ", 20), []string{"w", "w", "w", "w", "w", "w", "w", "w"}},
		{strings.Repeat("x", 201) + " ok", []string{"ok"}},
	} {
		if got := storage.SearchTerms(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("SearchTerms(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// numbers returns the ticket numbers of a queue page, in order.
func numbers(rows []storage.QueueRow) []int64 {
	var out []int64
	for _, r := range rows {
		out = append(out, r.Number)
	}
	return out
}

// FuzzSearch feeds arbitrary user input to the search: the parsed terms
// carry nothing but words and single spaces, within the limits, and the
// query runs without an error on SQLite and (when configured) PostgreSQL,
// whatever FTS5 or tsquery syntax the input holds.
func FuzzSearch(f *testing.F) {
	for _, seed := range []string{
		"invoice", `"password reset"`, `invoice" OR "vpn`, `NEAR(a b, 2)`, "a*", "^start", "col:term", "-x +y",
		"a & b | !c", "a <-> b", "'quoted'", `\"`, "\x00", "\xff\xfe", "é\u0301", "\u0301", "日本語のテキスト", "ann@example.com",
		strings.Repeat(`"a `, 50), "AND OR NOT", ":*", "()",
	} {
		f.Add(seed)
	}
	clock := storagetest.NewFakeClock(t0)
	stores := []*storage.Store{storagetest.OpenSQLite(f, clock)}
	if os.Getenv("TEND_TEST_POSTGRES_DSN") != "" {
		stores = append(stores, storagetest.OpenPostgres(f, clock))
	}
	ctx := context.Background()
	for _, s := range stores {
		if err := s.SyncInboxes(ctx, []storage.InboxSpec{{Address: "support@acme.test"}}); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, q string) {
		terms := storage.SearchTerms(q)
		if len(terms) > 8 {
			t.Errorf("%d terms", len(terms))
		}
		for _, term := range terms {
			words := strings.Split(term, " ")
			if !utf8.ValidString(term) || len(words) > 16 {
				t.Errorf("term %q", term)
			}
			for _, w := range words {
				if w == "" || strings.ContainsFunc(w, func(r rune) bool {
					return !unicode.IsLetter(r) && !unicode.IsNumber(r) && !unicode.Is(unicode.M, r)
				}) {
					t.Errorf("term %q has a word %q that is not letters, digits and marks", term, w)
				}
			}
		}
		for _, s := range stores {
			if _, _, err := s.Queue(ctx, storage.QueueFilter{Query: q, State: "all"}); err != nil {
				t.Errorf("%s: queue %q: %v", s.Driver(), q, err)
			}
		}
	})
}

// openReopenable opens a store on backend that the test can close and
// open again (an upgrade), with inboxes, and returns its options.
func openReopenable(t *testing.T, backend string, clock storage.Clock, inboxes ...string) (storage.Options, *storage.Store) {
	t.Helper()
	opts := storage.Options{Driver: storage.DriverSQLite, DataDir: t.TempDir(), Clock: clock}
	if backend == "postgres" {
		opts = storage.Options{Driver: storage.DriverPostgres, DSN: storagetest.PostgresDSN(t), Clock: clock}
	}
	s, err := storage.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	specs := make([]storage.InboxSpec, len(inboxes))
	for i, in := range inboxes {
		specs[i] = storage.InboxSpec{Address: in}
	}
	if err := s.SyncInboxes(context.Background(), specs); err != nil {
		t.Fatal(err)
	}
	return opts, s
}

// TestSearchFold checks PostgreSQL's folding (migration step 12): every
// letter the translate() list of step 8 folded folds to the same base
// letter (a letter that list left with a stroke, Ǿ, now loses that too),
// and words of other scripts come back as they were, composed.
func TestSearchFold(t *testing.T) {
	for _, b := range storagetest.Backends() {
		if b.Name != "postgres" {
			continue
		}
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s := b.Open(t, storagetest.NewFakeClock(t0))
			from, to := storage.SearchFoldTable()
			strokes := strings.NewReplacer("ø", "o", "Ø", "O")
			var in, want []string
			for i, r := range from {
				in, want = append(in, string(r)), append(want, strokes.Replace(string(to[i])))
			}
			for _, c := range []struct{ in, want string }{
				{"Müller, Ångström & Łódź", "Muller  Angstrom   Lodz"},
				{"ann@example.com", "ann example com"},
				{"ἀλήθεια Ἑλλάς", "αληθεια Ελλας"},
				{"Йошкар-Ола ёлка", "Иошкар Ола елка"},
				{"東京 한국어 क़िला", "東京 한국어 क़िला"},
				{"Tiếng Việt", "Tieng Viet"},
				// ASCII alone (folded at once, step 18) as the rest: its
				// punctuation and symbols become spaces, nothing else
				// changes; one non-ASCII letter takes the long way.
				{"Re: [#12] order-status (urgent!) ~ann_b@example.com", "Re    12  order status  urgent    ann b example com"},
				{"Re: [#12] order-status ~ Müller", "Re    12  order status   Muller"},
			} {
				in, want = append(in, c.in), append(want, c.want)
			}
			var ascii, asciiWant strings.Builder
			for r := rune(1); r < 0x80; r++ {
				ascii.WriteRune(r)
				if r > ' ' && r < 0x7f && (unicode.IsPunct(r) || unicode.IsSymbol(r)) {
					asciiWant.WriteRune(' ')
				} else {
					asciiWant.WriteRune(r)
				}
			}
			in, want = append(in, ascii.String()), append(want, asciiWant.String())
			got, err := storage.SearchFold(ctx, s, in)
			if err != nil {
				t.Fatal(err)
			}
			for i := range in {
				if got[i] != want[i] {
					t.Errorf("fold(%q) = %q, want %q", in[i], got[i], want[i])
				}
			}
		})
	}
}

// TestSearchPlansAgree runs rare and dense terms over a synthetic history
// through both search plans and requires the same pages, in the same
// order, and the same counts: the listed plan is today's, the checked one
// walks the queue's order.
func TestSearchPlansAgree(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		spec := planSpec(clock.Now(), 6000)
		spec.PerTicket, spec.Queue = 3, true
		if _, err := storage.BenchFill(ctx, s, spec); err != nil {
			t.Fatal(err)
		}
		if err := storage.ExecForTest(ctx, s, "UPDATE messages SET text = "+searchBenchText); err != nil {
			t.Fatal(err)
		}
		// Statistics as a maintained store has them: PostgreSQL's
		// estimate of a word needs them.
		if err := s.Optimize(ctx); err != nil {
			t.Fatal(err)
		}
		// A word in one message in 300 (20 hits): with seeds of at most
		// 10 hits, too common to seed and too rare to walk.
		if err := storage.ExecForTest(ctx, s, "UPDATE messages SET text = text || ' toner' WHERE id % 300 = 0"); err != nil {
			t.Fatal(err)
		}
		// Statistics as a maintained store has them: PostgreSQL's
		// estimate of a word needs them.
		if err := s.Optimize(ctx); err != nil {
			t.Fatal(err)
		}
		// The default choice: a rare term seeds, words in a tenth of the
		// messages or more are walked, a word between is listed.
		for _, c := range []struct {
			q, want string
			seed    int
			terms   []string // the walk's order of checks: the rarest first
		}{
			{"w3001", storage.SearchSeeded, storage.SearchDefaultSeedHits, nil},
			{"w3001 refund", storage.SearchSeeded, storage.SearchDefaultSeedHits, nil},
			{`"order 1234" hello`, storage.SearchSeeded, storage.SearchDefaultSeedHits, nil},
			{"hello", storage.SearchWalked, storage.SearchDefaultSeedHits, nil},
			{"refund", storage.SearchSeeded, storage.SearchDefaultSeedHits, nil}, // 600 hits
			{"refund", storage.SearchWalked, 100, nil},
			{"hello refund", storage.SearchWalked, 100, []string{"refund", "hello"}},
			// "damaged" is in an eighth of the subjects and no text:
			// too common to seed.
			{"refund damaged", storage.SearchWalked, 100, []string{"damaged", "refund"}},
			{"damaged hello refund", storage.SearchWalked, 100, []string{"damaged", "refund", "hello"}},
			{"toner", storage.SearchSeeded, storage.SearchDefaultSeedHits, nil},
			{"toner", storage.SearchListed, 10, nil},
			{"toner hello", storage.SearchListed, 10, nil},
		} {
			storage.SetSearchSeedHits(s, c.seed)
			if got, err := storage.SearchPlanOf(ctx, s, c.q); err != nil || got != c.want {
				t.Errorf("plan of %q (seeds of %d hits) = %q %v, want %q", c.q, c.seed, got, err, c.want)
			}
			if c.terms != nil {
				if got, err := storage.SearchTermsOf(ctx, s, c.q); err != nil || !slices.Equal(got, c.terms) {
					t.Errorf("checks of %q = %q %v, want %q", c.q, got, err, c.terms)
				}
			}
		}
		storage.SetSearchSeedHits(s, storage.SearchDefaultSeedHits)
		for _, f := range []storage.QueueFilter{
			{Query: "w3001", State: "all"},
			{Query: "toner hello", State: "all"},
			{Query: "toner"},
			{Query: `"order 1234"`, State: "all"},
			{Query: `"Customer 42"`, State: "all"},
			{Query: "refund"},
			{Query: "refund", State: "all", Limit: 20},
			{Query: "refund", State: string(vocab.StateClosed)},
			{Query: "refund damaged", State: "all"},
			{Query: "hello refund", State: "all", Inbox: "billing@acme.test"},
			{Query: "hello", State: "all", Assignee: "agent3@acme.example"},
			{Query: "hello", State: "all", Limit: 7},
			{Query: "hello", Assignee: storage.AssigneeNone},
			{Query: `hello "order 1234"`, State: "all"},
			{Query: "w3001 refund", State: "all"},
		} {
			t.Run(f.Query+"/"+f.State+f.Inbox+f.Assignee, func(t *testing.T) {
				got := make([]string, len(searchPlans))
				for i, plan := range searchPlans {
					storage.SetSearchPlan(s, plan)
					got[i] = searchPages(t, s, f)
				}
				storage.SetSearchPlan(s, storage.SearchDefault)
				for i := 1; i < len(got); i++ {
					if got[i] != got[0] {
						t.Errorf("listed plan:\n%s\n%s plan:\n%s", got[0], searchPlans[i], got[i])
					}
				}
				if got[0] == "" {
					t.Error("no page")
				}
			})
		}
	})
}

// searchPages is the first two pages of f (the second by its keyset
// cursor), the previous page back from the second, and the count, as
// text.
func searchPages(t *testing.T, s *storage.Store, f storage.QueueFilter) string {
	t.Helper()
	ctx := context.Background()
	first, more, err := s.Queue(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	// The page with its count: one walk on the first page, two on the
	// next; the same page and the same count either way.
	page, pageMore, found, err := s.QueueFound(ctx, f, storage.SearchCountLimit)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(numbers(page), numbers(first)) || pageMore != more {
		t.Errorf("%q: page with the count %v more=%v, alone %v more=%v", f.Query, numbers(page), pageMore, numbers(first), more)
	}
	out := fmt.Sprintf("first %v more=%v", numbers(first), more)
	if len(first) > 0 && more {
		c := first[len(first)-1].Cursor()
		g := f
		g.After = &c
		second, more, err := s.Queue(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		page, _, again, err := s.QueueFound(ctx, g, storage.SearchCountLimit)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(numbers(page), numbers(second)) || again != found {
			t.Errorf("%q: second page with the count %v %+v, alone %v, first page's count %+v", f.Query, numbers(page), again, numbers(second), found)
		}
		out += fmt.Sprintf("\nsecond %v more=%v", numbers(second), more)
		if len(second) > 0 {
			b := second[0].Cursor()
			g.After, g.Before = nil, &b
			back, _, err := s.Queue(ctx, g)
			if err != nil {
				t.Fatal(err)
			}
			out += fmt.Sprintf("\nback %v", numbers(back))
		}
	}
	return out + fmt.Sprintf("\ncount %d more=%v", found.N, found.More)
}

// TestMergeSearch: Optimize's merge of the search index (SQLite) runs in
// steps under its budget, finishes, and loses no word; PostgreSQL has
// nothing to merge.
func TestMergeSearch(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		spec := planSpec(clock.Now(), 60)
		spec.PerTicket = 3
		if _, err := storage.BenchFill(ctx, s, spec); err != nil {
			t.Fatal(err)
		}
		// One statement each: every one adds a segment to the index,
		// which FTS5's automerge would fold as it goes while they are
		// this small; off, they pile up as a bulk update leaves them.
		if s.Driver() == storage.DriverSQLite {
			for _, st := range []string{"INSERT INTO search_docs(search_docs, rank) VALUES ('automerge', 0)",
				"INSERT INTO search_docs(search_docs, rank) VALUES ('crisismerge', 100)"} {
				if err := storage.ExecForTest(ctx, s, st); err != nil {
					t.Fatal(err)
				}
			}
		}
		for id := 1; id <= 60; id++ {
			if err := storage.ExecForTest(ctx, s, fmt.Sprintf("UPDATE messages SET text = 'merged w%d' WHERE id = %d", id, id)); err != nil {
				t.Fatal(err)
			}
		}
		done, err := storage.MergeSearch(ctx, s, 0)
		if err != nil {
			t.Fatal(err)
		}
		if want := s.Driver() != storage.DriverSQLite; done != want {
			t.Errorf("merge with no time left = %v, want %v (a step done, more to do)", done, want)
		}
		if done, err = storage.MergeSearch(ctx, s, time.Minute); err != nil || !done {
			t.Fatalf("merge = %v %v, want done", done, err)
		}
		if done, err = storage.MergeSearch(ctx, s, 0); err != nil || !done {
			t.Errorf("merge of a merged index = %v %v, want done at once", done, err)
		}
		for _, q := range []string{"merged", "w17", "w60"} {
			rows, _, err := s.Queue(ctx, storage.QueueFilter{Query: q, State: "all", Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			want := 1
			if q == "merged" {
				want = 20 // every ticket
			}
			if len(rows) != want {
				t.Errorf("%q after the merge: %d tickets, want %d", q, len(rows), want)
			}
		}
	})
}
