package vocab

import "slices"

// State is where a ticket is in the follow-through state machine
// (docs/design.md "The follow-through state machine"). Stored as text in
// tickets.state.
type State string

// The states, in the order of the state machine.
const (
	StateNew         State = "new"
	StateOpen        State = "open"
	StateWaiting     State = "waiting"
	StateProposed    State = "proposed"
	StateResolved    State = "resolved"
	StateUnconfirmed State = "unconfirmed"
	StateClosed      State = "closed"
)

// States lists every state, in the order of the state machine (the web's
// filters show them in this order).
func States() []State {
	return []State{StateNew, StateOpen, StateWaiting, StateProposed, StateResolved, StateUnconfirmed, StateClosed}
}

// Valid reports whether s is one of the State constants.
func (s State) Valid() bool { return slices.Contains(States(), s) }

// ParseState returns the State s names, or an error for a string that
// names none (exact match: states are lower case).
func ParseState(s string) (State, error) { return parse(s, States(), "ticket state") }
