package threading

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/mail/header"
)

func testSigner(t testing.TB, current string) *Signer {
	t.Helper()
	s, err := NewSigner(current,
		Key{ID: "a", Secret: []byte("0123456789abcdef-a")},
		Key{ID: "b", Secret: []byte("0123456789abcdef-b")})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewSignerRejectsBadKeys(t *testing.T) {
	good := []byte("0123456789abcdef")
	tests := []struct {
		name    string
		current string
		keys    []Key
	}{
		{"no keys", "a", nil},
		{"current missing", "c", []Key{{ID: "a", Secret: good}}},
		{"short secret", "a", []Key{{ID: "a", Secret: []byte("short")}}},
		{"long id", "ab", []Key{{ID: "ab", Secret: good}}},
		{"upper id", "A", []Key{{ID: "A", Secret: good}}},
		{"duplicate", "a", []Key{{ID: "a", Secret: good}, {ID: "a", Secret: good}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewSigner(tt.current, tt.keys...); err == nil {
				t.Error("want an error")
			}
		})
	}
}

func TestSignVerify(t *testing.T) {
	s := testSigner(t, "b")
	old := testSigner(t, "a")
	other, _ := NewSigner("b", Key{ID: "b", Secret: []byte("another-secret-16b")})
	reply := s.Sign(PurposeReply, 123, 7)
	note := s.Sign(PurposeNote, 123, 7)
	tests := []struct {
		name string
		lp   string
		want ReplyToken
		err  error
	}{
		{"reply", reply, ReplyToken{PurposeReply, 123, 7, "b"}, nil},
		{"note", note, ReplyToken{PurposeNote, 123, 7, "b"}, nil},
		{"upper case", strings.ToUpper(reply), ReplyToken{PurposeReply, 123, 7, "b"}, nil},
		{"previous key", old.Sign(PurposeReply, 5, 3), ReplyToken{PurposeReply, 5, 3, "a"}, nil},
		{"purpose swapped", "note+" + strings.TrimPrefix(reply, "reply+"), ReplyToken{}, ErrBadToken},
		{"ticket changed", strings.Replace(reply, "+123.", "+124.", 1), ReplyToken{}, ErrBadToken},
		{"agent changed", strings.Replace(reply, ".7.", ".8.", 1), ReplyToken{}, ErrBadToken},
		{"leading zero", strings.Replace(reply, "+123.", "+0123.", 1), ReplyToken{}, ErrBadToken},
		{"other secret", other.Sign(PurposeReply, 123, 7), ReplyToken{}, ErrBadToken},
		{"unknown key", "reply+123.7.z" + strings.Repeat("a", macChars), ReplyToken{}, ErrUnknownKey},
		{"short mac", reply[:len(reply)-1], ReplyToken{}, ErrBadToken},
		{"plain inbox", "support", ReplyToken{}, ErrNotReplyAddress},
		{"subaddress", "support+billing", ReplyToken{}, ErrNotReplyAddress},
		{"empty", "", ReplyToken{}, ErrNotReplyAddress},
		{"no parts", "reply+", ReplyToken{}, ErrBadToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Verify(tt.lp)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Errorf("Verify(%q) = %+v, %v; want %+v, %v", tt.lp, got, err, tt.want, tt.err)
			}
		})
	}
	if len(reply) > 64 {
		t.Errorf("local part %q longer than 64 octets (RFC 5321 4.5.3.1.1)", reply)
	}
	if reply != strings.ToLower(reply) {
		t.Errorf("local part %q not lowercase", reply)
	}
}

func TestMessageID(t *testing.T) {
	s := testSigner(t, "b")
	id := s.MessageID(42, 9001, "Tend.Example")
	if !header.ValidID(id) || !strings.HasSuffix(id, "@tend.example") {
		t.Fatalf("MessageID = %q", id)
	}
	tests := []struct {
		name string
		id   string
		want int64
		ok   bool
	}{
		{"ours", id, 42, true},
		{"brackets", "<" + id + ">", 42, true},
		{"upper", strings.ToUpper(id), 42, true},
		{"other domain still signed", strings.Replace(id, "tend.example", "elsewhere.example", 1), 42, true},
		{"ticket changed", strings.Replace(id, "tend.42.", "tend.43.", 1), 0, false},
		{"outbox changed", strings.Replace(id, ".9001.", ".9002.", 1), 0, false},
		{"foreign", "CAKx@mail.gmail.com", 0, false},
		{"shape only", "tend.42.1.b" + strings.Repeat("a", macChars) + "@tend.example", 0, false},
		{"empty", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := s.ParseMessageID(tt.id)
			if got != tt.want || ok != tt.ok {
				t.Errorf("ParseMessageID(%q) = %d, %v", tt.id, got, ok)
			}
		})
	}
}

func TestBounceAddress(t *testing.T) {
	s := testSigner(t, "b")
	lp := s.BounceAddress(777)
	tests := []struct {
		name string
		lp   string
		want int64
		err  error
	}{
		{"ours", lp, 777, nil},
		{"upper", strings.ToUpper(lp), 777, nil},
		{"changed", strings.Replace(lp, "+777.", "+778.", 1), 0, ErrBadToken},
		{"unknown key", "bounce+777.q" + strings.Repeat("a", macChars), 0, ErrUnknownKey},
		{"not bounce", "support", 0, ErrNotReplyAddress},
		{"reply is not bounce", s.Sign(PurposeReply, 1, 2), 0, ErrNotReplyAddress},
		{"garbage", "bounce+x", 0, ErrBadToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ParseBounceAddress(tt.lp)
			if got != tt.want || !errors.Is(err, tt.err) {
				t.Errorf("ParseBounceAddress(%q) = %d, %v", tt.lp, got, err)
			}
		})
	}
}

func TestLinkToken(t *testing.T) {
	s := testSigner(t, "b")
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tok := s.LinkToken("confirm-resolved", 42, now.Add(72*time.Hour))
	for _, r := range tok {
		if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", r) {
			t.Fatalf("token %q is not URL-safe", tok)
		}
	}
	parts := strings.Split(tok, ".")
	tests := []struct {
		name    string
		tok     string
		at      time.Time
		purpose string
		ticket  int64
		err     error
	}{
		{"valid", tok, now, "confirm-resolved", 42, nil},
		{"expired", tok, now.Add(72 * time.Hour), "", 0, ErrExpired},
		{"ticket changed", strings.Join([]string{parts[0], parts[1], "43", parts[3], parts[4]}, "."), now, "", 0, ErrBadToken},
		{"expiry extended", strings.Join([]string{parts[0], parts[1], parts[2], "99999999999", parts[4]}, "."), now, "", 0, ErrBadToken},
		{"purpose changed", strings.Join([]string{parts[0], "dW5zdWJzY3JpYmU", parts[2], parts[3], parts[4]}, "."), now, "", 0, ErrBadToken},
		{"unknown key", "z" + tok[1:], now, "", 0, ErrUnknownKey},
		{"garbage", "x.y", now, "", 0, ErrBadToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, n, err := s.VerifyLinkToken(tt.tok, tt.at)
			if p != tt.purpose || n != tt.ticket || !errors.Is(err, tt.err) {
				t.Errorf("VerifyLinkToken = %q, %d, %v", p, n, err)
			}
		})
	}
}

// fixedClock is a settable Clock.
type fixedClock struct{ now time.Time }

func (c *fixedClock) Now() time.Time { return c.now }

// legacySign mints an address in the first format (no issue day), as
// binaries before the issue day did.
func legacySign(s *Signer, purpose Purpose, ticket, agent string) string {
	return string(purpose) + "+" + ticket + "." + agent + "." + s.current + s.mac32(s.current, "addr", string(purpose), ticket, agent)
}

// TestReplyAddressExpiry: an address is accepted for its lifetime after
// the day it was minted and refused after; the lifetime setting is
// honoured; an address minted with the previous key still works inside
// its lifetime; the issue day cannot be moved; a first-format address
// works until the stated cut-off.
func TestReplyAddressExpiry(t *testing.T) {
	minted := time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC)
	clock := &fixedClock{minted}
	s := testSigner(t, "b").WithReplyLifetime(0, clock) // default lifetime
	short := testSigner(t, "b").WithReplyLifetime(10*24*time.Hour, clock)
	previous := testSigner(t, "a").WithReplyLifetime(0, clock)
	reply := s.Sign(PurposeReply, 123, 7)
	fromPrevious := previous.Sign(PurposeReply, 123, 7)
	issued := strings.Split(reply, ".")[2]
	moved := strings.Replace(reply, "."+issued+".", ".99999.", 1)
	legacy := legacySign(s, PurposeReply, "123", "7")
	want := ReplyToken{PurposeReply, 123, 7, "b"}
	tests := []struct {
		name   string
		signer *Signer
		lp     string
		at     time.Time
		want   ReplyToken
		err    error
	}{
		{"fresh", s, reply, minted, want, nil},
		{"89 days later", s, reply, minted.Add(89 * 24 * time.Hour), want, nil},
		{"91 days later", s, reply, minted.Add(91 * 24 * time.Hour), ReplyToken{}, ErrExpired},
		{"lifetime setting: 9 days later", short, reply, minted.Add(9 * 24 * time.Hour), want, nil},
		{"lifetime setting: 11 days later", short, reply, minted.Add(11 * 24 * time.Hour), ReplyToken{}, ErrExpired},
		{"previous key, inside its lifetime", s, fromPrevious, minted.Add(30 * 24 * time.Hour), ReplyToken{PurposeReply, 123, 7, "a"}, nil},
		{"previous key, expired", s, fromPrevious, minted.Add(100 * 24 * time.Hour), ReplyToken{}, ErrExpired},
		{"issue day moved forward", s, moved, minted.Add(100 * 24 * time.Hour), ReplyToken{}, ErrBadToken},
		{"another ticket", s, strings.Replace(reply, "+123.", "+124.", 1), minted, ReplyToken{}, ErrBadToken},
		{"first format before the cut-off", s, legacy, LegacyReplyCutoff().Add(-time.Second), want, nil},
		{"first format after the cut-off", s, legacy, LegacyReplyCutoff(), ReplyToken{}, ErrExpired},
		{"first format forged", s, legacy[:len(legacy)-1] + "q", minted, ReplyToken{}, ErrBadToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock.now = tt.at
			got, err := tt.signer.Verify(tt.lp)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Errorf("Verify(%q) at %s = %+v, %v; want %+v, %v", tt.lp, tt.at, got, err, tt.want, tt.err)
			}
		})
	}
	if len(reply) > 64 {
		t.Errorf("local part %q longer than 64 octets", reply)
	}
}

func TestReplyLifetime(t *testing.T) {
	s := testSigner(t, "a")
	if got := s.ReplyLifetime(); got != DefaultReplyLifetime {
		t.Errorf("default lifetime %s", got)
	}
	if got := s.WithReplyLifetime(48*time.Hour, nil).ReplyLifetime(); got != 48*time.Hour {
		t.Errorf("lifetime %s, want 48h", got)
	}
}
