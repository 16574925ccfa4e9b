package rules

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"

	"github.com/tendhq/tend/vocab"
)

// Rules read the vocabulary as strings. expr compares no named string type
// with a literal (ticket.state == "open" does not compile against a
// vocab.State field, TestExprNeedsVocabPatch), so vocabPatch wraps every
// expression of a vocab type in vocabString, and checks each literal such
// an expression is compared with: a state, class or event that does not
// exist ("opened", "own", "ticket.create") is a load error instead of a
// condition that is silently never true.

// vocabString is the conversion vocabPatch inserts.
const vocabString = "vocab_string"

var (
	stateType = reflect.TypeOf(vocab.State(""))
	classType = reflect.TypeOf(vocab.Class(""))
	eventType = reflect.TypeOf(vocab.EventKind(""))
)

// vocabFunction is the expr function behind vocabString.
func vocabFunction() expr.Option {
	return expr.Function(vocabString, func(params ...any) (any, error) {
		switch v := params[0].(type) {
		case vocab.State:
			return string(v), nil
		case vocab.Class:
			return string(v), nil
		case vocab.EventKind:
			return string(v), nil
		}
		return nil, fmt.Errorf("%s(%T)", vocabString, params[0])
	}, new(func(vocab.State) string), new(func(vocab.Class) string), new(func(vocab.EventKind) string))
}

// vocabPatch is the expr patcher described above; err is the first
// literal that names nothing.
type vocabPatch struct{ err error }

// Visit implements ast.Visitor. expr walks children first, so an operand
// is already wrapped when its comparison is visited.
func (p *vocabPatch) Visit(node *ast.Node) {
	if b, ok := (*node).(*ast.BinaryNode); ok {
		p.checkLiterals(b)
	}
	switch (*node).Type() {
	case stateType, classType, eventType:
		ast.Patch(node, &ast.CallNode{Callee: &ast.IdentifierNode{Value: vocabString}, Arguments: []ast.Node{*node}})
	}
}

// checkLiterals checks the literals compared with a vocabulary operand.
func (p *vocabPatch) checkLiterals(b *ast.BinaryNode) {
	switch b.Operator {
	case "==", "!=", "in":
	default:
		return
	}
	t, ok := vocabOperand(b.Left)
	other := b.Right
	if !ok && b.Operator != "in" {
		t, ok = vocabOperand(b.Right)
		other = b.Left
	}
	if !ok {
		return
	}
	var lits []*ast.StringNode
	switch o := other.(type) {
	case *ast.StringNode:
		lits = append(lits, o)
	case *ast.ArrayNode:
		for _, n := range o.Nodes {
			if s, ok := n.(*ast.StringNode); ok {
				lits = append(lits, s)
			}
		}
	}
	for _, l := range lits {
		if why := unknownWord(t, l.Value); why != "" && p.err == nil {
			p.err = fmt.Errorf("%q %s", l.Value, why)
		}
	}
}

// vocabOperand reports the vocabulary type of an operand vocabPatch wrapped.
func vocabOperand(n ast.Node) (reflect.Type, bool) {
	c, ok := n.(*ast.CallNode)
	if !ok || len(c.Arguments) != 1 {
		return nil, false
	}
	if id, ok := c.Callee.(*ast.IdentifierNode); !ok || id.Value != vocabString {
		return nil, false
	}
	return c.Arguments[0].Type(), true
}

// unknownWord says why s is not a word of type t, or "" when it is one.
func unknownWord(t reflect.Type, s string) string {
	switch t {
	case stateType:
		if !vocab.State(s).Valid() {
			return "is not a ticket state (" + join(vocab.States()) + ")"
		}
	case classType:
		if !vocab.Class(s).Valid() {
			return "is not a message class (" + join(vocab.Classes()) + ")"
		}
	case eventType:
		if !vocab.EventKind(s).RuleEvent() {
			return "is not an event rules see (" + join(vocab.RuleEvents()) + ")"
		}
	}
	return ""
}

func join[T ~string](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}
