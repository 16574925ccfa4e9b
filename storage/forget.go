package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/tendhq/tend/vocab"
)

// Erasure is the audit record of one erasure (tend forget). It outlives
// the tickets it erased, so it names the person only by a hash: SHA-256 of
// the lower-cased address, enough to show that a request about that
// address was carried out, not enough to read the address back from it.
type Erasure struct {
	ID          int64  `gorm:"primaryKey"`
	SubjectHash string `gorm:"size:64;not null;index"`
	Actor       string `gorm:"type:text;not null;default:''"`
	Tickets     string `gorm:"type:text;not null;default:''"` // ticket numbers erased, space-separated
	Messages    int    `gorm:"not null;default:0"`
	RawMessages int    `gorm:"not null;default:0"`
	Outbox      int    `gorm:"not null;default:0"`
	CreatedAt   time.Time
}

// ForgetStats say what Forget erased.
type ForgetStats struct {
	Erasure     int64   // the Erasure row's ID
	Tickets     []int64 // tickets erased whole (the person's own)
	Touched     []int64 // other tickets their messages were taken off
	Messages    int
	RawMessages int
	Outbox      int
	Compact     CompactStats
}

// SubjectHash is the hash an Erasure records for email.
func SubjectHash(email string) string {
	h := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	return hex.EncodeToString(h[:])
}

// idChunk bounds the ids bound into one IN list.
const idChunk = 500

// inChunks runs fn on ids, idChunk at a time.
func inChunks(ids []int64, fn func(chunk []int64) error) error {
	for c := range slices.Chunk(ids, idChunk) {
		if err := fn(c); err != nil {
			return err
		}
	}
	return nil
}

// Forget erases a person (a GDPR Art. 17 request): the tickets they are
// the customer of, whole (messages in and out, notifications, outbox,
// events, timers, participants); every message they sent onto other
// tickets, with the agents' notifications on those tickets from the first
// such message on (copies of their text); mail addressed to them alone;
// their raw bytes; and their contact row. Each other ticket touched gets
// an vocab.EventErased entry and the whole erasure an Erasure row.
//
// On SQLite the store must be opened with Options.Exclusive: afterwards
// the large-message files are removed, every segment holding garbage is
// compacted (the erased bytes, and any duplicate or aborted copy of them),
// and the database is checkpointed, vacuumed and its WAL truncated, so
// that no file of the data directory keeps the erased mail. On PostgreSQL
// the rows are deleted; the server keeps dead tuples until VACUUM reuses
// their space (see README, Operations).
func (s *Store) Forget(ctx context.Context, email, actor string) (ForgetStats, error) {
	var st ForgetStats
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return st, errors.New("forget: empty address")
	}
	var files []string
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		st, files, err = forgetRows(tx, email, actor, s.now())
		return err
	})
	if err != nil {
		return st, fmt.Errorf("forget: %w", err)
	}
	if s.segs == nil {
		return st, nil
	}
	for _, h := range files {
		err := shredFile(s.segs.filePath(h))
		if err == nil {
			err = os.Remove(s.segs.filePath(h))
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return st, fmt.Errorf("forget: %w", err)
		}
	}
	if len(files) > 0 {
		if err := s.segs.syncDir(); err != nil {
			return st, fmt.Errorf("forget: %w", err)
		}
	}
	// Every segment with any garbage is compacted, not only those the
	// erased rows pointed into: the erased bytes may also sit, unreferenced, as
	// the copy of a duplicate or of an aborted append in any segment.
	s.segs.setShred(true)
	st.Compact, err = s.CompactSegments(ctx, math.SmallestNonzeroFloat64)
	s.segs.setShred(false)
	if err != nil {
		return st, fmt.Errorf("forget: %w", err)
	}
	if err := s.optimizeSearch(ctx); err != nil {
		return st, fmt.Errorf("forget: %w", err)
	}
	if err := s.Scrub(ctx); err != nil {
		return st, fmt.Errorf("forget: %w", err)
	}
	return st, nil
}

// Scrub (SQLite) copies the WAL into the database and truncates it,
// rebuilds the database file without its free pages (VACUUM), and
// truncates the WAL again: deleted rows then survive neither in free
// pages nor in old log frames.
func (s *Store) Scrub(ctx context.Context) error {
	if s.driver != DriverSQLite {
		return nil
	}
	db := s.db.WithContext(ctx)
	for _, stmt := range []string{"", "VACUUM", ""} {
		if stmt != "" {
			if err := db.Exec(stmt).Error; err != nil {
				return fmt.Errorf("scrub: %s: %w", stmt, err)
			}
			continue
		}
		var busy, logFrames, copied int64
		if err := db.Raw("PRAGMA wal_checkpoint(TRUNCATE)").Row().Scan(&busy, &logFrames, &copied); err != nil {
			return fmt.Errorf("scrub: wal checkpoint: %w", err)
		}
		if busy != 0 {
			return fmt.Errorf("scrub: wal checkpoint: %w: a reader holds the log", ErrInUse)
		}
	}
	return nil
}

// forgetRows deletes the person's rows in tx and returns the stats and
// the hashes of their raw messages kept as files of their own.
func forgetRows(tx *gorm.DB, email, actor string, now time.Time) (ForgetStats, []string, error) {
	var st ForgetStats
	// Their own tickets, and tickets merged into those (whose rows
	// moved onto them).
	if err := tx.Table("tickets").Joins("JOIN contacts ON contacts.id = tickets.customer_id").
		Where("LOWER(contacts.email) = ?", email).Order("tickets.id").Pluck("tickets.id", &st.Tickets).Error; err != nil {
		return st, nil, err
	}
	for frontier := st.Tickets; len(frontier) > 0; {
		var more []int64
		if err := inChunks(frontier, func(c []int64) error {
			var ids []int64
			err := tx.Model(&Ticket{}).Where("merged_into IN ?", c).Pluck("id", &ids).Error
			more = append(more, ids...)
			return err
		}); err != nil {
			return st, nil, err
		}
		more = slices.DeleteFunc(more, func(id int64) bool { return slices.Contains(st.Tickets, id) })
		st.Tickets = append(st.Tickets, more...)
		frontier = more
	}
	slices.Sort(st.Tickets)

	// Outbox rows that go: those of their tickets and mail to them alone.
	var outbox []int64
	if err := inChunks(st.Tickets, func(c []int64) error {
		var ids []int64
		err := tx.Model(&OutboxMail{}).Where("ticket_id IN ?", c).Pluck("id", &ids).Error
		outbox = append(outbox, ids...)
		return err
	}); err != nil {
		return st, nil, err
	}
	var alone []int64
	if err := tx.Model(&OutboxMail{}).Where("LOWER(env_to) = ?", email).Pluck("id", &alone).Error; err != nil {
		return st, nil, err
	}
	outbox = append(outbox, alone...)

	// Messages that go: on their tickets, sent by them anywhere, and the
	// message rows of the outbox rows that go.
	type msgRow struct {
		ID         int64
		TicketID   *int64
		Direction  string
		RawHash    string
		ReceivedAt time.Time
	}
	var msgs []msgRow
	seen := map[int64]bool{}
	add := func(q *gorm.DB) error {
		var rows []msgRow
		if err := q.Model(&Message{}).Select("id, ticket_id, direction, raw_hash, received_at").Scan(&rows).Error; err != nil {
			return err
		}
		for _, r := range rows {
			if !seen[r.ID] {
				seen[r.ID] = true
				msgs = append(msgs, r)
			}
		}
		return nil
	}
	if err := inChunks(st.Tickets, func(c []int64) error { return add(tx.Where("ticket_id IN ?", c)) }); err != nil {
		return st, nil, err
	}
	if err := add(tx.Where("direction = ? AND LOWER(from_addr) = ?", DirectionIn, email)); err != nil {
		return st, nil, err
	}
	if err := inChunks(outbox, func(c []int64) error { return add(tx.Where("outbox_id IN ?", c)) }); err != nil {
		return st, nil, err
	}

	// Other tickets their messages are taken off: the agents'
	// notifications there from the first such message on carry copies of
	// their text. Those not yet sent go; those sent lose their body.
	first := map[int64]time.Time{}
	for _, m := range msgs {
		if m.TicketID == nil || slices.Contains(st.Tickets, *m.TicketID) {
			continue
		}
		if t, ok := first[*m.TicketID]; !ok || m.ReceivedAt.Before(t) {
			first[*m.TicketID] = m.ReceivedAt
		}
	}
	for id := range first {
		st.Touched = append(st.Touched, id)
	}
	slices.Sort(st.Touched)
	var pruned []int64
	for _, tk := range st.Touched {
		var rows []OutboxMail
		if err := tx.Where("ticket_id = ? AND kind = ? AND created_at >= ?", tk, OutboxToStaff, first[tk]).Find(&rows).Error; err != nil {
			return st, nil, err
		}
		var unsent []int64
		for _, o := range rows {
			if o.Status == OutboxSent || o.Status == OutboxFailed {
				pruned = append(pruned, o.ID)
			} else {
				unsent = append(unsent, o.ID)
			}
		}
		outbox = append(outbox, unsent...)
		if err := inChunks(unsent, func(c []int64) error { return add(tx.Where("outbox_id IN ?", c)) }); err != nil {
			return st, nil, err
		}
	}
	if err := inChunks(pruned, func(c []int64) error {
		if err := tx.Where("outbox_id IN ?", c).Delete(&OutboxBody{}).Error; err != nil {
			return err
		}
		return tx.Model(&Message{}).Where("outbox_id IN ?", c).Updates(map[string]any{"text": "", "html": ""}).Error
	}); err != nil {
		return st, nil, err
	}

	ids := make([]int64, len(msgs))
	var hashes []string
	for i, m := range msgs {
		ids[i] = m.ID
		if m.Direction == DirectionIn {
			hashes = append(hashes, m.RawHash)
		}
	}
	st.Messages = len(ids)
	slices.Sort(outbox)
	outbox = slices.Compact(outbox)
	st.Outbox = len(outbox)

	if err := inChunks(ids, func(c []int64) error {
		for _, q := range []struct {
			model any
			where string
		}{
			{&MessageRef{}, "message_row_id IN ?"},
			{&Attachment{}, "message_row_id IN ?"},
			{&Work{}, "message_row_id IN ?"},
			{&Event{}, "message_row_id IN ?"},
			{&Message{}, "id IN ?"},
		} {
			if err := tx.Where(q.where, c).Delete(q.model).Error; err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return st, nil, err
	}
	// Their bodies first: the foreign key's cascade does it only where
	// SQLite enforces foreign keys (an operator's own DSN may not).
	if err := inChunks(outbox, func(c []int64) error {
		if err := tx.Where("outbox_id IN ?", c).Delete(&OutboxBody{}).Error; err != nil {
			return err
		}
		return tx.Where("id IN ?", c).Delete(&OutboxMail{}).Error
	}); err != nil {
		return st, nil, err
	}
	if err := inChunks(st.Tickets, func(c []int64) error {
		for _, q := range []struct {
			model any
			where string
		}{
			{&Event{}, "ticket_id IN ?"},
			{&Timer{}, "ticket_id IN ?"},
			{&Participant{}, "ticket_id IN ?"},
			{&TicketInbox{}, "ticket_id IN ?"},
			{&TicketBand{}, "ticket_id IN ?"},
		} {
			if err := tx.Where(q.where, c).Delete(q.model).Error; err != nil {
				return err
			}
		}
		if err := tx.Model(&Ticket{}).Where("linked_to IN ?", c).Update("linked_to", nil).Error; err != nil {
			return err
		}
		// Merged tickets point at each other: cut the links first.
		if err := tx.Model(&Ticket{}).Where("id IN ?", c).Update("merged_into", nil).Error; err != nil {
			return err
		}
		return tx.Where("id IN ?", c).Delete(&Ticket{}).Error
	}); err != nil {
		return st, nil, err
	}
	if err := tx.Where("LOWER(email) = ?", email).Delete(&Participant{}).Error; err != nil {
		return st, nil, err
	}
	if err := tx.Where("LOWER(email) = ?", email).Delete(&Contact{}).Error; err != nil {
		return st, nil, err
	}

	files, n, err := deleteRaw(tx, hashes)
	if err != nil {
		return st, nil, err
	}
	st.RawMessages = n

	tickets := make([]string, len(st.Tickets))
	for i, t := range st.Tickets {
		tickets[i] = strconv.FormatInt(t, 10)
	}
	e := Erasure{SubjectHash: SubjectHash(email), Actor: actor, Tickets: strings.Join(tickets, " "),
		Messages: st.Messages, RawMessages: st.RawMessages, Outbox: st.Outbox, CreatedAt: now}
	if err := tx.Create(&e).Error; err != nil {
		return st, nil, err
	}
	st.Erasure = e.ID
	for _, tk := range st.Touched {
		n := 0
		for _, m := range msgs {
			if m.TicketID != nil && *m.TicketID == tk {
				n++
			}
		}
		ev := Event{TicketID: tk, Kind: vocab.EventErased, Actor: actor, CreatedAt: now,
			Detail: fmt.Sprintf("%d messages of a person erased at their request (erasure %d)", n, e.ID)}
		if err := tx.Create(&ev).Error; err != nil {
			return st, nil, err
		}
	}
	return st, files, nil
}

// deleteRaw deletes the raw rows of hashes that no message refers to any
// more and returns the hashes kept as files of their own and how many
// rows went (segment bytes become garbage for CompactSegments). Raw bytes stored elsewhere (in the
// row on PostgreSQL) go with the row.
func deleteRaw(tx *gorm.DB, hashes []string) ([]string, int, error) {
	var files []string
	n := 0
	for c := range slices.Chunk(hashes, idChunk) {
		var rows []RawMessage
		if err := tx.Select("hash, segment").Where("hash IN ? AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.raw_hash = raw_messages.hash)", c).
			Find(&rows).Error; err != nil {
			return nil, 0, err
		}
		var gone []string
		for _, r := range rows {
			gone = append(gone, r.Hash)
			if r.Segment == fileSegment {
				files = append(files, r.Hash)
			}
		}
		if len(gone) == 0 {
			continue
		}
		// A large body on PostgreSQL is in raw_chunks: it goes with its row.
		if err := tx.Where("hash IN ?", gone).Delete(&RawChunk{}).Error; err != nil {
			return nil, 0, err
		}
		res := tx.Where("hash IN ?", gone).Delete(&RawMessage{})
		if res.Error != nil {
			return nil, 0, res.Error
		}
		n += int(res.RowsAffected)
	}
	return files, n, nil
}

func (s *segments) setShred(on bool) {
	s.mu.Lock()
	s.shred = on
	s.mu.Unlock()
}

// shredFile overwrites a file with zeros, in place, and syncs it, before
// it is removed: on a file system that writes in place (ext4, XFS) the
// blocks then give nothing back. Copy-on-write file systems and SSD wear
// levelling may still keep old blocks; README, Operations, says so.
func shredFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	zero := make([]byte, 1<<20)
	for off := int64(0); off < fi.Size(); off += int64(len(zero)) {
		n := min(int64(len(zero)), fi.Size()-off)
		if _, err := f.WriteAt(zero[:n], off); err != nil {
			return fmt.Errorf("shred %s: %w", path, err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("shred %s: %w", path, err)
	}
	return nil
}
