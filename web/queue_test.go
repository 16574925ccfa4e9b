package web

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/vocab"
)

// seeded names the tickets of seedQueue.
type seeded struct {
	old, breached, repeat, unconfirmed, waiting, answeredBreach, closed int64
	tom, ines, maria                                                    int64
}

// seedQueue fills the store with one ticket of every kind the queue
// ranks, ten minutes apart, as mail clients really send them.
func seedQueue(e *env) seeded {
	var s seeded
	step := func() { e.clock.Advance(10 * time.Minute) }
	s.old = e.deliver(mail("Ann Archer <ann@example.com>", "ann-1@example.com", "Printer on fire", "It is on fire.")).Ticket
	step()
	s.breached = e.deliver(mail("Bob Brown <bob@example.com>", "bob-1@example.com", "Refund not received", "Still no refund.")).Ticket
	e.setTicket(s.breached, "breached = TRUE")
	step()
	s.repeat = e.deliver(mail("carol@example.com", "carol-1@example.com", "Where is my order?", "Order 1234.")).Ticket
	again := mail("carol@example.com", "carol-2@example.com", "Re: Where is my order?", "Hello? Anyone?")
	again = strings.Replace(again, "\n\n", "\nIn-Reply-To: <carol-1@example.com>\nReferences: <carol-1@example.com>\n\n", 1)
	if d := e.deliver(again); d.Ticket != s.repeat {
		e.t.Fatalf("carol's second mail opened ticket %d, want %d", d.Ticket, s.repeat)
	}
	e.setTicket(s.repeat, "repeat_contacts = 1")
	step()
	s.unconfirmed = e.deliver(mail("dave@example.com", "dave-1@example.com", "Cannot export CSV", "Export is empty.")).Ticket
	e.setTicket(s.unconfirmed, "state = 'unconfirmed'")
	step()
	s.waiting = e.deliver(mail("erin@example.com", "erin-1@example.com", "Question about plans", "Which plan?")).Ticket
	e.setTicket(s.waiting, "state = 'waiting'")
	step()
	s.tom = e.deliverFile("gmail_alternative.eml").Ticket
	step()
	s.ines = e.deliverFile("applemail_html_only.eml").Ticket
	step()
	s.maria = e.deliverFile("outlook_attachment.eml", billing).Ticket
	step()
	if d := e.deliverFile("thunderbird_reply.eml"); d.Ticket != s.tom {
		e.t.Fatalf("Tom's reply opened ticket %d, want %d", d.Ticket, s.tom)
	}
	step()
	s.answeredBreach = e.deliver(mail("gina@example.com", "gina-1@example.com", "Late answer", "Took long.")).Ticket
	e.setTicket(s.answeredBreach, "breached = TRUE, state = 'waiting'")
	step()
	s.closed = e.deliver(mail("spam@example.com", "spam-1@example.com", "Cheap pills", "Buy now.")).Ticket
	e.setTicket(s.closed, "state = 'closed'")
	step()
	return s
}

func backends() []string { return []string{"sqlite", "postgres"} }

func numbers(rows []storage.QueueRow) []int64 {
	out := make([]int64, len(rows))
	for i, r := range rows {
		out[i] = r.Number
	}
	return out
}

// TestQueueOrder checks the attention order, the filters, paging, the
// counts and the clusters against both databases.
func TestQueueOrder(t *testing.T) {
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, backend, nil)
			s := seedQueue(e)
			// Tom wrote before Ines and Maria and again after them, still
			// unanswered: he has waited since his first message (issue 11).
			attention := []int64{s.breached, s.repeat, s.unconfirmed, s.old, s.tom, s.ines, s.maria, s.waiting, s.answeredBreach}
			e.setTicket(s.tom, "assignee_id = (SELECT id FROM agents WHERE email = 'alice@acme.test'), tags = 'vip login'")
			e.setTicket(s.closed, "assignee_id = (SELECT id FROM agents WHERE email = 'alice@acme.test')")
			e.setTicket(s.old, "tags = 'vipish'")
			unassigned := slices.DeleteFunc(slices.Clone(attention), func(n int64) bool { return n == s.tom })
			for _, tc := range []struct {
				name string
				f    storage.QueueFilter
				want []int64
				more bool
			}{
				{"needs attention", storage.QueueFilter{}, attention, false},
				{"first page", storage.QueueFilter{Limit: 4}, attention[:4], true},
				{"all states", storage.QueueFilter{State: "all"}, append(slices.Clone(attention), s.closed), false},
				{"one state", storage.QueueFilter{State: string(vocab.StateWaiting)}, []int64{s.waiting, s.answeredBreach}, false},
				{"inbox", storage.QueueFilter{Inbox: billing}, []int64{s.maria}, false},
				{"cluster", storage.QueueFilter{Subject: "login fails after password reset"}, []int64{s.tom, s.ines}, false},
				{"assignee", storage.QueueFilter{Assignee: "alice@acme.test"}, []int64{s.tom}, false},
				{"assignee, all states", storage.QueueFilter{Assignee: "alice@acme.test", State: "all"}, []int64{s.tom, s.closed}, false},
				{"unassigned", storage.QueueFilter{Assignee: storage.AssigneeNone}, unassigned, false},
				{"unknown assignee", storage.QueueFilter{Assignee: "nobody@acme.test"}, nil, false},
				{"customer", storage.QueueFilter{Customer: "ann@example.com"}, []int64{s.old}, false},
				{"tag", storage.QueueFilter{Tag: "vip"}, []int64{s.tom}, false},
				{"tag wildcard is literal", storage.QueueFilter{Tag: "vip%"}, nil, false},
				{"customer and state", storage.QueueFilter{Customer: "erin@example.com", State: string(vocab.StateWaiting)}, []int64{s.waiting}, false},
			} {
				t.Run(tc.name, func(t *testing.T) {
					rows, more, err := e.store.Queue(e.ctx, tc.f)
					if err != nil {
						t.Fatal(err)
					}
					if got := numbers(rows); !slices.Equal(got, tc.want) || more != tc.more {
						t.Errorf("queue = %v more=%v, want %v more=%v", got, more, tc.want, tc.more)
					}
				})
			}
			// Keyset pages, forward to the end and back to the start.
			var fwd []int64
			var c *storage.Cursor
			var firstOfPage []storage.Cursor
			for range len(attention) {
				rows, more, err := e.store.Queue(e.ctx, storage.QueueFilter{Limit: 4, After: c})
				if err != nil {
					t.Fatal(err)
				}
				fwd = append(fwd, numbers(rows)...)
				firstOfPage = append(firstOfPage, rows[0].Cursor())
				if !more {
					break
				}
				cur := rows[len(rows)-1].Cursor()
				c = &cur
			}
			if !slices.Equal(fwd, attention) {
				t.Errorf("paged forward: %v, want %v", fwd, attention)
			}
			back, more, err := e.store.Queue(e.ctx, storage.QueueFilter{Limit: 4, Before: &firstOfPage[len(firstOfPage)-1]})
			if err != nil || !slices.Equal(numbers(back), attention[4:8]) || !more {
				t.Errorf("page before the last = %v more=%v, %v; want %v more", numbers(back), more, err, attention[4:8])
			}
			counts, err := e.store.AttentionCounts(e.ctx, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := [storage.AttentionDone + 1]int64{1, 1, 1, 4, 2, 0}; counts != want {
				t.Errorf("attention counts = %v, want %v", counts, want)
			}
		})
	}
}

var rowNumber = regexp.MustCompile(`<tr class="ticket a(\d)" data-number="(\d+)"`)

// queueRows reads the ticket numbers of a rendered queue in order.
func queueRows(t testing.TB, body string) []int64 {
	t.Helper()
	var out []int64
	for _, m := range rowNumber.FindAllStringSubmatch(body, -1) {
		n, _ := strconv.ParseInt(m[2], 10, 64)
		out = append(out, n)
	}
	return out
}

// TestQueuePage renders the queue over HTTP: order, reasons, the summary,
// clusters, inbox status, filters and the live fragment.
func TestQueuePage(t *testing.T) {
	e := newEnv(t, "sqlite", func(o *Options) {
		o.InboxStatus = func() []InboxStatus {
			return []InboxStatus{
				{Inbox: "support@acme.test", State: "idle", Detail: "IDLE since 09:00"},
				{Inbox: "imap.legacy.test/INBOX", State: "error", Detail: "login failed: <b>AUTHENTICATIONFAILED</b>", Stale: true},
			}
		}
	})
	s := seedQueue(e)
	ts := e.serve()
	b := newBrowser(t, ts.URL)
	b.login("alice@acme.test", agentPW)

	code, body := b.get("/")
	if code != http.StatusOK {
		t.Fatalf("GET / = %d", code)
	}
	want := []int64{s.breached, s.repeat, s.unconfirmed, s.old, s.tom, s.ines, s.maria, s.waiting, s.answeredBreach}
	if got := queueRows(t, body); !slices.Equal(got, want) {
		t.Errorf("queue rows = %v, want %v", got, want)
	}
	for _, frag := range []string{
		"response time breached", "wrote again without an answer", "resolution not confirmed", "breached earlier",
		`<span class="pill breached">1 breached</span>`, `<span class="pill">4 open</span>`,
		`<a href="/clusters/` + fmt.Sprint(s.tom) + `">2 customers this week: Login fails after password reset</a> <span class="count">2</span>`,
		"imap.legacy.test/INBOX", "login failed: &lt;b&gt;AUTHENTICATIONFAILED&lt;/b&gt;", `<span class="tag warn">stale</span>`,
		`<script src="/static/live.js" defer></script>`, `data-live-src="/queue/live"`,
		"Acme Billing",
	} {
		if !strings.Contains(body, frag) {
			t.Errorf("queue page lacks %q", frag)
		}
	}

	for _, tc := range []struct {
		path string
		want []int64
		code int
	}{
		{"/?inbox=billing@acme.test", []int64{s.maria}, http.StatusOK},
		{"/?state=closed", []int64{s.closed}, http.StatusOK},
		{"/?subject=" + strings.ReplaceAll("login fails after password reset", " ", "+"), []int64{s.tom, s.ines}, http.StatusOK},
		{"/queue/live?state=waiting", []int64{s.waiting, s.answeredBreach}, http.StatusOK},
		{"/?state=bogus", nil, http.StatusBadRequest},
		{"/?after=bogus", nil, http.StatusBadRequest},
		{"/?after=3.0.1&before=3.0.1", nil, http.StatusBadRequest},
		{"/?tag=two+words", nil, http.StatusBadRequest},
		{"/?customer=ann@example.com", []int64{s.old}, http.StatusOK},
		{"/?assignee=none&state=closed", []int64{s.closed}, http.StatusOK},
	} {
		t.Run(tc.path, func(t *testing.T) {
			code, body := b.get(tc.path)
			if code != tc.code {
				t.Fatalf("GET %s = %d, want %d", tc.path, code, tc.code)
			}
			if code == http.StatusOK {
				if got := queueRows(t, body); !slices.Equal(got, tc.want) {
					t.Errorf("rows = %v, want %v", got, tc.want)
				}
			}
		})
	}
	_, live := b.get("/queue/live")
	if strings.Contains(live, "<html") || !strings.Contains(live, `id="queue"`) {
		t.Errorf("live fragment is not the fragment:\n%.300s", live)
	}
}

// TestQueuePaging walks the queue's pages through the links it renders.
func TestQueuePaging(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	const n = queuePageSize + 7
	for i := range n {
		e.deliver(mail(fmt.Sprintf("c%d@example.com", i), fmt.Sprintf("p%d@example.com", i), fmt.Sprintf("Question %d", i), "?"))
		e.clock.Advance(time.Minute)
	}
	ts := e.serve()
	b := newBrowser(t, ts.URL)
	b.login("lena@acme.test", leadPW)
	var seen, first []int64
	next := regexp.MustCompile(`id="next" href="([^"]+)"`)
	prev := regexp.MustCompile(`id="prev" href="([^"]+)"`)
	path := "/"
	var body string
	for range 5 {
		_, body = b.get(path)
		rows := queueRows(t, body)
		if first == nil {
			first = rows
			if prev.MatchString(body) {
				t.Error("the first page links to a previous one")
			}
		}
		seen = append(seen, rows...)
		m := next.FindStringSubmatch(body)
		if m == nil {
			break
		}
		path = strings.ReplaceAll(m[1], "&amp;", "&")
	}
	if len(seen) != n {
		t.Fatalf("paged through %d tickets, want %d", len(seen), n)
	}
	m := prev.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("the last page has no link back")
	}
	_, body = b.get(strings.ReplaceAll(m[1], "&amp;", "&"))
	if got := queueRows(t, body); !slices.Equal(got, first) || !next.MatchString(body) {
		t.Errorf("back from the last page: %v, want %v with a next link", got, first)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] <= seen[i-1] {
			t.Fatalf("not oldest wait first at %d: %v", i, seen)
		}
	}
}

func TestShortDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "just now"}, {59 * time.Second, "just now"}, {5 * time.Minute, "5 min"},
		{3*time.Hour + 59*time.Minute, "3 h"}, {47 * time.Hour, "47 h"}, {72 * time.Hour, "3 d"},
	} {
		t.Run(tc.d.String(), func(t *testing.T) {
			if got := shortDuration(tc.d); got != tc.want {
				t.Errorf("shortDuration(%v) = %q, want %q", tc.d, got, tc.want)
			}
		})
	}
}
