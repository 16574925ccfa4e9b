package storage

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/tendhq/tend/vocab"
)

// TicketInfo is what threading needs to know about a ticket.
type TicketInfo struct {
	Number     int64
	State      vocab.State
	Customer   string
	UpdatedAt  time.Time
	ResolvedAt *time.Time
}

// maxMergeHops bounds how far a chain of merged tickets is followed.
const maxMergeHops = 16

// Each lookup below is one indexed query; TestQueryPlans asserts the plans.

// StoredRef is a stored message found by its Message-ID.
type StoredRef struct {
	MessageID string
	Ticket    int64
	Outbound  bool // mail we sent
}

// TicketsByMessageIDs returns every message on a ticket, in or out, whose
// Message-ID is one of ids.
func (t *Tx) TicketsByMessageIDs(ctx context.Context, ids []string) ([]StoredRef, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var rows []struct {
		MessageID string
		TicketID  int64
		Direction string
	}
	err := t.db.WithContext(ctx).Model(&Message{}).Select("message_id, ticket_id, direction").
		Where("message_id IN ? AND ticket_id IS NOT NULL", ids).Order("id").Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("tickets by message ids: %w", err)
	}
	out := make([]StoredRef, len(rows))
	for i, r := range rows {
		out[i] = StoredRef{MessageID: r.MessageID, Ticket: r.TicketID, Outbound: r.Direction == DirectionOut}
	}
	return out, nil
}

// Ticket returns ticket number, following merges to the surviving ticket.
func (t *Tx) Ticket(ctx context.Context, number int64) (TicketInfo, bool, error) {
	return ticketInfo(ctx, t.db, number)
}

func ticketInfo(ctx context.Context, db *gorm.DB, number int64) (TicketInfo, bool, error) {
	for range maxMergeHops {
		var row struct {
			ID         int64
			State      vocab.State
			MergedInto *int64
			UpdatedAt  time.Time
			ResolvedAt *time.Time
			Email      string
		}
		err := db.WithContext(ctx).Table("tickets").
			Select("tickets.id, tickets.state, tickets.merged_into, tickets.updated_at, tickets.resolved_at, contacts.email").
			Joins("JOIN contacts ON contacts.id = tickets.customer_id").
			Where("tickets.id = ?", number).Limit(1).Scan(&row).Error
		if err != nil {
			return TicketInfo{}, false, fmt.Errorf("ticket %d: %w", number, err)
		}
		if row.ID == 0 {
			return TicketInfo{}, false, nil
		}
		if row.MergedInto != nil {
			number = *row.MergedInto
			continue
		}
		return TicketInfo{Number: row.ID, State: row.State, Customer: row.Email, UpdatedAt: row.UpdatedAt, ResolvedAt: row.ResolvedAt}, true, nil
	}
	return TicketInfo{}, false, errors.New("ticket merge chain too long")
}

// IsParticipant reports whether any of addrs takes part in ticket.
func (t *Tx) IsParticipant(ctx context.Context, ticket int64, addrs []string) (bool, error) {
	if len(addrs) == 0 {
		return false, nil
	}
	var n int64
	err := t.db.WithContext(ctx).Model(&Participant{}).
		Where("ticket_id = ? AND email IN ?", ticket, addrs).Limit(1).Count(&n).Error
	if err != nil {
		return false, fmt.Errorf("participant: %w", err)
	}
	return n > 0, nil
}

// TicketByThreadRoot returns the newest ticket holding a message of this
// Outlook conversation root.
func (t *Tx) TicketByThreadRoot(ctx context.Context, root string) (int64, bool, error) {
	if root == "" {
		return 0, false, nil
	}
	var ids []int64
	err := t.db.WithContext(ctx).Model(&Message{}).
		Where("thread_root = ? AND ticket_id IS NOT NULL", root).
		Order("id DESC").Limit(1).Pluck("ticket_id", &ids).Error
	if err != nil {
		return 0, false, fmt.Errorf("thread root: %w", err)
	}
	if len(ids) == 0 {
		return 0, false, nil
	}
	return ids[0], true, nil
}

// RecentTicketBySubject returns the newest ticket of customer with this
// normalized subject updated at or after since, that is neither closed nor
// merged. Of two updated at the same instant the later opened wins, so the
// answer never depends on the database's row order.
func (t *Tx) RecentTicketBySubject(ctx context.Context, customer, normSubject string, since time.Time) (int64, bool, error) {
	if customer == "" || normSubject == "" {
		return 0, false, nil
	}
	normSubject = SubjectKey(normSubject)
	var ids []int64
	err := t.db.WithContext(ctx).Table("tickets").
		Joins("JOIN contacts ON contacts.id = tickets.customer_id").
		Where("contacts.email = ? AND tickets.norm_subject = ? AND tickets.updated_at >= ? AND tickets.merged_into IS NULL AND tickets.state <> ?", customer, normSubject, since, vocab.StateClosed).
		Order("tickets.updated_at DESC, tickets.id DESC").Limit(1).Pluck("tickets.id", &ids).Error
	if err != nil {
		return 0, false, fmt.Errorf("recent ticket by subject: %w", err)
	}
	if len(ids) == 0 {
		return 0, false, nil
	}
	return ids[0], true, nil
}

// SubjectKey bounds a normalized subject to what the tickets index holds;
// the same cut is applied when storing and when looking up, so long
// subjects still match.
func SubjectKey(norm string) string {
	const max = 500
	if len(norm) <= max {
		return norm
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(norm[cut]) {
		cut--
	}
	return norm[:cut]
}
