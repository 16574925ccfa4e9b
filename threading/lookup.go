package threading

import (
	"context"
	"time"

	"github.com/tendhq/tend/vocab"
)

// StoredMessage is one stored mail carrying a Message-ID, as Lookup
// returns it.
type StoredMessage struct {
	MessageID string
	// Ticket is the ticket the mail is on now (after merges and splits).
	Ticket int64
	// Outbound is true for mail we sent (acknowledgements, agent replies);
	// a reference to it is strong evidence, a reference to inbound mail is
	// not (see Decide).
	Outbound bool
}

// TicketInfo is the part of a ticket threading looks at.
type TicketInfo struct {
	Number int64
	// State is the follow-through state.
	State      vocab.State
	Customer   string
	UpdatedAt  time.Time
	ResolvedAt time.Time
}

// Lookup is what threading needs from storage. Storage implements it; each
// method is one indexed query, and Decide calls each at most a handful of
// times per message. Implementations must be safe for concurrent use and
// see the state of the delivery transaction they run in.
type Lookup interface {
	// TicketsByMessageIDs returns every stored message on a ticket
	// (inbound or outbound) whose Message-ID is one of ids. ids are at most a few dozen valid ids without brackets; the
	// result may hold several rows per id (duplicated ids), in any order.
	// Query: messages WHERE message_id IN (...) AND ticket IS NOT NULL,
	// index on message_id.
	TicketsByMessageIDs(ctx context.Context, ids []string) ([]StoredMessage, error)
	// Ticket returns the ticket number, resolving merges: for a ticket
	// merged into another it returns the surviving ticket. ok is false when
	// there is no such ticket. Query: tickets by primary key (following
	// merged_into, at most a few hops).
	Ticket(ctx context.Context, number int64) (info TicketInfo, ok bool, err error)
	// IsParticipant reports whether any of addrs (lowercased bare
	// addresses) takes part in ticket: its customer, a CC participant, or
	// an agent on it. Query: participants WHERE ticket = ? AND address IN
	// (...), unique index on (ticket, address), LIMIT 1.
	IsParticipant(ctx context.Context, ticket int64, addrs []string) (bool, error)
	// TicketByThreadIndex returns the ticket of the newest stored message
	// (inbound or outbound) whose Thread-Index root (ThreadIndexRoot) is
	// root. Query: messages WHERE thread_root = ? ORDER BY created_at DESC
	// LIMIT 1, index on (thread_root, created_at).
	TicketByThreadIndex(ctx context.Context, root string) (ticket int64, ok bool, err error)
	// RecentTicketBySubject returns the newest ticket whose customer is
	// customer, whose subject key (NormalizeSubject of the mail that opened
	// it) is normSubject, that is not closed or merged, and that was updated
	// at or after since. Query: tickets WHERE customer = ? AND subject_key
	// = ? AND updated_at >= ? AND state <> 'closed' ORDER BY updated_at DESC
	// LIMIT 1, index on (customer, subject_key, updated_at).
	RecentTicketBySubject(ctx context.Context, customer, normSubject string, since time.Time) (ticket int64, ok bool, err error)
}
