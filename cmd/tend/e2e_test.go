package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/smtp"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

type ticketList struct {
	Tickets []struct {
		Number   int64  `json:"number"`
		Subject  string `json:"subject"`
		State    string `json:"state"`
		Customer string `json:"customer"`
	} `json:"tickets"`
	NextCursor string `json:"next_cursor"`
}

type apiMessage struct {
	ID        int64    `json:"id"`
	MessageID string   `json:"message_id"`
	From      string   `json:"from"`
	To        []string `json:"to"`
	Cc        []string `json:"cc"`
	Subject   string   `json:"subject"`
	Direction string   `json:"direction"`
	Text      string   `json:"text"`
	Parsed    bool     `json:"parsed"`
}

type ticketDetail struct {
	Number   int64        `json:"number"`
	Subject  string       `json:"subject"`
	State    string       `json:"state"`
	Customer string       `json:"customer"`
	Inboxes  []string     `json:"inboxes"`
	Messages []apiMessage `json:"messages"`
	Events   []struct {
		Kind   string `json:"kind"`
		Detail string `json:"detail"`
	} `json:"events"`
}

// sendMail sends one message over SMTP and returns the server's error.
func sendMail(addr, from string, to []string, msg string) error {
	return smtp.SendMail(addr, nil, from, to, []byte(msg))
}

func smtpCode(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

func mailText(from, to, subject, msgID, extra, body string) string {
	return fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s>\r\nDate: Mon, 2 Mar 2026 09:00:00 +0100\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n%s\r\n%s\r\n",
		from, to, subject, msgID, extra, body)
}

func TestServeEndToEnd(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			p := startTend(t, writeConfig(t, t.TempDir(), backend, ""))
			// The password is on stdout, the log on stderr: wait for it.
			waitFor(t, "the first-start admin password", 10*time.Second, func() bool { return strings.Contains(p.Log(), "with the password") })
			tok := p.token("lead")

			first := mailText("Ann Example <ann@example.com>", "support@acme.test", "Printer on fire", "first@example.com", "", "It is really on fire.")
			if err := sendMail(p.SMTPAddr, "ann@example.com", []string{"support@acme.test"}, first); err != nil {
				t.Fatalf("send: %v", err)
			}
			reply := mailText("Ann Example <ann@example.com>", "support@acme.test", "Re: Printer on fire", "second@example.com",
				"In-Reply-To: <first@example.com>\r\nReferences: <first@example.com>\r\n", "Still burning.")
			if err := sendMail(p.SMTPAddr, "ann@example.com", []string{"support@acme.test"}, reply); err != nil {
				t.Fatalf("send reply: %v", err)
			}
			// The same message again (an MTA retry) is one message.
			if err := sendMail(p.SMTPAddr, "ann@example.com", []string{"support@acme.test"}, reply); err != nil {
				t.Fatalf("send duplicate: %v", err)
			}
			// One message to two inboxes is one ticket both see.
			both := mailText("bob@example.com", "support@acme.test, billing@acme.test", "Invoice wrong", "both@example.com", "", "Please fix.")
			if err := sendMail(p.SMTPAddr, "bob@example.com", []string{"support@acme.test", "billing@acme.test"}, both); err != nil {
				t.Fatalf("send to two inboxes: %v", err)
			}

			err := sendMail(p.SMTPAddr, "eve@example.com", []string{"stranger@acme.test"}, mailText("eve@example.com", "stranger@acme.test", "x", "x@example.com", "", "x"))
			if smtpCode(err) != 550 {
				t.Errorf("unknown recipient: err = %v, want 550", err)
			}
			huge := mailText("eve@example.com", "support@acme.test", "big", "big@example.com", "", strings.Repeat("0123456789abcdef\r\n", 70000))
			if err := sendMail(p.SMTPAddr, "eve@example.com", []string{"support@acme.test"}, huge); smtpCode(err) != 552 {
				t.Errorf("oversized message: err = %v, want 552", err)
			}

			if code := p.getJSON("", "/api/tickets", nil); code != http.StatusUnauthorized {
				t.Errorf("no token: %d, want 401", code)
			}
			if code := p.getJSON("tend_forged", "/api/tickets", nil); code != http.StatusUnauthorized {
				t.Errorf("forged token: %d, want 401", code)
			}
			var list ticketList
			if code := p.getJSON(tok, "/api/tickets?state=all", &list); code != http.StatusOK {
				t.Fatalf("list: %d", code)
			}
			if len(list.Tickets) != 2 {
				t.Fatalf("got %d tickets, want 2: %+v", len(list.Tickets), list.Tickets)
			}
			var ann ticketDetail
			for _, tk := range list.Tickets {
				if tk.Customer == "ann@example.com" {
					p.getJSON(tok, fmt.Sprintf("/api/tickets/%d", tk.Number), &ann)
				}
			}
			var in []int
			for i, m := range ann.Messages {
				if m.Direction == "in" {
					in = append(in, i)
				}
			}
			if len(in) != 2 {
				t.Fatalf("Ann's ticket has %d received messages, want 2 (reply threaded, duplicate dropped): %+v", len(in), ann.Messages)
			}
			if ann.Messages[in[0]].MessageID != "first@example.com" || ann.Messages[in[1]].MessageID != "second@example.com" {
				t.Errorf("messages = %+v", ann.Messages)
			}
			waitFor(t, "the full parse and the acknowledgement", 10*time.Second, func() bool {
				p.getJSON(tok, fmt.Sprintf("/api/tickets/%d", ann.Number), &ann)
				return ann.Messages[in[0]].Parsed && ann.Messages[in[1]].Parsed && len(ann.Messages) >= 3
			})
			if !strings.Contains(ann.Messages[in[0]].Text, "really on fire") {
				t.Errorf("text = %q", ann.Messages[in[0]].Text)
			}
			var ack apiMessage
			for _, m := range ann.Messages {
				if m.Direction == "out" {
					ack = m
					break
				}
			}
			if ack.Direction != "out" || !strings.Contains(ack.Subject, fmt.Sprintf("[#%d]", ann.Number)) || len(ack.To) != 1 || ack.To[0] != "ann@example.com" {
				t.Errorf("acknowledgement = %+v", ack)
			}
			for _, inbox := range []string{"support@acme.test", "billing@acme.test"} {
				var l ticketList
				p.getJSON(tok, "/api/tickets?inbox="+inbox, &l)
				found := false
				for _, tk := range l.Tickets {
					found = found || tk.Customer == "bob@example.com"
				}
				if !found {
					t.Errorf("inbox %s does not see Bob's ticket", inbox)
				}
			}
			for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/": 200} {
				if code := p.getJSON("", path, nil); code != want {
					t.Errorf("GET %s = %d, want %d", path, code, want)
				}
			}
		})
	}
}

func TestTicketCursor(t *testing.T) {
	p := startTend(t, writeConfig(t, t.TempDir(), "sqlite", ""))
	tok := p.token("agent")
	for i := range 5 {
		msg := mailText("c@example.com", "support@acme.test", fmt.Sprintf("Question %d", i), fmt.Sprintf("q%d@example.com", i), "", "?")
		if err := sendMail(p.SMTPAddr, "c@example.com", []string{"support@acme.test"}, msg); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[int64]bool{}
	path := "/api/tickets?limit=2"
	for range 10 {
		var l ticketList
		if code := p.getJSON(tok, path, &l); code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, code)
		}
		for _, tk := range l.Tickets {
			if seen[tk.Number] {
				t.Fatalf("ticket %d listed twice", tk.Number)
			}
			seen[tk.Number] = true
		}
		if l.NextCursor == "" {
			break
		}
		path = "/api/tickets?limit=2&cursor=" + l.NextCursor
	}
	if len(seen) != 5 {
		t.Errorf("paged through %d tickets, want 5", len(seen))
	}
	if code := p.getJSON(tok, "/api/tickets?state=bogus", nil); code != http.StatusBadRequest {
		t.Errorf("bad state filter: %d, want 400", code)
	}
}
