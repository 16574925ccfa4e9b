package rules

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tendhq/tend/vocab"
)

// userRules generates n user rules, all listening on message.received so
// that every one of them is evaluated for the benchmark's event.
func userRules(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "\n- name: user-%d\n  on: message.received\n", i)
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "  if: message.role == \"customer\" && lower(message.subject) contains \"word-%d\"\n  do: [{tag: word-%d}]\n", i, i)
		case 1:
			fmt.Fprintf(&b, "  if: '\"vip-%d\" in ticket.tags && ticket.priority != \"urgent\"'\n  do: [{set_priority: up}]\n", i)
		case 2:
			fmt.Fprintf(&b, "  if: ticket.repeat_contacts > %d || now - ticket.created_at > duration(\"%dh\")\n  do:\n    - notify: {template: notify_repeat, to: leads}\n", i, i+1)
		default:
			fmt.Fprintf(&b, "  if: ticket.customer.address endsWith \"@customer-%d.example\"\n  do:\n    - assign: agent-%d\n    - schedule: {timer: follow-%d, after: \"%dh\"}\n", i, i, i, i+1)
		}
	}
	return b.String()
}

func BenchmarkEvaluate(b *testing.B) {
	src := string(DefaultRules()) + userRules(200)
	e, err := Load("bench.yaml", []byte(src), Options{})
	if err != nil {
		b.Fatal(err)
	}
	if n := len(e.Rules()); n < 200 {
		b.Fatalf("%d rules loaded", n)
	}
	tk := baseTicket()
	tk.State = vocab.StateProposed
	tk.Tags = []string{"vip-1", "billing"}
	ev := Event{Type: vocab.EventMessageReceived, Now: t0.Add(5 * 3600e9), Ticket: tk,
		Message: &Message{Role: RoleCustomer, Class: vocab.ClassHuman, Subject: "Re: word-40 invoice",
			Text: "Hi Lena,\n\nyes, it works now. Thanks!\n\nOn Tue, Jun 3, 2025 Lena wrote:\n> is it solved?"}}
	acts, errs := e.Evaluate(ev)
	if len(errs) > 0 || len(acts) == 0 {
		b.Fatalf("acts %v errs %v", acts, errs)
	}
	b.ReportAllocs()
	for b.Loop() {
		e.Evaluate(ev)
	}
}
