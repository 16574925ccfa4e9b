package rules

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/vocab"
)

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unknown name in condition", `
- name: ok
  on: ticket.created
  do:
    - record: x

- name: acknowledge
  on: ticket.created
  if: message.role == "customer" && foo
  do:
    - send: {template: acknowledgement}
`, `rules.yaml:9: rule "acknowledge": condition: unknown name foo`},
		{"condition not bool", `
- name: r
  on: ticket.created
  if: ticket.number + 1
  do: [{record: x}]
`, `rules.yaml:4: rule "r": condition: expected bool`},
		{"error on second line of block condition", `
- name: multi
  on: message.received
  if: |
    message.role == "customer"
    && ticket.nope > 1
  do: [{record: x}]
`, `rules.yaml:6: rule "multi": condition: type rules.Ticket has no field nope`},
		{"wall clock is not available", `
- name: clock
  on: timer.due
  if: now() > ticket.created_at
  do: [{record: x}]
`, `rules.yaml:4: rule "clock": condition:`},
		{"bad duration literal in a condition", `
- name: d
  on: timer.due
  if: now - ticket.created_at > duration("2 days")
  do: [{record: x}]
`, `rules.yaml:4: rule "d": condition: duration("2 days"): want a duration like 2d, 4h or 90m`},
		{"unknown event", `
- name: e
  on: message.recieved
  do: [{record: x}]
`, `rules.yaml:3: rule "e": on: unknown event "message.recieved"`},
		{"unknown template", `
- name: t
  on: ticket.created
  do:
    - send: {template: acknowledgment}
`, `rules.yaml:5: rule "t": send: unknown template "acknowledgment"`},
		{"bad recipient", `
- name: t
  on: ticket.created
  do:
    - notify: {template: notify_breach, to: everyone}
`, `rules.yaml:5: rule "t": notify: to: "everyone" is not one of`},
		{"send to staff", `
- name: t
  on: ticket.created
  do:
    - send: {template: notify_breach, to: leads}
`, `use notify: for staff`},
		{"after is not a duration", `
- name: s
  on: ticket.created
  do:
    - schedule: {timer: x, after: ticket.subject}
`, `rules.yaml:5: rule "s": schedule: after: "ticket.subject" is not a duration`},
		{"after missing", `
- name: s
  on: ticket.created
  do:
    - schedule: {timer: x}
`, `rules.yaml:5: rule "s": schedule: after missing`},
		{"unknown state", `
- name: s
  on: ticket.created
  do:
    - set_state: solved
`, `rules.yaml:5: rule "s": set_state: unknown state "solved"`},
		{"bad priority", `
- name: p
  on: ticket.created
  do:
    - set_priority: critical
`, `rules.yaml:5: rule "p": set_priority: want low, normal, high, urgent, up or down`},
		{"unknown action", `
- name: a
  on: ticket.created
  do:
    - delete: ticket
`, `rules.yaml:5: rule "a": unknown action "delete"`},
		{"unknown rule key", `
- name: k
  on: ticket.created
  when: true
  do: [{record: x}]
`, `rules.yaml:4: rule "k": unknown key "when"`},
		{"unknown action field", `
- name: k
  on: ticket.created
  do:
    - send: {template: nudge, too: customer}
`, `rules.yaml:5: rule "k": unknown key "too"`},
		{"no actions", `
- name: empty
  on: ticket.created
`, `rules.yaml:2: rule "empty": do: no actions`},
		{"no name", `
- on: ticket.created
  do: [{record: x}]
`, `rules.yaml:2: rule without a name`},
		{"duplicate name", `
- name: a
  on: ticket.created
  do: [{record: x}]
- name: a
  on: ticket.created
  do: [{record: y}]
`, `rules.yaml:5: rule "a": duplicate rule name (first at line 2)`},
		{"not a list", `
name: a
on: ticket.created
`, `rules.yaml:2: the file must be a list of rules`},
		{"yaml syntax", "- name: a\n  on: [ticket.created\n", `rules.yaml:`},
		{"unquoted bang", `
- name: b
  on: ticket.created
  if: !message.imported
  do: [{record: x}]
`, `rules.yaml:`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("rules.yaml", []byte(tc.src), Options{})
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\n does not contain %q", err, tc.want)
			}
			if !errors.Is(err, ErrInvalidRules) {
				t.Errorf("error %v does not wrap ErrInvalidRules", err)
			}
		})
	}
}

func TestLoadForms(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "rules", "forms.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := Load("forms.yaml", src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tk := baseTicket()
	tk.Tags = []string{"vip"}
	acts, errs := e.Evaluate(Event{Type: vocab.EventTicketCreated, Now: t0, Ticket: tk, Message: customerMsg("hi")})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := []string{
		"assign assignee=lena", "tag tag=vip-customer", "set_priority priority=urgent",
		"set_state state=open note=vip", "cancel timer=a", "cancel timer=b",
		"schedule timer=callback after=36h0m0s", "schedule timer=promise after=4h0m0s",
		"notify template=notify_note to=leads auto",
	}
	if got := brief(acts); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("actions:\n got  %q\n want %q", got, want)
	}
	// An event type without rules yields nothing; a rule listening on two
	// events runs on both.
	acts, _ = e.Evaluate(Event{Type: vocab.EventTimerDue, Now: t0, Ticket: tk, Timer: &Timer{Name: "x"}})
	if len(acts) != 1 || acts[0].Kind != Record {
		t.Errorf("timer.due: got %v, want the two-event rule's record", acts)
	}
}

// A rule that fails at run time is reported with its name and line; the
// rules before and after it still contribute their actions.
func TestRuntimeFailureDoesNotStopOtherRules(t *testing.T) {
	src := `
- name: before
  on: ticket.created
  do: [{record: before}]

- name: breaks
  on: ticket.created
  if: ticket.tags[3] == "x"
  do: [{record: never}]

- name: bad-delay
  on: ticket.created
  do:
    - record: half-applied
    - schedule: {timer: t, after: "nudges[7]"}

- name: negative-delay
  on: ticket.created
  do:
    - schedule: {timer: t, after: "nudges[0] - nudges[1]"}

- name: after
  on: ticket.created
  do: [{record: after}]
`
	e, err := Load("user.yaml", []byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	acts, errs := e.Evaluate(Event{Type: vocab.EventTicketCreated, Now: t0, Ticket: baseTicket(), Message: customerMsg("x")})
	if got := brief(acts); strings.Join(got, ",") != "record note=before,record note=after" {
		t.Errorf("actions = %q, want before and after only (a failing rule contributes nothing)", got)
	}
	wantErrs := []string{
		`user.yaml:8: rule "breaks": on ticket.created: condition: index out of range`,
		`user.yaml:15: rule "bad-delay": on ticket.created: schedule t: after: index out of range`,
		`user.yaml:20: rule "negative-delay": on ticket.created: schedule t: after is -72h0m0s, want a positive delay`,
	}
	if len(errs) != len(wantErrs) {
		t.Fatalf("errors = %v, want %d", errs, len(wantErrs))
	}
	for i, w := range wantErrs {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %d = %q, want prefix %q", i, errs[i].Error(), w)
		}
	}
}

func TestParseDurationLiteral(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"2d", 48 * time.Hour, true},
		{"48h", 48 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"90m", 90 * time.Minute, true},
		{" 5d ", 120 * time.Hour, true},
		{"nudges[0]", 0, false},
		{"d", 0, false},
		{"2x", 0, false},
		{"2dd", 0, false},
		{"99999999d", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseDurationLiteral(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("parseDurationLiteral(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestDescribeResponseTime(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{4 * time.Hour, "within 4 hours"},
		{time.Hour, "within 1 hour"},
		{30 * time.Minute, "within 30 minutes"},
		{90 * time.Minute, "within 90 minutes"},
		{24 * time.Hour, "within 1 day"},
		{48 * time.Hour, "within 2 days"},
		{150 * time.Minute, "within 3 hours"},
		{0, "as soon as we can"},
	}
	for _, tc := range tests {
		if got := DescribeResponseTime(tc.in); got != tc.want {
			t.Errorf("DescribeResponseTime(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
