package config

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite REFERENCE.md from the Config type")

// refRow is one key of the reference.
type refRow struct {
	path, typ, def, env, doc string
}

// fieldDocs reads the doc comments of struct fields in types.go, so that
// the reference's meanings have one source: the code.
func fieldDocs(t *testing.T) map[string]string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "types.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok {
			return true
		}
		st, ok := ts.Type.(*ast.StructType)
		if !ok {
			return false
		}
		for _, fl := range st.Fields.List {
			for _, name := range fl.Names {
				text := strings.Join(strings.Fields(fl.Doc.Text()), " ")
				// "DataDir holds ..." reads as "Holds ..." in a table.
				text = strings.TrimPrefix(text, name.Name+" ")
				for _, verb := range []string{"is ", "are "} {
					text = strings.TrimPrefix(text, verb)
				}
				if text != "" {
					text = strings.ToUpper(text[:1]) + text[1:]
				}
				docs[ts.Name.Name+"."+name.Name] = text
			}
		}
		return false
	})
	return docs
}

// referenceRows walks the Config type the way the decoder does and lists
// every key with its default, variable and meaning.
func referenceRows(t *testing.T) []refRow {
	t.Helper()
	docs := fieldDocs(t)
	envs := map[string]string{}
	keys, _ := envKeys()
	for _, k := range keys {
		envs[k.Path] = k.Name
	}
	var rows []refRow
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		t := v.Type()
		for _, k := range keysOf(t, path) {
			f, p := k.Field, k.Path
			fv := v.Field(k.Index)
			env := envs[p]
			if env == "" {
				env = "—"
			}
			row := refRow{path: p, env: env, doc: docs[t.Name()+"."+f.Name]}
			switch {
			case f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[After]():
				walk(fv, p)
				continue
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
				row.typ, row.def = "list", listDefault(fv)
				rows = append(rows, row)
				elem := reflect.New(f.Type.Elem())
				elem.Interface().(defaulter).applyDefaults()
				walk(elem.Elem(), p+"[]")
				continue
			case f.Type.Kind() == reflect.Pointer:
				row.typ, row.def = "mapping", "absent"
				rows = append(rows, row)
				elem := reflect.New(f.Type.Elem())
				elem.Interface().(defaulter).applyDefaults()
				walk(elem.Elem(), p)
				continue
			}
			row.typ, row.def = describe(f, fv)
			rows = append(rows, row)
		}
	}
	walk(reflect.ValueOf(Default()), "")
	return rows
}

func listDefault(v reflect.Value) string {
	if v.Len() == 0 {
		return "empty"
	}
	var parts []string
	for i := range v.Len() {
		parts = append(parts, "`"+v.Index(i).Field(0).String()+"`")
	}
	return strings.Join(parts, ", ")
}

func describe(f reflect.StructField, v reflect.Value) (typ, def string) {
	quote := func(s string) string {
		if s == "" {
			return `""`
		}
		return "`" + s + "`"
	}
	switch x := v.Interface().(type) {
	case time.Duration:
		return "duration", quote(formatDuration(x))
	case Size:
		return "size", quote(fmt.Sprint(int64(x)))
	case FileMode:
		return "octal mode", quote(x.String())
	case After:
		return "seen, delete or {move: FOLDER}", quote(x.String())
	case []time.Duration:
		var parts []string
		for _, d := range x {
			parts = append(parts, formatDuration(d))
		}
		return "list of durations", quote("[" + strings.Join(parts, ", ") + "]")
	case []string:
		return "list of strings", quote("[" + strings.Join(x, ", ") + "]")
	case string:
		if f.Tag.Get("tend") == "path" {
			return "path", quote(x)
		}
		return "string", quote(x)
	}
	return v.Kind().String(), quote(fmt.Sprint(v.Interface()))
}

func renderReference(rows []refRow) string {
	var b strings.Builder
	b.WriteString(`# tend configuration reference

<!-- Generated from cmd/tend/config/types.go by TestReference; do not edit.
     Regenerate with: go test ./cmd/tend/config -run TestReference -update -->

Every key is optional and has the default shown. Precedence: defaults, then
the YAML file (` + "`tend serve --config FILE`" + `), then environment variables.
` + "`tend check-config FILE`" + ` reports every problem at once, each with its
line (` + "`tend.yaml:12: inboxes[0].response_time: invalid duration \"4 hours\"`" + `).
An annotated example is in ` + "`tend.example.yaml`" + `.

- **Unknown keys** are errors, with a suggestion for near misses. Keys
  starting with ` + "`x-`" + ` are ignored, so they can hold YAML anchors.
- **Durations** are Go durations plus days: ` + "`90s`, `10m`, `4h`, `14d`, `2d12h`" + `.
- **Sizes** are bytes, or with a unit: ` + "`25MB`" + ` (10^6) or ` + "`25MiB`" + ` (2^20).
- **Paths** in the file resolve against the file's directory; without a
  file, and for paths from the environment, against the working directory.
- **Environment**: every key outside the ` + "`inboxes`" + ` and ` + "`agents`" + ` lists
  has a variable, ` + "`TEND_`" + ` + the key path in capitals joined by ` + "`_`" + `;
  lists of values are comma-separated (` + "`TEND_FOLLOW_THROUGH_NUDGES=48h,120h`" + `),
  an empty value sets an empty string or list. A ` + "`TEND_*`" + ` variable that
  starts like a section (` + "`TEND_SMTP_…`" + `, ` + "`TEND_INBOXES_…`" + `) but names no
  key is an error, to catch typos; other ` + "`TEND_*`" + ` variables
  (` + "`TEND_CI`" + `, ` + "`TEND_TEST_POSTGRES_DSN`" + `) are not configuration and are ignored.
- **Secrets** (` + "`password`, `token_command`, the password in `database.dsn`" + `)
  are blanked by ` + "`Config.Redacted`" + ` before the configuration is logged.
`)
	// Group rows by section, top-level scalars first, then sections in
	// struct order.
	var order []string
	bySection := map[string][]refRow{"top level": nil}
	order = append(order, "top level")
	for _, r := range rows {
		sec := "top level"
		if i := strings.LastIndex(r.path, "."); i >= 0 {
			sec = r.path[:i]
		}
		switch r.typ {
		case "list":
			sec = r.path + "[]"
		case "mapping":
			sec = r.path
		}
		if _, ok := bySection[sec]; !ok {
			order = append(order, sec)
		}
		bySection[sec] = append(bySection[sec], r)
	}
	cell := strings.NewReplacer("|", "\\|", "<", "&lt;", ">", "&gt;")
	for _, sec := range order {
		fmt.Fprintf(&b, "\n## %s\n\n| key | type | default | environment | meaning |\n| --- | --- | --- | --- | --- |\n", sec)
		for _, r := range bySection[sec] {
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", r.path, r.typ, r.def, envCell(r.env), cell.Replace(r.doc))
		}
	}
	return b.String()
}

func envCell(s string) string {
	if s == "—" {
		return s
	}
	return "`" + s + "`"
}

// TestReference keeps REFERENCE.md equal to what the Config type says, so
// that a new key cannot ship undocumented.
func TestReference(t *testing.T) {
	rows := referenceRows(t)
	want := renderReference(rows)
	if *update {
		if err := os.WriteFile("REFERENCE.md", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("REFERENCE.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if !strings.Contains(string(got), "| `"+r.path+"` |") {
			t.Errorf("REFERENCE.md lacks key %s", r.path)
		}
		if r.doc == "" {
			t.Errorf("field for %s has no doc comment", r.path)
		}
	}
	if string(got) != want {
		t.Errorf("REFERENCE.md is stale; run: go test ./cmd/tend/config -run TestReference -update")
	}
}

// TestExampleFile loads tend.example.yaml and checks it equals the
// defaults except where it deliberately shows more (inboxes, agents), and
// that it mentions every key, so the documentation cannot drift.
func TestExampleFile(t *testing.T) {
	t.Parallel()
	c, err := Load("tend.example.yaml", nil)
	if err != nil {
		t.Fatalf("example does not load: %v", err)
	}
	want := effectiveDefault(".")
	imap := &IMAP{}
	imap.applyDefaults()
	imap.Addr, imap.Username, imap.Auth = "imap.acme.test:993", "support@acme.test", "xoauth2"
	imap.TokenCommand = "oauth2-token support@acme.test"
	imap.After = After{Action: AfterMove, Folder: "Archive"}
	want.Inboxes = []Inbox{
		{Address: "support@acme.test", Name: "Acme Support", ResponseTime: 4 * time.Hour, Backfill: "quiet", IMAP: imap,
			Language: "en", TimeZone: "Europe/Berlin", BusinessHours: "Mon-Fri 09:00-17:00", Holidays: []string{"2026-12-25", "2026-12-26"}},
		{Address: "billing@acme.test", Name: "Acme Billing", ResponseTime: 24 * time.Hour, Backfill: "quiet", Language: "en"},
	}
	want.Agents = []Agent{
		{Email: "alice@acme.test", Name: "Alice", Role: "agent"},
		{Email: "lena@acme.test", Name: "Lena", Role: "lead"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("example differs from the defaults beyond inboxes and agents:\n got %+v\nwant %+v", c, want)
	}

	text, err := os.ReadFile("tend.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, r := range referenceRows(t) {
		name := r.path[strings.LastIndexAny(r.path, ".]")+1:]
		if !strings.Contains(string(text), name+":") {
			missing = append(missing, r.path)
		}
	}
	if len(missing) > 0 {
		t.Errorf("tend.example.yaml does not mention: %s", strings.Join(slices.Compact(missing), ", "))
	}
}
