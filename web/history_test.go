package web

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestTicketPageShowsCustomerHistory: the ticket page lists the
// customer's other tickets, open ones first, and no one else's.
func TestTicketPageShowsCustomerHistory(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	old := e.deliver(mail("Ann <ann@example.com>", "a1@example.com", "Password reset", "I cannot reset my password."))
	e.setTicket(old.Ticket, "state = 'resolved'")
	e.clock.Advance(24 * time.Hour)
	open := e.deliver(mail("Ann <ann@example.com>", "a2@example.com", "Export stuck", "The export is stuck."))
	e.clock.Advance(time.Hour)
	other := e.deliver(mail("Bob <bob@example.com>", "b1@example.com", "Unrelated", "Hello."))
	e.clock.Advance(time.Hour)
	now := e.deliver(mail("Ann <ann@example.com>", "a3@example.com", "REFUND!!!", "Money back please."))

	ts := e.serve()
	b := newBrowser(t, ts.URL)
	b.login("alice@acme.test", agentPW)
	code, body := b.get(fmt.Sprintf("/tickets/%d", now.Ticket))
	if code != http.StatusOK {
		t.Fatalf("ticket page = %d", code)
	}
	_, hist, ok := strings.Cut(body, `id="history"`)
	if !ok {
		t.Fatal("no history panel")
	}
	hist, _, _ = strings.Cut(hist, "</section>")
	iOpen := strings.Index(hist, fmt.Sprintf(`href="/tickets/%d"`, open.Ticket))
	iOld := strings.Index(hist, fmt.Sprintf(`href="/tickets/%d"`, old.Ticket))
	if iOpen < 0 || iOld < 0 || iOpen > iOld {
		t.Errorf("history wants open #%d before resolved #%d:\n%s", open.Ticket, old.Ticket, hist)
	}
	if strings.Contains(hist, fmt.Sprintf(`href="/tickets/%d"`, other.Ticket)) || strings.Contains(hist, fmt.Sprintf(`href="/tickets/%d"`, now.Ticket)) {
		t.Errorf("history shows another customer's ticket or this one:\n%s", hist)
	}
}
