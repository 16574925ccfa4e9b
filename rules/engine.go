package rules

import (
	_ "embed"
	"errors"
	"fmt"
	"time"

	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/tendhq/tend/vocab"
)

//go:embed default.yaml
var defaultRules []byte

// Options configure the engine and the gate. Zero fields take the defaults
// of DefaultOptions.
type Options struct {
	// Nudges are the delays after a resolution is proposed: a nudge at
	// Nudges[0], and the ticket becomes unconfirmed at the last one. The
	// default rules need two, strictly increasing.
	Nudges []time.Duration
	// RepeatContactsToLead is how many repeat contacts make a lead hear of it.
	RepeatContactsToLead int
	// ReopenWindow is how long after resolution a reply reopens the ticket;
	// later replies open a new linked ticket.
	ReopenWindow time.Duration
	// BounceSuppression is how long no automatic mail goes to an address
	// after a hard bounce.
	BounceSuppression time.Duration
	// MaxAutoPerAddressPerHour and MaxAutoPerTicketPerDay bound automatic
	// mail that answers inbound mail (flood protection, see Gate).
	MaxAutoPerAddressPerHour, MaxAutoPerTicketPerDay int
	// NoAcknowledgement turns acknowledgements off (follow_through.acknowledge:
	// false): the rules see acknowledge == false.
	NoAcknowledgement bool
	// OwnAddresses are addresses of this installation besides the inbox
	// addresses (relay sender, bounce address): never mailed automatically.
	OwnAddresses []string
	// Templates are checked at load for every template a rule names; nil
	// means the embedded defaults.
	Templates *Templates
}

// DefaultOptions are the documented defaults (issue 5): nudges after 2 and
// 5 days, a lead told after 2 repeat contacts, a 14-day reopen window,
// 30 days of bounce suppression, 3 automatic mails per address per hour
// and 10 per ticket per day.
func DefaultOptions() Options {
	return Options{
		Nudges:                   []time.Duration{2 * 24 * time.Hour, 5 * 24 * time.Hour},
		RepeatContactsToLead:     2,
		ReopenWindow:             14 * 24 * time.Hour,
		BounceSuppression:        30 * 24 * time.Hour,
		MaxAutoPerAddressPerHour: 3,
		MaxAutoPerTicketPerDay:   10,
	}
}

// withDefaults fills zero fields from DefaultOptions.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if len(o.Nudges) == 0 {
		o.Nudges = d.Nudges
	}
	if o.RepeatContactsToLead <= 0 {
		o.RepeatContactsToLead = d.RepeatContactsToLead
	}
	if o.ReopenWindow <= 0 {
		o.ReopenWindow = d.ReopenWindow
	}
	if o.BounceSuppression <= 0 {
		o.BounceSuppression = d.BounceSuppression
	}
	if o.MaxAutoPerAddressPerHour <= 0 {
		o.MaxAutoPerAddressPerHour = d.MaxAutoPerAddressPerHour
	}
	if o.MaxAutoPerTicketPerDay <= 0 {
		o.MaxAutoPerTicketPerDay = d.MaxAutoPerTicketPerDay
	}
	return o
}

func (o Options) validate() error {
	prev := time.Duration(0)
	for i, d := range o.Nudges {
		if d <= prev {
			return fmt.Errorf("options: nudges[%d] = %s: nudges must be positive and increasing", i, d)
		}
		prev = d
	}
	return nil
}

// Engine holds compiled rules. It is immutable after Load and safe for
// concurrent use.
type Engine struct {
	file    string
	opts    Options
	rules   []*rule
	byEvent map[vocab.EventKind][]*rule // rules per event type, in file order
}

// Load parses and compiles a rules file. name is the file name used in
// error messages. Every condition and duration expression is compiled and
// type-checked against Env here, and every template a rule names must
// exist, so a broken file fails at load (tend check-config) with
// "name:line: rule \"x\": …", never on a live mail. Errors wrap
// ErrInvalidRules.
func Load(name string, src []byte, opts Options) (*Engine, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	if opts.Templates == nil {
		t, err := LoadTemplates("")
		if err != nil {
			return nil, fmt.Errorf("load rules: %w", err)
		}
		opts.Templates = t
	}
	l := &loader{file: name, templates: opts.Templates}
	rules, err := l.parseRules(src)
	if err != nil {
		return nil, err
	}
	e := &Engine{file: name, opts: opts, rules: rules, byEvent: map[vocab.EventKind][]*rule{}}
	for _, r := range rules {
		for _, on := range r.on {
			e.byEvent[on] = append(e.byEvent[on], r)
		}
	}
	return e, nil
}

// Default loads the embedded default rules (rules/default.yaml), which
// need at least two nudges.
func Default(opts Options) (*Engine, error) {
	if len(opts.Nudges) == 1 {
		return nil, errors.New("default rules: need two nudge delays (nudge, then unconfirmed)")
	}
	return Load("default.yaml", defaultRules, opts)
}

// DefaultRules returns the embedded default rules file, for documentation
// and for users who want to start their own file from it.
func DefaultRules() []byte { return append([]byte(nil), defaultRules...) }

// Options returns the engine's effective options (defaults filled in),
// which the executor passes to Gate.
func (e *Engine) Options() Options { return e.opts }

// Rules returns the names of the loaded rules in file order.
func (e *Engine) Rules() []string {
	out := make([]string, len(e.rules))
	for i, r := range e.rules {
		out[i] = r.name
	}
	return out
}

// Evaluate decides the actions for one event. Every rule whose "on" matches
// and whose condition holds contributes its actions, in file order. A rule
// that fails at run time contributes nothing and is reported as a
// RuleError; the other rules still run. Evaluate never panics and has no
// side effects; for message.received and ticket.created it fills the
// message's confirmation answer (ClassifyAnswer) when the ticket awaits one.
func (e *Engine) Evaluate(ev Event) ([]Action, []RuleError) {
	candidates := e.byEvent[ev.Type]
	if len(candidates) == 0 {
		return nil, nil
	}
	ev = Prepare(ev)
	env := newEnv(&ev, &e.opts)
	// One VM for all rules of this event: expr.Run would allocate a fresh
	// one (stack and scopes) per expression.
	x := &runner{env: &env}
	var acts []Action
	var errs []RuleError
	for _, r := range candidates {
		out, line, err := e.run(r, x)
		if err != nil {
			errs = append(errs, RuleError{Rule: r.name, File: e.file, Line: line, Event: ev.Type, Err: err})
			continue
		}
		acts = append(acts, out...)
	}
	return acts, errs
}

// Prepare fills what Evaluate reads from a message's text: its
// confirmation answer (ClassifyAnswer) when the ticket awaits one, and
// whether it only thanks (IsGratitude). The executor calls it before
// Evaluate so that the mails it renders afterwards (the "not solved" line
// of a notification) see the same answer the rules saw. The caller's
// message is copied, never changed; a field already set is kept.
func Prepare(ev Event) Event {
	if ev.Message == nil {
		return ev
	}
	m := *ev.Message
	if m.Answer == "" && awaitsAnswer(&ev) {
		m.Answer = ClassifyAnswer(m.Text)
	}
	if !m.Gratitude && mayThank(&ev) {
		m.Gratitude = IsGratitude(m.Text)
	}
	ev.Message = &m
	return ev
}

// awaitsAnswer: only a human customer's reply to a ticket waiting for
// confirmation is read as yes or no. Resolved tickets are included so that
// "thanks, that worked" after the thank-you does not reopen the ticket.
func awaitsAnswer(ev *Event) bool {
	m := ev.Message
	switch ev.Ticket.State {
	case vocab.StateProposed, vocab.StateUnconfirmed, vocab.StateResolved:
		return m.Role == RoleCustomer && m.Classification().Class == vocab.ClassHuman
	}
	return false
}

// mayThank: a human customer's reply to a ticket we consider done, or
// nearly, is checked for a bare thank-you, which keeps the state.
func mayThank(ev *Event) bool {
	m := ev.Message
	switch ev.Ticket.State {
	case vocab.StateProposed, vocab.StateUnconfirmed, vocab.StateResolved, vocab.StateClosed:
		return m.Role == RoleCustomer && m.Classification().Class == vocab.ClassHuman
	}
	return false
}

// run evaluates one rule and returns its actions, or the line that failed
// and why. A panic inside expr (it recovers its own, but a method call on
// the environment could still misbehave) becomes an error too.
func (e *Engine) run(r *rule, x *runner) (out []Action, line int, err error) {
	line = r.line
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("panic: %v", p)
		}
	}()
	if r.cond != nil {
		v, err := x.run(r.cond)
		if err != nil {
			return nil, r.condAt, fmt.Errorf("condition: %w", err)
		}
		if ok, _ := v.(bool); !ok {
			return nil, 0, nil
		}
	}
	out = make([]Action, 0, len(r.actions))
	for _, s := range r.actions {
		a := s.base
		a.Rule = r.name
		line = s.line
		if s.after != nil {
			d, err := x.duration(s.after)
			if err != nil {
				return nil, line, fmt.Errorf("%s %s: after: %w", a.Kind, a.Timer, err)
			}
			a.After = d
		}
		if s.address != nil {
			v, err := x.run(s.address)
			if err != nil {
				return nil, line, fmt.Errorf("%s: address: %w", a.Kind, err)
			}
			a.Address, _ = v.(string)
			if a.Address == "" {
				return nil, line, fmt.Errorf("%s: address is empty", a.Kind)
			}
		}
		if s.relative != 0 {
			a.Priority = priorityAt(priorityRank(x.env.Ticket.Priority) + s.relative)
		}
		if (a.Kind == Schedule || a.Kind == Suppress) && a.After <= 0 {
			return nil, line, fmt.Errorf("%s %s: after is %s, want a positive delay", a.Kind, a.Timer, a.After)
		}
		out = append(out, a)
	}
	return out, 0, nil
}

// runner runs the programs of one event in one reused VM.
type runner struct {
	vm  vm.VM
	env *Env
}

// run runs a program and shortens expr's multi-line error (message,
// position, source snippet) to the message: the rule's file and line are
// reported by RuleError, and the timeline wants one line.
func (x *runner) run(p *vm.Program) (any, error) {
	v, err := x.vm.Run(p, x.env)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, errors.New(fe.Message)
		}
		return nil, err
	}
	return v, nil
}

func (x *runner) duration(p *vm.Program) (time.Duration, error) {
	v, err := x.run(p)
	if err != nil {
		return 0, err
	}
	d, ok := v.(time.Duration)
	if !ok {
		return 0, fmt.Errorf("got %T, want a duration", v)
	}
	return d, nil
}
