package imappoll

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/tendhq/tend/storage/storagetest"
)

func TestFileToken(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content, want string
		wantErr             error
	}{
		{"trailing newline", "s3cret\n", "s3cret", nil},
		{"crlf and spaces", "  tok-123\r\n", "tok-123", nil},
		{"empty", "\n", "", ErrEmptyToken},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprint(i))
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := FileToken{Path: path}.Token(context.Background())
			if !errors.Is(err, tc.wantErr) || got != tc.want {
				t.Fatalf("Token() = %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
	if _, err := (FileToken{Path: filepath.Join(dir, "missing")}).Token(context.Background()); err == nil {
		t.Error("missing file gave no error")
	}
}

func TestCommandToken(t *testing.T) {
	tests := []struct {
		name   string
		cmd    CommandToken
		want   string
		errSub string
	}{
		{"stdout", CommandToken{Command: []string{"sh", "-c", "echo ya29.token"}}, "ya29.token", ""},
		{"failure carries stderr", CommandToken{Command: []string{"sh", "-c", "echo expired >&2; exit 3"}}, "", "expired"},
		{"empty output", CommandToken{Command: []string{"true"}}, "", "empty token"},
		{"hung helper is killed", CommandToken{Command: []string{"sleep", "30"}, Timeout: 50 * time.Millisecond}, "", "killed"},
		{"no command", CommandToken{}, "", "empty command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cmd.Token(context.Background())
			if tc.errSub == "" {
				if err != nil || got != tc.want {
					t.Fatalf("Token() = %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errSub) {
				t.Fatalf("Token() error = %v, want one containing %q", err, tc.errSub)
			}
		})
	}
}

// TestOAuth2TokenRotation: a provider that rotates the refresh token on
// every use; the rotated one must be persisted and used next time.
func TestOAuth2TokenRotation(t *testing.T) {
	var mu sync.Mutex
	valid := "refresh-0"
	n := 0
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if r.Form.Get("grant_type") != "refresh_token" || r.Form.Get("refresh_token") != valid {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_grant"}`)
			return
		}
		n++
		valid = fmt.Sprintf("refresh-%d", n)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":"access-%d","token_type":"Bearer","expires_in":3600,"refresh_token":%q}`, n, valid)
	}))
	defer ts.Close()
	cfg := &oauth2.Config{ClientID: "tend", Endpoint: oauth2.Endpoint{TokenURL: ts.URL, AuthStyle: oauth2.AuthStyleInParams}}
	clock := storagetest.NewFakeClock(time.Now())
	store := newFakeStore(clock)
	src := NewOAuth2Token(cfg, store, "imap-oauth:support", "refresh-0", clock)
	ctx := context.Background()

	tok, err := src.Token(ctx)
	if err != nil || tok != "access-1" {
		t.Fatalf("first Token() = %q, %v", tok, err)
	}
	if v, _, _ := store.Secret(ctx, "imap-oauth:support"); v != "refresh-1" {
		t.Fatalf("rotated refresh token not persisted: %q", v)
	}
	if tok, _ := src.Token(ctx); tok != "access-1" {
		t.Errorf("cached token not reused: %q", tok)
	}
	// A restarted process starts from the persisted token, not the
	// configured one (which the provider has revoked).
	clock.Advance(2 * time.Hour)
	again := NewOAuth2Token(cfg, store, "imap-oauth:support", "refresh-0", clock)
	if tok, err := again.Token(ctx); err != nil || tok != "access-2" {
		t.Fatalf("after restart Token() = %q, %v", tok, err)
	}
	// A revoked refresh token is an error, never a panic or an empty token.
	revoked := NewOAuth2Token(cfg, newFakeStore(clock), "other", "stale", clock)
	if _, err := revoked.Token(ctx); err == nil {
		t.Error("revoked refresh token accepted")
	}
}

func TestXOAuth2Initial(t *testing.T) {
	mech, ir, err := xoauth2Client{user: "support@acme.example", token: "ya29.abc"}.Start()
	if err != nil || mech != "XOAUTH2" || string(ir) != "user=support@acme.example\x01auth=Bearer ya29.abc\x01\x01" {
		t.Fatalf("Start() = %q, %q, %v", mech, ir, err)
	}
}

// TestTokenFailureIsAuthFailed: a token source that fails puts the poller
// in auth_failed, like a refused login.
func TestTokenFailureIsAuthFailed(t *testing.T) {
	t.Parallel()
	srv := startMem(t, fullCaps)
	clock := storagetest.NewFakeClock(t0)
	opts := testOptions(t, srv.addr, clock)
	opts.Auth = AuthXOAuth2
	opts.Token = CommandToken{Command: []string{"false"}}
	p, err := New(opts, newFakeDeliverer(), newFakeStore(clock))
	if err != nil {
		t.Fatal(err)
	}
	run(t, p)
	waitFor(t, wait, "auth_failed", func() bool { return p.Status().State == StateAuthFailed })
}
