package rules

import (
	htmltemplate "html/template"
	"slices"
	texttemplate "text/template"
	"text/template/parse"
)

// namesField reports whether any of the parse trees (a body's and those
// of the templates it defines) names field anywhere: as a field of dot ({{.Agent}},
// {{with .Agent}}), of a variable ({{$.Agent.Name}}) or of a chain. It
// errs on the side of yes: a field of that name on any other value counts
// too. Functions cannot reach the data (the only one is join), and a
// {{template}} call runs one of the templates given, so nothing else can
// read the field.
func namesField(trees []*parse.Tree, field string) bool {
	for _, t := range trees {
		if t != nil && nodeNames(t.Root, field) {
			return true
		}
	}
	return false
}

// pairTrees are the parse trees of a pair's body, text and HTML. Read
// before the HTML template first runs: html/template rewrites its trees
// (escaping) on its first execution.
func pairTrees(text *texttemplate.Template, html *htmltemplate.Template) []*parse.Tree {
	var out []*parse.Tree
	for _, t := range text.Templates() {
		out = append(out, t.Tree)
	}
	if html != nil {
		for _, t := range html.Templates() {
			out = append(out, t.Tree)
		}
	}
	return out
}

// nodeNames walks one parse tree for namesField.
func nodeNames(n parse.Node, field string) bool {
	switch n := n.(type) {
	case nil:
		return false
	case *parse.ListNode:
		if n == nil {
			return false
		}
		for _, c := range n.Nodes {
			if nodeNames(c, field) {
				return true
			}
		}
	case *parse.ActionNode:
		return nodeNames(n.Pipe, field)
	case *parse.PipeNode:
		if n == nil {
			return false
		}
		for _, c := range n.Cmds {
			if nodeNames(c, field) {
				return true
			}
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			if nodeNames(a, field) {
				return true
			}
		}
	case *parse.FieldNode:
		return slices.Contains(n.Ident, field)
	case *parse.VariableNode:
		return slices.Contains(n.Ident, field)
	case *parse.ChainNode:
		return slices.Contains(n.Field, field) || nodeNames(n.Node, field)
	case *parse.IfNode:
		return branchNames(&n.BranchNode, field)
	case *parse.RangeNode:
		return branchNames(&n.BranchNode, field)
	case *parse.WithNode:
		return branchNames(&n.BranchNode, field)
	case *parse.TemplateNode:
		return nodeNames(n.Pipe, field)
	}
	return false
}

func branchNames(b *parse.BranchNode, field string) bool {
	return nodeNames(b.Pipe, field) || nodeNames(b.List, field) || nodeNames(b.ElseList, field)
}
