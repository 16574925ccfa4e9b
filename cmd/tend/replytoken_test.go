package main

import (
	"context"
	"net"
	"net/smtp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/mail/smtpd"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/threading"
)

// TestReplyTokenOutsideInboxes: a valid signed reply address is refused at
// RCPT, over a real SMTP socket, when the agent it names may not see its
// ticket (agents[].inboxes; postmaster tickets for admins only), as if
// Alice kept a notification from before she moved to billing.
func TestReplyTokenOutsideInboxes(t *testing.T) {
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			clock := storagetest.NewFakeClock(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
			st := b.Open(t, clock)
			const sup, bill, pm = "support@acme.test", "billing@acme.test", "postmaster@acme.test"
			if err := st.SyncInboxes(ctx, []storage.InboxSpec{{Address: sup}, {Address: bill}, {Address: pm}}); err != nil {
				t.Fatal(err)
			}
			if err := st.SyncAgents(ctx, []storage.AgentSpec{
				{Email: "alice@acme.test", Role: storage.RoleAgent, Inboxes: []string{bill}},
				{Email: "bob@acme.test", Role: storage.RoleAgent},
				{Email: "lena@acme.test", Role: storage.RoleLead},
				{Email: "ada@acme.test", Role: storage.RoleAdmin},
			}); err != nil {
				t.Fatal(err)
			}
			agents, err := st.Agents(ctx)
			if err != nil {
				t.Fatal(err)
			}
			id := map[string]int64{}
			for _, a := range agents {
				id[a.Email] = a.ID
			}
			signer, err := threading.NewSigner("a", threading.Key{ID: "a", Secret: []byte("reply-token-test-secret-0123456789")})
			if err != nil {
				t.Fatal(err)
			}
			committer := st.NewCommitter(16, nil)
			done := make(chan struct{})
			go func() { _ = committer.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			const domain = "mail.acme.test"
			pipe, err := ingest.New(ingest.Options{Committer: committer, Inboxes: []string{sup, bill, pm},
				Threader: ingest.DecisionThreader{Config: threading.Config{OwnAddresses: []string{sup, bill, pm}, OwnDomains: []string{domain},
					SubjectWindow: time.Hour, Signer: signer, Clock: clock}}})
			if err != nil {
				t.Fatal(err)
			}
			door := smtpd.New(smtpd.Options{Hostname: domain}, pipe, ingest.Recipients{Pipeline: pipe, Signer: signer, Domain: domain, MayReply: mayReply(st)}, false)
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = door.Serve(l) }()
			defer func() { _ = door.Shutdown(context.Background()) }()

			ticket := map[string]int64{}
			for _, in := range []string{sup, bill, pm} {
				msg := mailText("ann@example.com", in, "Question for "+in, "q-"+in, "", "Hello.")
				if err := smtp.SendMail(l.Addr().String(), nil, "ann@example.com", []string{in}, []byte(msg)); err != nil {
					t.Fatal(err)
				}
				rows, _, err := st.ListTickets(ctx, storage.TicketFilter{State: "all", Inbox: in})
				if err != nil || len(rows) != 1 {
					t.Fatalf("tickets of %s: %v %v", in, rows, err)
				}
				ticket[in] = rows[0].Number
			}
			for _, tc := range []struct {
				agent, inbox string
				want         int
			}{
				{"alice@acme.test", bill, 250},
				{"alice@acme.test", sup, 550},
				{"alice@acme.test", pm, 550},
				{"bob@acme.test", sup, 250},
				{"bob@acme.test", pm, 550},
				{"lena@acme.test", sup, 250},
				{"lena@acme.test", pm, 550},
				{"ada@acme.test", pm, 250},
			} {
				for _, purpose := range []threading.Purpose{threading.PurposeReply, threading.PurposeNote} {
					rcpt := signer.Sign(purpose, ticket[tc.inbox], id[tc.agent]) + "@" + domain
					msg := mailText(tc.agent, rcpt, "Re: Question", "r-"+rcpt, "", "Answer.")
					err := smtp.SendMail(l.Addr().String(), nil, tc.agent, []string{rcpt}, []byte(msg))
					got := 250
					if err != nil {
						got = smtpCode(err)
					}
					if got != tc.want {
						t.Errorf("%s's %s token for %s's ticket: %d (%v), want %d", tc.agent, purpose, tc.inbox, got, err, tc.want)
					}
				}
			}

			// Past the door (a token accepted before Alice's access
			// changed): the rules never see it, the timeline says why.
			var ran []string
			proc := ingest.NewProcessor(st, ingest.ProcessorOptions{Owner: "test", Clock: clock,
				AfterParse: guardAccess(recorder(func(m storage.Message) {
					if strings.HasPrefix(m.MessageID, "late-") {
						ran = append(ran, m.MessageID)
					}
				}))})
			for _, inbox := range []string{sup, bill} {
				rcpt := signer.Sign(threading.PurposeReply, ticket[inbox], id["alice@acme.test"]) + "@" + domain
				raw := mailText("alice@acme.test", rcpt, "Re: Question", "late-"+inbox, "", "#resolve\r\nDone.")
				if _, err := pipe.Deliver(ctx, []byte(raw), ingest.Envelope{From: "alice@acme.test", To: []string{rcpt}, Source: "test"}); err != nil {
					t.Fatal(err)
				}
			}
			for {
				n, err := proc.RunOnce(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					break
				}
			}
			if want := []string{"late-" + bill}; !slices.Equal(ran, want) {
				t.Errorf("the rules ran for %v, want only %v", ran, want)
			}
			d, err := st.GetTicket(ctx, ticket[sup])
			if err != nil {
				t.Fatal(err)
			}
			held := false
			for _, e := range d.Events {
				held = held || (e.Kind == "mail.suppressed" && strings.Contains(e.Detail, "may not act on this ticket"))
			}
			if !held {
				t.Errorf("support ticket's timeline does not say Alice's mail was held: %+v", d.Events)
			}
		})
	}
}

// recorder is an executor that only records what the access guard let
// through to it.
type recorder func(m storage.Message)

func (r recorder) HandleMessage(_ context.Context, _ *storage.Tx, m storage.Message) error {
	r(m)
	return nil
}

func (r recorder) HandleMessageIn(_ context.Context, _ *storage.Tx, m storage.Message, _ storage.TicketView) error {
	r(m)
	return nil
}
