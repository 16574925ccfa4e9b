package config

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem in the configuration, located as precisely as
// possible: the file and line of the offending key or value, or the
// environment variable that set it.
type Error struct {
	// File is the config file's name as given to Load or Parse ("" without a file).
	File string
	// Line is 1-based; 0 when the value is a default or came from the environment.
	Line int
	// Key is the key path, e.g. inboxes[0].response_time; "" for errors about the document itself.
	Key string
	// Msg says what is wrong.
	Msg string
	// Env names the TEND_* variable that set the value, when it came from the environment.
	Env string
}

// Error formats the problem as file:line: key: message, the way compilers
// do, so that editors can jump to it.
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.Env != "":
		b.WriteString("env ")
		b.WriteString(e.Env)
		b.WriteString(": ")
	case e.File != "" && e.Line > 0:
		b.WriteString(e.File)
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	case e.File != "":
		b.WriteString(e.File)
		b.WriteString(": ")
	case e.Line > 0:
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one load; Load and Parse collect them all
// instead of stopping at the first, so that one run of check-config shows
// everything to fix.
type Errors []*Error

// Error lists the problems one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes the individual errors to errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sortErrors puts errors with a line first, in file order, and keeps the
// rest (defaults, environment) in the order they were found.
func sortErrors(es Errors) {
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Compare(sortLine(a), sortLine(b))
	})
}

func sortLine(e *Error) int {
	if e.Line == 0 {
		return math.MaxInt
	}
	return e.Line
}
