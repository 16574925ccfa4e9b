// Package live fans the database's change feed out to every connected
// viewer (Server-Sent Events on /api/events). One goroutine reads the
// feed (storage.Store.WatchChanges: one query per change, shared by all),
// and the Hub encodes each change once and hands the same bytes to every
// subscriber allowed to see the ticket, so an extra viewer costs a
// channel send, not a query.
//
// A subscriber that does not keep up is dropped, never waited for: its
// buffer is bounded, and a full buffer closes its channel. The browser's
// EventSource reconnects with Last-Event-ID, and Since replays what it
// missed from a bounded ring of recent events (or says "reload" when the
// gap is older than the ring).
package live

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tendhq/tend/storage"
)

// Feed is where changes come from (storage.Store).
type Feed interface {
	WatchChanges(ctx context.Context, fn func([]storage.Change)) error
}

// Event is one change as a viewer is told it, encoded once for all.
type Event struct {
	// ID is the SSE event id: the hub's epoch and a sequence number, so
	// that an id from another replica or an earlier run is recognised
	// as foreign.
	ID      string
	Ticket  int64
	Kind    string
	Kinds   []string
	Inboxes []string
	// Reset: the feed may have missed changes; views must reload.
	Reset bool
	// Frame is the event as it goes on the wire.
	Frame []byte
	// Seq orders the hub's events: a stream that replayed Since skips
	// what it already wrote.
	Seq uint64
}

// payload is an event's data line.
type payload struct {
	Ticket int64    `json:"ticket,omitempty"`
	Kind   string   `json:"kind"`
	Kinds  []string `json:"kinds,omitempty"`
}

// Options configure a Hub.
type Options struct {
	// Buffer is each subscriber's queue of events not yet written
	// (default 64): a viewer further behind is dropped.
	Buffer int
	// Ring is how many recent events are kept for Since (default 1024).
	Ring int
}

// Hub is the fan-out. It is safe for concurrent use.
type Hub struct {
	opts  Options
	epoch string

	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	seq    uint64
	ring   []Event // a circle of the newest events: ring[seq % len]
	closed bool

	dropped atomic.Int64
	sent    atomic.Int64
}

// New returns a Hub; Run feeds it.
func New(opts Options) *Hub {
	if opts.Buffer <= 0 {
		opts.Buffer = 64
	}
	if opts.Ring <= 0 {
		opts.Ring = 1024
	}
	return &Hub{opts: opts, epoch: rand.Text()[:8], subs: map[*Subscription]struct{}{}, ring: make([]Event, opts.Ring)}
}

// Run reads feed into the hub until ctx ends, then closes every
// subscription so that open streams end (an HTTP server's Shutdown waits
// for them).
func (h *Hub) Run(ctx context.Context, feed Feed) error {
	defer h.closeAll()
	if err := feed.WatchChanges(ctx, h.Publish); err != nil {
		return fmt.Errorf("live feed: %w", err)
	}
	return nil
}

// Subscription is one viewer's stream. C delivers events until the
// subscription is closed or dropped; then it is closed.
type Subscription struct {
	C  <-chan Event
	c  chan Event
	h  *Hub
	ok func(inboxes []string) bool
	// dropped: closed because the viewer fell behind.
	dropped atomic.Bool
}

// Subscribe starts a stream of the events whose ticket sees is true for
// (the viewer's access: storage.Agent.SeesTicket). Resets go to all.
func (h *Hub) Subscribe(sees func(inboxes []string) bool) *Subscription {
	c := make(chan Event, h.opts.Buffer)
	s := &Subscription{C: c, c: c, h: h, ok: sees}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(c)
		return s
	}
	h.subs[s] = struct{}{}
	return s
}

// Close ends the subscription; it is safe to call more than once.
func (s *Subscription) Close() {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	if _, ok := s.h.subs[s]; ok {
		delete(s.h.subs, s)
		close(s.c)
	}
}

// Dropped reports whether the hub closed the subscription because its
// viewer fell behind.
func (s *Subscription) Dropped() bool { return s.dropped.Load() }

// Sees reports whether the subscriber may be told about e.
func (s *Subscription) Sees(e Event) bool { return e.Reset || s.ok(e.Inboxes) }

// Publish encodes changes once and offers them to every subscriber that
// may see them; a subscriber whose buffer is full is dropped. It never
// blocks on a subscriber.
func (h *Hub) Publish(cs []storage.Change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range cs {
		h.seq++
		e := Event{Ticket: c.Ticket, Kind: c.Kind(), Kinds: c.Kinds, Inboxes: c.Inboxes, Reset: c.Reset, Seq: h.seq}
		e.ID = h.epoch + "-" + strconv.FormatUint(h.seq, 10)
		e.Frame = frame(e)
		h.ring[h.seq%uint64(len(h.ring))] = e
		for s := range h.subs {
			if !s.Sees(e) {
				continue
			}
			select {
			case s.c <- e:
				h.sent.Add(1)
			default:
				delete(h.subs, s)
				s.dropped.Store(true)
				close(s.c)
				h.dropped.Add(1)
			}
		}
	}
}

// frame is e on the wire (the SSE event stream format of the HTML
// standard, §9.2): an id, an event name and one data line of JSON.
func frame(e Event) []byte {
	name, p := "ticket", payload{Ticket: e.Ticket, Kind: e.Kind, Kinds: e.Kinds}
	if e.Reset {
		name, p = "reset", payload{Kind: "reset"}
	}
	data, _ := json.Marshal(p) // a struct of numbers and strings always encodes
	var b strings.Builder
	b.WriteString("id: ")
	b.WriteString(e.ID)
	b.WriteString("\nevent: ")
	b.WriteString(name)
	b.WriteString("\ndata: ")
	b.Write(data)
	b.WriteString("\n\n")
	return []byte(b.String())
}

// Since returns the events after lastID that s may see, for a viewer
// reconnecting with Last-Event-ID. ok is false when lastID is not this
// hub's or older than the ring: the viewer must reload instead.
func (h *Hub) Since(s *Subscription, lastID string) (events []Event, ok bool) {
	epoch, num, found := strings.Cut(lastID, "-")
	seq, err := strconv.ParseUint(num, 10, 64)
	if !found || err != nil || epoch != h.epoch {
		return nil, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if seq > h.seq {
		return nil, false
	}
	if seq == h.seq {
		return nil, true
	}
	if h.seq-seq > uint64(len(h.ring)) {
		return nil, false // older than the ring
	}
	for n := seq + 1; n <= h.seq; n++ {
		if e := h.ring[n%uint64(len(h.ring))]; s.Sees(e) {
			events = append(events, e)
		}
	}
	return events, true
}

// ResetFrame is the frame that tells a viewer to reload.
func (h *Hub) ResetFrame() []byte {
	h.mu.Lock()
	id := h.epoch + "-" + strconv.FormatUint(h.seq, 10)
	h.mu.Unlock()
	return frame(Event{ID: id, Reset: true})
}

// Seq is the sequence number of the newest event: anything computed from
// the database while Seq stayed the same is still current, since every
// committed change passes through the hub (see the queue's shared
// renders).
func (h *Hub) Seq() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seq
}

// Stats are the hub's counters.
type Stats struct {
	Subscribers int
	Sent        int64 // events handed to subscribers
	Dropped     int64 // subscribers dropped for falling behind
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	n := len(h.subs)
	h.mu.Unlock()
	return Stats{Subscribers: n, Sent: h.sent.Load(), Dropped: h.dropped.Load()}
}

func (h *Hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		delete(h.subs, s)
		close(s.c)
	}
}
