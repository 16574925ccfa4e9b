package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
)

// Load reads the YAML file at path and returns the effective
// configuration: defaults, then the file, then the TEND_* variables in env
// (KEY=VALUE strings as from os.Environ, injected so tests need not touch
// the process environment).
//
// path "" loads no file: Default() plus env, relative paths against the
// working directory. An unreadable file is an error wrapping the os error
// (errors.Is(err, fs.ErrNotExist) works); problems in the content are
// returned together as Errors.
func Load(path string, env []string) (Config, error) {
	if path == "" {
		return finish(Default(), "", ".", env, newSources(), nil)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data, env)
}

// Parse is Load for a file already in memory. name is used in error
// messages and its directory anchors relative paths.
//
// The returned Config is complete: relative paths are resolved, the sqlite
// dsn and secret_file have their derived defaults, addresses are lowercase,
// and password_file contents are in the password fields. On error the
// Config is the zero value and the error is Errors, one entry per problem.
func Parse(name string, data []byte, env []string) (Config, error) {
	c := Default()
	src := newSources()
	d := &decoder{file: name, src: src}
	d.decodeDocument(data, &c)
	dir := "."
	if name != "" {
		dir = filepath.Dir(name)
	}
	return finish(c, name, dir, env, src, d.errs)
}

// finish runs the steps after the file: paths, environment, derived
// defaults, validation.
func finish(c Config, name, dir string, env []string, src *sources, errs Errors) (Config, error) {
	resolvePaths(reflect.ValueOf(&c).Elem(), dir)
	envErrs := applyEnv(&c, env, src)
	for _, e := range envErrs {
		src.failed[e.Key] = true
	}
	errs = append(errs, envErrs...)
	derive(&c)
	for _, is := range validate(&c) {
		if src.failed[is.err.Key] {
			continue // already reported: the value did not even parse
		}
		is.err.File = name
		src.locate(is.err, is.near)
		errs = append(errs, is.err)
	}
	if len(errs) > 0 {
		sortErrors(errs)
		return Config{}, errs
	}
	return c, nil
}

// derive fills the defaults that depend on other keys.
func derive(c *Config) {
	if c.Database.Driver == "sqlite" && c.Database.DSN == "" {
		c.Database.DSN = filepath.Join(c.DataDir, "tend.db")
	}
	if c.SecretFile == "" {
		c.SecretFile = filepath.Join(c.DataDir, "secret")
	}
}

// resolvePaths joins every relative `tend:"path"` field with dir, walking
// lists and optional blocks too.
func resolvePaths(v reflect.Value, dir string) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			resolvePaths(v.Elem(), dir)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Struct {
			for i := range v.Len() {
				resolvePaths(v.Index(i), dir)
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := v.Field(i)
			if t.Field(i).Tag.Get("tend") == "path" && f.Kind() == reflect.String {
				if p := f.String(); p != "" && !filepath.IsAbs(p) {
					f.SetString(filepath.Join(dir, p))
				}
				continue
			}
			resolvePaths(f, dir)
		}
	}
}
