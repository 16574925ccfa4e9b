package senderauth_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/mail/senderauth"
	"github.com/tendhq/tend/mail/senderauth/senderauthtest"
)

func readEML(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var clientIP = net.ParseIP("192.0.2.10")

// TestLocal verifies real signatures and SPF records through the fake
// resolver: every verdict a hostile or broken sender can cause.
func TestLocal(t *testing.T) {
	raw := readEML(t, "thunderbird.eml")
	tests := []struct {
		name string
		// setup publishes records and returns the message as sent.
		setup    func(t *testing.T, r *senderauthtest.Resolver) []byte
		mailFrom string
		want     senderauth.Verdict
	}{
		{
			name: "dkim pass aligned",
			setup: func(t *testing.T, r *senderauthtest.Resolver) []byte {
				return senderauthtest.NewKey(t, r, "example.com", "s1").Sign(t, raw)
			},
			mailFrom: "bounces@other.test",
			want:     senderauth.Verdict{DKIM: "pass", DKIMDomain: "example.com", SPF: "none", SPFDomain: "other.test", DMARC: "none", Aligned: true},
		},
		{
			name: "dkim pass from a subdomain, relaxed alignment",
			setup: func(t *testing.T, r *senderauthtest.Resolver) []byte {
				return senderauthtest.NewKey(t, r, "mail.example.com", "s1").Sign(t, raw)
			},
			want: senderauth.Verdict{DKIM: "pass", DKIMDomain: "mail.example.com", SPF: "none", SPFDomain: "mx.example.com", DMARC: "none", Aligned: true},
		},
		{
			name: "dkim pass from a subdomain, strict alignment in the DMARC record",
			setup: func(t *testing.T, r *senderauthtest.Resolver) []byte {
				r.Set("_dmarc.example.com", "v=DMARC1; p=reject; adkim=s")
				return senderauthtest.NewKey(t, r, "mail.example.com", "s1").Sign(t, raw)
			},
			want: senderauth.Verdict{DKIM: "pass", DKIMDomain: "mail.example.com", SPF: "none", SPFDomain: "mx.example.com", DMARC: "fail"},
		},
		{
			name: "dkim pass for an unrelated domain is not alignment",
			setup: func(t *testing.T, r *senderauthtest.Resolver) []byte {
				r.Set("_dmarc.example.com", "v=DMARC1; p=quarantine")
				return senderauthtest.NewKey(t, r, "evil.test", "s1").Sign(t, raw)
			},
			want: senderauth.Verdict{DKIM: "pass", DKIMDomain: "evil.test", SPF: "none", SPFDomain: "mx.example.com", DMARC: "fail"},
		},
		{
			name: "dkim fail: body changed after signing",
			setup: func(t *testing.T, r *senderauthtest.Resolver) []byte {
				signed := senderauthtest.NewKey(t, r, "example.com", "s1").Sign(t, raw)
				return bytes.Replace(signed, []byte("invoice 2291"), []byte("invoice 9999"), 1)
			},
			want: senderauth.Verdict{DKIM: "fail", DKIMDomain: "example.com", SPF: "none", SPFDomain: "mx.example.com", DMARC: "none"},
		},
		{
			name: "dkim key missing from DNS",
			setup: func(t *testing.T, r *senderauthtest.Resolver) []byte {
				k := senderauthtest.NewKey(t, r, "example.com", "s1")
				r.TXT = map[string][]string{}
				return k.Sign(t, raw)
			},
			want: senderauth.Verdict{DKIM: "permerror", DKIMDomain: "example.com", SPF: "none", SPFDomain: "mx.example.com", DMARC: "none"},
		},
		{
			name: "dkim key lookup SERVFAIL is temperror",
			setup: func(t *testing.T, r *senderauthtest.Resolver) []byte {
				r.Fail["s1._domainkey.example.com"] = true
				return senderauthtest.NewKey(t, r, "example.com", "s1").Sign(t, raw)
			},
			want: senderauth.Verdict{DKIM: "temperror", DKIMDomain: "example.com", SPF: "none", SPFDomain: "mx.example.com", DMARC: "none"},
		},
		{
			name: "spf pass aligned",
			setup: func(t *testing.T, r *senderauthtest.Resolver) []byte {
				r.Set("example.com", "v=spf1 ip4:192.0.2.0/24 -all")
				r.Set("_dmarc.example.com", "v=DMARC1; p=reject")
				return raw
			},
			mailFrom: "ann@example.com",
			want:     senderauth.Verdict{DKIM: "none", SPF: "pass", SPFDomain: "example.com", DMARC: "pass", Aligned: true},
		},
		{
			name: "spf pass for another domain is not alignment",
			setup: func(t *testing.T, r *senderauthtest.Resolver) []byte {
				r.Set("evil.test", "v=spf1 ip4:192.0.2.0/24 -all")
				return raw
			},
			mailFrom: "x@evil.test",
			want:     senderauth.Verdict{DKIM: "none", SPF: "pass", SPFDomain: "evil.test", DMARC: "none"},
		},
		{
			name: "spf fail",
			setup: func(t *testing.T, r *senderauthtest.Resolver) []byte {
				r.Set("example.com", "v=spf1 ip4:198.51.100.1 -all")
				r.Set("_dmarc.example.com", "v=DMARC1; p=reject")
				return raw
			},
			mailFrom: "ann@example.com",
			want:     senderauth.Verdict{DKIM: "none", SPF: "fail", SPFDomain: "example.com", DMARC: "fail"},
		},
		{
			name: "spf softfail",
			setup: func(t *testing.T, r *senderauthtest.Resolver) []byte {
				r.Set("example.com", "v=spf1 ip4:198.51.100.1 ~all")
				return raw
			},
			mailFrom: "ann@example.com",
			want:     senderauth.Verdict{DKIM: "none", SPF: "softfail", SPFDomain: "example.com", DMARC: "none"},
		},
		{
			name: "spf of the HELO name for the null sender",
			setup: func(t *testing.T, r *senderauthtest.Resolver) []byte {
				r.Set("mx.example.com", "v=spf1 ip4:192.0.2.10 -all")
				return raw
			},
			want: senderauth.Verdict{DKIM: "none", SPF: "pass", SPFDomain: "mx.example.com", DMARC: "none", Aligned: true},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := senderauthtest.NewResolver()
			msg := tc.setup(t, r)
			v := senderauth.New(senderauth.Options{Local: true, Resolver: r})
			got := v.Verify(context.Background(), senderauth.Input{
				Message: bytes.NewReader(msg), From: "ann@example.com", ClientIP: clientIP, Helo: "mx.example.com", MailFrom: tc.mailFrom,
			})
			want := tc.want
			want.Method, want.FromDomain = senderauth.MethodLocal, "example.com"
			if got != want {
				t.Errorf("verdict\n got %+v\nwant %+v", got, want)
			}
			if got.Authenticated() != want.Aligned {
				t.Errorf("Authenticated() = %v", got.Authenticated())
			}
		})
	}
}

// TestLocalOff: with local verification off and no trusted authserv-id,
// nothing is looked up and the verdict says "not checked".
func TestLocalOff(t *testing.T) {
	r := senderauthtest.NewResolver()
	signed := senderauthtest.NewKey(t, r, "example.com", "s1").Sign(t, readEML(t, "thunderbird.eml"))
	v := senderauth.New(senderauth.Options{Local: false, Resolver: r})
	got := v.Verify(context.Background(), senderauth.Input{Message: bytes.NewReader(signed), From: "ann@example.com", ClientIP: clientIP, MailFrom: "ann@example.com"})
	if got.Checked() || len(r.Lookups) != 0 {
		t.Errorf("verify off: verdict %+v, lookups %v", got, r.Lookups)
	}
}

// TestTimeout: a resolver that never answers costs at most the timeout,
// and the verdict is temperror, never a failure.
func TestTimeout(t *testing.T) {
	r := senderauthtest.NewResolver()
	k := senderauthtest.NewKey(t, r, "example.com", "s1")
	for _, n := range []string{"s1._domainkey.example.com", "example.com", "_dmarc.example.com"} {
		r.Hang[n] = true
	}
	v := senderauth.New(senderauth.Options{Local: true, Resolver: r, Timeout: 100 * time.Millisecond})
	start := time.Now()
	got := v.Verify(context.Background(), senderauth.Input{Message: bytes.NewReader(k.Sign(t, readEML(t, "thunderbird.eml"))), From: "ann@example.com", ClientIP: clientIP, MailFrom: "ann@example.com"})
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("verification took %s with a 100ms timeout", took)
	}
	if got.DMARC != senderauth.TempError || got.Aligned || got.Failed() {
		t.Errorf("verdict %+v (failed %v): want temperror, not a failure", got, got.Failed())
	}
}

// TestUpstream reads only the trusted server's Authentication-Results.
func TestUpstream(t *testing.T) {
	const ours = "mx.acme.test"
	tests := []struct {
		name   string
		fields []string
		ok     bool
		want   senderauth.Verdict
	}{
		{
			name:   "foreign authserv-id ignored",
			fields: []string{"mx.evil.test; dkim=pass header.d=example.com; spf=pass smtp.mailfrom=ann@example.com; dmarc=pass header.from=example.com"},
		},
		{
			name:   "foreign authserv-id ignored, ours used",
			fields: []string{"mx.acme.test; spf=fail smtp.mailfrom=ann@example.com; dmarc=fail header.from=example.com", "mx.evil.test; dmarc=pass header.from=example.com"},
			ok:     true,
			want:   senderauth.Verdict{DKIM: "none", SPF: "fail", SPFDomain: "example.com", DMARC: "fail"},
		},
		{
			name:   "a forged field with our id below ours does not count",
			fields: []string{"MX.ACME.TEST; dkim=none; spf=softfail smtp.mailfrom=ann@example.com", "mx.acme.test; dmarc=pass header.from=example.com"},
			ok:     true,
			want:   senderauth.Verdict{DKIM: "none", SPF: "softfail", SPFDomain: "example.com", DMARC: "none"},
		},
		{
			name:   "dkim pass aligned without dmarc",
			fields: []string{"mx.acme.test; dkim=pass header.d=mail.example.com header.s=s1"},
			ok:     true,
			want:   senderauth.Verdict{DKIM: "pass", DKIMDomain: "mail.example.com", SPF: "none", DMARC: "none", Aligned: true},
		},
		{
			name:   "dkim pass for another domain",
			fields: []string{"mx.acme.test; dkim=pass header.d=evil.test; spf=none"},
			ok:     true,
			want:   senderauth.Verdict{DKIM: "pass", DKIMDomain: "evil.test", SPF: "none", DMARC: "none"},
		},
		{
			name:   "dmarc pass for another From domain",
			fields: []string{"mx.acme.test; dmarc=pass header.from=evil.test"},
			ok:     true,
			want:   senderauth.Verdict{DKIM: "none", SPF: "none", DMARC: "permerror"},
		},
		{
			name:   "dmarc pass",
			fields: []string{"mx.acme.test; spf=pass smtp.mailfrom=example.com; dmarc=pass header.from=example.com"},
			ok:     true,
			want:   senderauth.Verdict{DKIM: "none", SPF: "pass", SPFDomain: "example.com", DMARC: "pass", Aligned: true},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := senderauth.Upstream(ours, tc.fields, "ann@example.com")
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v (%+v)", ok, tc.ok, got)
			}
			if !ok {
				return
			}
			want := tc.want
			want.Method, want.ServID, want.FromDomain = senderauth.MethodUpstream, ours, "example.com"
			if got != want {
				t.Errorf("verdict\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestUpstreamBeforeLocal: with a trusted authserv-id, its verdict wins
// and nothing is looked up; without its field, local verification runs.
func TestUpstreamBeforeLocal(t *testing.T) {
	r := senderauthtest.NewResolver()
	raw := senderauthtest.NewKey(t, r, "example.com", "s1").Sign(t, readEML(t, "thunderbird.eml"))
	v := senderauth.New(senderauth.Options{Local: true, AuthServID: "mx.acme.test", Resolver: r})
	in := senderauth.Input{Message: bytes.NewReader(raw), From: "ann@example.com", AuthResults: []string{"mx.acme.test; dkim=fail header.d=example.com; dmarc=fail header.from=example.com"}}
	if got := v.Verify(context.Background(), in); got.Method != senderauth.MethodUpstream || got.Authenticated() || len(r.Lookups) != 0 {
		t.Errorf("trusted upstream fail: %+v, lookups %v", got, r.Lookups)
	}
	in = senderauth.Input{Message: bytes.NewReader(raw), From: "ann@example.com", AuthResults: []string{"mx.evil.test; dkim=fail"}}
	if got := v.Verify(context.Background(), in); got.Method != senderauth.MethodLocal || !got.Authenticated() {
		t.Errorf("no trusted field: %+v", got)
	}
}

// FuzzUpstream feeds arbitrary Authentication-Results fields: no panic,
// and a verdict is only ever built from the trusted authserv-id.
func FuzzUpstream(f *testing.F) {
	f.Add("mx.acme.test; dkim=pass header.d=example.com; spf=pass smtp.mailfrom=a@example.com; dmarc=pass header.from=example.com", "a@example.com")
	f.Add("mx.acme.test (comment); none", "")
	f.Add("mx.evil.test; dmarc=pass", "a@example.com")
	f.Add("mx.acme.test; dkim=pass header.d=", "@")
	f.Fuzz(func(t *testing.T, field, from string) {
		v, ok := senderauth.Upstream("mx.acme.test", []string{field}, from)
		if !ok {
			return
		}
		if !strings.EqualFold(v.ServID, "mx.acme.test") {
			t.Fatalf("verdict from %q", v.ServID)
		}
		if v.Aligned && v.FromDomain == "" {
			t.Fatalf("aligned with no From domain: %+v", v)
		}
	})
}
