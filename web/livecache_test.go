package web

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/web/live"
)

// countingStore counts the queue's main query.
type countingStore struct {
	Store
	queues atomic.Int64
}

func (c *countingStore) QueueFound(ctx context.Context, f storage.QueueFilter, limit int) ([]storage.QueueRow, bool, storage.SearchCount, error) {
	c.queues.Add(1)
	return c.Store.QueueFound(ctx, f, limit)
}

// TestQueueLiveShared: many tabs fetching the same queue view after a
// change share one render; a change makes the next fetch render again;
// a restricted agent's view is rendered for its own access, never served
// from a lead's.
func TestQueueLiveShared(t *testing.T) {
	hub := live.New(live.Options{})
	e := newEnv(t, "sqlite", func(o *Options) { o.Live = hub })
	restrictAlice(e)
	cs := &countingStore{Store: e.store}
	srv, err := New(cs, e.srv.opts)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	sup := e.deliver(mail("ann@example.com", "sh1@example.com", "Printer on fire", "help")).Ticket
	e.deliver(mail("bob@example.com", "sh2@example.com", "Invoice wrong", "x"), billing)
	ts := e.serve()
	lead := newBrowser(t, ts.URL)
	lead.login("lena@acme.test", leadPW)
	alice := newBrowser(t, ts.URL)
	alice.login("alice@acme.test", agentPW)

	fetch := func(b *browser, n int) []string {
		var wg sync.WaitGroup
		bodies := make([]string, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodGet, ts.URL+"/queue/live", nil)
				res, err := b.c.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				defer res.Body.Close()
				var sb strings.Builder
				buf := make([]byte, 32<<10)
				for {
					k, err := res.Body.Read(buf)
					sb.Write(buf[:k])
					if err != nil {
						break
					}
				}
				bodies[i] = sb.String()
			}()
		}
		wg.Wait()
		return bodies
	}
	before := cs.queues.Load()
	bodies := fetch(lead, 50)
	if n := cs.queues.Load() - before; n != 1 {
		t.Fatalf("50 tabs after one change ran the queue %d times, want 1", n)
	}
	for _, b := range bodies {
		if !strings.Contains(b, "Printer on fire") || !strings.Contains(b, "Invoice wrong") {
			t.Fatalf("lead's shared render lacks a ticket: %.200q", b)
		}
	}
	for _, b := range fetch(alice, 5) {
		if strings.Contains(b, "Printer on fire") || !strings.Contains(b, "Invoice wrong") {
			t.Fatalf("restricted agent got another view's render")
		}
	}
	// A change passes through the hub: the next fetch renders again.
	e.setTicket(sup, "priority = 'high'")
	hub.Publish([]storage.Change{{Ticket: sup, Kinds: []string{storage.ChangeTicket}, Inboxes: []string{support}}})
	before = cs.queues.Load()
	fetch(lead, 10)
	if n := cs.queues.Load() - before; n != 1 {
		t.Fatalf("after a change the queue ran %d times, want 1", n)
	}
}
