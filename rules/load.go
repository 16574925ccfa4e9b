package rules

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/tendhq/tend/vocab"
)

// ErrInvalidRules is wrapped by every load error, so check-config can tell
// a broken rules file from an I/O failure.
var ErrInvalidRules = errors.New("invalid rules")

// LoadError is one problem in a rules file, located by file, line and rule.
type LoadError struct {
	File string
	Line int
	Rule string // empty when the problem is outside a rule
	Msg  string
}

// Error formats as `rules.yaml:14: rule "acknowledge": condition: unknown name foo`.
func (e *LoadError) Error() string {
	if e.Rule == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: rule %q: %s", e.File, e.Line, e.Rule, e.Msg)
}

// Unwrap makes every LoadError match ErrInvalidRules.
func (e *LoadError) Unwrap() error { return ErrInvalidRules }

// rule is one compiled rule.
type rule struct {
	name    string
	line    int
	on      []vocab.EventKind
	cond    *vm.Program // nil: always
	condAt  int         // line of the condition
	actions []actionSpec
}

// actionSpec is an Action template plus the parts computed per event.
type actionSpec struct {
	base     Action
	after    *vm.Program // Schedule/Suppress delay when not a literal
	address  *vm.Program // Suppress address
	relative int         // SetPriority: +1 up, -1 down, 0 absolute
	line     int         // line of the action, for run-time errors
}

// loader carries the file name and the templates known while parsing.
type loader struct {
	file      string
	templates *Templates
	rule      string // name of the rule being parsed, for messages
}

func (l *loader) errf(n ast.Node, format string, args ...any) error {
	line := 0
	if n != nil && n.GetToken() != nil {
		line = n.GetToken().Position.Line
	}
	return &LoadError{File: l.file, Line: line, Rule: l.rule, Msg: fmt.Sprintf(format, args...)}
}

// parseRules turns the YAML document into compiled rules.
func (l *loader) parseRules(src []byte) ([]*rule, error) {
	f, err := parser.ParseBytes(src, 0)
	if err != nil {
		return nil, &LoadError{File: l.file, Line: yamlErrLine(err), Msg: "yaml: " + firstLine(err.Error())}
	}
	var out []*rule
	seen := map[string]int{}
	for _, doc := range f.Docs {
		body := doc.Body
		if body == nil {
			continue
		}
		if _, ok := body.(*ast.CommentGroupNode); ok {
			continue
		}
		seq, ok := body.(*ast.SequenceNode)
		if !ok {
			return nil, l.errf(body, "the file must be a list of rules (\"- name: …\")")
		}
		for _, item := range seq.Values {
			l.rule = ""
			r, err := l.parseRule(item)
			if err != nil {
				return nil, err
			}
			if prev, dup := seen[r.name]; dup {
				return nil, l.errf(item, "duplicate rule name (first at line %d)", prev)
			}
			seen[r.name] = r.line
			out = append(out, r)
		}
	}
	return out, nil
}

func (l *loader) parseRule(n ast.Node) (*rule, error) {
	pairs, ok := mappingPairs(n)
	if !ok {
		return nil, l.errf(n, "a rule must be a mapping with name, on, if, do")
	}
	r := &rule{line: nodeLine(n)}
	// The name first, so every later message can carry it.
	for _, p := range pairs {
		if keyOf(p) == "name" {
			s, err := l.scalar(p.Value)
			if err != nil {
				return nil, err
			}
			r.name = strings.TrimSpace(s)
			r.line = nodeLine(p.Key)
		}
	}
	if r.name == "" {
		return nil, l.errf(n, "rule without a name")
	}
	l.rule = r.name
	var haveDo bool
	for _, p := range pairs {
		switch keyOf(p) {
		case "name", "description":
		case "on":
			on, err := l.scalarList(p.Value)
			if err != nil {
				return nil, err
			}
			for _, ev := range on {
				if k := vocab.EventKind(ev); !k.RuleEvent() {
					return nil, l.errf(p.Value, "on: unknown event %q", ev)
				}
				r.on = append(r.on, vocab.EventKind(ev))
			}
		case "if":
			src, err := l.scalar(p.Value)
			if err != nil {
				return nil, err
			}
			prog, err := l.compile(p.Value, "condition", src, expr.AsBool())
			if err != nil {
				return nil, err
			}
			r.cond = prog
			r.condAt = valueLine(p.Value)
		case "do":
			haveDo = true
			acts, err := l.parseActions(p.Value)
			if err != nil {
				return nil, err
			}
			r.actions = acts
		default:
			return nil, l.errf(p.Key, "unknown key %q (want name, description, on, if, do)", keyOf(p))
		}
	}
	if len(r.on) == 0 {
		return nil, l.errf(n, "on: missing event")
	}
	if !haveDo || len(r.actions) == 0 {
		return nil, l.errf(n, "do: no actions")
	}
	return r, nil
}

// compile compiles one expression against Env, mapping expr's error
// position onto the YAML file's lines.
func (l *loader) compile(n ast.Node, what, src string, opts ...expr.Option) (*vm.Program, error) {
	fold, words := &durationFolder{}, &vocabPatch{}
	opts = append([]expr.Option{expr.Env(Env{}), expr.DisableBuiltin("now"), vocabFunction(), expr.Patch(fold), expr.Patch(words)}, opts...)
	prog, err := expr.Compile(src, opts...)
	if err == nil && fold.err != nil {
		err = fold.err
	}
	if err == nil && words.err != nil {
		err = words.err
	}
	if err == nil {
		return prog, nil
	}
	line := valueLine(n)
	msg := firstLine(err.Error())
	var fe *file.Error
	if errors.As(err, &fe) {
		msg = fe.Message
		if fe.Line > 1 {
			line += fe.Line - 1
		}
	}
	return nil, &LoadError{File: l.file, Line: line, Rule: l.rule, Msg: what + ": " + msg}
}

func (l *loader) parseActions(n ast.Node) ([]actionSpec, error) {
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		return nil, l.errf(n, "do: must be a list of actions")
	}
	var out []actionSpec
	for _, item := range seq.Values {
		pairs, ok := mappingPairs(item)
		if !ok || len(pairs) != 1 {
			return nil, l.errf(item, "do: each action is one key such as send:, notify:, set_state:, schedule:")
		}
		specs, err := l.parseAction(pairs[0])
		if err != nil {
			return nil, err
		}
		for i := range specs {
			specs[i].line = nodeLine(pairs[0].Key)
		}
		out = append(out, specs...)
	}
	return out, nil
}

func (l *loader) parseAction(p *ast.MappingValueNode) ([]actionSpec, error) {
	kind := ActionKind(keyOf(p))
	v := p.Value
	one := func(s actionSpec) ([]actionSpec, error) { s.base.Kind = kind; return []actionSpec{s}, nil }
	switch kind {
	case Send, Notify:
		f, err := l.fields(v, "template", "to", "auto", "cause")
		if err != nil {
			return nil, err
		}
		a := Action{Template: f["template"], To: f["to"], Auto: kind == Send}
		if a.To == "" && kind == Send {
			a.To = ToCustomer
		}
		if a.Template == "" {
			return nil, l.errf(v, "%s: template missing", kind)
		}
		if l.templates != nil && !l.templates.Has(a.Template) {
			return nil, l.errf(v, "%s: unknown template %q", kind, a.Template)
		}
		if !validRecipient(a.To) {
			return nil, l.errf(v, "%s: to: %q is not one of customer, assignee, agents, leads, assignee_or_agents", kind, a.To)
		}
		if kind == Send && a.To != ToCustomer {
			return nil, l.errf(v, "send: goes to the customer; use notify: for staff")
		}
		if s, ok := f["auto"]; ok {
			switch s {
			case "true":
				a.Auto = true
			case "false":
				a.Auto = false
			default:
				return nil, l.errf(v, "%s: auto: want true or false", kind)
			}
		}
		switch c := f["cause"]; c {
		case "", CauseInbound, CausePerson:
			a.Cause = c
		default:
			return nil, l.errf(v, "%s: cause: want %s or %s", kind, CauseInbound, CausePerson)
		}
		return one(actionSpec{base: a})
	case SetState:
		f, err := l.fieldsOrScalar(v, "state", "state", "reason")
		if err != nil {
			return nil, err
		}
		st, err := vocab.ParseState(f["state"])
		if err != nil {
			return nil, l.errf(v, "set_state: unknown state %q", f["state"])
		}
		return one(actionSpec{base: Action{State: st, Note: f["reason"]}})
	case SetPriority:
		s, err := l.scalar(v)
		if err != nil {
			return nil, err
		}
		switch s {
		case "up":
			return one(actionSpec{relative: 1})
		case "down":
			return one(actionSpec{relative: -1})
		case PriorityLow, PriorityNormal, PriorityHigh, PriorityUrgent:
			return one(actionSpec{base: Action{Priority: s}})
		}
		return nil, l.errf(v, "set_priority: want low, normal, high, urgent, up or down, not %q", s)
	case Assign, Tag, Record:
		s, err := l.scalar(v)
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(s) == "" {
			return nil, l.errf(v, "%s: value missing", kind)
		}
		a := Action{}
		switch kind {
		case Assign:
			a.Assignee = s
		case Tag:
			a.Tag = s
		default:
			a.Note = s
		}
		return one(actionSpec{base: a})
	case Cancel:
		names, err := l.scalarList(v)
		if err != nil {
			return nil, err
		}
		var out []actionSpec
		for _, name := range names {
			out = append(out, actionSpec{base: Action{Kind: Cancel, Timer: name}})
		}
		return out, nil
	case Schedule:
		f, err := l.fields(v, "timer", "after", "business_time")
		if err != nil {
			return nil, err
		}
		if f["timer"] == "" {
			return nil, l.errf(v, "schedule: timer missing")
		}
		s := actionSpec{base: Action{Timer: f["timer"]}}
		if bt, ok := f["business_time"]; ok {
			b, err := strconv.ParseBool(bt)
			if err != nil {
				return nil, l.errf(v, "schedule: business_time: want true or false, got %q", bt)
			}
			s.base.BusinessTime = b
		}
		if err := l.duration(v, "schedule", f["after"], &s); err != nil {
			return nil, err
		}
		return one(s)
	case Suppress:
		f, err := l.fields(v, "address", "after")
		if err != nil {
			return nil, err
		}
		var s actionSpec
		if f["address"] == "" {
			return nil, l.errf(v, "suppress: address missing")
		}
		prog, err := l.compile(v, "suppress: address", f["address"], expr.AsKind(reflect.String))
		if err != nil {
			return nil, err
		}
		s.address = prog
		if err := l.duration(v, "suppress", f["after"], &s); err != nil {
			return nil, err
		}
		return one(s)
	case OpenLinked:
		s, err := l.scalar(v)
		if err != nil {
			return nil, err
		}
		return one(actionSpec{base: Action{Note: s}})
	}
	return nil, l.errf(p.Key, "unknown action %q", kind)
}

// duration sets the delay of s from a literal ("2d") or an expression of
// type time.Duration ("nudges[1] - nudges[0]").
func (l *loader) duration(n ast.Node, kind, src string, s *actionSpec) error {
	if strings.TrimSpace(src) == "" {
		return l.errf(n, "%s: after missing", kind)
	}
	if d, err := parseDurationLiteral(src); err == nil {
		s.base.After = d
		return nil
	}
	prog, err := l.compile(n, kind+": after", src)
	if err != nil {
		return err
	}
	if t := prog.Node().Type(); t == nil || t != reflect.TypeOf(time.Duration(0)) {
		return l.errf(n, "%s: after: %q is not a duration (like 2d, 48h or nudges[0])", kind, src)
	}
	s.after = prog
	return nil
}

// fields reads a flow or block mapping of scalars, rejecting unknown keys.
func (l *loader) fields(n ast.Node, allowed ...string) (map[string]string, error) {
	pairs, ok := mappingPairs(n)
	if !ok {
		return nil, l.errf(n, "want a mapping with %s", strings.Join(allowed, ", "))
	}
	out := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k := keyOf(p)
		known := false
		for _, a := range allowed {
			known = known || a == k
		}
		if !known {
			return nil, l.errf(p.Key, "unknown key %q (want %s)", k, strings.Join(allowed, ", "))
		}
		s, err := l.scalar(p.Value)
		if err != nil {
			return nil, err
		}
		out[k] = s
	}
	return out, nil
}

// fieldsOrScalar accepts either "key: value" shorthand or a mapping.
func (l *loader) fieldsOrScalar(n ast.Node, short string, allowed ...string) (map[string]string, error) {
	if _, ok := mappingPairs(n); ok {
		return l.fields(n, allowed...)
	}
	s, err := l.scalar(n)
	if err != nil {
		return nil, err
	}
	return map[string]string{short: s}, nil
}

// scalar returns the text of a scalar node; null is "".
func (l *loader) scalar(n ast.Node) (string, error) {
	switch v := n.(type) {
	case nil, *ast.NullNode:
		return "", nil
	case *ast.StringNode:
		return v.Value, nil
	case *ast.LiteralNode:
		return v.Value.Value, nil
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		return v.GetToken().Value, nil
	}
	return "", l.errf(n, "want a single value here (quote expressions that start with ! or contain \": \")")
}

// scalarList accepts one scalar or a list of scalars.
func (l *loader) scalarList(n ast.Node) ([]string, error) {
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		s, err := l.scalar(n)
		if err != nil {
			return nil, err
		}
		if s == "" {
			return nil, l.errf(n, "value missing")
		}
		return []string{s}, nil
	}
	var out []string
	for _, item := range seq.Values {
		s, err := l.scalar(item)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// mappingPairs returns the pairs of a mapping node. goccy/go-yaml gives a
// bare MappingValueNode for a one-key mapping, hence the two cases.
func mappingPairs(n ast.Node) ([]*ast.MappingValueNode, bool) {
	switch v := n.(type) {
	case *ast.MappingNode:
		return v.Values, true
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{v}, true
	}
	return nil, false
}

func keyOf(p *ast.MappingValueNode) string {
	if p.Key == nil || p.Key.GetToken() == nil {
		return ""
	}
	return p.Key.GetToken().Value
}

func nodeLine(n ast.Node) int {
	if n == nil || n.GetToken() == nil {
		return 0
	}
	return n.GetToken().Position.Line
}

// valueLine is the line where a scalar's text starts; for a block literal
// ("if: |") that is the line after the indicator.
func valueLine(n ast.Node) int {
	if lit, ok := n.(*ast.LiteralNode); ok && lit.Value != nil {
		if lit.Start != nil {
			return lit.Start.Position.Line + 1
		}
	}
	return nodeLine(n)
}

func validRecipient(to string) bool {
	switch to {
	case ToCustomer, ToAssignee, ToAgents, ToLeads, ToAssigneeOrAgents:
		return true
	}
	return false
}

// yamlErrLine digs the line out of a goccy/go-yaml syntax error ("[3:5] …").
func yamlErrLine(err error) int {
	var line, col int
	if _, scanErr := fmt.Sscanf(err.Error(), "[%d:%d]", &line, &col); scanErr != nil {
		return 0
	}
	return line
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
