// Package senderauthtest has the offline DNS and DKIM signing that tests
// of sender authentication use.
package senderauthtest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
)

// Resolver is an in-memory DNS: TXT records by name, A/AAAA by host.
// Unknown names are NXDOMAIN; names in Fail answer SERVFAIL (temporary);
// names in Hang block until the lookup's context ends.
type Resolver struct {
	mu   sync.Mutex
	TXT  map[string][]string
	IP   map[string][]net.IP
	Fail map[string]bool
	Hang map[string]bool
	// Lookups counts the queries, by name.
	Lookups map[string]int
}

// NewResolver returns an empty Resolver.
func NewResolver() *Resolver {
	return &Resolver{TXT: map[string][]string{}, IP: map[string][]net.IP{}, Fail: map[string]bool{}, Hang: map[string]bool{}, Lookups: map[string]int{}}
}

func (r *Resolver) enter(ctx context.Context, name string) error {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	r.mu.Lock()
	r.Lookups[name]++
	hang, fail := r.Hang[name], r.Fail[name]
	r.mu.Unlock()
	if hang {
		<-ctx.Done()
		return &net.DNSError{Err: ctx.Err().Error(), Name: name, IsTimeout: true}
	}
	if fail {
		return &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}
	}
	return nil
}

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// LookupTXT implements senderauth.Resolver.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	if err := r.enter(ctx, name); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.TXT[strings.ToLower(strings.TrimSuffix(name, "."))]; ok {
		return v, nil
	}
	return nil, notFound(name)
}

// LookupMX implements senderauth.Resolver: there are no MX records.
func (r *Resolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	if err := r.enter(ctx, name); err != nil {
		return nil, err
	}
	return nil, notFound(name)
}

// LookupIPAddr implements senderauth.Resolver.
func (r *Resolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	if err := r.enter(ctx, host); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []net.IPAddr
	for _, ip := range r.IP[strings.ToLower(strings.TrimSuffix(host, "."))] {
		out = append(out, net.IPAddr{IP: ip})
	}
	if len(out) == 0 {
		return nil, notFound(host)
	}
	return out, nil
}

// LookupAddr implements senderauth.Resolver: there are no PTR records.
func (r *Resolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	if err := r.enter(ctx, addr); err != nil {
		return nil, err
	}
	return nil, notFound(addr)
}

// Set replaces the TXT records of name.
func (r *Resolver) Set(name string, txt ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.TXT[strings.ToLower(name)] = txt
}

// Key is a DKIM signing key with its DNS record.
type Key struct {
	Domain, Selector string
	Private          ed25519.PrivateKey
}

// NewKey makes an Ed25519 DKIM key (RFC 8463) for domain and publishes it
// in r under selector.
func NewKey(t testing.TB, r *Resolver, domain, selector string) Key {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Set(selector+"._domainkey."+domain, "v=DKIM1; k=ed25519; p="+base64.StdEncoding.EncodeToString(pub))
	return Key{Domain: domain, Selector: selector, Private: priv}
}

// Sign returns raw signed with k.
func (k Key) Sign(t testing.TB, raw []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	err := dkim.Sign(&out, bytes.NewReader(raw), &dkim.SignOptions{
		Domain: k.Domain, Selector: k.Selector, Signer: k.Private,
		HeaderKeys: []string{"From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
