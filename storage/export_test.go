package storage

import (
	"context"
	"fmt"
)

// This file exports internals to the external tests of package storage
// (storage_test): they exist only in the test binary.

// RawTicket reads ticket id as stored, without following merges, so tests
// can see the redirect row itself.
func RawTicket(ctx context.Context, s *Store, id int64) (Ticket, error) {
	var t Ticket
	if err := s.db.WithContext(ctx).Where("id = ?", id).Take(&t).Error; err != nil {
		return Ticket{}, fmt.Errorf("raw ticket %d: %w", id, err)
	}
	return t, nil
}

// RawEvents returns the timeline rows stored on ticket id, without
// following merges.
func RawEvents(ctx context.Context, s *Store, id int64) ([]Event, error) {
	var evs []Event
	if err := s.db.WithContext(ctx).Where("ticket_id = ?", id).Order("id").Find(&evs).Error; err != nil {
		return nil, fmt.Errorf("raw events %d: %w", id, err)
	}
	return evs, nil
}
