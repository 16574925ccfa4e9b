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
			for _, path := range []string{"/", "/queue/live", "/tickets/" + itoa(d.Ticket), "/api/tickets", "/api/tickets/" + itoa(d.Ticket)} {
				ctx, cancel := context.WithCancel(e.ctx)
				cancel()
				req := httptest.NewRequestWithContext(ctx, http.MethodGet, path, nil)
				req.AddCookie(&http.Cookie{Name: sessionCookie, Value: secret})
				req.Header.Set("Authorization", "Bearer "+tok)
				rec := httptest.NewRecorder()
				e.srv.ServeHTTP(rec, req)
				if rec.Code == http.StatusInternalServerError {
					t.Errorf("GET %s by a client that left = 500", path)
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
