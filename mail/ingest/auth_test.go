package ingest_test

import (
	"context"
	"net"
	"testing"

	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/mail/senderauth"
	"github.com/tendhq/tend/storage"
)

// recordingAuth returns a fixed verdict and keeps what it was asked.
type recordingAuth struct {
	got     []senderauth.Input
	verdict senderauth.Verdict
}

func (r *recordingAuth) Verify(_ context.Context, in senderauth.Input) senderauth.Verdict {
	r.got = append(r.got, in)
	return r.verdict
}

// keepCommitter stores nothing and keeps what it was given.
type keepCommitter struct{ got []*storage.Incoming }

func (k *keepCommitter) Deliver(_ context.Context, in *storage.Incoming) (storage.Delivered, error) {
	k.got = append(k.got, in)
	return storage.Delivered{}, nil
}

type noThreader struct{}

func (noThreader) Place(context.Context, *ingest.Message, *storage.Tx) (storage.Placement, error) {
	return storage.Placement{}, nil
}

// TestPipelineAuth: the verifier gets the SMTP session's facts and the
// one author address, never one of several (a second From field is how a
// signature over one address is passed off as vouching for another), and
// its verdict is what is stored.
func TestPipelineAuth(t *testing.T) {
	verdict := senderauth.Verdict{Method: "local", DKIM: "pass", DKIMDomain: "example.com", SPF: "none", DMARC: "none", FromDomain: "example.com", Aligned: true}
	tests := []struct {
		name, raw, from string
	}{
		{"one author", "From: Ann <ann@example.com>\r\nSubject: a\r\n\r\nx\r\n", "ann@example.com"},
		{"two From fields", "From: Ann <ann@example.com>\r\nFrom: ceo@acme.test\r\nSubject: a\r\n\r\nx\r\n", ""},
		{"two addresses in From", "From: ann@example.com, ceo@acme.test\r\nSubject: a\r\n\r\nx\r\n", ""},
		{"no From", "Subject: a\r\n\r\nx\r\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			auth, c := &recordingAuth{verdict: verdict}, &keepCommitter{}
			p, err := ingest.New(ingest.Options{Committer: c, Threader: noThreader{}, Inboxes: []string{"support@acme.test"}, Auth: auth})
			if err != nil {
				t.Fatal(err)
			}
			env := ingest.Envelope{From: "bounce@example.com", To: []string{"support@acme.test"}, Source: "smtp", ClientIP: net.ParseIP("192.0.2.7"), Helo: "mx.example.com"}
			if _, err := p.Deliver(context.Background(), []byte(tc.raw), env); err != nil {
				t.Fatal(err)
			}
			in := auth.got[0]
			if in.From != tc.from || !in.ClientIP.Equal(env.ClientIP) || in.Helo != "mx.example.com" || in.MailFrom != "bounce@example.com" || in.Message == nil {
				t.Errorf("verifier input %+v", in)
			}
			if a := c.got[0].Auth; !a.Authenticated() || a.DKIMDomain != "example.com" {
				t.Errorf("stored verdict %+v", a)
			}
		})
	}
}
