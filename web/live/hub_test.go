package live

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/tendhq/tend/storage"
)

func sees(inbox string) func([]string) bool {
	return func(in []string) bool { return inbox == "" || slices.Contains(in, inbox) }
}

func change(n int64, inbox string) storage.Change {
	return storage.Change{Ticket: n, Kinds: []string{storage.ChangeMessage}, Inboxes: []string{inbox}}
}

func drain(s *Subscription) []int64 {
	var out []int64
	for {
		select {
		case e, ok := <-s.C:
			if !ok {
				return out
			}
			out = append(out, e.Ticket)
		default:
			return out
		}
	}
}

func TestHubVisibility(t *testing.T) {
	h := New(Options{})
	all, support, billing := h.Subscribe(sees("")), h.Subscribe(sees("support@acme.test")), h.Subscribe(sees("billing@acme.test"))
	h.Publish([]storage.Change{change(1, "support@acme.test"), change(2, "billing@acme.test"), {Reset: true}})
	for _, tc := range []struct {
		name string
		s    *Subscription
		want []int64
	}{
		{"lead", all, []int64{1, 2, 0}},
		{"support agent", support, []int64{1, 0}},
		{"billing agent", billing, []int64{2, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := drain(tc.s); !slices.Equal(got, tc.want) {
				t.Fatalf("got tickets %v, want %v", got, tc.want)
			}
		})
	}
}

func TestHubFrame(t *testing.T) {
	h := New(Options{})
	s := h.Subscribe(sees(""))
	h.Publish([]storage.Change{{Ticket: 42, Kinds: []string{"message", "event"}, Inboxes: []string{"x"}}})
	e := <-s.C
	want := "id: " + e.ID + "\nevent: ticket\ndata: {\"ticket\":42,\"kind\":\"message\",\"kinds\":[\"message\",\"event\"]}\n\n"
	if string(e.Frame) != want {
		t.Fatalf("frame %q, want %q", e.Frame, want)
	}
	if !strings.HasPrefix(string(h.ResetFrame()), "id: ") || !strings.Contains(string(h.ResetFrame()), "event: reset\n") {
		t.Fatalf("reset frame %q", h.ResetFrame())
	}
}

// TestHubDropsSlowSubscriber: a viewer that reads nothing is dropped once
// its buffer is full; the others get every event, and Publish never
// blocks.
func TestHubDropsSlowSubscriber(t *testing.T) {
	h := New(Options{Buffer: 4})
	slow, fast := h.Subscribe(sees("")), h.Subscribe(sees(""))
	var got []int64
	for i := int64(1); i <= 10; i++ {
		h.Publish([]storage.Change{change(i, "a")})
		got = append(got, drain(fast)...)
	}
	if len(got) != 10 {
		t.Fatalf("fast viewer got %v", got)
	}
	n := 0
	for range slow.C {
		n++
	}
	if n != 4 || !slow.Dropped() || fast.Dropped() {
		t.Fatalf("slow viewer got %d events (dropped %v), fast dropped %v", n, slow.Dropped(), fast.Dropped())
	}
	if st := h.Stats(); st.Subscribers != 1 || st.Dropped != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestHubSince(t *testing.T) {
	h := New(Options{Ring: 8})
	s := h.Subscribe(sees("a"))
	var ids []string
	for i := int64(1); i <= 12; i++ {
		inbox := "a"
		if i%2 == 0 {
			inbox = "b"
		}
		h.Publish([]storage.Change{change(i, inbox)})
		ids = append(ids, h.ring[h.seq%8].ID)
	}
	for _, tc := range []struct {
		name, last string
		want       []int64
		ok         bool
	}{
		{"caught up", ids[11], nil, true},
		{"two behind", ids[9], []int64{11}, true},
		{"at the ring's edge", ids[3], []int64{5, 7, 9, 11}, true},
		{"older than the ring", ids[2], nil, false},
		{"another replica", "zzzzzzzz-3", nil, false},
		{"garbage", "12", nil, false},
		{"from the future", strings.Split(ids[0], "-")[0] + "-99", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, ok := h.Since(s, tc.last)
			var got []int64
			for _, e := range evs {
				got = append(got, e.Ticket)
			}
			if ok != tc.ok || !slices.Equal(got, tc.want) {
				t.Fatalf("Since(%s) = %v, %v; want %v, %v", tc.last, got, ok, tc.want, tc.ok)
			}
		})
	}
}

type stopFeed struct{}

func (stopFeed) WatchChanges(ctx context.Context, fn func([]storage.Change)) error {
	fn([]storage.Change{{Reset: true}})
	<-ctx.Done()
	return nil
}

// TestHubRunClosesStreams: when the server stops, every stream ends, so
// that an HTTP server's Shutdown is not held up by open event streams.
func TestHubRunClosesStreams(t *testing.T) {
	h := New(Options{})
	s := h.Subscribe(sees(""))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- h.Run(ctx, stopFeed{}) }()
	if e := <-s.C; !e.Reset {
		t.Fatalf("first event %+v", e)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, open := <-s.C; open {
		t.Fatal("stream still open after Run ended")
	}
	if _, open := <-h.Subscribe(sees("")).C; open {
		t.Fatal("a stream opened after Run ended stays open")
	}
}
