package storage

import (
	"context"
	"fmt"
	"strings"
)

// Participants returns the addresses that take part in ticket number
// (following merges), in the order they joined.
func (s *Store) Participants(ctx context.Context, number int64) ([]Participant, error) {
	info, ok, err := ticketInfo(ctx, s.db, number)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("ticket %d: %w", number, ErrNotFound)
	}
	var ps []Participant
	if err := s.db.WithContext(ctx).Where("ticket_id = ?", info.Number).Order("created_at, email").Find(&ps).Error; err != nil {
		return nil, fmt.Errorf("ticket %d participants: %w", number, err)
	}
	return ps, nil
}

// OutboxRaw returns the composed bytes of outgoing mail id: nil when they
// were pruned (retention.outbox_bodies), ErrNotFound when there is no such
// row.
func (s *Store) OutboxRaw(ctx context.Context, id int64) ([]byte, error) {
	var rows []struct {
		Raw    []byte
		Packed *int64
	}
	err := s.db.WithContext(ctx).Table("outbox_mails").Select("outbox_bodies.raw, outbox_bodies.packed").
		Joins("LEFT JOIN outbox_bodies ON outbox_bodies.outbox_id = outbox_mails.id").Where("outbox_mails.id = ?", id).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("outbox %d: %w", id, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("outbox %d: %w", id, ErrNotFound)
	}
	r := OutboxBody{OutboxID: id, Raw: rows[0].Raw}
	if p := rows[0].Packed; p != nil {
		r.Packed = *p
	}
	return r.bytes(s.pack)
}

// PersonTickets returns the numbers of the (unmerged) tickets email takes
// part in: as their customer, as a participant, or by a message from them.
func (s *Store) PersonTickets(ctx context.Context, email string) ([]int64, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	var ids []int64
	err := s.db.WithContext(ctx).Model(&Ticket{}).Where(`merged_into IS NULL AND (
		customer_id IN (SELECT id FROM contacts WHERE LOWER(email) = ?)
		OR id IN (SELECT ticket_id FROM participants WHERE LOWER(email) = ?)
		OR id IN (SELECT ticket_id FROM messages WHERE ticket_id IS NOT NULL AND direction = ? AND LOWER(from_addr) = ?))`,
		email, email, DirectionIn, email).Order("id").Pluck("id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("tickets of %s: %w", email, err)
	}
	return ids, nil
}

// Erasures returns the audit records of tend forget, oldest first.
func (s *Store) Erasures(ctx context.Context) ([]Erasure, error) {
	var es []Erasure
	if err := s.db.WithContext(ctx).Order("id").Find(&es).Error; err != nil {
		return nil, fmt.Errorf("erasures: %w", err)
	}
	return es, nil
}
