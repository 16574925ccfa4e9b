package storage

import (
	"context"
	"fmt"
	"time"
)

// pruneChunk bounds the rows one pruning transaction touches.
const pruneChunk = 200

// PruneOutbox drops the composed bytes of outgoing mail of kind
// (OutboxToCustomer, OutboxToStaff; "" for both) sent before before, and
// the text of the notifications among them (copies of the customer's text
// made for agents), keeping every row's metadata: recipient, kind,
// status, times, Message-ID (which threading and bounce matching still
// need). It works in short transactions of pruneChunk rows and returns
// how many rows it pruned.
func (s *Store) PruneOutbox(ctx context.Context, kind string, before time.Time) (int64, error) {
	var total int64
	for {
		var ids []int64
		// From the bodies still kept, by their key, to their mails: the
		// sent mail already pruned is never read again.
		q := s.db.WithContext(ctx).Table("outbox_bodies").Joins("JOIN outbox_mails ON outbox_mails.id = outbox_bodies.outbox_id").
			Where("outbox_mails.status = ? AND outbox_mails.sent_at < ?", OutboxSent, before.UTC())
		if kind != "" {
			q = q.Where("outbox_mails.kind = ?", kind)
		}
		err := q.Order("outbox_bodies.outbox_id").Limit(pruneChunk).Pluck("outbox_bodies.outbox_id", &ids).Error
		if err != nil {
			return total, fmt.Errorf("prune outbox: %w", err)
		}
		if len(ids) == 0 {
			return total, nil
		}
		err = s.InTx(ctx, func(tx *Tx) error { return s.dropBodies(tx.db, ids) })
		if err != nil {
			return total, fmt.Errorf("prune outbox: %w", err)
		}
		total += int64(len(ids))
	}
}

// HousekeepingOptions configure RunHousekeeping.
type HousekeepingOptions struct {
	// OutboxRetention is how long sent mail to customers keeps its body
	// (PruneOutbox).
	OutboxRetention time.Duration
	// StaffRetention is how long sent mail to staff keeps its body. The
	// sender drops it at once when this is 0 (OutboxResult.DropBody);
	// housekeeping then still prunes what it left (mail sent before an
	// upgrade, or by a sender told to keep it).
	StaffRetention time.Duration
	// CompactEvery is the period of the pruning and of segment compaction.
	CompactEvery time.Duration
	// ClusterWindow is how long tickets keep their content band keys
	// (PruneBands); 0 keeps none past a run.
	ClusterWindow time.Duration
}

// RunHousekeeping keeps the data directory proportional to the mail
// received, until ctx ends: every CompactEvery it prunes outgoing mail
// bodies older than OutboxRetention (StaffRetention for staff mail),
// reclaims raw chunks no message points
// at (PostgreSQL) and compacts the segment files (SQLite). Both
// work in short transactions beside intake, never blocking it for long.
func (s *Store) RunHousekeeping(ctx context.Context, o HousekeepingOptions) error {
	if o.CompactEvery <= 0 {
		o.CompactEvery = time.Hour
	}
	return every(ctx, o.CompactEvery, func() {
		s.pruneOutbox(ctx, o)
		if n, err := s.PruneBands(ctx, s.now().Add(-o.ClusterWindow)); err != nil && ctx.Err() == nil {
			s.log.Warn("cluster band pruning", "err", err)
		} else if n > 0 {
			s.log.Info("cluster bands pruned", "rows", n)
		}
		if n, err := s.ReclaimChunks(ctx, s.now().Add(-ChunkGrace)); err != nil && ctx.Err() == nil {
			s.log.Warn("raw chunk reclaiming", "err", err)
		} else if n > 0 {
			s.log.Info("orphan raw chunks reclaimed", "chunks", n)
		}
		st, err := s.CompactSegments(ctx, compactMinGarbage)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("segment compaction", "err", err)
		} else if st.Segments > 0 || st.Erased > 0 {
			s.log.Info("segments compacted", "segments", st.Segments, "moved", st.Moved, "reclaimed_bytes", st.Reclaimed, "erased", st.Erased)
		}
	})
}

// pruneOutbox is one round of RunHousekeeping's outbox pruning: mail to
// customers after OutboxRetention (0: kept), mail to staff after
// StaffRetention.
func (s *Store) pruneOutbox(ctx context.Context, o HousekeepingOptions) {
	rounds := []struct {
		kind string
		keep time.Duration
	}{{OutboxToCustomer, o.OutboxRetention}, {OutboxToStaff, o.StaffRetention}}
	for _, r := range rounds {
		if r.kind == OutboxToCustomer && r.keep <= 0 {
			continue
		}
		if n, err := s.PruneOutbox(ctx, r.kind, s.now().Add(-r.keep)); err != nil && ctx.Err() == nil {
			s.log.Warn("outbox pruning", "kind", r.kind, "err", err)
		} else if n > 0 {
			s.log.Info("outbox bodies pruned", "kind", r.kind, "mails", n)
		}
	}
}

// compactMinGarbage is the share of a segment file that must be garbage
// before compaction rewrites it: less is not worth the copy.
const compactMinGarbage = 0.25
