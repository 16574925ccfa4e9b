package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/tendhq/tend/cmd/tend/config"
	"github.com/tendhq/tend/mail/senderauth"
	"github.com/tendhq/tend/mail/senderauth/senderauthtest"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/threading"
)

// TestSenderAuthKeys: each sender_auth key, and auth_serv_id, changes
// what the wiring builds; each case fails if its key is ignored.
func TestSenderAuthKeys(t *testing.T) {
	base, err := threading.NewSigner("a", threading.Key{ID: "a", Secret: []byte("0123456789abcdef0123")})
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte("From: Ann <ann@example.com>\r\nTo: support@acme.test\r\nSubject: hi\r\nMessage-ID: <k1@example.com>\r\n\r\nhello\r\n")
	in := func(r *senderauthtest.Resolver, fields ...string) senderauth.Input {
		signed := senderauthtest.NewKey(t, r, "example.com", "s1").Sign(t, raw)
		return senderauth.Input{Message: bytes.NewReader(signed), From: "ann@example.com", AuthResults: fields,
			ClientIP: net.ParseIP("192.0.2.1"), Helo: "mx.example.com", MailFrom: "ann@example.com"}
	}

	t.Run("verify", func(t *testing.T) {
		for _, on := range []bool{true, false} {
			cfg := config.Default()
			cfg.SenderAuth.Verify = on
			r := senderauthtest.NewResolver()
			v, _ := senderAuth(cfg, base, r, storagetest.NewFakeClock(time.Now()))
			got := v.Verify(context.Background(), in(r))
			if got.Authenticated() != on || (len(r.Lookups) > 0) != on {
				t.Errorf("verify: %v: verdict %+v, lookups %v", on, got, r.Lookups)
			}
		}
	})
	t.Run("timeout", func(t *testing.T) {
		cfg := config.Default()
		cfg.SenderAuth.Timeout = 50 * time.Millisecond
		r := senderauthtest.NewResolver()
		input := in(r)
		r.Hang["s1._domainkey.example.com"], r.Hang["_dmarc.example.com"], r.Hang["example.com"] = true, true, true
		v, _ := senderAuth(cfg, base, r, storagetest.NewFakeClock(time.Now()))
		done := make(chan senderauth.Verdict, 1)
		go func() { done <- v.Verify(context.Background(), input) }()
		select {
		case got := <-done:
			if got.DMARC != senderauth.TempError {
				t.Errorf("verdict %+v, want temperror", got)
			}
		case <-time.After(cfg.SenderAuth.Timeout + 4*time.Second):
			// The default is 5s: a verifier that ignored the key would
			// still be waiting here.
			t.Fatal("sender_auth.timeout ignored: the check outlived it")
		}
	})
	t.Run("auth_serv_id", func(t *testing.T) {
		cfg := config.Default()
		cfg.SenderAuth.Verify = false
		cfg.AuthServID = "mx.acme.test"
		r := senderauthtest.NewResolver()
		v, _ := senderAuth(cfg, base, r, storagetest.NewFakeClock(time.Now()))
		got := v.Verify(context.Background(), in(r, "mx.acme.test; dkim=pass header.d=example.com; dmarc=pass header.from=example.com"))
		if got.Method != senderauth.MethodUpstream || !got.Authenticated() {
			t.Errorf("trusted Authentication-Results not used: %+v", got)
		}
	})
	t.Run("reply_token_lifetime", func(t *testing.T) {
		for _, tc := range []struct {
			lifetime time.Duration
			err      error
		}{{10 * 24 * time.Hour, threading.ErrExpired}, {30 * 24 * time.Hour, nil}} {
			cfg := config.Default()
			cfg.SenderAuth.ReplyTokenLifetime = tc.lifetime
			clock := storagetest.NewFakeClock(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))
			_, s := senderAuth(cfg, base, nil, clock)
			lp := s.Sign(threading.PurposeReply, 4, 2)
			clock.Advance(20 * 24 * time.Hour)
			if _, err := s.Verify(lp); !errors.Is(err, tc.err) {
				t.Errorf("lifetime %s, 20 days later: %v, want %v", tc.lifetime, err, tc.err)
			}
		}
	})
}
