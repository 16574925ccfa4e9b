package storage

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/tendhq/tend/vocab"
)

// HistoryTicket is one of a customer's tickets, as their history shows it.
type HistoryTicket struct {
	Number         int64
	Subject        string
	State          vocab.State
	RepeatContacts int
	CreatedAt      time.Time
	WaitingSince   *time.Time
	Open           bool
}

// maxHistory bounds a contact's history: a customer with hundreds of
// tickets still costs one short indexed query.
const maxHistory = 50

// customerHistory lists the tickets of the contact with this address,
// open ones first, then newest first, merged tickets left out. One query
// through idx_tickets_customer_subject (customer_id leads it).
func customerHistory(ctx context.Context, db *gorm.DB, email string, limit int) ([]HistoryTicket, error) {
	if limit <= 0 || limit > maxHistory {
		limit = maxHistory
	}
	var rows []HistoryTicket
	err := db.WithContext(ctx).Table("tickets").
		Select("tickets.id AS number, tickets.subject, tickets.state, tickets.repeat_contacts, tickets.created_at, tickets.waiting_since, "+
			"CASE WHEN tickets.state IN ? THEN 1 ELSE 0 END AS open", openStates()).
		Where("tickets.customer_id = (SELECT id FROM contacts WHERE email = ?) AND tickets.merged_into IS NULL", email).
		Order("open DESC").Order("tickets.id DESC").Limit(limit).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", email, err)
	}
	return rows, nil
}

// CustomerHistory lists the tickets of the customer with this address,
// open ones first, then newest first (at most limit, ≤ 50).
func (s *Store) CustomerHistory(ctx context.Context, email string, limit int) ([]HistoryTicket, error) {
	return customerHistory(ctx, s.db, email, limit)
}

// CustomerHistory is Store.CustomerHistory inside the transaction.
func (t *Tx) CustomerHistory(ctx context.Context, email string, limit int) ([]HistoryTicket, error) {
	return customerHistory(ctx, t.db, email, limit)
}
