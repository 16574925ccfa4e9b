package storage

import (
	"context"
	"fmt"
)

// outboxVacuumAfter is how many bytes of outgoing mail bodies dropped
// (staff mail at relay, pruning) make Checkpoint vacuum outbox_bodies
// (and outbox_mails) on PostgreSQL. The dropped bodies are mostly TOAST chunks, which nothing
// reads again and so only VACUUM frees (a heap page's dead rows are
// pruned when the page is read nearly full): until then every new body
// takes new pages. With 4 MiB the outbox carried 3 MB of dead chunks on
// a day of 7.6 MB of small mail (issue 10: disk at most 1.5× the mail);
// with a quarter of a MiB, about one notification with a forwarded
// attachment, it carries what one maintenance period drops. Such a
// VACUUM reads only the pages written since the last one (the
// visibility map skips the rest), and PostgreSQL skips its index passes
// while few of the table's pages hold dead rows, so its cost follows the
// mail, not the table's size.
const outboxVacuumAfter = 256 << 10

// messagesVacuumShare is the part of the messages table's size that
// outgoing bodies must have been dropped since its last vacuum for
// Checkpoint to vacuum it too. A dropped notification leaves a dead row
// there (its emptied text, dropOutboxText), and so does every parse
// saved; on the day of small mail they were 0.6 to 0.8 MB of the
// table's 2 MB, which autovacuum, waiting a minute and a fifth of the
// table, had not come to. A VACUUM of messages reads the whole GIN search
// index (GIN's cleanup pass scans every page), so it runs once a share
// of the table was dropped, not every outboxVacuumAfter: its cost per
// byte dropped stays the same as the table grows.
const messagesVacuumShare = 8 // 1/8

// vacuumDropped is Checkpoint on PostgreSQL: once outboxVacuumAfter
// bytes of outgoing bodies were dropped it vacuums outbox_bodies and
// outbox_mails (whose rows every claim and outcome rewrites), and
// messages and search_docs as well once they are a messagesVacuumShare
// of its size.
// Autovacuum would wait for a fifth of a table to be dead, and every
// notification's bytes would add to the database meanwhile. VACUUM (not
// FULL) takes no lock that blocks reads or writes, and SKIP_LOCKED
// passes over a table while autovacuum is at it.
func (s *Store) vacuumDropped(ctx context.Context) error {
	n := s.dropped.Load()
	if n < outboxVacuumAfter {
		return nil
	}
	s.dropped.Add(-n)
	db := s.db.WithContext(ctx)
	tables := "outbox_bodies, outbox_mails"
	var size int64
	if err := db.Raw("SELECT pg_table_size('messages')").Scan(&size).Error; err != nil {
		return fmt.Errorf("vacuum: messages size: %w", err)
	}
	if m := s.messagesDropped.Add(n); m >= size/messagesVacuumShare {
		s.messagesDropped.Add(-m)
		tables += ", messages, search_docs" // an emptied text is a dead search_docs row too
	}
	if err := db.Exec("VACUUM (SKIP_LOCKED) " + tables).Error; err != nil {
		return fmt.Errorf("vacuum %s: %w", tables, err)
	}
	return nil
}
