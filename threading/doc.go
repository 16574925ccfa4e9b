// Package threading decides which ticket a message belongs to. It is pure:
// given a message, its envelope and a Lookup, it returns a Decision and the
// evidence behind it.
package threading
