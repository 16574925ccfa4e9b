package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
)

// TestReadyzDegradedChecks: a failing check that only degrades (one IMAP
// mailbox with a wrong password) is in the detail and leaves the server
// ready; any other failing check makes it not ready.
func TestReadyzDegradedChecks(t *testing.T) {
	failing := func(context.Context) error { return errors.New("LOGIN failed") }
	ok := func(context.Context) error { return nil }
	tests := []struct {
		name     string
		checks   []Check
		code     int
		degraded bool
	}{
		{"all well", []Check{{Name: "imap a", Fn: ok, Degrades: true}}, http.StatusOK, false},
		{"one mailbox failing", []Check{{Name: "imap a", Fn: failing, Degrades: true}, {Name: "imap b", Fn: ok, Degrades: true}}, http.StatusOK, true},
		{"disk failing", []Check{{Name: "disk", Fn: failing}, {Name: "imap a", Fn: failing, Degrades: true}}, http.StatusServiceUnavailable, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "sqlite", func(o *Options) { o.Checks = tc.checks })
			srv := e.serve()
			resp, err := http.Get(srv.URL + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Ready    bool              `json:"ready"`
				Degraded bool              `json:"degraded"`
				Checks   map[string]string `json:"checks"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.code || body.Ready != (tc.code == http.StatusOK) || body.Degraded != tc.degraded {
				t.Errorf("status %d ready %v degraded %v, want %d degraded %v: %v", resp.StatusCode, body.Ready, body.Degraded, tc.code, tc.degraded, body.Checks)
			}
			if tc.degraded && body.Checks["imap a"] != "degraded: LOGIN failed" {
				t.Errorf("the failing mailbox's detail: %q", body.Checks["imap a"])
			}
		})
	}
}
