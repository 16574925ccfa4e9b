package config

import "strings"

// sources remembers where each key path got its value, so that validation
// errors, which only know the key, can name the line or variable.
type sources struct {
	lines  map[string]int    // key path -> line in the file
	env    map[string]string // key path -> TEND_* variable
	failed map[string]bool   // key paths whose value did not decode
}

func newSources() *sources {
	return &sources{lines: map[string]int{}, env: map[string]string{}, failed: map[string]bool{}}
}

// setEnv records that the environment set path, which hides whatever the
// file said there and below.
func (s *sources) setEnv(path, name string) {
	for k := range s.lines {
		if under(k, path) {
			delete(s.lines, k)
		}
	}
	for k := range s.failed {
		if under(k, path) {
			delete(s.failed, k)
		}
	}
	s.env[path] = name
}

// under reports whether key k is path or inside it.
func under(k, path string) bool {
	return k == path || strings.HasPrefix(k, path+".") || strings.HasPrefix(k, path+"[")
}

// locate fills in the line or variable for an error that names a key: from
// the key itself, else from near (a related key that explains it), else from
// the nearest ancestor that was written somewhere.
func (s *sources) locate(e *Error, near string) {
	if s.locateExact(e, e.Key) || s.locateExact(e, near) {
		return
	}
	for k := parentPath(e.Key); k != ""; k = parentPath(k) {
		if s.locateExact(e, k) {
			return
		}
	}
}

func (s *sources) locateExact(e *Error, k string) bool {
	if name, ok := s.env[k]; ok {
		e.Env = name
		return true
	}
	if line, ok := s.lines[k]; ok {
		e.Line = line
		return true
	}
	return false
}

func parentPath(k string) string {
	i := strings.LastIndexAny(k, ".[")
	if i < 0 {
		return ""
	}
	return k[:i]
}
