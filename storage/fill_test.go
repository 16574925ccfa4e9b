package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/tendhq/tend/vocab"
)

// This file fills a store with a synthetic history fast enough for the
// 1,000,000-message benchmark: batched multi-row INSERTs with explicit ids
// inside one transaction, instead of the ingest path's dozen statements a
// message. It is test code (exported to storage_test through the test
// binary only).

// BenchSpec describes the synthetic history.
type BenchSpec struct {
	Messages  int // message rows to create
	PerTicket int // messages per ticket, alternating customer and us; default 5
	// TicketsPerCustomer is how many tickets each customer opened; default 3.
	TicketsPerCustomer int
	// Now is the newest ticket's last update; older tickets are spread
	// over the two years before it, so only the newest few hundred fall
	// inside a subject window.
	Now time.Time
	// OutboundID returns the Message-ID of our n-th mail on ticket
	// (threading's signed ids); storage cannot mint them itself.
	OutboundID func(ticket, n int64) string
	// ThreadRoot returns the Outlook conversation root of ticket, "" when
	// its customer does not use Outlook.
	ThreadRoot func(ticket int64) string
	// Queue fills what the lead's queue ranks and filters by: 20 agents
	// as assignees, tags, breaches, repeat contacts, waits, snoozes, and
	// a quarter of the tickets in the second inbox when there is one.
	Queue bool
}

// BenchTicket is one ticket of the synthetic history, for the benchmark to
// write replies to.
type BenchTicket struct {
	ID          int64
	Customer    string
	Subject     string
	State       vocab.State
	UpdatedAt   time.Time
	ThreadRoot  string
	FirstIn     string // the customer's first Message-ID
	LastOutN    int64  // n of our last mail (OutboundID), 0 if none
	Participant string // a CC who takes part
}

// benchTopic returns a subject real support mail carries; the caller's
// number makes each ticket's subject its own.
func benchTopic(i int) string {
	topics := []string{
		"Order arrived damaged", "Cannot log in to my account", "Invoice shows the wrong VAT number",
		"Refund not received", "Printer on floor 3 is offline", "VPN drops every hour",
		"Wrong size delivered", "Password reset mail never arrives", "Subscription renewal failed",
		"Export to CSV is empty",
	}
	return topics[i%len(topics)]
}

// benchBatch is the rows per INSERT: under SQLite's 32766 and PostgreSQL's
// 65535 bind variables at 15 columns.
const benchBatch = 500

// BenchFill writes spec's history into s (which must have an inbox) and
// returns its tickets, oldest first.
func BenchFill(ctx context.Context, s *Store, spec BenchSpec) ([]BenchTicket, error) {
	if spec.PerTicket <= 0 {
		spec.PerTicket = 5
	}
	if spec.TicketsPerCustomer <= 0 {
		spec.TicketsPerCustomer = 3
	}
	if spec.OutboundID == nil || spec.ThreadRoot == nil {
		return nil, errors.New("bench fill: OutboundID and ThreadRoot are required")
	}
	spec.Now = spec.Now.UTC().Truncate(time.Microsecond)
	nTickets := max(spec.Messages/spec.PerTicket, 1)
	nCustomers := max(nTickets/spec.TicketsPerCustomer, 1)
	var tickets []BenchTicket
	err := s.db.WithContext(ctx).Transaction(func(db *gorm.DB) error {
		f := &benchFiller{db: db, spec: spec}
		if err := f.start(); err != nil {
			return err
		}
		if err := f.contacts(nCustomers); err != nil {
			return err
		}
		var err error
		if tickets, err = f.tickets(nTickets, nCustomers); err != nil {
			return err
		}
		return f.messages(tickets)
	})
	if err != nil {
		return nil, fmt.Errorf("bench fill: %w", err)
	}
	if s.driver == DriverPostgres {
		// Explicit ids do not move the sequences; ANALYZE is what
		// autovacuum would do to a table this size.
		for _, tb := range []string{"contacts", "tickets", "messages"} {
			if err := s.db.WithContext(ctx).Exec(fmt.Sprintf("SELECT setval(pg_get_serial_sequence('%s', 'id'), (SELECT MAX(id) FROM %s))", tb, tb)).Error; err != nil {
				return nil, fmt.Errorf("bench fill: %w", err)
			}
		}
		if err := s.db.WithContext(ctx).Exec("ANALYZE").Error; err != nil {
			return nil, fmt.Errorf("bench fill: %w", err)
		}
	}
	return tickets, nil
}

type benchFiller struct {
	db                             *gorm.DB
	spec                           BenchSpec
	inbox, contact0, ticket0, msg0 int64
	inbox2                         int64   // the second inbox, 0 if none
	agents                         []int64 // assignees (Queue)
}

// start finds the inbox and the first free ids.
func (f *benchFiller) start() error {
	if err := f.db.Model(&Inbox{}).Select("MIN(id)").Scan(&f.inbox).Error; err != nil || f.inbox == 0 {
		return fmt.Errorf("no inbox (%v): sync inboxes first", err)
	}
	for tb, dst := range map[string]*int64{"contacts": &f.contact0, "tickets": &f.ticket0, "messages": &f.msg0} {
		if err := f.db.Table(tb).Select("COALESCE(MAX(id), 0) + 1").Scan(dst).Error; err != nil {
			return err
		}
	}
	if !f.spec.Queue {
		return nil
	}
	if err := f.db.Model(&Inbox{}).Select("COALESCE(MIN(id), 0)").Where("id > ?", f.inbox).Scan(&f.inbox2).Error; err != nil {
		return err
	}
	for i := range 20 {
		a := Agent{Email: fmt.Sprintf("agent%d@acme.example", i), Name: fmt.Sprintf("Agent %d", i), Role: "agent", CreatedAt: f.spec.Now}
		if err := f.db.Create(&a).Error; err != nil {
			return err
		}
		f.agents = append(f.agents, a.ID)
	}
	return nil
}

// queueFields are the columns Queue adds to ticket i: assignee, tags,
// breached, repeat contacts, the customer's last message and wait, a
// snooze.
var queueFields = []string{"assignee_id", "tags", "breached", "repeat_contacts", "last_customer_at", "waiting_since", "snoozed_until"}

func (f *benchFiller) queueRow(i int, state vocab.State, upd time.Time) []any {
	var assignee any
	if i%10 != 0 { // a tenth unassigned
		assignee = f.agents[i%len(f.agents)]
	}
	tags := []string{"", "billing", "vip", "billing vip", "bug"}[i%5]
	if i%997 == 0 {
		tags += " rare"
	}
	open := state == vocab.StateNew || state == vocab.StateOpen
	var waiting, snoozed any
	if open || state == vocab.StateProposed {
		waiting = upd
	}
	if state == vocab.StateWaiting && i%9 == 0 {
		snoozed = f.spec.Now.Add(48 * time.Hour)
	}
	return []any{assignee, strings.TrimSpace(tags), open && i%11 == 0, map[bool]int{true: 1}[open && i%13 == 0], upd, waiting, snoozed}
}

// insert writes rows (each len(cols) values) in batches.
func (f *benchFiller) insert(table string, cols []string, rows [][]any) error {
	one := "(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")"
	for len(rows) > 0 {
		n := min(len(rows), benchBatch)
		args := make([]any, 0, n*len(cols))
		for _, r := range rows[:n] {
			args = append(args, r...)
		}
		q := "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES " + strings.TrimSuffix(strings.Repeat(one+",", n), ",")
		if err := f.db.Exec(q, args...).Error; err != nil {
			return fmt.Errorf("%s: %w", table, err)
		}
		rows = rows[n:]
	}
	return nil
}

func benchCustomer(k int) string { return fmt.Sprintf("c%d@cust%d.example", k, k%997) }

func (f *benchFiller) contacts(n int) error {
	rows := make([][]any, n)
	for k := range n {
		rows[k] = []any{f.contact0 + int64(k), benchCustomer(k), fmt.Sprintf("Customer %d", k), f.spec.Now}
	}
	return f.insert("contacts", []string{"id", "email", "name", "created_at"}, rows)
}

// tickets writes the tickets with their participants and inbox links.
// Ticket i belongs to customer i % customers, so each customer's tickets
// are spread over the two years.
func (f *benchFiller) tickets(n, customers int) ([]BenchTicket, error) {
	span := 2 * 365 * 24 * time.Hour
	out := make([]BenchTicket, n)
	var trows, prows, irows [][]any
	for i := range n {
		id := f.ticket0 + int64(i)
		k := i % customers
		// span/n first: span*(n-1-i) overflows int64 from a few thousand tickets.
		upd := f.spec.Now.Add(-span / time.Duration(n) * time.Duration(n-1-i))
		age := f.spec.Now.Sub(upd)
		state := vocab.StateClosed
		switch {
		case age < 7*24*time.Hour:
			state = []vocab.State{vocab.StateNew, vocab.StateOpen, vocab.StateWaiting, vocab.StateProposed, vocab.StateResolved}[i%5]
		case age < 60*24*time.Hour:
			state = vocab.StateResolved
		}
		subject := fmt.Sprintf("%s (ref %d)", benchTopic(i), i)
		bt := BenchTicket{
			ID: id, Customer: benchCustomer(k), Subject: subject, State: state, UpdatedAt: upd,
			ThreadRoot: f.spec.ThreadRoot(id), FirstIn: fmt.Sprintf("in-%d-0@mail.cust%d.example", id, k%997),
		}
		inbox := f.inbox
		if f.inbox2 != 0 && i%4 == 1 {
			inbox = f.inbox2
		}
		row := []any{id, subject, strings.ToLower(subject), state, "normal", f.contact0 + int64(k), inbox, upd, upd}
		if f.spec.Queue {
			// Content clusters: a tenth of the tickets joined the one
			// before them (ticket i%20 == 1 and the two after it), the
			// rest are clusters of their own.
			cluster := id
			if r := i % 20; r == 2 || r == 3 {
				cluster = id - int64(r-1)
			}
			row = append(append(row, f.queueRow(i, state, upd)...), cluster)
		}
		trows = append(trows, row)
		prows = append(prows, []any{id, bt.Customer, "customer", upd}, []any{id, fmt.Sprintf("agent%d@acme.example", i%20), "agent", upd})
		if i%4 == 0 {
			bt.Participant = fmt.Sprintf("cc%d@cust%d.example", i, k%997)
			prows = append(prows, []any{id, bt.Participant, "cc", upd})
		}
		irows = append(irows, []any{id, inbox})
		out[i] = bt
	}
	cols := []string{"id", "subject", "norm_subject", "state", "priority", "customer_id", "inbox_id", "created_at", "updated_at"}
	if f.spec.Queue {
		cols = append(append(cols, queueFields...), "cluster_id")
	}
	if err := f.insert("tickets", cols, trows); err != nil {
		return nil, err
	}
	if err := f.insert("participants", []string{"ticket_id", "email", "role", "created_at"}, prows); err != nil {
		return nil, err
	}
	return out, f.insert("ticket_inboxes", []string{"ticket_id", "inbox_id"}, irows)
}

// messages writes spec.Messages rows, PerTicket a ticket: the customer's
// mail at even positions, ours (with the signed Message-ID threading mints)
// at odd ones, each replying to the one before.
func (f *benchFiller) messages(tickets []BenchTicket) error {
	cols := []string{"id", "ticket_id", "direction", "message_id", "raw_hash", "in_reply_to", `"references"`,
		"thread_root", "from_addr", "to_addrs", "subject", "class", "role", "date", "received_at"}
	id := f.msg0
	rows := make([][]any, 0, benchBatch)
	for ti := range tickets {
		t := &tickets[ti]
		var refs []string
		for j := 0; j < f.spec.PerTicket && id-f.msg0 < int64(f.spec.Messages); j++ {
			at := t.UpdatedAt.Add(-time.Duration(f.spec.PerTicket-j) * time.Hour)
			dir, from, to, role, subj := DirectionIn, t.Customer, "support@acme.example", "customer", t.Subject
			msgID := fmt.Sprintf("in-%d-%d@mail.%s", t.ID, j, t.Customer[strings.IndexByte(t.Customer, '@')+1:])
			if j%2 == 1 {
				t.LastOutN = int64(j/2 + 1)
				dir, from, to, role, subj = DirectionOut, "support@acme.example", t.Customer, "agent", "Re: "+t.Subject
				msgID = f.spec.OutboundID(t.ID, t.LastOutN)
			}
			irt := ""
			if len(refs) > 0 {
				irt = refs[len(refs)-1]
			}
			rows = append(rows, []any{id, t.ID, dir, msgID, fmt.Sprintf("bench-%d", id), irt, strings.Join(refs, " "),
				t.ThreadRoot, from, to, subj, "human", role, at, at})
			refs = append(refs, msgID)
			id++
			if len(rows) == benchBatch {
				if err := f.insert("messages", cols, rows); err != nil {
					return err
				}
				rows = rows[:0]
			}
		}
	}
	return f.insert("messages", cols, rows)
}
