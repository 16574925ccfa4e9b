package storage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// SessionInfo is a logged-in browser session and its agent.
type SessionInfo struct {
	Agent Agent
	CSRF  string
}

// CreateSession starts a browser session for agent and returns its secret
// (for the cookie) and its CSRF token. Only the secret's hash is stored.
func (s *Store) CreateSession(ctx context.Context, agentID int64, ttl time.Duration) (secret, csrf string, err error) {
	secret, csrf = randomToken(32), randomToken(24)
	now := s.now()
	row := WebSession{Hash: HashToken(secret), AgentID: agentID, CSRF: csrf, ExpiresAt: now.Add(ttl), CreatedAt: now}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		return "", "", fmt.Errorf("create session: %w", err)
	}
	return secret, csrf, nil
}

// Session returns the live session for secret.
func (s *Store) Session(ctx context.Context, secret string) (SessionInfo, error) {
	var ws WebSession
	err := s.db.WithContext(ctx).Where("hash = ? AND expires_at > ?", HashToken(secret), s.now()).Take(&ws).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return SessionInfo{}, ErrBadCredentials
	}
	if err != nil {
		return SessionInfo{}, fmt.Errorf("session: %w", err)
	}
	var a Agent
	if err := s.db.WithContext(ctx).Where("id = ?", ws.AgentID).Take(&a).Error; err != nil {
		return SessionInfo{}, fmt.Errorf("session agent: %w", err)
	}
	return SessionInfo{Agent: a, CSRF: ws.CSRF}, nil
}

// DeleteSession ends a session (logout).
func (s *Store) DeleteSession(ctx context.Context, secret string) error {
	if err := s.db.WithContext(ctx).Where("hash = ?", HashToken(secret)).Delete(&WebSession{}).Error; err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}
