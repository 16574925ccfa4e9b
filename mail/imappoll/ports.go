package imappoll

import (
	"context"
	"io"
	"time"
)

// Deliverer is the ingest path the poller hands messages to: the same one
// SMTP uses. It is declared here, by its consumer, and implemented over the
// database by storage.
//
// Delivery has two steps, so that no message is ever held whole in memory
// and many are committed together. Spool reads one message from the
// server's literal (size is the size the server announced) to its end,
// in bounded buffers, into the same spool the SMTP door uses. Deliver
// then takes a FETCH's spooled messages at once, in UID order, and
// threads them in that order (a reply after what it answers) while
// storing them in shared transactions; the next FETCH streams meanwhile.
//
// Deliver's errors are ms's, index for index: nil only after that raw
// message and its ticket are durably committed. It deduplicates by
// Message-ID plus a hash of the bytes, so a redelivery after a crash or a
// UIDVALIDITY change is harmless and reports Duplicate. Any error means
// "not stored": the poller leaves the message untouched in the mailbox and
// offers it again on a later pass. There is no permanent "cannot parse"
// error: ingest stores anything raw. The poller closes every Spooled once
// it is delivered or given up.
type Deliverer interface {
	Spool(ctx context.Context, r io.Reader, size int64) (Spooled, error)
	Deliver(ctx context.Context, ms []Spooled, ds []Delivery) ([]DeliveryResult, []error)
}

// Spooled is a message a Deliverer spooled; Close releases it (removes its
// temporary file).
type Spooled interface {
	Close() error
}

// Delivery describes where a message handed to a Deliverer came from.
type Delivery struct {
	// Inbox is the inbox address the mailbox feeds.
	Inbox string
	// Imported is true for backfill: the message is older than the moment
	// the inbox was first connected, so it is threaded but triggers no
	// automatic mail (no acknowledgement to a years-old sender).
	Imported bool
	// Source is "imap:<inbox>/<mailbox>/<uidvalidity>/<uid>", for the
	// timeline and for debugging.
	Source string
	// ReceivedAt is the message's IMAP INTERNALDATE (RFC 9051 section 2.3.3).
	ReceivedAt time.Time
}

// DeliveryResult tells what Deliver did with a message it committed.
type DeliveryResult struct {
	// Duplicate is true when the message was already stored; it is then
	// treated exactly like a fresh delivery (flagged, moved or deleted).
	Duplicate bool
}

// StateStore persists what the poller must remember across restarts and
// coordinates replicas. It is declared here, by its consumer; storage
// implements it over the database.
type StateStore interface {
	// MailboxState loads the checkpoint for key (inbox address + "/" +
	// mailbox); ok is false when the mailbox was never connected.
	MailboxState(ctx context.Context, key string) (s MailboxState, ok bool, err error)
	// SaveMailboxState stores the checkpoint for key.
	SaveMailboxState(ctx context.Context, key string, s MailboxState) error
	// AcquireLease takes the named lease for ttl, or renews it when holder
	// already holds it; false means another holder has it.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// ReleaseLease gives the lease up if holder holds it.
	ReleaseLease(ctx context.Context, name, holder string) error
	// Secret loads a named secret, such as a rotated OAuth refresh token.
	Secret(ctx context.Context, name string) (value string, ok bool, err error)
	// SaveSecret stores a named secret.
	SaveSecret(ctx context.Context, name, value string) error
}

// MailboxState is the checkpoint of one mailbox.
type MailboxState struct {
	// UIDValidity and LastUID identify the last message processed without
	// a gap: every UID up to LastUID under this UIDVALIDITY was committed
	// (RFC 9051 section 2.3.1.1). A change of UIDVALIDITY invalidates
	// LastUID and triggers a full resynchronisation.
	UIDValidity uint32
	LastUID     uint32
	// ConnectedAt is when the mailbox was first ever connected; mail with
	// an older INTERNALDATE is backfill.
	ConnectedAt time.Time
	// BackfillDone is set once the first full pass has finished.
	BackfillDone bool
	// Synced and Total are the backfill progress: messages processed out of
	// the messages found when it started.
	Synced, Total int
}

// TokenSource yields an OAuth 2.0 access token (or, for password
// authentication, a password) each time the poller logs in, so rotated
// credentials are picked up without a restart.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}
