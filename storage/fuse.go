package storage

import (
	"context"
	"fmt"
	"time"
)

// TicketMailCounts counts the mail queued on ticket since each of two
// times, held mail excepted: what the ticket's fuse bounds, in a burst
// and in a day. One statement of two subqueries, as AutoMailCounts (the
// fuse reads them for every event that mails); each reads through
// idx_outbox_ticket_created (TestQueryPlans).
func (t *Tx) TicketMailCounts(ctx context.Context, ticket int64, since1, since2 time.Time) (n1, n2 int, err error) {
	var row struct{ N1, N2 int64 }
	if err := t.db.WithContext(ctx).Raw(`SELECT `+fuseCounts,
		ticket, since1, OutboxHeld, ticket, since2, OutboxHeld).Scan(&row).Error; err != nil {
		return 0, 0, fmt.Errorf("ticket %d mail count: %w", ticket, err)
	}
	return int(row.N1), int(row.N2), nil
}

// fuseCounts are TicketMailCounts' two subqueries (n1 and n2), for a
// SELECT: its own, and MailCounts'.
const fuseCounts = `(SELECT COUNT(*) FROM outbox_mails WHERE ticket_id = ? AND created_at >= ? AND status <> ?) AS n1,
		(SELECT COUNT(*) FROM outbox_mails WHERE ticket_id = ? AND created_at >= ? AND status <> ?) AS n2`

// HoldTicketMail trips ticket's fuse: the ticket is flagged from now on,
// and its mail is queued held until ReleaseHeldMail. It reports whether
// this call tripped it: of two transactions racing to trip it, one does
// (the other's update finds the flag set), so the leads are alerted once.
func (t *Tx) HoldTicketMail(ctx context.Context, ticket int64) (bool, error) {
	now := t.s.now()
	res := t.db.WithContext(ctx).Model(&Ticket{}).Where("id = ? AND mail_held_since IS NULL", ticket).
		Updates(map[string]any{"mail_held_since": now, "updated_at": now})
	if res.Error != nil {
		return false, fmt.Errorf("hold mail of ticket %d: %w", ticket, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// ReleaseHeldMail clears ticket's fuse and makes its held mail due now. It
// returns how many mails were released.
func (t *Tx) ReleaseHeldMail(ctx context.Context, ticket int64) (int, error) {
	now := t.s.now()
	db := t.db.WithContext(ctx)
	if err := db.Model(&Ticket{}).Where("id = ?", ticket).
		Updates(map[string]any{"mail_held_since": nil, "updated_at": now}).Error; err != nil {
		return 0, fmt.Errorf("release mail of ticket %d: %w", ticket, err)
	}
	res := db.Model(&OutboxMail{}).Where("ticket_id = ? AND status = ?", ticket, OutboxHeld).
		Updates(map[string]any{"status": OutboxPending, "next_attempt_at": now})
	if res.Error != nil {
		return 0, fmt.Errorf("release mail of ticket %d: %w", ticket, res.Error)
	}
	return int(res.RowsAffected), nil
}

// TemplateOutcome is what became of the newest mail of one template on a
// ticket, for texts that say what the customer was told.
type TemplateOutcome struct {
	Status        string // pending, sent, failed, held
	NextAttemptAt time.Time
	CreatedAt     time.Time
}

// TemplatedMail is what became of the mail rendered from templates on a
// ticket: the newest outbox row of each template, for texts that say what
// the customer was told, and of each coalescing stream (OutboxMail.Stream,
// a notification's per agent), for the next notification to join.
type TemplatedMail struct {
	Outcomes map[string]TemplateOutcome
	// Latest holds of each row only what coalescing needs: ID, Stream,
	// Status, Count, NextAttemptAt, SentAt and LeaseOwner.
	Latest map[string]OutboxMail
}

// TemplatedMail reads ticket's TemplatedMail. One query serves both
// maps, as every row of a stream is rendered from a template: a
// notification read the ticket's templated rows, and then its streams'
// rows again.
func (t *Tx) TemplatedMail(ctx context.Context, ticket int64) (TemplatedMail, error) {
	// The columns read, not the whole rows: a ticket's rows were read
	// whole for every notification.
	rs, err := queryRows(ctx, t.db, t.s.driver == DriverPostgres, "SELECT id, template, stream, status, count, next_attempt_at, sent_at, lease_owner, created_at "+
		"FROM outbox_mails WHERE ticket_id = ? AND template <> '' ORDER BY id", ticket)
	if err != nil {
		return TemplatedMail{}, fmt.Errorf("ticket %d templated mail: %w", ticket, err)
	}
	defer rs.Close()
	out := TemplatedMail{Outcomes: map[string]TemplateOutcome{}, Latest: map[string]OutboxMail{}}
	for rs.Next() {
		var r OutboxMail
		if err := rs.Scan(&r.ID, &r.Template, &r.Stream, &r.Status, &r.Count, &r.NextAttemptAt, &r.SentAt, &r.LeaseOwner, &r.CreatedAt); err != nil {
			return TemplatedMail{}, fmt.Errorf("ticket %d templated mail: %w", ticket, err)
		}
		out.Outcomes[r.Template] = TemplateOutcome{Status: r.Status, NextAttemptAt: r.NextAttemptAt, CreatedAt: r.CreatedAt}
		if r.Stream != "" {
			out.Latest[r.Stream] = r
		}
	}
	if err := rs.Err(); err != nil {
		return TemplatedMail{}, fmt.Errorf("ticket %d templated mail: %w", ticket, err)
	}
	return out, nil
}
