package storage

import (
	"context"
	"fmt"
	"time"
)

// MarkSatisfactionAsked records that the one satisfaction question goes
// out on ticket now. It returns false when it was asked before: the
// question is never asked twice on a ticket.
func (t *Tx) MarkSatisfactionAsked(ctx context.Context, ticket int64) (bool, error) {
	res := t.db.WithContext(ctx).Model(&Ticket{}).Where("id = ? AND satisfaction_asked_at IS NULL", ticket).
		Update("satisfaction_asked_at", t.s.now())
	if res.Error != nil {
		return false, fmt.Errorf("satisfaction asked on %d: %w", ticket, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// Satisfaction is a ticket's satisfaction state.
type Satisfaction struct {
	AskedAt *time.Time
	Score   int
	Comment string
}

// Satisfaction returns what was asked and answered on ticket (following
// merges).
func (t *Tx) Satisfaction(ctx context.Context, ticket int64) (Satisfaction, error) {
	info, ok, err := ticketInfo(ctx, t.db, ticket)
	if err != nil {
		return Satisfaction{}, err
	}
	if !ok {
		return Satisfaction{}, fmt.Errorf("ticket %d: %w", ticket, ErrNotFound)
	}
	var row struct {
		SatisfactionAskedAt *time.Time
		SatisfactionScore   int
		SatisfactionComment string
	}
	err = t.db.WithContext(ctx).Model(&Ticket{}).Select("satisfaction_asked_at, satisfaction_score, satisfaction_comment").
		Where("id = ?", info.Number).Take(&row).Error
	if err != nil {
		return Satisfaction{}, fmt.Errorf("satisfaction of %d: %w", ticket, err)
	}
	return Satisfaction{AskedAt: row.SatisfactionAskedAt, Score: row.SatisfactionScore, Comment: row.SatisfactionComment}, nil
}

// RecordSatisfaction stores the customer's answer to the question asked
// on ticket. The first answer stands: it returns false when the question
// was not asked or is answered already.
func (t *Tx) RecordSatisfaction(ctx context.Context, ticket int64, score int, comment string) (bool, error) {
	if score < 1 || score > 5 {
		return false, fmt.Errorf("satisfaction score %d: want 1..5", score)
	}
	res := t.db.WithContext(ctx).Model(&Ticket{}).
		Where("id = ? AND satisfaction_asked_at IS NOT NULL AND satisfaction_score = 0", ticket).
		Updates(map[string]any{"satisfaction_score": score, "satisfaction_comment": safeText(comment), "satisfaction_at": t.s.now()})
	if res.Error != nil {
		return false, fmt.Errorf("satisfaction of %d: %w", ticket, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// SatisfactionStats are the satisfaction figures.
type SatisfactionStats struct {
	Asked   int64         `json:"asked"`
	Rated   int64         `json:"rated"`
	Average float64       `json:"average"`
	ByScore map[int]int64 `json:"by_score"`
}

// SatisfactionStats counts questions asked and answers by score, for
// tickets not merged away. One grouped query.
func (s *Store) SatisfactionStats(ctx context.Context) (SatisfactionStats, error) {
	out := SatisfactionStats{ByScore: map[int]int64{1: 0, 2: 0, 3: 0, 4: 0, 5: 0}}
	var rows []struct {
		Score int
		N     int64
	}
	err := s.db.WithContext(ctx).Model(&Ticket{}).Select("satisfaction_score AS score, COUNT(*) AS n").
		Where("merged_into IS NULL AND satisfaction_asked_at IS NOT NULL").Group("satisfaction_score").Scan(&rows).Error
	if err != nil {
		return out, fmt.Errorf("satisfaction stats: %w", err)
	}
	sum := 0.0
	for _, r := range rows {
		out.Asked += r.N
		if r.Score >= 1 && r.Score <= 5 {
			out.ByScore[r.Score] = r.N
			out.Rated += r.N
			sum += float64(r.Score) * float64(r.N)
		}
	}
	if out.Rated > 0 {
		out.Average = sum / float64(out.Rated)
	}
	return out, nil
}
