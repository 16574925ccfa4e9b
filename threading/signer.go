package threading

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors returned by the Signer's parsers. Callers branch on them:
// the SMTP layer refuses a recipient with ErrBadToken or ErrUnknownKey at
// RCPT time, and treats ErrNotReplyAddress as "some other local part".
var (
	// ErrNotReplyAddress means the local part does not have the shape of a
	// signed address at all (no "reply+", "note+" or "bounce+" prefix).
	ErrNotReplyAddress = errors.New("not a signed address")
	// ErrBadToken means the local part has the shape of a signed address
	// but is malformed or its MAC does not verify: forged, mangled or stale.
	ErrBadToken = errors.New("bad token")
	// ErrUnknownKey means the token names a key id that is not configured
	// (a retired key, or a forgery).
	ErrUnknownKey = errors.New("unknown signing key")
	// ErrExpired means a link token verified but its lifetime is over.
	ErrExpired = errors.New("token expired")
)

// Purpose says what a signed reply address is for. It is bound into the
// MAC and shown as the local-part prefix, so a reply token can never be
// replayed as a note token or the other way round.
type Purpose string

// The purposes of signed agent addresses (docs/design.md, security model).
const (
	// PurposeReply: the agent's mail is relayed to the customer.
	PurposeReply Purpose = "reply"
	// PurposeNote: the agent's mail is kept as an internal note.
	PurposeNote Purpose = "note"
)

// macChars is the length of the MAC in base32 characters: 20 characters
// carry 100 bits, above the 80 bits docs/design.md asks for, and keep the local
// part well under the 64 octets RFC 5321 section 4.5.3.1.1 allows.
const macChars = 20

// linkMACBytes is the MAC length of link tokens; they live in URLs, not
// local parts, so they can afford the full 128 bits.
const linkMACBytes = 16

// b32 is lowercase base32 without padding: mail systems and people change
// the case of local parts, so the alphabet must survive lowercasing.
var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Key is one installation secret with its id. The id is a single lowercase
// letter or digit and travels in every token, so tokens signed with a key
// that is being rotated out keep verifying while it is still configured.
type Key struct {
	ID     string
	Secret []byte
}

// ReplyToken is what a verified signed agent address says.
type ReplyToken struct {
	Purpose Purpose
	Ticket  int64
	Agent   int64
	KeyID   string
}

// Signer mints and verifies every token tend hands out: agent reply and
// note addresses, our outgoing Message-IDs, VERP bounce addresses and
// customer link tokens. It signs with the current key and verifies with
// any configured key, which is how the secret is rotated. A Signer is
// immutable and safe for concurrent use.
type Signer struct {
	current  string
	keys     map[string][]byte
	lifetime time.Duration
	clock    Clock
}

// DefaultReplyLifetime is how long a signed agent address is accepted
// after it was minted, unless WithReplyLifetime says otherwise.
const DefaultReplyLifetime = 90 * 24 * time.Hour

// LegacyReplyCutoff is when signed agent addresses in the first format,
// reply+<ticket>.<agent>.<key><mac> without an issue day, stop being
// accepted: one default lifetime after the release that added the issue
// day (2026-12-01). Until then notifications sent before the upgrade can
// still be answered.
func LegacyReplyCutoff() time.Time { return time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC) }

// NewSigner returns a Signer that signs with the key named current and
// verifies with all of keys. Secrets must be at least 16 bytes; key ids
// must be one character of [a-z0-9] and unique.
func NewSigner(current string, keys ...Key) (*Signer, error) {
	s := &Signer{current: current, keys: make(map[string][]byte, len(keys)), lifetime: DefaultReplyLifetime, clock: wallClock{}}
	for _, k := range keys {
		if !validKeyID(k.ID) {
			return nil, fmt.Errorf("new signer: key id %q: must be one character of [a-z0-9]", k.ID)
		}
		if len(k.Secret) < 16 {
			return nil, fmt.Errorf("new signer: key %q: secret shorter than 16 bytes", k.ID)
		}
		if _, dup := s.keys[k.ID]; dup {
			return nil, fmt.Errorf("new signer: duplicate key id %q", k.ID)
		}
		s.keys[k.ID] = append([]byte(nil), k.Secret...)
	}
	if _, ok := s.keys[current]; !ok {
		return nil, fmt.Errorf("new signer: current key %q is not configured", current)
	}
	return s, nil
}

// WithReplyLifetime returns a Signer like s whose signed agent addresses
// are accepted for lifetime after they were minted (to the day), by
// clock. The issue day, not an expiry, is in the address, so a shorter
// lifetime applies at once to every address already handed out.
func (s *Signer) WithReplyLifetime(lifetime time.Duration, clock Clock) *Signer {
	c := *s
	if lifetime > 0 {
		c.lifetime = lifetime
	}
	if clock != nil {
		c.clock = clock
	}
	return &c
}

// ReplyLifetime is how long the signed agent addresses of s are accepted.
func (s *Signer) ReplyLifetime() time.Duration { return s.lifetime }

func validKeyID(id string) bool {
	return len(id) == 1 && (id[0] >= 'a' && id[0] <= 'z' || id[0] >= '0' && id[0] <= '9')
}

// mac computes HMAC-SHA256 over a domain-separated, length-prefixed
// encoding of the fields, so that no two different field lists (or two
// token kinds) ever feed the same bytes to the MAC.
func (s *Signer) mac(kid string, fields ...string) []byte {
	h := hmac.New(sha256.New, s.keys[kid])
	var n [4]byte
	for _, f := range append([]string{"tend/v1", kid}, fields...) {
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return h.Sum(nil)
}

func (s *Signer) mac32(kid string, fields ...string) string {
	return b32.EncodeToString(s.mac(kid, fields...))[:macChars]
}

// verify32 checks a base32 MAC in constant time (hmac.Equal).
func (s *Signer) verify32(kid, got string, fields ...string) error {
	if _, ok := s.keys[kid]; !ok {
		return ErrUnknownKey
	}
	if !hmac.Equal([]byte(got), []byte(s.mac32(kid, fields...))) {
		return ErrBadToken
	}
	return nil
}

// day is the unit of a signed address's issue time: days since the Unix
// epoch, five decimal digits until the year 2243.
const day = 24 * time.Hour

// Sign returns the local part of a signed agent address for ticket and
// agent, minted now: "reply+<ticket>.<agent>.<day>.<key><mac>" (or
// "note+..."), where day is the issue day (days since 1970-01-01 UTC).
// The purpose is both the visible prefix and bound into the MAC, as is
// the issue day.
func (s *Signer) Sign(purpose Purpose, ticket, agent int64) string {
	t, a := strconv.FormatInt(ticket, 10), strconv.FormatInt(agent, 10)
	d := strconv.FormatInt(s.clock.Now().Unix()/int64(day/time.Second), 10)
	return string(purpose) + "+" + t + "." + a + "." + d + "." + s.current + s.mac32(s.current, "addr/v2", string(purpose), t, a, d)
}

// Verify checks a local part made by Sign. It lowercases first because
// local parts are case-insensitive in practice. Errors: ErrNotReplyAddress
// when the local part is not shaped like one, ErrUnknownKey, ErrBadToken,
// and ErrExpired (only once the MAC verified) for an address minted more
// than the lifetime ago, or one in the first format (no issue day) after
// LegacyReplyCutoff.
func (s *Signer) Verify(localPart string) (ReplyToken, error) {
	lp := strings.ToLower(localPart)
	purpose, rest, ok := strings.Cut(lp, "+")
	if !ok || (Purpose(purpose) != PurposeReply && Purpose(purpose) != PurposeNote) {
		return ReplyToken{}, ErrNotReplyAddress
	}
	parts := strings.Split(rest, ".")
	if (len(parts) != 3 && len(parts) != 4) || len(parts[len(parts)-1]) != 1+macChars {
		return ReplyToken{}, ErrBadToken
	}
	ticket, ok1 := parseID(parts[0])
	agent, ok2 := parseID(parts[1])
	if !ok1 || !ok2 {
		return ReplyToken{}, ErrBadToken
	}
	tok := parts[len(parts)-1]
	kid, got := tok[:1], tok[1:]
	now := s.clock.Now()
	if len(parts) == 3 {
		if err := s.verify32(kid, got, "addr", purpose, parts[0], parts[1]); err != nil {
			return ReplyToken{}, err
		}
		if !now.Before(LegacyReplyCutoff()) {
			return ReplyToken{}, ErrExpired
		}
	} else {
		issued, ok := parseDay(parts[2])
		if !ok {
			return ReplyToken{}, ErrBadToken
		}
		if err := s.verify32(kid, got, "addr/v2", purpose, parts[0], parts[1], parts[2]); err != nil {
			return ReplyToken{}, err
		}
		if !now.Before(issued.Add(s.lifetime)) {
			return ReplyToken{}, ErrExpired
		}
	}
	return ReplyToken{Purpose: Purpose(purpose), Ticket: ticket, Agent: agent, KeyID: kid}, nil
}

// parseDay parses an issue day in canonical decimal ("0" is day 0).
func parseDay(s string) (time.Time, bool) {
	n, ok := int64(0), s == "0"
	if !ok {
		n, ok = parseID(s)
	}
	if !ok || n > 1<<20 {
		return time.Time{}, false
	}
	return time.Unix(n*int64(day/time.Second), 0).UTC(), true
}

// parseID parses a positive decimal id in canonical form (no sign, no
// leading zero), so that each id has exactly one spelling under the MAC.
func parseID(s string) (int64, bool) {
	if s == "" || len(s) > 18 || s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}

// msgIDPrefix marks the local part of Message-IDs we mint.
const msgIDPrefix = "tend."

// MessageID returns a Message-ID (without angle brackets, RFC 5322 section
// 3.6.4) for outgoing mail on ticket from outbox row outboxID:
// "tend.<ticket>.<outbox>.<key><mac>@domain". The ticket is inside and
// signed, so a reply that references it threads even if the database row
// for the outgoing mail is lost, and nobody without the secret can mint
// one that points at a ticket.
func (s *Signer) MessageID(ticket, outboxID int64, domain string) string {
	t, o := strconv.FormatInt(ticket, 10), strconv.FormatInt(outboxID, 10)
	return msgIDPrefix + t + "." + o + "." + s.current + s.mac32(s.current, "msgid", t, o) + "@" + strings.ToLower(domain)
}

// ParseMessageID returns the ticket of a Message-ID made by MessageID
// (brackets optional, any case). ok is false for any other id, and for one
// shaped like ours whose MAC does not verify.
func (s *Signer) ParseMessageID(id string) (ticket int64, ok bool) {
	id = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(id), "<"), ">"))
	local, _, found := strings.Cut(id, "@")
	if !found || !strings.HasPrefix(local, msgIDPrefix) {
		return 0, false
	}
	parts := strings.Split(local[len(msgIDPrefix):], ".")
	if len(parts) != 3 || len(parts[2]) != 1+macChars {
		return 0, false
	}
	t, ok1 := parseID(parts[0])
	_, ok2 := parseID(parts[1])
	if !ok1 || !ok2 {
		return 0, false
	}
	if s.verify32(parts[2][:1], parts[2][1:], "msgid", parts[0], parts[1]) != nil {
		return 0, false
	}
	return t, true
}

// IsOurMessageIDShape reports whether id is shaped like one MessageID
// makes, whether or not its MAC verifies. Decide uses it to say "forged"
// rather than "unknown" on the timeline.
func IsOurMessageIDShape(id string) bool {
	local, _, _ := strings.Cut(strings.ToLower(id), "@")
	return strings.HasPrefix(local, msgIDPrefix)
}

// BounceAddress returns the local part of a VERP return path (RFC 5321
// section 4.1.2 reverse-path) for outbox row outboxID:
// "bounce+<outbox>.<key><mac>". A delivery status notification sent to it
// names the failed outgoing mail without parsing the report, and the MAC
// stops strangers from marking our mail failed.
func (s *Signer) BounceAddress(outboxID int64) string {
	o := strconv.FormatInt(outboxID, 10)
	return "bounce+" + o + "." + s.current + s.mac32(s.current, "bounce", o)
}

// ParseBounceAddress returns the outbox id of a local part made by
// BounceAddress. Errors: ErrNotReplyAddress, ErrBadToken, ErrUnknownKey.
func (s *Signer) ParseBounceAddress(localPart string) (outboxID int64, err error) {
	lp := strings.ToLower(localPart)
	rest, ok := strings.CutPrefix(lp, "bounce+")
	if !ok {
		return 0, ErrNotReplyAddress
	}
	o, tok, ok := strings.Cut(rest, ".")
	if !ok || len(tok) != 1+macChars {
		return 0, ErrBadToken
	}
	id, ok := parseID(o)
	if !ok {
		return 0, ErrBadToken
	}
	if err := s.verify32(tok[:1], tok[1:], "bounce", o); err != nil {
		return 0, err
	}
	return id, nil
}

// b64 is the URL-safe alphabet of RFC 4648 section 5, unpadded, so link
// tokens need no escaping in a URL path or query.
var b64 = base64.RawURLEncoding

// LinkToken returns a URL-safe token for a customer link (for example the
// one-click "yes, it is resolved" confirmation). It binds purpose, ticket
// and expiry under the MAC; VerifyLinkToken refuses it after expires and
// callers compare the purpose, so a token is good for one thing only.
func (s *Signer) LinkToken(purpose string, ticket int64, expires time.Time) string {
	p := b64.EncodeToString([]byte(purpose))
	t := strconv.FormatInt(ticket, 10)
	e := strconv.FormatInt(expires.Unix(), 10)
	m := s.mac(s.current, "link", p, t, e)[:linkMACBytes]
	return s.current + "." + p + "." + t + "." + e + "." + b64.EncodeToString(m)
}

// VerifyLinkToken checks a token made by LinkToken at time now and returns
// what it was issued for. Errors: ErrBadToken, ErrUnknownKey, ErrExpired
// (checked only after the MAC, so an expired token is known to be ours).
func (s *Signer) VerifyLinkToken(token string, now time.Time) (purpose string, ticket int64, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 5 {
		return "", 0, ErrBadToken
	}
	kid, p, t, e, m := parts[0], parts[1], parts[2], parts[3], parts[4]
	if _, ok := s.keys[kid]; !ok {
		return "", 0, ErrUnknownKey
	}
	got, err := b64.DecodeString(m)
	if err != nil || b64.EncodeToString(got) != m {
		return "", 0, ErrBadToken
	}
	if !hmac.Equal(got, s.mac(kid, "link", p, t, e)[:linkMACBytes]) {
		return "", 0, ErrBadToken
	}
	// Only the canonical spelling of each field is accepted, so one token
	// has exactly one string form.
	raw, err := b64.DecodeString(p)
	if err != nil || b64.EncodeToString(raw) != p {
		return "", 0, ErrBadToken
	}
	id, ok := parseID(t)
	exp, err := strconv.ParseInt(e, 10, 64)
	if !ok || err != nil || strconv.FormatInt(exp, 10) != e {
		return "", 0, ErrBadToken
	}
	if !now.Before(time.Unix(exp, 0)) {
		return "", 0, ErrExpired
	}
	return string(raw), id, nil
}
