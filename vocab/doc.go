// Package vocab holds the words tend's parts share: a ticket's State, the
// EventKind of a timeline entry (and of the events the rules react to) and
// the Class of a message. Each is declared once, here, with its constants
// and a parser; storage stores them as text, the rules compare with them,
// the web and the JSON API print them, so the strings are the external
// contract (docs/design.md, /api/ in the README) and never change.
//
// It is one small leaf that imports nothing of tend, so every layer may
// import it, the classifier as well as storage. It is not named "ticket":
// a message's class is not a ticket's, and "ticket" is the name of a
// variable in nearly every function that would use the package.
package vocab

import (
	"fmt"
	"slices"
)

// parse returns the word of all that s spells exactly, or an error naming
// what it is not.
func parse[T ~string](s string, all []T, what string) (T, error) {
	if i := slices.Index(all, T(s)); i >= 0 {
		return all[i], nil
	}
	return "", fmt.Errorf("unknown %s %q", what, s)
}
