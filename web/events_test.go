package web

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/web/live"
)

// sse is one event read off a stream.
type sse struct {
	ID, Name, Data string
	Comment        bool
}

// liveEnv is an env whose server has a live hub fed by the store.
func liveEnv(t *testing.T, backend string, opt func(*Options)) *env {
	t.Helper()
	hub := live.New(live.Options{})
	e := newEnv(t, backend, func(o *Options) {
		o.Live = hub
		if opt != nil {
			opt(o)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	started := hub.Subscribe(func([]string) bool { return false })
	go func() { done <- hub.Run(ctx, e.store) }()
	// The feed's first word is a reset: from then on it is listening.
	select {
	case <-started.C:
	case <-time.After(10 * time.Second):
		t.Fatal("live feed did not start")
	}
	started.Close()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return e
}

// stream opens /api/events with req's credentials and returns its events
// and its response.
func stream(t *testing.T, c *http.Client, req *http.Request) (<-chan sse, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithCancel(req.Context())
	t.Cleanup(cancel)
	res, err := c.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan sse, 100)
	if res.StatusCode != http.StatusOK {
		res.Body.Close()
		close(out)
		return out, res
	}
	go func() {
		defer close(out)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		var ev sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev != (sse{}) {
					out <- ev
				}
				ev = sse{}
			case strings.HasPrefix(line, ":"):
				ev.Comment = true
			case strings.HasPrefix(line, "id: "):
				ev.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.Name = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.Data = line[6:]
			}
		}
	}()
	return out, res
}

// nextTicketEvent waits for an event about ticket n, skipping comments
// and other tickets' events; the bound only stops a broken test.
func nextTicketEvent(t *testing.T, ch <-chan sse, n int64) (sse, map[string]any) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("stream ended before an event of ticket %d", n)
			}
			if ev.Name != "ticket" {
				continue
			}
			var d map[string]any
			if err := json.Unmarshal([]byte(ev.Data), &d); err != nil {
				t.Fatalf("data %q: %v", ev.Data, err)
			}
			if int64(d["ticket"].(float64)) == n {
				return ev, d
			}
		case <-deadline:
			t.Fatalf("no event of ticket %d", n)
		}
	}
}

// hasKind says whether an event's data names kind, as its kind or among
// its kinds.
func hasKind(data map[string]any, kind string) bool {
	if data["kind"] == kind {
		return true
	}
	kinds, _ := data["kinds"].([]any)
	return slices.Contains(kinds, any(kind))
}

func TestEventsAuth(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			e := liveEnv(t, backend, nil)
			ts := e.serve()
			for _, tc := range []struct {
				name   string
				header string
				cookie string
			}{
				{"nothing", "", ""},
				{"bad token", "Bearer tend_nope", ""},
				{"bad session", "", "forged"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/events", nil)
					if tc.header != "" {
						req.Header.Set("Authorization", tc.header)
					}
					if tc.cookie != "" {
						req.AddCookie(&http.Cookie{Name: sessionCookie, Value: tc.cookie})
					}
					_, res := stream(t, http.DefaultClient, req)
					if res.StatusCode != http.StatusUnauthorized {
						t.Fatalf("status %d, want 401", res.StatusCode)
					}
				})
			}
		})
	}
}

// TestEventsStream: new mail and a state change reach a lead's session
// stream and a token's stream as events naming the ticket and the kind;
// an agent restricted to billing hears nothing of a support ticket.
func TestEventsStream(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			e := liveEnv(t, backend, nil)
			restrictAlice(e)
			ts := e.serve()
			lead := newBrowser(t, ts.URL)
			lead.login("lena@acme.test", leadPW)
			req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/events", nil)
			leadEvents, res := stream(t, lead.c, req)
			if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("lead stream: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
			}
			tok, err := e.store.CreateToken(e.ctx, "alice@acme.test", "agent")
			if err != nil {
				t.Fatal(err)
			}
			req, _ = http.NewRequest(http.MethodGet, ts.URL+"/api/events", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			aliceEvents, _ := stream(t, http.DefaultClient, req)
			// The first line of each stream says it is open.
			for _, ch := range []<-chan sse{leadEvents, aliceEvents} {
				if ev := <-ch; !ev.Comment {
					t.Fatalf("first frame %+v", ev)
				}
			}

			d := e.deliver(mail("ann@example.com", "ev1@example.com", "Printer on fire", "help"))
			ev, data := nextTicketEvent(t, leadEvents, d.Ticket)
			if data["kind"] != "message" || ev.ID == "" {
				t.Fatalf("new mail: %+v %v", ev, data)
			}
			e.setTicket(d.Ticket, "state = 'waiting'")
			// The state change may share a batch with the mail's later
			// changes (a delivery, an event): then it is one of the
			// event's kinds, not necessarily the first.
			_, data = nextTicketEvent(t, leadEvents, d.Ticket)
			for !hasKind(data, "state") {
				_, data = nextTicketEvent(t, leadEvents, d.Ticket)
			}

			// Alice sees billing only: the support ticket's events never
			// reach her, the billing ticket's do.
			b := e.deliver(mail("bob@example.com", "ev2@example.com", "Invoice", "wrong amount"), billing)
			nextTicketEvent(t, aliceEvents, b.Ticket)
			for {
				select {
				case ev := <-aliceEvents:
					if strings.Contains(ev.Data, `"ticket":`+itoa(d.Ticket)+`,`) {
						t.Fatalf("restricted agent told of ticket %d: %+v", d.Ticket, ev)
					}
					continue
				default:
				}
				break
			}
		})
	}
}

// TestEventsReplay: a browser that reconnects with Last-Event-ID gets
// what it missed; one with a foreign id is told to reload.
func TestEventsReplay(t *testing.T) {
	e := liveEnv(t, "sqlite", nil)
	ts := e.serve()
	tok, err := e.store.CreateToken(e.ctx, "dash", "lead")
	if err != nil {
		t.Fatal(err)
	}
	open := func(last string) <-chan sse {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/events", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if last != "" {
			req.Header.Set("Last-Event-ID", last)
		}
		ch, res := stream(t, http.DefaultClient, req)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d", res.StatusCode)
		}
		return ch
	}
	first := open("")
	a := e.deliver(mail("ann@example.com", "rp1@example.com", "One", "x"))
	ev, _ := nextTicketEvent(t, first, a.Ticket)
	b := e.deliver(mail("bob@example.com", "rp2@example.com", "Two", "y"))
	nextTicketEvent(t, first, b.Ticket)

	again := open(ev.ID)
	nextTicketEvent(t, again, b.Ticket)

	foreign := open("elsewhere-12")
	for ev := range foreign {
		if ev.Name == "reset" {
			return
		}
		if ev.Name == "ticket" {
			t.Fatalf("foreign id replayed %+v instead of a reset", ev)
		}
	}
}

// TestEventsHeartbeat: an idle stream sends comment lines.
func TestEventsHeartbeat(t *testing.T) {
	e := liveEnv(t, "sqlite", func(o *Options) { o.LiveHeartbeat = 20 * time.Millisecond })
	ts := e.serve()
	tok, err := e.store.CreateToken(e.ctx, "dash", "lead")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	ch, _ := stream(t, http.DefaultClient, req)
	beats := 0
	for ev := range ch {
		if ev.Comment && ev.Name == "" {
			beats++
		}
		if beats == 3 {
			return
		}
	}
	t.Fatal("stream ended")
}

// TestEventsWithoutHub: a server without a hub says so.
func TestEventsWithoutHub(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	ts := e.serve()
	tok, err := e.store.CreateToken(e.ctx, "dash", "lead")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	_, res := stream(t, http.DefaultClient, req)
	if res.StatusCode != http.StatusNotImplemented {
		t.Fatalf("status %d", res.StatusCode)
	}
}

// TestLiveMetrics: the hub's figures are on /metrics.
func TestLiveMetrics(t *testing.T) {
	hub := live.New(live.Options{Buffer: 1})
	reg := prometheus.NewRegistry()
	RegisterLive(reg, hub)
	fast, slow := hub.Subscribe(func([]string) bool { return true }), hub.Subscribe(func([]string) bool { return true })
	defer fast.Close()
	hub.Publish([]storage.Change{{Ticket: 1, Inboxes: []string{support}}})
	<-fast.C
	hub.Publish([]storage.Change{{Ticket: 2, Inboxes: []string{support}}}) // slow's buffer of one is full
	want := map[string]float64{"tend_live_streams": 1, "tend_live_events_sent_total": 3, "tend_live_streams_dropped_total": 1}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		got := m.GetGauge().GetValue() + m.GetCounter().GetValue()
		if got != want[mf.GetName()] {
			t.Errorf("%s = %v, want %v", mf.GetName(), got, want[mf.GetName()])
		}
		delete(want, mf.GetName())
	}
	if len(want) > 0 {
		t.Errorf("missing %v", want)
	}
	if !slow.Dropped() {
		t.Error("the slow stream was not dropped")
	}
}
