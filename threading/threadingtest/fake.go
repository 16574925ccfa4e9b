// Package threadingtest holds test helpers for threading and for whoever
// replays mail through it: an in-memory Lookup that records placements the
// way storage does, and the loader of the labelled conversation corpus in
// threading/testdata/conversations.
package threadingtest

import (
	"context"
	"sync"
	"time"

	"github.com/tendhq/tend/threading"
	"github.com/tendhq/tend/vocab"
)

// Fake is an in-memory threading.Lookup. Record and Open mirror what
// storage does when it applies a decision, so a replay through Decide and
// Fake behaves like one through the database. Safe for concurrent use.
type Fake struct {
	mu       sync.Mutex
	next     int64
	messages map[string][]threading.StoredMessage
	tickets  map[int64]*fakeTicket
	roots    map[string][]rootEntry
	// bySubject indexes tickets by customer and subject key, as storage's
	// index on (customer, subject_key, updated_at) does.
	bySubject map[string][]int64
	// Calls counts lookups by method name, to show how many queries a
	// decision costs.
	Calls map[string]int
	// Err, when set, is returned by every lookup (failure-path tests).
	Err error
}

type fakeTicket struct {
	info         threading.TicketInfo
	subjectKey   string
	mergedInto   int64
	participants map[string]bool
}

type rootEntry struct {
	ticket int64
	at     time.Time
}

// NewFake returns an empty store whose first ticket gets number first.
func NewFake(first int64) *Fake {
	if first <= 0 {
		first = 1
	}
	return &Fake{
		next:      first,
		messages:  map[string][]threading.StoredMessage{},
		tickets:   map[int64]*fakeTicket{},
		roots:     map[string][]rootEntry{},
		bySubject: map[string][]int64{},
		Calls:     map[string]int{},
	}
}

// Open creates a ticket for a message that Decide sent to a new ticket:
// its customer is msg.From, its subject key NormalizeSubject(msg.Subject).
// It does not record the message; call Record next.
func (f *Fake) Open(msg threading.Message, at time.Time) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.next
	f.next++
	subj := msg.Subject
	if subj == "" {
		subj = msg.ThreadTopic
	}
	f.tickets[n] = &fakeTicket{
		info:         threading.TicketInfo{Number: n, State: vocab.StateNew, Customer: msg.From, UpdatedAt: at},
		subjectKey:   threading.NormalizeSubject(subj),
		participants: map[string]bool{},
	}
	k := msg.From + "\x00" + f.tickets[n].subjectKey
	f.bySubject[k] = append(f.bySubject[k], n)
	return n
}

// Record stores msg on ticket as storage would: its Message-ID (marked
// outbound for mail we sent), its Thread-Index root, and, for inbound
// mail, its sender and every To/Cc address not in own as participants
// (a reply-all that adds CCs makes them participants). ticket 0 stores
// nothing (a message kept without a ticket is not threadable).
func (f *Fake) Record(msg threading.Message, ticket int64, outbound bool, own func(addr string) bool, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tickets[ticket]
	if t == nil {
		return
	}
	if msg.MessageID != "" {
		f.messages[msg.MessageID] = append(f.messages[msg.MessageID], threading.StoredMessage{MessageID: msg.MessageID, Ticket: ticket, Outbound: outbound})
	}
	if root, ok := threading.ThreadIndexRoot(msg.ThreadIndex); ok {
		f.roots[root] = append(f.roots[root], rootEntry{ticket, at})
	}
	if !outbound {
		for _, a := range append(append([]string{msg.From}, msg.To...), msg.Cc...) {
			if a != "" && (own == nil || !own(a)) {
				t.participants[a] = true
			}
		}
	}
	if at.After(t.info.UpdatedAt) {
		t.info.UpdatedAt = at
	}
}

// AddParticipant adds an address (an agent, say) to a ticket.
func (f *Fake) AddParticipant(ticket int64, addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t := f.tickets[ticket]; t != nil {
		t.participants[addr] = true
	}
}

// SetState changes a ticket's state at time at.
func (f *Fake) SetState(ticket int64, state vocab.State, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t := f.tickets[ticket]; t != nil {
		t.info.State = state
		t.info.UpdatedAt = at
		if state == vocab.StateResolved {
			t.info.ResolvedAt = at
		}
	}
}

// Merge merges ticket from into ticket into as storage does: messages and
// participants move, the old number redirects.
func (f *Fake) Merge(from, into int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	src, dst := f.tickets[from], f.tickets[into]
	if src == nil || dst == nil || from == into {
		return
	}
	src.mergedInto = into
	src.info.State = vocab.StateClosed // as storage.Merge leaves it
	for a := range src.participants {
		dst.participants[a] = true
	}
	for id, rows := range f.messages {
		for i := range rows {
			if rows[i].Ticket == from {
				rows[i].Ticket = into
			}
		}
		f.messages[id] = rows
	}
	for root, es := range f.roots {
		for i := range es {
			if es[i].ticket == from {
				es[i].ticket = into
			}
		}
		f.roots[root] = es
	}
}

func (f *Fake) call(name string) error {
	f.Calls[name]++
	return f.Err
}

// TicketsByMessageIDs implements threading.Lookup.
func (f *Fake) TicketsByMessageIDs(_ context.Context, ids []string) ([]threading.StoredMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("TicketsByMessageIDs"); err != nil {
		return nil, err
	}
	var out []threading.StoredMessage
	for _, id := range ids {
		out = append(out, f.messages[id]...)
	}
	return out, nil
}

// Ticket implements threading.Lookup, following merges.
func (f *Fake) Ticket(_ context.Context, number int64) (threading.TicketInfo, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("Ticket"); err != nil {
		return threading.TicketInfo{}, false, err
	}
	for hops := 0; hops < 8; hops++ {
		t := f.tickets[number]
		if t == nil {
			return threading.TicketInfo{}, false, nil
		}
		if t.mergedInto == 0 {
			return t.info, true, nil
		}
		number = t.mergedInto
	}
	return threading.TicketInfo{}, false, nil
}

// IsParticipant implements threading.Lookup.
func (f *Fake) IsParticipant(_ context.Context, ticket int64, addrs []string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("IsParticipant"); err != nil {
		return false, err
	}
	t := f.tickets[ticket]
	if t == nil {
		return false, nil
	}
	for _, a := range addrs {
		if t.participants[a] {
			return true, nil
		}
	}
	return false, nil
}

// TicketByThreadIndex implements threading.Lookup: newest message first.
func (f *Fake) TicketByThreadIndex(_ context.Context, root string) (int64, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("TicketByThreadIndex"); err != nil {
		return 0, false, err
	}
	es := f.roots[root]
	best := -1
	for i, e := range es {
		if best < 0 || !e.at.Before(es[best].at) {
			best = i
		}
	}
	if best < 0 {
		return 0, false, nil
	}
	return es[best].ticket, true, nil
}

// RecentTicketBySubject implements threading.Lookup.
func (f *Fake) RecentTicketBySubject(_ context.Context, customer, key string, since time.Time) (int64, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("RecentTicketBySubject"); err != nil {
		return 0, false, err
	}
	var best *fakeTicket
	for _, n := range f.bySubject[customer+"\x00"+key] {
		t := f.tickets[n]
		if t.mergedInto != 0 || t.info.State == vocab.StateClosed || t.info.UpdatedAt.Before(since) {
			continue
		}
		if best == nil || t.info.UpdatedAt.After(best.info.UpdatedAt) || t.info.UpdatedAt.Equal(best.info.UpdatedAt) && t.info.Number > best.info.Number {
			best = t
		}
	}
	if best == nil {
		return 0, false, nil
	}
	return best.info.Number, true, nil
}
