package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/jhillyerd/enmime/v2"
)

// relayCapture is the smarthost of an end-to-end test: it takes every mail
// tend sends and keeps its envelope recipients and ticket header.
type relayCapture struct {
	addr string
	mu   sync.Mutex
	got  []sentMail
	// gate, while a test holds it (holdData), keeps every DATA waiting
	// before it is read: senders stay mid-send, their mail leased.
	gate chan struct{}
}

// holdData keeps every DATA from now on waiting until releaseData.
func (c *relayCapture) holdData() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gate = make(chan struct{})
}

// releaseData lets the held DATA go on; without holdData it does nothing.
func (c *relayCapture) releaseData() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gate != nil {
		close(c.gate)
		c.gate = nil
	}
}

type sentMail struct {
	To      []string
	Ticket  string // X-Tend-Ticket
	Subject string
	Auto    string // Auto-Submitted
	Env     *enmime.Envelope
}

func startRelayCapture(t *testing.T) *relayCapture {
	t.Helper()
	c := &relayCapture{}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) { return &captureSession{c: c}, nil }))
	srv.Domain = "relay.test"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.addr = l.Addr().String()
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return c
}

// to returns the mails sent so far to addr about ticket (0: any ticket).
func (c *relayCapture) to(addr string, ticket int64) []sentMail {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []sentMail
	for _, m := range c.got {
		if slices.Contains(m.To, addr) && (ticket == 0 || m.Ticket == fmt.Sprint(ticket)) {
			out = append(out, m)
		}
	}
	return out
}

type captureSession struct {
	c  *relayCapture
	to []string
}

func (s *captureSession) Mail(string, *gosmtp.MailOptions) error { return nil }
func (s *captureSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.to = append(s.to, strings.ToLower(to))
	return nil
}
func (s *captureSession) Reset()        { s.to = nil }
func (s *captureSession) Logout() error { return nil }
func (s *captureSession) Data(r io.Reader) error {
	s.c.mu.Lock()
	gate := s.c.gate
	s.c.mu.Unlock()
	if gate != nil {
		<-gate
	}
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	env, err := enmime.ReadEnvelope(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.c.got = append(s.c.got, sentMail{To: s.to, Ticket: env.GetHeader("X-Tend-Ticket"), Subject: env.GetHeader("Subject"), Auto: env.GetHeader("Auto-Submitted"), Env: env})
	return nil
}

// namedToken creates an API token with the real CLI under a given name
// (an agent token named after the agent carries its inbox restriction).
func (p *tendProc) namedToken(name, role string) string {
	p.t.Helper()
	out, err := exec.Command(tendBinary(p.t), "token", "create", name, "--role", role, "--config", p.cfgPath).CombinedOutput()
	if err != nil {
		p.t.Fatalf("token create: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// accessConfig is the extra config of the access tests: Alice sees only
// billing, Bob every inbox; mail leaves through the capture relay; /metrics
// has its own listener and a token.
func accessConfig(t *testing.T, dir, relay string) string {
	tokFile := filepath.Join(dir, "metrics-token")
	if err := os.WriteFile(tokFile, []byte("m3trics-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`relay: {addr: %q}
agents:
  - {email: alice@acme.test, name: Alice, role: agent, inboxes: [billing@acme.test]}
  - {email: bob@acme.test, name: Bob, role: agent}
  - {email: lena@acme.test, name: Lena, role: lead}
`, relay) + fmt.Sprintf("web: {listen: \"127.0.0.1:0\", base_url: \"http://127.0.0.1\", metrics_listen: \"127.0.0.1:0\", metrics_token_file: %q}\n", tokFile)
}

// writeAccessConfig is writeConfig with accessConfig replacing its agents
// and web blocks (YAML keys may not repeat).
func writeAccessConfig(t *testing.T, backend, relay string) string {
	dir := t.TempDir()
	p := writeConfig(t, dir, backend, "")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var keep []string
	skip := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "agents:"):
			skip = true
			continue
		case strings.HasPrefix(line, "web:"):
			continue
		case skip && strings.HasPrefix(line, "  "):
			continue
		}
		skip = false
		keep = append(keep, line)
	}
	cfg := strings.Join(keep, "\n") + accessConfig(t, dir, relay)
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAccessEndToEnd runs the real binary with agents[].inboxes,
// web.metrics_listen and web.metrics_token_file, and mails it over real
// SMTP: postmaster@ of every domain we accept is taken and lands on an
// admin-only ticket that nothing answers; notifications go only to agents
// who may see the ticket; the API hides other inboxes; /metrics lives on
// its own address behind the token.
func TestAccessEndToEnd(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			relay := startRelayCapture(t)
			p := startTend(t, writeAccessConfig(t, backend, relay.addr))
			admin, lead, alice := p.namedToken("ops", "admin"), p.namedToken("dashboard", "lead"), p.namedToken("alice@acme.test", "agent")

			// postmaster@ for the inbox domain and for smtp.hostname, in
			// any case (RFC 5321 §4.5.1: the local part is case-blind).
			for _, rcpt := range []string{"postmaster@acme.test", "PostMaster@mail.acme.test"} {
				msg := mailText("Remote Admin <admin@remote.example>", rcpt, "Spam from your network to "+rcpt,
					"pm-"+strings.ToLower(rcpt)+"@remote.example", "", "We got spam from your host.")
				if err := sendMail(p.SMTPAddr, "admin@remote.example", []string{rcpt}, msg); err != nil {
					t.Fatalf("RCPT %s: %v, want 250 (RFC 5321 §4.5.1)", rcpt, err)
				}
			}
			if err := sendMail(p.SMTPAddr, "eve@example.com", []string{"postmaster@elsewhere.example"},
				mailText("eve@example.com", "postmaster@elsewhere.example", "x", "relay@example.com", "", "x")); smtpCode(err) != 550 {
				t.Errorf("postmaster of a foreign domain: %v, want 550 (no relay)", err)
			}
			sup := mailText("Ann <ann@example.com>", "support@acme.test", "Printer on fire", "ann-1@example.com", "", "Help.")
			if err := sendMail(p.SMTPAddr, "ann@example.com", []string{"support@acme.test"}, sup); err != nil {
				t.Fatal(err)
			}
			bill := mailText("Bob Buyer <buyer@example.com>", "billing@acme.test", "Invoice wrong", "buyer-1@example.com", "", "Fix it.")
			if err := sendMail(p.SMTPAddr, "buyer@example.com", []string{"billing@acme.test"}, bill); err != nil {
				t.Fatal(err)
			}

			byInbox := map[string]int64{}
			waitFor(t, "four tickets, all handled", 20*time.Second, func() bool {
				var list ticketList
				p.getJSON(admin, "/api/tickets?state=all", &list)
				if len(list.Tickets) != 4 {
					return false
				}
				for _, tk := range list.Tickets {
					var d ticketDetail
					p.getJSON(admin, fmt.Sprintf("/api/tickets/%d", tk.Number), &d)
					if len(d.Messages) == 0 || !d.Messages[0].Parsed {
						return false
					}
					byInbox[d.Inboxes[0]] = tk.Number
				}
				return true
			})
			supT, billT := byInbox["support@acme.test"], byInbox["billing@acme.test"]
			pmT, pmHostT := byInbox["postmaster@acme.test"], byInbox["postmaster@mail.acme.test"]
			if supT == 0 || billT == 0 || pmT == 0 || pmHostT == 0 {
				t.Fatalf("tickets by inbox = %v", byInbox)
			}

			// The acknowledgements and notifications of the two customer
			// tickets arrive; the flows of a ticket are queued in one
			// transaction, so once these are here nothing else is pending
			// for them.
			waitFor(t, "acknowledgements and notifications", 30*time.Second, func() bool {
				return len(relay.to("ann@example.com", supT)) > 0 && len(relay.to("buyer@example.com", billT)) > 0 &&
					len(relay.to("bob@acme.test", supT)) > 0 && len(relay.to("alice@acme.test", billT)) > 0
			})
			if got := relay.to("alice@acme.test", supT); len(got) != 0 {
				t.Errorf("Alice (billing only) was notified of support ticket #%d: %+v", supT, got)
			}
			for _, n := range []int64{pmT, pmHostT} {
				var d ticketDetail
				p.getJSON(admin, fmt.Sprintf("/api/tickets/%d", n), &d)
				for _, m := range d.Messages {
					if m.Direction == "out" {
						t.Errorf("postmaster ticket #%d has outgoing mail %q", n, m.Subject)
					}
				}
				suppressed := false
				for _, e := range d.Events {
					suppressed = suppressed || (e.Kind == "mail.suppressed" && strings.Contains(e.Detail, "postmaster"))
				}
				if !suppressed {
					t.Errorf("postmaster ticket #%d: no timeline entry saying why nothing was sent: %+v", n, d.Events)
				}
			}
			if got := relay.to("admin@remote.example", 0); len(got) != 0 {
				t.Errorf("the postmaster mail's sender got automatic mail: %+v", got)
			}
			for _, who := range []string{"alice@acme.test", "bob@acme.test", "lena@acme.test"} {
				for _, n := range []int64{pmT, pmHostT} {
					if got := relay.to(who, n); len(got) != 0 {
						t.Errorf("%s was notified of postmaster ticket #%d", who, n)
					}
				}
			}

			// The API: Alice's token sees billing only; the lead all but
			// the postmaster's; the admin everything.
			for _, tc := range []struct {
				name, tok string
				want      []int64
			}{
				{"alice", alice, []int64{billT}},
				{"lead", lead, []int64{supT, billT}},
				{"admin", admin, []int64{supT, billT, pmT, pmHostT}},
			} {
				var list ticketList
				p.getJSON(tc.tok, "/api/tickets?state=all", &list)
				var got []int64
				for _, tk := range list.Tickets {
					got = append(got, tk.Number)
				}
				slices.Sort(got)
				want := slices.Sorted(slices.Values(tc.want))
				if !slices.Equal(got, want) {
					t.Errorf("%s lists %v, want %v", tc.name, got, want)
				}
			}
			for tok, want := range map[string]int{alice: 404, lead: 404, admin: 200} {
				if code := p.getJSON(tok, fmt.Sprintf("/api/tickets/%d", pmT), nil); code != want {
					t.Errorf("postmaster ticket via API = %d, want %d", code, want)
				}
			}
			if code := p.getJSON(alice, fmt.Sprintf("/api/tickets/%d", supT), nil); code != 404 {
				t.Errorf("Alice opens support ticket: %d, want 404", code)
			}

			// /metrics: not on the web listener, on its own behind the token.
			get := func(addr, auth string) int {
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+addr+"/metrics", nil)
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				return res.StatusCode
			}
			if p.MetricsAddr == "" {
				t.Fatal("no metrics listener logged")
			}
			if code := get(p.WebAddr, "Bearer m3trics-secret"); code != 404 {
				t.Errorf("/metrics on the web listener = %d, want 404 (metrics_listen set)", code)
			}
			if code := get(p.MetricsAddr, ""); code != 401 {
				t.Errorf("/metrics without the token = %d, want 401", code)
			}
			if code := get(p.MetricsAddr, "Bearer m3trics-secret"); code != 200 {
				t.Errorf("/metrics with the token = %d, want 200", code)
			}
		})
	}
}
