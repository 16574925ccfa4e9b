package web

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// answerAsAgent stores what the executor leaves when an agent answers by
// mail: the agent's own mail (with the customer's text quoted under it and
// a #command), and, in one transaction, the copy relayed to the customer
// with only the new text, and the reply.queued event naming the agent's
// mail. It returns the two message row IDs.
func (e *env) answerAsAgent(ticket int64, parentID, msgID, text string) (raw, copied int64) {
	e.t.Helper()
	agents, err := e.store.Agents(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var alice storage.Agent
	for _, a := range agents {
		if a.Email == "alice@acme.test" {
			alice = a
		}
	}
	// The agent is on the ticket (the executor adds every agent who
	// answers), so the threader believes the mail's In-Reply-To.
	if err := e.store.InTx(e.ctx, func(tx *storage.Tx) error {
		return tx.AddParticipants(e.ctx, ticket, []string{alice.Email}, "agent")
	}); err != nil {
		e.t.Fatal(err)
	}
	body := text + "\n#priority high\n\nOn Mon, 2 Mar 2026 at 09:00, the customer wrote:\n> The earlier message, quoted in full,\n> as mail programs do.\n> " + strings.Repeat("Quoted line. ", 12)
	m := mail("Alice Agent <alice@acme.test>", msgID, "Re: conversation", body)
	m = strings.Replace(m, "\n\n", fmt.Sprintf("\nIn-Reply-To: <%s>\nReferences: <%s>\n\n", parentID, parentID), 1)
	d := e.deliver(m)
	if d.Ticket != ticket {
		e.t.Fatalf("the agent's mail went to ticket %d, want %d", d.Ticket, ticket)
	}
	raw = d.MessageRowID
	e.exec(fmt.Sprintf("UPDATE messages SET role = 'agent', agent_id = %d WHERE id = %d", alice.ID, raw))
	e.clock.Advance(time.Second)
	var outbox int64
	err = e.store.InTx(e.ctx, func(tx *storage.Tx) error {
		id, err := tx.QueueMail(e.ctx, storage.OutboxMail{TicketID: &ticket, Kind: storage.OutboxToCustomer, EnvTo: "customer@example.com"},
			storage.Message{TicketID: &ticket, FromAddr: support, FromName: "Alice Agent (Acme Support)", ToAddrs: "customer@example.com",
				Subject: "Re: conversation", InReplyTo: "<" + parentID + ">", Class: "human", Role: "system", Text: text},
			func(id int64) (storage.Composed, error) {
				return storage.Composed{MessageID: fmt.Sprintf("<tend.%d.%d@acme.test>", ticket, id), EnvFrom: "bounce@acme.test", Raw: storagetest.Fixed([]byte("Subject: Re: conversation\r\n\r\n" + text))}, nil
			})
		if err != nil {
			return err
		}
		outbox = id
		return tx.AddEvent(e.ctx, ticket, "reply.queued", alice.Email, "reply by Alice Agent to customer@example.com", &raw)
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.db.QueryRowContext(e.ctx, fmt.Sprintf("SELECT id FROM messages WHERE outbox_id = %d", outbox)).Scan(&copied); err != nil {
		e.t.Fatal(err)
	}
	e.clock.Advance(10 * time.Minute)
	return raw, copied
}

// seedConversation makes a ticket of n stored messages: the customer
// writes, an agent answers by mail (two rows each: the agent's mail and
// the copy sent), the customer replies, and so on. It returns the ticket and the rows of the answers.
func (e *env) seedConversation(n int) (ticket int64, raws, copies []int64) {
	e.t.Helper()
	parent := "conv-0@example.com"
	d := e.deliver(mail("Carla Customer <carla@example.com>", parent, "Invoice PDF is empty", "The invoice PDF I downloaded is empty. Order 7781."))
	ticket = d.Ticket
	e.clock.Advance(10 * time.Minute)
	for i, count := 1, 1; count < n; i++ {
		raw, cp := e.answerAsAgent(ticket, parent, fmt.Sprintf("agent-%d@acme.test", i), fmt.Sprintf("Hello Carla,\n\nanswer number %d: we are looking into it.\n\nAlice", i))
		raws, copies = append(raws, raw), append(copies, cp)
		if count += 2; count >= n {
			break
		}
		count++
		parent = fmt.Sprintf("conv-%d@example.com", i)
		reply := mail("Carla Customer <carla@example.com>", parent, "Re: Invoice PDF is empty", fmt.Sprintf("Thanks, still empty (%d).", i))
		reply = strings.Replace(reply, "\n\n", fmt.Sprintf("\nIn-Reply-To: <agent-%d@acme.test>\n\n", i), 1)
		if got := e.deliver(reply).Ticket; got != ticket {
			e.t.Fatalf("customer's reply went to ticket %d", got)
		}
		e.clock.Advance(10 * time.Minute)
	}
	return ticket, raws, copies
}

// TestAnswerShownOnce: an agent's answer is on the timeline once, as the
// customer got it; the agent's mail with its quotes is one click away in
// a details element under it, with its original download.
func TestAnswerShownOnce(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	ticket, raws, copies := e.seedConversation(10)
	ts := e.serve()
	b := newBrowser(t, ts.URL)
	b.login("alice@acme.test", agentPW)
	code, body := b.get(fmt.Sprintf("/tickets/%d", ticket))
	if code != http.StatusOK {
		t.Fatalf("ticket page = %d", code)
	}
	articles := strings.Count(body, `<article class="message`)
	if want := 1 + 2*len(raws); articles != want {
		t.Errorf("%d messages on the timeline, want %d (each answer once)", articles, want)
	}
	for i := range raws {
		if n := strings.Count(body, fmt.Sprintf("answer number %d:", i+1)); n != 2 {
			// Once in the copy, once in the folded original.
			t.Errorf("answer %d appears %d times, want 2 (copy + folded original)", i+1, n)
		}
		if strings.Contains(body, fmt.Sprintf(`<article class="message dir-in" id="m%d"`, raws[i])) {
			t.Errorf("the agent's mail %d is still a message of its own", raws[i])
		}
		for _, frag := range []string{
			fmt.Sprintf(`<article class="message dir-out" id="m%d"`, copies[i]),
			fmt.Sprintf(`<details class="source" id="m%d">`, raws[i]),
			fmt.Sprintf(`href="/tickets/%d/messages/%d/raw" download>Original message</a>`, ticket, raws[i]),
		} {
			if !strings.Contains(body, frag) {
				t.Errorf("page lacks %q", frag)
			}
		}
	}
	if n := strings.Count(body, "&gt; The earlier message, quoted in full,"); n != len(raws) {
		t.Errorf("the quotes appear %d times, want %d (inside the folded originals)", n, len(raws))
	}
}

func TestFoldAnswers(t *testing.T) {
	id := func(n int64) *int64 { return &n }
	msg := func(n int64, dir, text string, outbox bool) storage.Message {
		m := storage.Message{ID: n, Direction: dir, Text: text, ReceivedAt: t0.Add(time.Duration(n) * time.Minute)}
		if outbox {
			m.OutboxID = id(100 + n)
		}
		return m
	}
	quote := "\n\nOn Monday, Carla wrote:\n> my problem\n> in detail"
	for _, tc := range []struct {
		name   string
		msgs   []storage.Message
		events []storage.Event
		auto   map[int64]bool // copies rendered from a template
		want   string         // the messages left, each with its source
	}{
		{"answer folds", []storage.Message{msg(1, "in", "help", false), msg(2, "in", "Fixed it.\n#resolve"+quote, false), msg(3, "out", "Fixed it.", true)},
			[]storage.Event{{Kind: "reply.queued", MessageRowID: id(2)}}, nil, "m1 m3<m2"},
		{"no event, no fold", []storage.Message{msg(1, "in", "help", false), msg(2, "in", "Fixed it.", false), msg(3, "out", "Fixed it.", true)},
			nil, nil, "m1 m2 m3"},
		{"acknowledgement is no copy", []storage.Message{msg(1, "in", "help", false), msg(2, "out", "help", true)},
			[]storage.Event{{Kind: "reply.queued", MessageRowID: id(1)}}, map[int64]bool{2: true}, "m1 m2"},
		{"other text, no fold", []storage.Message{msg(2, "in", "Fixed it.", false), msg(3, "out", "Something else.", true)},
			[]storage.Event{{Kind: "reply.queued", MessageRowID: id(2)}}, nil, "m2 m3"},
		{"copy before the mail, no fold", []storage.Message{msg(2, "out", "Fixed it.", true), msg(3, "in", "Fixed it.", false)},
			[]storage.Event{{Kind: "reply.queued", MessageRowID: id(3)}}, nil, "m2 m3"},
		// A reply held by a collision has no copy; its #send later relays
		// it after another agent's answer: each copy finds its own mail.
		{"held then sent", []storage.Message{msg(2, "in", "Mine."+quote, false), msg(3, "in", "Theirs.", false), msg(4, "out", "Theirs.", true), msg(5, "in", "#send", false), msg(6, "out", "Mine.", true)},
			[]storage.Event{{Kind: "reply.held", MessageRowID: id(2)}, {Kind: "reply.queued", MessageRowID: id(3)}, {Kind: "reply.queued", MessageRowID: id(2)}}, nil, "m4<m3 m5 m6<m2"},
		{"two answers of the same text", []storage.Message{msg(2, "in", "Done.", false), msg(3, "out", "Done.", true), msg(4, "in", "Done.", false), msg(5, "out", "Done.", true)},
			[]storage.Event{{Kind: "reply.queued", MessageRowID: id(2)}, {Kind: "reply.queued", MessageRowID: id(4)}}, nil, "m3<m2 m5<m4"},
		{"empty copy", []storage.Message{msg(2, "in", "", false), msg(3, "out", "", true)},
			[]storage.Event{{Kind: "reply.queued", MessageRowID: id(2)}}, nil, "m2 m3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := storage.TicketDetail{Messages: tc.msgs, Events: tc.events}
			items := foldAnswers(d, timeline(d, nil), func(m *messageView) bool { return !tc.auto[m.ID] })
			var got []string
			for _, it := range items {
				if m := it.Message; m != nil {
					s := fmt.Sprintf("m%d", m.ID)
					if m.Source != nil {
						s += fmt.Sprintf("<m%d", m.Source.ID)
					}
					got = append(got, s)
				}
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("timeline = %v, want %s", got, tc.want)
			}
		})
	}
}
