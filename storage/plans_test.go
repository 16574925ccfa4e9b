package storage_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

// planFill is the history TestQueryPlans explains against: large enough
// that PostgreSQL's planner, after ANALYZE, would pick a sequential scan
// wherever no index fits.
const planFill = 20_000

// planSpec is a synthetic history with stand-in ids (the plan does not
// depend on their shape) and an Outlook root on every third ticket.
func planSpec(now time.Time, messages int) storage.BenchSpec {
	return storage.BenchSpec{
		Messages: messages, Now: now,
		OutboundID: func(ticket, n int64) string { return fmt.Sprintf("t%d.o%d@tend.acme.test", ticket, n) },
		ThreadRoot: func(ticket int64) string {
			if ticket%3 != 0 {
				return ""
			}
			return fmt.Sprintf("AQHc%018d==", ticket)
		},
	}
}

// TestQueryPlans explains every query the threading lookups and the
// outgoing-mail counts (fuse, caps, coalescing) issue, as the
// real Tx methods build them (captured from a dry run), and asserts that
// each reads through an index and never scans messages, tickets,
// participants, contacts or the outbox.
func TestQueryPlans(t *testing.T) {
	suite(t, func(t *testing.T, s *storage.Store, clock *storagetest.FakeClock) {
		ctx := context.Background()
		tickets, err := storage.BenchFill(ctx, s, planSpec(clock.Now(), planFill))
		if err != nil {
			t.Fatal(err)
		}
		// The newest ticket with a CC and an Outlook root: the lookups
		// then find rows, as they do for a real reply.
		var tk storage.BenchTicket
		for i := len(tickets) - 1; i >= 0 && tk.ID == 0; i-- {
			if tickets[i].ThreadRoot != "" && tickets[i].Participant != "" {
				tk = tickets[i]
			}
		}
		// The outbox holds one sent mail per outbound message, so the
		// fuse's and the coalescing's counts have rows to find or skip.
		if err := storage.ExecForTest(ctx, s, `INSERT INTO outbox_mails (ticket_id, kind, auto, env_to, message_id, status,
			next_attempt_at, created_at, template, stream, count)
			SELECT ticket_id, 'customer', true, to_addrs, message_id, 'sent', received_at, received_at, 'acknowledgement', 'notify_customer_message:1', 1
			FROM messages WHERE direction = 'out'`); err != nil {
			t.Fatal(err)
		}
		// The queues hold a row per message, most of them not due, so a
		// claim that sorted every due row would show it.
		for _, q := range []string{
			`INSERT INTO works (kind, message_row_id, not_before, created_at) SELECT 'process', id, received_at + (id % 7) * interval '1 day', received_at FROM messages`,
			`INSERT INTO timers (ticket_id, name, due_at, status, created_at) SELECT ticket_id, 'nudge', received_at + (id % 7) * interval '1 day', 'pending', received_at FROM messages WHERE ticket_id IS NOT NULL`,
		} {
			if s.Driver() == storage.DriverSQLite {
				q = strings.ReplaceAll(q, "received_at + (id % 7) * interval '1 day'", "datetime(received_at, '+' || (id % 7) || ' days')")
			}
			if err := storage.ExecForTest(ctx, s, q); err != nil {
				t.Fatal(err)
			}
		}
		// Contacts who never opened a ticket (CCs, senders of spam): a
		// real installation has many more contacts than a page of
		// tickets, and below that PostgreSQL rightly hashes the table
		// whole instead of looking a page's customers up.
		if err := storage.ExecForTest(ctx, s, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000)
			INSERT INTO contacts (email, name, created_at) SELECT 'cc' || i || '@other.example', 'Other ' || i, CURRENT_TIMESTAMP FROM n`); err != nil {
			t.Fatal(err)
		}
		// Message text for the search's plans: one word of its own each.
		if err := storage.ExecForTest(ctx, s, "UPDATE messages SET text = 'order w' || CAST(id AS TEXT) || ' arrived damaged'"); err != nil {
			t.Fatal(err)
		}
		if err := storage.ExecForTest(ctx, s, "ANALYZE"); err != nil {
			t.Fatal(err)
		}
		lookups := []struct {
			name string
			call func(ctx context.Context, tx *storage.Tx) error
		}{
			{"TicketsByMessageIDs", func(ctx context.Context, tx *storage.Tx) error {
				_, err := tx.TicketsByMessageIDs(ctx, []string{tk.FirstIn, "t1.o1@tend.acme.test", "unknown@example.com"})
				return err
			}},
			{"Ticket", func(ctx context.Context, tx *storage.Tx) error { _, _, err := tx.Ticket(ctx, tk.ID); return err }},
			{"IsParticipant", func(ctx context.Context, tx *storage.Tx) error {
				_, err := tx.IsParticipant(ctx, tk.ID, []string{tk.Customer, tk.Participant})
				return err
			}},
			{"TicketByThreadRoot", func(ctx context.Context, tx *storage.Tx) error {
				_, _, err := tx.TicketByThreadRoot(ctx, tk.ThreadRoot)
				return err
			}},
			{"TicketMailCounts (the mail fuse)", func(ctx context.Context, tx *storage.Tx) error {
				_, _, err := tx.TicketMailCounts(ctx, tk.ID, clock.Now().Add(-10*time.Minute), clock.Now().Add(-24*time.Hour))
				return err
			}},
			{"MailCounts (flood protection and the mail fuse)", func(ctx context.Context, tx *storage.Tx) error {
				_, err := tx.MailCounts(ctx, tk.Customer, tk.ID, clock.Now().Add(-10*time.Minute), clock.Now().Add(-24*time.Hour))
				return err
			}},
			{"TemplatedMail (what the customer was told, coalesced notifications)", func(ctx context.Context, tx *storage.Tx) error {
				_, err := tx.TemplatedMail(ctx, tk.ID)
				return err
			}},
			{"CustomerHistory", func(ctx context.Context, tx *storage.Tx) error {
				_, err := tx.CustomerHistory(ctx, tk.Customer, 0)
				return err
			}},
			{"the sizes of queued mail (flushBodies)", func(ctx context.Context, tx *storage.Tx) error {
				return tx.SetOutboxSizes(ctx, 1, 2, 3)
			}},
			{"NewestOpenTicket", func(ctx context.Context, tx *storage.Tx) error {
				_, err := tx.NewestOpenTicket(ctx, tk.Customer)
				return err
			}},
			{"Stats (the last week)", func(ctx context.Context, tx *storage.Tx) error {
				_, err := tx.Stats(ctx, storage.StatsFilter{From: clock.Now().Add(-7 * 24 * time.Hour), To: clock.Now()})
				return err
			}},
			{"SimilarCandidates (content clusters)", func(ctx context.Context, tx *storage.Tx) error {
				_, err := tx.SimilarCandidates(ctx, tk.ID, []int64{1, 2, 3, 4}, clock.Now().Add(-7*24*time.Hour), 50)
				return err
			}},
			{"Unclustered", func(ctx context.Context, tx *storage.Tx) error { _, err := tx.Unclustered(ctx, tk.ID); return err }},
			{"RecentTicketBySubject", func(ctx context.Context, tx *storage.Tx) error {
				_, _, err := tx.RecentTicketBySubject(ctx, tk.Customer, strings.ToLower(tk.Subject), clock.Now().Add(-7*24*time.Hour))
				return err
			}},
		}
		// The checker must see a scan when there is one, or a pass means
		// nothing: no index covers the subject of a message.
		t.Run("checker sees a scan", func(t *testing.T) {
			plan, err := storage.Explain(ctx, s, storage.Query{SQL: "SELECT id FROM messages WHERE subject = " + map[string]string{storage.DriverSQLite: "?", storage.DriverPostgres: "$1"}[s.Driver()], Vars: []any{tk.Subject}})
			if err != nil {
				t.Fatal(err)
			}
			if planProblem(s.Driver(), plan) == "" {
				t.Errorf("unindexed query passed the check: %v", plan)
			}
		})
		// Each claim reads the first due rows in the order of an index and
		// stops: never a sort of every due row, which after a burst were
		// thousands read again by every claim.
		for _, queue := range []string{"outbox", "work", "timers"} {
			t.Run("claim "+queue, func(t *testing.T) {
				qs := storage.CaptureSQL(ctx, s, func(ctx context.Context, tx *storage.Tx) error { return tx.ClaimCandidates(ctx, queue) })
				if len(qs) != 1 {
					t.Fatalf("the claim built %d queries, want 1", len(qs))
				}
				plan, err := storage.Explain(ctx, s, qs[0])
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s\n\t%s", qs[0].SQL, strings.Join(plan, "\n\t"))
				if problem := sortProblem(plan); problem != "" {
					t.Error(problem)
				}
				if problem := planProblem(s.Driver(), plan); problem != "" {
					t.Error(problem)
				}
			})
		}
		t.Run("checker sees a sort", func(t *testing.T) {
			q := "SELECT id FROM outbox_mails WHERE status = 'pending' ORDER BY id LIMIT 16"
			plan, err := storage.Explain(ctx, s, storage.Query{SQL: q})
			if err != nil {
				t.Fatal(err)
			}
			if s.Driver() == storage.DriverSQLite && sortProblem(plan) == "" {
				t.Errorf("a sorted claim passed the check: %v", plan)
			}
		})
		// The search (search.go), run for real on the store: each of
		// its three indexes answers a term, with the queue's filters.
		search := func(f storage.QueueFilter) func(ctx context.Context, _ *storage.Tx) error {
			return func(ctx context.Context, _ *storage.Tx) error {
				if _, _, err := s.Queue(ctx, f); err != nil {
					return err
				}
				_, _, _, err := s.QueueFound(ctx, f, storage.SearchCountLimit)
				return err
			}
		}
		lookups = append(lookups, []struct {
			name string
			call func(ctx context.Context, tx *storage.Tx) error
		}{
			{"Search message text, every state", search(storage.QueueFilter{Query: fmt.Sprintf("w%d", planFill/2), State: "all"})},
			{"Search customer name, open", search(storage.QueueFilter{Query: `"Customer 17"`})},
			// Two terms: the rarer listed, the other checked on its
			// tickets by key (searchChecked), after the probes.
			{"Search two terms, one listed and one checked", search(storage.QueueFilter{Query: fmt.Sprintf(`"Customer 17" w%d`, planFill/2), State: "all"})},
			{"Search subject and address, one inbox", search(storage.QueueFilter{Query: "1234 c17@cust17.example", State: string(vocab.StateClosed), Inbox: "support@acme.test"})},
		}...)
		for _, l := range lookups {
			t.Run(l.name, func(t *testing.T) {
				qs := storage.CaptureSQL(ctx, s, l.call)
				if len(qs) == 0 {
					t.Fatal("the lookup built no query")
				}
				for _, q := range qs {
					if strings.HasPrefix(q.SQL, "EXPLAIN ") {
						continue // the search's estimate (PostgreSQL) reads no row
					}
					plan, err := storage.Explain(ctx, s, q)
					if err != nil {
						t.Fatal(err)
					}
					t.Logf("%s\n\t%s", q.SQL, strings.Join(plan, "\n\t"))
					if problem := planProblem(s.Driver(), plan); problem != "" {
						t.Errorf("%s: %s", l.name, problem)
					}
				}
			})
		}
	})
}

// sortProblem says whether a plan sorts every row it reads before the
// limit: SQLite's temporary b-tree, PostgreSQL's Sort node (an Incremental
// Sort only orders rows of one due time and stops at the limit).
func sortProblem(plan []string) string {
	for _, line := range plan {
		line = strings.TrimLeft(line, " ->")
		if strings.Contains(line, "USE TEMP B-TREE FOR ORDER BY") || strings.HasPrefix(line, "Sort ") {
			return "sorts every due row: " + line
		}
	}
	return ""
}

// tableScan matches a plan line that reads a threading table whole:
// SQLite's "SCAN messages" (with or without a covering index: a full index
// walk is a scan too), PostgreSQL's "Seq Scan on messages".
var tableScan = regexp.MustCompile(`^(?:SCAN|.*Seq Scan on) (messages|tickets|participants|contacts|outbox_mails|works|timers)\b`)

// planProblem says what is wrong with a plan, "" when every table is read
// through an index.
func planProblem(driver string, plan []string) string {
	indexed := false
	for _, line := range plan {
		line = strings.TrimLeft(line, " ->")
		if m := tableScan.FindStringSubmatch(line); m != nil {
			return "scans table " + m[1] + ": " + line
		}
		if driver == storage.DriverSQLite && strings.HasPrefix(line, "SEARCH ") &&
			!strings.Contains(line, " USING INDEX ") && !strings.Contains(line, " USING COVERING INDEX ") && !strings.Contains(line, " USING INTEGER PRIMARY KEY ") && !strings.Contains(line, " USING PRIMARY KEY ") {
			return "searches without an index: " + line
		}
		indexed = indexed || ftsMatch.MatchString(line) || strings.Contains(line, "USING INDEX") || strings.Contains(line, "USING COVERING INDEX") ||
			strings.Contains(line, "USING INTEGER PRIMARY KEY") || strings.Contains(line, "USING PRIMARY KEY") ||
			strings.Contains(line, "Index Scan") || strings.Contains(line, "Index Only Scan") || strings.Contains(line, "Bitmap Index Scan")
	}
	if !indexed {
		return "no index in the plan: " + strings.Join(plan, " | ")
	}
	return ""
}
