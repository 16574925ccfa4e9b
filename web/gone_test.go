package web

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
)

// levelRecorder is a slog handler that keeps every record's level and
// message.
type levelRecorder struct {
	mu   *sync.Mutex
	recs *[]string
}

func (h levelRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h levelRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.recs = append(*h.recs, r.Level.String()+" "+r.Message)
	return nil
}
func (h levelRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h levelRecorder) WithGroup(string) slog.Handler      { return h }

// leavingStore is the real store, except that the client leaves (the
// request's context is canceled) just as the queue or a ticket is read:
// the driver then fails the query the way it does in production.
type leavingStore struct {
	*storage.Store
}

type cancelKey struct{}

func leave(ctx context.Context) {
	if cancel, ok := ctx.Value(cancelKey{}).(context.CancelFunc); ok {
		cancel()
	}
}

func (s leavingStore) Queue(ctx context.Context, f storage.QueueFilter) ([]storage.QueueRow, bool, error) {
	leave(ctx)
	return s.Store.Queue(ctx, f)
}

func (s leavingStore) QueueFound(ctx context.Context, f storage.QueueFilter, limit int) ([]storage.QueueRow, bool, storage.SearchCount, error) {
	leave(ctx)
	return s.Store.QueueFound(ctx, f, limit)
}

func (s leavingStore) GetTicket(ctx context.Context, n int64) (storage.TicketDetail, error) {
	leave(ctx)
	return s.Store.GetTicket(ctx, n)
}

func (s leavingStore) ListTickets(ctx context.Context, f storage.TicketFilter) ([]storage.TicketRow, int64, error) {
	leave(ctx)
	return s.Store.ListTickets(ctx, f)
}

// TestClientGone: a client that leaves while its request runs (the
// request's context is canceled, as net/http does when the connection
// closes) is no server error: nothing is logged at ERROR and nothing is
// answered 500, on the pages and on the API.
func TestClientGone(t *testing.T) {
	for _, backend := range backends() {
		t.Run(backend, func(t *testing.T) {
			var mu sync.Mutex
			var recs []string
			e := newEnv(t, backend, func(o *Options) {
				o.Logger = slog.New(levelRecorder{&mu, &recs})
			})
			d := e.deliver(mail("ann@example.com", "g1@example.com", "Gone", "Hello."))
			agents, err := e.store.Agents(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			secret, _, err := e.store.CreateSession(e.ctx, agents[0].ID, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := e.store.CreateToken(e.ctx, "gone", "lead")
			if err != nil {
				t.Fatal(err)
			}
			leaving, err := New(leavingStore{e.store}, e.srv.opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, path := range []string{"/", "/queue/live", "/tickets/" + itoa(d.Ticket), "/api/tickets", "/api/tickets/" + itoa(d.Ticket)} {
				for _, when := range []string{"before", "during"} {
					ctx, cancel := context.WithCancel(e.ctx)
					srv := leaving
					if when == "before" {
						cancel()
						srv = e.srv
					}
					ctx = context.WithValue(ctx, cancelKey{}, cancel)
					req := httptest.NewRequestWithContext(ctx, http.MethodGet, path, nil)
					req.AddCookie(&http.Cookie{Name: sessionCookie, Value: secret})
					req.Header.Set("Authorization", "Bearer "+tok)
					rec := httptest.NewRecorder()
					srv.ServeHTTP(rec, req)
					cancel()
					if rec.Code != statusClientGone {
						t.Errorf("GET %s by a client that left %s the query = %d, want %d", path, when, rec.Code, statusClientGone)
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for _, r := range recs {
				if strings.HasPrefix(r, "ERROR") {
					t.Errorf("logged %q for a client that left", r)
				}
			}
		})
	}
}
