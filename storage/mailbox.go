package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// GetMailboxState loads the IMAP checkpoint for key; ok is false when the
// mailbox was never connected.
func (s *Store) GetMailboxState(ctx context.Context, key string) (MailboxState, bool, error) {
	var m MailboxState
	err := s.db.WithContext(ctx).Where("key = ?", key).Take(&m).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return MailboxState{}, false, nil
	}
	if err != nil {
		return MailboxState{}, false, fmt.Errorf("mailbox state %s: %w", key, err)
	}
	return m, true, nil
}

// PutMailboxState stores the IMAP checkpoint for m.Key.
func (s *Store) PutMailboxState(ctx context.Context, m MailboxState) error {
	m.UpdatedAt = s.now()
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{UpdateAll: true}).Create(&m).Error
	if err != nil {
		return fmt.Errorf("mailbox state %s: %w", m.Key, err)
	}
	return nil
}

// AcquireLease takes the named lease for ttl, or renews it when holder
// already holds it. It returns false while another holder's lease runs,
// as leaseNow judges it.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	var got bool
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		now, err := s.leaseNow(tx)
		if err != nil {
			return err
		}
		if err := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&Lease{Name: name, Holder: holder, Until: now.Add(ttl)}).Error; err != nil {
			return err
		}
		res := tx.Model(&Lease{}).Where("name = ? AND (holder = ? OR until < ?)", name, holder, now).
			Updates(map[string]any{"holder": holder, "until": now.Add(ttl)})
		if res.Error != nil {
			return res.Error
		}
		got = res.RowsAffected == 1
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("lease %s: %w", name, err)
	}
	return got, nil
}

// ReleaseLease gives the lease up if holder holds it.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if err := s.db.WithContext(ctx).Where("name = ? AND holder = ?", name, holder).Delete(&Lease{}).Error; err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}
