package ingest_test

import (
	"context"
	"errors"
	"net"
	"net/smtp"
	"net/textproto"
	"sync"
	"testing"
	"time"

	"github.com/tendhq/tend/mail/classify"
	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/mail/smtpd"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/threading"
	"github.com/tendhq/tend/threading/threadingtest"
)

// outcomes is an ingest.Observer that keeps what it is told.
type outcomes struct {
	mu        sync.Mutex
	delivered []storage.Delivered
	failed    []error
}

func (o *outcomes) Delivered(d storage.Delivered, _ time.Duration) {
	o.mu.Lock()
	o.delivered = append(o.delivered, d)
	o.mu.Unlock()
}

func (o *outcomes) Failed(err error) {
	o.mu.Lock()
	o.failed = append(o.failed, err)
	o.mu.Unlock()
}

// TestDeliveryFaults sends mail through the SMTP door to the real
// pipeline and store, with a fault injected into the committer: a commit
// that fails stores nothing and answers 451, and the sender's retry is
// stored once; a commit whose answer is lost (it committed, then the
// caller was told it failed) answers 451 too, and the retry is
// recognised as the same message: one message, one ticket, one work
// item, whatever the sender does.
func TestDeliveryFaults(t *testing.T) {
	cases := []struct {
		name, op        string
		storedByFailure int64 // messages the failed attempt left stored
	}{
		{"commit fails", opDeliver, 0},
		{"answer lost", opDeliverLost, 1},
	}
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			pi := newProcInstall(t, b)
			fc := &faultyCommitter{Committer: pi.c, faults: newFaults()}
			obs := &outcomes{}
			cfg := threading.Config{OwnAddresses: []string{"support@acme.test"}, OwnDomains: []string{"acme.test"},
				SubjectWindow: 7 * 24 * time.Hour, Signer: threadingtest.CorpusSigner(), Clock: pi.clock}
			pipe, err := ingest.New(ingest.Options{Committer: fc, Threader: ingest.DecisionThreader{Config: cfg},
				Inboxes: []string{"support@acme.test"}, Own: classify.Own{Addresses: []string{"support@acme.test"}}, Observer: obs})
			if err != nil {
				t.Fatal(err)
			}
			door := smtpd.New(smtpd.Options{Hostname: "mx.acme.test"}, pipe, ingest.Recipients{Pipeline: pipe, Signer: cfg.Signer, Domain: "acme.test"}, false)
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = door.Serve(l) }()
			t.Cleanup(func() { _ = door.Shutdown(context.Background()) })
			tickets := func(c storage.Counts) (n int64) {
				for _, k := range c.TicketsByState {
					n += k
				}
				return n
			}
			counts := func() storage.Counts {
				t.Helper()
				c, err := pi.store.Counts(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					before := counts()
					raw := plainMail(c.name, "a question")
					fc.fail(c.op, 1, injected(c.op))
					err := smtp.SendMail(l.Addr().String(), nil, "ann@example.com", []string{"support@acme.test"}, []byte(raw))
					var reply *textproto.Error
					if !errors.As(err, &reply) || reply.Code != 451 {
						t.Fatalf("SMTP answer to a failed commit: %v, want 451", err)
					}
					if fc.pending(c.op) != 0 {
						t.Fatal("the fault was not reached")
					}
					obs.mu.Lock()
					nf := len(obs.failed)
					lastFailed := obs.failed[nf-1]
					obs.mu.Unlock()
					if !errors.Is(lastFailed, errInjected) {
						t.Errorf("observer told %v, want the injected failure", lastFailed)
					}
					if got := counts().Messages - before.Messages; got != c.storedByFailure {
						t.Errorf("the failed attempt left %d messages stored, want %d", got, c.storedByFailure)
					}
					// The sender keeps the mail and retries.
					if err := smtp.SendMail(l.Addr().String(), nil, "ann@example.com", []string{"support@acme.test"}, []byte(raw)); err != nil {
						t.Fatalf("retry: %v", err)
					}
					after := counts()
					if m, w, tk := after.Messages-before.Messages, after.PendingWork-before.PendingWork, tickets(after)-tickets(before); m != 1 || w != 1 || tk != 1 {
						t.Errorf("after the retry: %d messages, %d work items, %d tickets; want one of each", m, w, tk)
					}
					obs.mu.Lock()
					d := obs.delivered[len(obs.delivered)-1]
					obs.mu.Unlock()
					if d.Duplicate != (c.storedByFailure == 1) {
						t.Errorf("retry delivered as duplicate %v", d.Duplicate)
					}
				})
			}
		})
	}
}
