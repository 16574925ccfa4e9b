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
	if until != nil {
		u := until.UTC() // compared with the clock as text on SQLite
		until = &u
	}
	err := t.db.WithContext(ctx).Model(&Ticket{}).Where("id = ?", ticket).
		Updates(map[string]any{"snoozed_until": until, "updated_at": t.s.now()}).Error
	if err != nil {
		return fmt.Errorf("snooze %d: %w", ticket, err)
	}
	return nil
}

// SetLanguage records the language the customer of ticket is written to in.
func (t *Tx) SetLanguage(ctx context.Context, ticket int64, lang string) error {
	if err := t.db.WithContext(ctx).Model(&Ticket{}).Where("id = ?", ticket).Update("language", lang).Error; err != nil {
		return fmt.Errorf("language of %d: %w", ticket, err)
	}
	return nil
}
