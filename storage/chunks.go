package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// On PostgreSQL the raw bytes of a large message are kept in raw_chunks,
// rows of chunkSize bytes keyed by the message's hash and a sequence
// number, written before the message is handed to the committer, in short
// transactions of their own on the session's goroutine. The committer's
// batch then only inserts the raw_messages row that points at them
// (Segment = chunkSegment), so a 24 MB message neither sits whole in
// memory nor holds the group commit (and every small message in it) while
// its bytes travel to the server.
//
// Chunk rows rather than PostgreSQL large objects: chunks are an ordinary
// table, so they replicate logically, dump and restore with the rest of
// the schema, and are removed by a DELETE; large objects live in the
// shared pg_largeobject catalogue, need lo_unlink (vacuumlo) to be
// reclaimed, cannot be written outside a transaction and are refused by
// some managed servers' privileges. They also need a pgx connection of
// their own, where chunks go through the same gorm pool as everything
// else.
//
// A crash between the chunks and the batch leaves chunks that no raw row
// points at; ReclaimChunks deletes them once they are older than a grace
// period (a message still being delivered refreshes its chunks' time).

// RawChunk is one piece of the raw bytes of a large message on
// PostgreSQL (see chunkSegment).
type RawChunk struct {
	Hash      string `gorm:"primaryKey;size:64"`
	Seq       int    `gorm:"primaryKey;autoIncrement:false"`
	Data      []byte `gorm:"not null"`
	CreatedAt time.Time
}

// chunkSegment in RawMessage.Segment says the bytes are in raw_chunks.
const chunkSegment = -2

// chunkSize is the bytes of one chunk row, and so the memory one writer
// or reader holds at a time.
const chunkSize = 1 << 20

// chunksPerTx is how many chunks one short transaction writes.
const chunksPerTx = 4

// chunkWriters bounds the messages writing chunks at once, so that a
// burst of large mail leaves connections of the pool to the committer
// and to everything else.
const chunkWriters = 4

// ChunkGrace is how old chunks that no raw row points at must be before
// ReclaimChunks deletes them: younger ones may belong to a message whose
// batch has not committed yet.
const ChunkGrace = time.Hour

// FaultChunk is the phase, after each chunk is written, at which a test
// can inject a failure (or hold the writer).
const FaultChunk = "chunk"

// usesChunks reports whether a body of size bytes goes to raw_chunks.
func (s *Store) usesChunks(size int64) bool {
	return s.driver == DriverPostgres && size >= fileMin
}

// writeChunks stores body as the chunks of hash, in bounded buffers and
// short transactions. Their commits need not be synchronous: the batch
// transaction that points at them commits synchronously later, and
// PostgreSQL's write-ahead log is flushed in order, so once that commit is
// durable so are the chunks.
func (s *Store) writeChunks(ctx context.Context, hash string, body Body) error {
	// Counted from before the wait for a writer's turn: a large message
	// on its way in is a burst the processor should step aside for (see
	// Committer.Busy), though it reaches the committer only at the end.
	s.chunking.Add(1)
	defer s.chunking.Add(-1)
	select {
	case s.chunkSem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.chunkSem }()
	buf := make([]byte, chunkSize)
	size := body.Size()
	seq := 0
	for off := int64(0); off < size; {
		err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			if err := tx.Exec("SET LOCAL synchronous_commit = off").Error; err != nil {
				return err
			}
			for range chunksPerTx {
				if off >= size {
					return nil
				}
				n := int(min(int64(chunkSize), size-off))
				if _, err := body.ReadAt(buf[:n], off); err != nil && !errors.Is(err, io.EOF) {
					return fmt.Errorf("read spool: %w", err)
				}
				c := RawChunk{Hash: hash, Seq: seq, Data: buf[:n], CreatedAt: s.now()}
				// The same bytes may be stored under hash already (a
				// duplicate, or chunks a crash left): refresh their time,
				// so that reclaiming spares them until the batch commits.
				if err := tx.Clauses(clause.OnConflict{
					Columns:   []clause.Column{{Name: "hash"}, {Name: "seq"}},
					DoUpdates: clause.AssignmentColumns([]string{"created_at"}),
				}).Create(&c).Error; err != nil {
					return err
				}
				if err := s.fault(FaultChunk); err != nil {
					return err
				}
				off += int64(n)
				seq++
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("raw chunks %s: %w", hash, err)
		}
	}
	return nil
}

// readChunks returns the size bytes stored as the chunks of hash.
func readChunks(ctx context.Context, db *gorm.DB, hash string, size int64) ([]byte, error) {
	out := make([]byte, 0, size)
	for seq := 0; int64(len(out)) < size; {
		var cs []RawChunk
		err := db.WithContext(ctx).Where("hash = ? AND seq >= ?", hash, seq).Order("seq").Limit(chunksPerTx).Find(&cs).Error
		if err != nil {
			return nil, fmt.Errorf("raw %s: chunks: %w", hash, err)
		}
		if len(cs) == 0 {
			break
		}
		for _, c := range cs {
			if c.Seq != seq {
				return nil, fmt.Errorf("raw %s: chunk %d missing", hash, seq)
			}
			out = append(out, c.Data...)
			seq++
		}
	}
	if int64(len(out)) != size {
		return nil, fmt.Errorf("raw %s: chunks hold %d bytes, want %d", hash, len(out), size)
	}
	return out, nil
}

// reclaimBatch bounds the chunk rows one reclaiming statement deletes.
const reclaimBatch = 64

// ReclaimChunks deletes chunks (PostgreSQL) that no raw row points at and
// that were written before before: those of a delivery whose batch never
// committed (a crash, a 451), or of a duplicate whose bytes were already
// stored. It works in short statements of reclaimBatch rows beside
// intake, and returns how many rows it deleted.
func (s *Store) ReclaimChunks(ctx context.Context, before time.Time) (int64, error) {
	if s.driver != DriverPostgres {
		return 0, nil
	}
	var total int64
	for {
		res := s.db.WithContext(ctx).Exec(`DELETE FROM raw_chunks WHERE (hash, seq) IN (
			SELECT c.hash, c.seq FROM raw_chunks c WHERE c.created_at < ?
			AND NOT EXISTS (SELECT 1 FROM raw_messages r WHERE r.hash = c.hash AND r.segment = ?)
			LIMIT ?)`, before.UTC(), chunkSegment, reclaimBatch)
		if res.Error != nil {
			return total, fmt.Errorf("reclaim chunks: %w", res.Error)
		}
		total += res.RowsAffected
		if res.RowsAffected < reclaimBatch {
			return total, nil
		}
	}
}
