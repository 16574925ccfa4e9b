package compose

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
)

// dnsRecord renders the TXT record a DKIM verifier looks up (RFC 6376
// section 3.6.1).
func dnsRecord(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	switch k := pub.(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(k)
	}
	t.Fatalf("unexpected key %T", pub)
	return ""
}

func writePEM(t *testing.T, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSignVerify(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8RSA, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8Ed, err := x509.MarshalPKCS8PrivateKey(edKey)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		pemType string
		der     []byte
		pub     crypto.PublicKey
	}{
		{"rsa pkcs1", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey), &rsaKey.PublicKey},
		{"rsa pkcs8", "PRIVATE KEY", pkcs8RSA, &rsaKey.PublicKey},
		{"ed25519 pkcs8", "PRIVATE KEY", pkcs8Ed, edKey.Public()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			key, err := LoadDKIMKey(writePEM(t, tc.pemType, tc.der))
			if err != nil {
				t.Fatalf("LoadDKIMKey: %v", err)
			}
			raw, err := Build(htmlReply())
			if err != nil {
				t.Fatal(err)
			}
			signed, err := Sign(raw, DKIM{Domain: "acme.example", Selector: "tend1", Key: key})
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			if !bytes.HasPrefix(signed, []byte("DKIM-Signature:")) || !bytes.HasSuffix(signed, raw) {
				t.Fatalf("signature not prepended to the unchanged message")
			}
			record := dnsRecord(t, tc.pub)
			lookups := 0
			opts := &dkim.VerifyOptions{LookupTXT: func(domain string) ([]string, error) {
				lookups++
				if domain != "tend1._domainkey.acme.example" {
					return nil, fmt.Errorf("unexpected lookup %q", domain)
				}
				return []string{record}, nil
			}}
			vs, err := dkim.VerifyWithOptions(bytes.NewReader(signed), opts)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "acme.example" || lookups != 1 {
				t.Fatalf("verification = %+v (lookups %d)", vs, lookups)
			}
			for _, h := range []string{"from", "to", "subject", "date", "message-id", "in-reply-to", "references", "content-type", "mime-version"} {
				if !containsFold(vs[0].HeaderKeys, h) {
					t.Errorf("%s not signed (signed: %v)", h, vs[0].HeaderKeys)
				}
			}
			// A relay changing the subject must break the signature.
			tampered := bytes.Replace(signed, []byte("Subject: =?utf-8?b?"), []byte("Subject: =?utf-8?B?"), 1)
			tampered = bytes.Replace(tampered, []byte("In-Reply-To: <0"), []byte("In-Reply-To: <1"), 1)
			vs, err = dkim.VerifyWithOptions(bytes.NewReader(tampered), opts)
			if err != nil {
				t.Fatalf("verify tampered: %v", err)
			}
			if len(vs) != 1 || vs[0].Err == nil {
				t.Errorf("tampered message still verifies")
			}
		})
	}
}

func containsFold(l []string, s string) bool {
	for _, x := range l {
		if bytes.EqualFold([]byte(x), []byte(s)) {
			return true
		}
	}
	return false
}

func TestLoadDKIMKeyErrors(t *testing.T) {
	t.Parallel()
	ecDER := []byte("garbage")
	cases := []struct {
		name string
		path func(t *testing.T) string
		bad  bool // wraps ErrBadKey
	}{
		{"missing file", func(t *testing.T) string { return filepath.Join(t.TempDir(), "none.pem") }, false},
		{"not pem", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "k")
			if err := os.WriteFile(p, []byte("hello"), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, true},
		{"certificate", func(t *testing.T) string { return writePEM(t, "CERTIFICATE", ecDER) }, true},
		{"broken pkcs1", func(t *testing.T) string { return writePEM(t, "RSA PRIVATE KEY", ecDER) }, true},
		{"broken pkcs8", func(t *testing.T) string { return writePEM(t, "PRIVATE KEY", ecDER) }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadDKIMKey(tc.path(t))
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, ErrBadKey) != tc.bad {
				t.Errorf("err = %v, ErrBadKey expected %v", err, tc.bad)
			}
		})
	}
}

func TestSignNeedsKey(t *testing.T) {
	t.Parallel()
	if _, err := Sign([]byte("From: a@b\r\n\r\nx"), DKIM{Domain: "d", Selector: "s"}); !errors.Is(err, ErrMissingField) {
		t.Errorf("err = %v", err)
	}
}
