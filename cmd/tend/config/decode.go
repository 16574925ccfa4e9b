package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// The decoder walks goccy/go-yaml's AST against the Config type itself
// instead of calling yaml.Unmarshal: Unmarshal stops at the first error,
// while check-config must report every unknown key and bad value, each with
// its line. goccy still does the YAML (lexing, parsing, anchors, quoting,
// syntax errors with positions); this file only maps nodes to fields.

// maxNodes bounds the work a document can ask for through aliases and merge
// keys (the "billion laughs" shape), far above any real configuration.
const maxNodes = 100_000

type decoder struct {
	file    string
	src     *sources
	errs    Errors
	anchors map[string]ast.Node
	nodes   int
	merges  int // depth of nested merge keys, bounded against cycles
}

func (d *decoder) errorf(n ast.Node, key, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line(n), Key: key, Msg: fmt.Sprintf(format, args...)})
	d.src.failed[key] = true
}

func line(n ast.Node) int {
	if n == nil {
		return 0
	}
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line
	}
	return 0
}

// decodeDocument parses data and decodes it over c, which holds the
// defaults.
func (d *decoder) decodeDocument(data []byte, c *Config) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		var ye yaml.Error
		if errors.As(err, &ye) && ye.GetToken() != nil && ye.GetToken().Position != nil {
			d.errs = append(d.errs, &Error{File: d.file, Line: ye.GetToken().Position.Line, Msg: ye.GetMessage()})
			return
		}
		d.errs = append(d.errs, &Error{File: d.file, Msg: err.Error()})
		return
	}
	var body ast.Node
	for _, doc := range f.Docs {
		if doc == nil || doc.Body == nil {
			continue
		}
		if body != nil {
			d.errorf(doc.Body, "", "only one YAML document is allowed")
			return
		}
		body = doc.Body
	}
	if body == nil {
		return // an empty file means all defaults
	}
	d.anchors = map[string]ast.Node{}
	ast.Walk(anchorCollector(d.anchors), body)
	d.decode("", body, reflect.ValueOf(c).Elem())
}

// anchorCollector records every &anchor so aliases can be resolved
// wherever they occur.
type anchorCollector map[string]ast.Node

func (a anchorCollector) Visit(n ast.Node) ast.Visitor {
	if an, ok := n.(*ast.AnchorNode); ok && an.Name != nil {
		a[an.Name.GetToken().Value] = an.Value
	}
	return a
}

// resolve follows anchors, aliases and tags to the node that carries the
// value. A nil result is YAML null.
func (d *decoder) resolve(key string, n ast.Node) (ast.Node, bool) {
	for range 16 {
		switch x := n.(type) {
		case *ast.AnchorNode:
			n = x.Value
		case *ast.TagNode:
			n = x.Value
		case *ast.AliasNode:
			name := ""
			if x.Value != nil {
				name = x.Value.GetToken().Value
			}
			target, ok := d.anchors[name]
			if !ok {
				d.errorf(x, key, "unknown alias *%s", name)
				return nil, false
			}
			n = target
		case *ast.NullNode:
			return nil, true
		default:
			return n, true
		}
	}
	d.errorf(n, key, "aliases nested too deeply")
	return nil, false
}

func (d *decoder) decode(key string, n ast.Node, v reflect.Value) {
	d.nodes++
	if d.nodes > maxNodes {
		if d.nodes == maxNodes+1 {
			d.errorf(n, key, "document too complex (more than %d values after expanding aliases)", maxNodes)
		}
		return
	}
	at := n
	n, ok := d.resolve(key, n)
	if !ok {
		return
	}
	switch {
	case v.Type() == reflect.TypeFor[After]():
		d.decodeAfter(key, at, n, v)
	case v.Kind() == reflect.Struct:
		if n != nil {
			d.decodeStruct(key, n, v)
		}
	case v.Kind() == reflect.Pointer:
		if n == nil {
			v.SetZero()
			return
		}
		p := reflect.New(v.Type().Elem())
		if df, ok := p.Interface().(defaulter); ok {
			df.applyDefaults()
		}
		d.decode(key, n, p.Elem())
		v.Set(p)
	case v.Kind() == reflect.Slice:
		d.decodeSlice(key, at, n, v)
	default:
		d.decodeScalar(key, at, n, v)
	}
}

// structKey is one YAML key of a struct type.
type structKey struct {
	Index int                 // field index
	Field reflect.StructField // the field
	Name  string              // yaml name
	Path  string              // full key path
}

// keysOf lists the YAML keys of struct type t under path; the decoder,
// the environment and the reference all walk the schema through it.
func keysOf(t reflect.Type, path string) []structKey {
	var keys []structKey
	for i := range t.NumField() {
		f := t.Field(i)
		name := yamlName(f)
		if name == "" {
			continue
		}
		keys = append(keys, structKey{Index: i, Field: f, Name: name, Path: join(path, name)})
	}
	return keys
}

func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

func join(key, name string) string {
	if key == "" {
		return name
	}
	return key + "." + name
}

func mappingValues(n ast.Node) ([]*ast.MappingValueNode, bool) {
	switch x := n.(type) {
	case *ast.MappingNode:
		return x.Values, true
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{x}, true
	}
	return nil, false
}

func (d *decoder) decodeStruct(key string, n ast.Node, v reflect.Value) {
	values, ok := mappingValues(n)
	if !ok {
		d.errorf(n, key, "expected a mapping, got %s", kindOf(n))
		return
	}
	keys := keysOf(v.Type(), key)
	idx := make(map[string]int, len(keys))
	names := make([]string, len(keys))
	for i, k := range keys {
		idx[k.Name], names[i] = k.Index, k.Name
	}
	// Merge keys (<<) apply first so that keys written beside them win,
	// as YAML's merge-key convention says.
	for _, mv := range values {
		if _, ok := mv.Key.(*ast.MergeKeyNode); ok {
			d.merge(key, mv.Value, v)
		}
	}
	for _, mv := range values {
		if _, ok := mv.Key.(*ast.MergeKeyNode); ok {
			continue
		}
		name, ok := keyText(mv.Key)
		if !ok {
			d.errorf(mv.Key, key, "keys must be plain strings")
			continue
		}
		if strings.HasPrefix(name, "x-") {
			// Extension keys hold YAML anchors for reuse, as in
			// docker-compose; they configure nothing.
			continue
		}
		i, ok := idx[name]
		if !ok {
			d.errorf(mv.Key, join(key, name), "%s", didYouMean("key", name, names))
			continue
		}
		child := join(key, name)
		d.src.lines[child] = line(mv.Key)
		d.decode(child, mv.Value, v.Field(i))
	}
}

// merge applies a merge key's value: one mapping, or a list of them.
func (d *decoder) merge(key string, n ast.Node, v reflect.Value) {
	n, ok := d.resolve(key, n)
	if !ok || n == nil {
		return
	}
	if seq, ok := n.(*ast.SequenceNode); ok {
		for _, e := range seq.Values {
			d.merge(key, e, v)
		}
		return
	}
	if d.merges >= 8 {
		// Only a merge cycle (an anchor merging itself) gets this deep.
		d.errorf(n, key, "merge keys nested too deeply")
		return
	}
	d.merges++
	d.decodeStruct(key, n, v)
	d.merges--
}

func keyText(k ast.MapKeyNode) (string, bool) {
	var n ast.Node = k
	if mk, ok := n.(*ast.MappingKeyNode); ok {
		n = mk.Value
	}
	return scalarText(n)
}

func (d *decoder) decodeSlice(key string, at, n ast.Node, v reflect.Value) {
	if n == nil {
		v.SetZero()
		return
	}
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		d.errorf(at, key, "expected a list, got %s", kindOf(n))
		return
	}
	if len(seq.Values) == 0 {
		v.SetZero() // [] and an absent list compare equal
		return
	}
	out := reflect.MakeSlice(v.Type(), len(seq.Values), len(seq.Values))
	for i, e := range seq.Values {
		child := fmt.Sprintf("%s[%d]", key, i)
		d.src.lines[child] = line(e)
		elem := out.Index(i)
		if df, ok := elem.Addr().Interface().(defaulter); ok {
			df.applyDefaults()
		}
		d.decode(child, e, elem)
	}
	v.Set(out)
}

// scalarText returns a scalar's text as written: strings unquoted, other
// scalars (numbers, booleans) as their source text, so that `password:
// 0123` stays "0123" rather than becoming 83.
func scalarText(n ast.Node) (string, bool) {
	switch x := n.(type) {
	case *ast.StringNode:
		return x.Value, true
	case *ast.LiteralNode:
		if x.Value == nil {
			return "", true
		}
		return x.Value.Value, true
	case *ast.MappingNode, *ast.MappingValueNode, *ast.SequenceNode:
		return "", false
	case ast.ScalarNode:
		if tk := x.GetToken(); tk != nil {
			return tk.Value, true
		}
	}
	return "", false
}

func (d *decoder) decodeScalar(key string, at, n ast.Node, v reflect.Value) {
	if n == nil {
		v.SetZero() // `key:` with nothing, or ~, clears the value
		return
	}
	s, ok := scalarText(n)
	if !ok {
		d.errorf(at, key, "expected a single value, got %s", kindOf(n))
		return
	}
	if err := setScalar(v, s); err != nil {
		d.errorf(at, key, "%s", err)
	}
}

// decodeAfter reads `seen`, `delete` or `{move: FOLDER}`.
func (d *decoder) decodeAfter(key string, at, n ast.Node, v reflect.Value) {
	if n == nil {
		return // keep the default
	}
	if values, ok := mappingValues(n); ok {
		if len(values) != 1 {
			d.errorf(at, key, "expected seen, delete or {move: FOLDER}")
			return
		}
		name, _ := keyText(values[0].Key)
		if name != AfterMove {
			d.errorf(values[0].Key, join(key, name), "%s", didYouMean("key", name, []string{AfterMove}))
			return
		}
		folder, _ := d.resolve(key, values[0].Value)
		s, ok := scalarText(folder)
		if !ok || strings.TrimSpace(s) == "" {
			d.errorf(values[0].Key, join(key, AfterMove), "needs a folder name")
			return
		}
		v.Set(reflect.ValueOf(After{Action: AfterMove, Folder: s}))
		return
	}
	s, _ := scalarText(n)
	switch s {
	case AfterSeen, AfterDelete:
		v.Set(reflect.ValueOf(After{Action: s}))
	case AfterMove:
		d.errorf(at, key, "move needs a folder: {move: FOLDER}")
	default:
		d.errorf(at, key, "invalid value %q (want seen, delete or {move: FOLDER})", s)
	}
}

func kindOf(n ast.Node) string {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case nil:
		return "nothing"
	}
	return "a single value"
}
