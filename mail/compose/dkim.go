package compose

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/emersion/go-msgauth/dkim"
)

// ErrBadKey means a DKIM key file holds no usable RSA or Ed25519 key.
var ErrBadKey = errors.New("unusable dkim key")

// signedHeaders are the fields covered by our signature: the ones RFC 6376
// section 5.4.1 recommends that a reader sees, plus the MIME structure so a
// relay cannot swap the body's meaning. Fields absent from a message are
// still listed, which also stops them being added later (section 5.4.2).
var signedHeaders = []string{
	"From", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To",
	"References", "Reply-To", "Content-Type", "MIME-Version",
}

// DKIM names the signing domain (d=), selector (s=) and private key.
type DKIM struct {
	Domain, Selector string
	Key              crypto.Signer
}

// LoadDKIMKey reads a PEM private key: RSA in PKCS#1 ("RSA PRIVATE KEY") or
// PKCS#8 ("PRIVATE KEY"), or Ed25519 in PKCS#8 (RFC 8463).
func LoadDKIMKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load dkim key: %w", err)
	}
	k, err := ParseDKIMKey(b)
	if err != nil {
		return nil, fmt.Errorf("load dkim key %s: %w", path, err)
	}
	return k, nil
}

// ParseDKIMKey is LoadDKIMKey on bytes already in memory (for keys passed
// through configuration or the environment).
func ParseDKIMKey(pemBytes []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("no pem block: %w", ErrBadKey)
	}
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pkcs1: %w: %w", ErrBadKey, err)
		}
		return k, nil
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pkcs8: %w: %w", ErrBadKey, err)
		}
		switch k := k.(type) {
		case *rsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		}
		return nil, fmt.Errorf("pkcs8 key type %T: %w", k, ErrBadKey)
	}
	return nil, fmt.Errorf("pem type %q: %w", block.Type, ErrBadKey)
}

// Sign prepends a DKIM-Signature (RFC 6376) to raw using relaxed/relaxed
// canonicalization, which survives the header refolding and trailing
// whitespace changes relays commonly make.
func Sign(raw []byte, d DKIM) ([]byte, error) {
	if d.Domain == "" || d.Selector == "" || d.Key == nil {
		return nil, fmt.Errorf("dkim sign: domain, selector and key: %w", ErrMissingField)
	}
	opts := &dkim.SignOptions{
		Domain:                 d.Domain,
		Selector:               d.Selector,
		Signer:                 d.Key,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             signedHeaders,
	}
	var out bytes.Buffer
	if err := dkim.Sign(&out, bytes.NewReader(raw), opts); err != nil {
		return nil, fmt.Errorf("dkim sign: %w", err)
	}
	return out.Bytes(), nil
}
