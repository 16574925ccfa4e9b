package rules

import (
	"errors"
	"strings"
	"testing"

	"github.com/expr-lang/expr"

	"github.com/tendhq/tend/vocab"
)

// TestExprNeedsVocabPatch is why vocabPatch exists: without it expr does
// not compile a comparison of a vocab field with a literal.
func TestExprNeedsVocabPatch(t *testing.T) {
	if _, err := expr.Compile(`ticket.state == "open"`, expr.Env(Env{}), expr.AsBool()); err == nil {
		t.Fatal("expr compares named string types now: vocabPatch and this test may go")
	}
	if _, err := expr.Compile(`ticket.state == "open"`, expr.Env(Env{}), expr.AsBool(), vocabFunction(), expr.Patch(&vocabPatch{})); err != nil {
		t.Fatalf("with the patch: %v", err)
	}
}

// TestRulesReadVocabulary: conditions on every vocabulary field see the
// constants' strings, in every comparison form rules use.
func TestRulesReadVocabulary(t *testing.T) {
	src := `
- name: r
  on: [ticket.created, ticket.state_changed]
  if: |
    event == "ticket.state_changed" && ticket.state == "open" && ticket.prev_state in ["resolved", "closed"]
    && "open" == new_state && message.class != "human" && message.class in ["own-mail", "list"]
    && ticket.state + "!" == "open!"
  do: [{record: matched}]
`
	e, err := Load("rules.yaml", []byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	tk := baseTicket()
	tk.State, tk.PrevState = vocab.StateOpen, vocab.StateClosed
	ev := Event{Type: vocab.EventStateChanged, Now: t0, Ticket: tk, NewState: vocab.StateOpen,
		Message: &Message{Role: RoleCustomer, Class: vocab.ClassOwnMail}}
	for _, tc := range []struct {
		name string
		f    func(*Event)
		want int
	}{
		{"all hold", func(*Event) {}, 1},
		{"other event", func(e *Event) { e.Type = vocab.EventTicketCreated }, 0},
		{"other state", func(e *Event) { e.Ticket.State = vocab.StateWaiting }, 0},
		{"prev state not in the list", func(e *Event) { e.Ticket.PrevState = vocab.StateNew }, 0},
		{"other new state", func(e *Event) { e.NewState = vocab.StateProposed }, 0},
		{"human", func(e *Event) { m := *e.Message; m.Class = vocab.ClassHuman; e.Message = &m }, 0},
		{"class not in the list", func(e *Event) { m := *e.Message; m.Class = vocab.ClassBounce; e.Message = &m }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := ev
			tc.f(&ev)
			acts, errs := e.Evaluate(ev)
			if len(errs) > 0 || len(acts) != tc.want {
				t.Errorf("got %v %v, want %d actions", acts, errs, tc.want)
			}
		})
	}
}

// TestRuleVocabularyLiterals: a literal compared with a vocabulary field
// that names nothing is a load error, so a typo, or the rules' old "own"
// for own mail, cannot make a condition silently never true.
func TestRuleVocabularyLiterals(t *testing.T) {
	for _, tc := range []struct{ cond, want string }{
		{`message.class == "own"`, `"own" is not a message class`},
		{`"Human" != message.class`, `"Human" is not a message class`},
		{`ticket.state in ["new", "opened"]`, `"opened" is not a ticket state`},
		{`ticket.prev_state == "reopened"`, `"reopened" is not a ticket state`},
		{`new_state != "done"`, `"done" is not a ticket state`},
		{`event == "ticket.create"`, `"ticket.create" is not an event rules see`},
		{`event == "ticket.reopened"`, `"ticket.reopened" is not an event rules see`},
	} {
		src := "- name: r\n  on: ticket.created\n  if: '" + tc.cond + "'\n  do: [{record: x}]\n"
		_, err := Load("rules.yaml", []byte(src), Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `rules.yaml:3: rule "r": condition:`) {
			t.Errorf("%s: error %v, want one naming the line and %s", tc.cond, err, tc.want)
		}
		if err != nil && !errors.Is(err, ErrInvalidRules) {
			t.Errorf("%s: %v does not wrap ErrInvalidRules", tc.cond, err)
		}
	}
}
