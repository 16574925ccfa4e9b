package storage

import (
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	sqlite "modernc.org/sqlite"
)

// Retryable reports whether err is a conflict with another writer that
// the same transaction may well not meet when run again: SQLITE_BUSY or
// SQLITE_LOCKED (the busy timeout ran out), a PostgreSQL serialization
// failure (SQLSTATE 40001) or deadlock (40P01).
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "40001" || pg.Code == "40P01"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED (extended codes keep the primary in the low byte)
			return true
		}
		return false
	}
	// Some layers flatten the driver's error into text.
	msg := err.Error()
	return strings.Contains(msg, "SQLITE_BUSY") || strings.Contains(msg, "database is locked")
}

// The unique indexes deduplication relies on: Message-ID with the raw
// hash (the models' idx_messages_dedup) or with the content hash
// (migration step 5).
const (
	dedupIndex   = "idx_messages_dedup"
	contentIndex = "idx_messages_content"
)

// dedupConflict reports whether err is a message row refused by one of
// deduplication's unique indexes: another writer (a replica) stored the
// same message after this transaction looked for it. Looked up again, it
// is found, and the message is a duplicate.
func dedupConflict(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "23505" && (pg.ConstraintName == dedupIndex || pg.ConstraintName == contentIndex)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		// SQLITE_CONSTRAINT_UNIQUE names the columns, not the index.
		return se.Code() == 2067 && strings.Contains(se.Error(), "messages.message_id")
	}
	return false
}

// Phases of a group commit at which a test can inject a failure.
const (
	FaultBegin   = "begin"   // the transaction has begun
	FaultDeliver = "deliver" // one message was applied in its savepoint
	FaultCommit  = "commit"  // every message was applied, before COMMIT
)

// fault returns the error a test injected for phase, if any.
func (s *Store) fault(phase string) error {
	if s.faults == nil {
		return nil
	}
	return s.faults(phase)
}
