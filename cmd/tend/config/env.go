package config

import (
	"reflect"
	"slices"
	"strings"
)

// EnvPrefix starts every environment variable that overrides a key.
const EnvPrefix = "TEND_"

// envKey is one key that the environment can set: every scalar (and list
// of scalars, written comma-separated) outside the inboxes and agents
// lists. The set is derived from the Config type so that a new key gets its
// variable for free.
type envKey struct {
	Name  string // TEND_SMTP_LISTEN
	Path  string // smtp.listen
	Index []int  // field index path into Config
}

// envKeys lists the overridable keys in struct order. Sections (struct
// keys, and the lists of structs) are returned separately: a variable under
// a known section that matches no key is a typo and is reported, while any
// other TEND_* variable (TEND_CI, TEND_TEST_POSTGRES_DSN) is not ours and is
// left alone.
func envKeys() (keys []envKey, sections []string) {
	var walk func(t reflect.Type, path string, index []int)
	walk = func(t reflect.Type, path string, index []int) {
		for _, k := range keysOf(t, path) {
			f, p := k.Field, k.Path
			idx := append(slices.Clone(index), k.Index)
			switch {
			case f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[After]():
				if path == "" {
					sections = append(sections, envName(p))
				}
				walk(f.Type, p, idx)
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct,
				f.Type.Kind() == reflect.Pointer:
				if path == "" {
					sections = append(sections, envName(p))
				}
			default:
				keys = append(keys, envKey{Name: envName(p), Path: p, Index: idx})
			}
		}
	}
	walk(reflect.TypeFor[Config](), "", nil)
	return keys, sections
}

func envName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// applyEnv sets every TEND_* variable in env (KEY=VALUE strings, as from
// os.Environ; the last of duplicates wins) over c.
//
// A variable under a known section that names no key (TEND_SMTP_LISTN) is
// an error, with a suggestion, since it is almost certainly a typo that
// would otherwise silently do nothing. Variables outside the sections are
// ignored: they belong to tests, CI or other tools.
func applyEnv(c *Config, env []string, src *sources) Errors {
	keys, sections := envKeys()
	byName := make(map[string]envKey, len(keys))
	names := make([]string, len(keys))
	for i, k := range keys {
		byName[k.Name] = k
		names[i] = k.Name
	}
	vars := map[string]string{}
	var order []string
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		if _, seen := vars[name]; !seen {
			order = append(order, name)
		}
		vars[name] = value
	}
	slices.Sort(order)

	var errs Errors
	root := reflect.ValueOf(c).Elem()
	for _, name := range order {
		k, ok := byName[name]
		if !ok {
			if msg := unknownEnv(name, names, sections); msg != "" {
				errs = append(errs, &Error{Env: name, Msg: msg})
			}
			continue
		}
		src.setEnv(k.Path, name)
		if err := setScalar(root.FieldByIndex(k.Index), vars[name]); err != nil {
			errs = append(errs, &Error{Env: name, Key: k.Path, Msg: err.Error()})
		}
	}
	return errs
}

// unknownEnv explains why an unknown variable is an error, or returns ""
// when it is not ours to judge.
func unknownEnv(name string, names, sections []string) string {
	for _, s := range sections {
		if name != s && !strings.HasPrefix(name, s+"_") {
			continue
		}
		if s == envName("inboxes") || s == envName("agents") {
			return "lists (inboxes, agents) can only be set in the config file"
		}
		return didYouMean("variable", name, names)
	}
	return ""
}
