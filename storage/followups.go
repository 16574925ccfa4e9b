package storage

import (
	"context"
	"fmt"
	"time"
)

// TimerFollowUp is the timer of an agent's follow-up (#waiting until,
// #remind, #snooze): when it fires the ticket comes back to the queue.
const TimerFollowUp = "follow_up"

// Snooze keeps ticket out of the queue until until (nil: back now).
func (t *Tx) Snooze(ctx context.Context, ticket int64, until *time.Time) error {
	err := t.db.WithContext(ctx).Model(&Ticket{}).Where("id = ?", ticket).
		Updates(map[string]any{"snoozed_until": until, "updated_at": t.s.now()}).Error
	if err != nil {
		return fmt.Errorf("snooze %d: %w", ticket, err)
	}
	return nil
}
