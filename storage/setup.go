package storage

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Roles of agents and API tokens.
const (
	RoleAgent = "agent"
	RoleLead  = "lead"
	RoleAdmin = "admin"
)

// InboxSpec is a configured inbox.
type InboxSpec struct {
	Address      string
	Name         string
	ResponseTime time.Duration
}

// SyncInboxes makes the configured inboxes exist with their current names
// and promises. Inboxes no longer configured are kept: their tickets stay.
func (s *Store) SyncInboxes(ctx context.Context, specs []InboxSpec) error {
	now := s.now()
	for _, sp := range specs {
		row := Inbox{Address: strings.ToLower(sp.Address), Name: sp.Name, ResponseTime: int64(sp.ResponseTime / time.Second), CreatedAt: now}
		err := s.db.WithContext(ctx).Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "address"}},
			DoUpdates: clause.AssignmentColumns([]string{"name", "response_time"}),
		}).Create(&row).Error
		if err != nil {
			return fmt.Errorf("sync inbox %s: %w", sp.Address, err)
		}
	}
	var rows []Inbox
	if err := s.db.WithContext(ctx).Find(&rows).Error; err != nil {
		return fmt.Errorf("sync inboxes: %w", err)
	}
	s.inboxMu.Lock()
	for _, r := range rows {
		s.inboxCache[r.Address] = r.ID
	}
	s.inboxMu.Unlock()
	return nil
}

// AgentSpec is a configured agent.
type AgentSpec struct {
	Email, Name, Role string
	// Inboxes restricts a role-agent to these inbox addresses; empty
	// means every inbox.
	Inboxes []string
}

// SyncAgents makes the configured agents exist with their current names and
// roles. Passwords are left alone.
func (s *Store) SyncAgents(ctx context.Context, specs []AgentSpec) error {
	now := s.now()
	for _, sp := range specs {
		row := Agent{Email: strings.ToLower(sp.Email), Name: sp.Name, Role: sp.Role, Inboxes: strings.ToLower(strings.Join(sp.Inboxes, " ")), CreatedAt: now}
		err := s.db.WithContext(ctx).Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "email"}},
			DoUpdates: clause.AssignmentColumns([]string{"name", "role", "inboxes"}),
		}).Create(&row).Error
		if err != nil {
			return fmt.Errorf("sync agent %s: %w", sp.Email, err)
		}
	}
	return nil
}

// randomToken returns n random bytes, URL-safe encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

// HashToken returns the hex SHA-256 under which a bearer secret is stored.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// EnsureAdmin creates the admin account on first start. It returns the
// generated password, or "" when an admin already exists. The password is
// shown once: only its bcrypt hash is kept.
func (s *Store) EnsureAdmin(ctx context.Context, email string) (string, error) {
	var n int64
	if err := s.db.WithContext(ctx).Model(&Agent{}).Where("role = ? AND password_hash <> ''", RoleAdmin).Count(&n).Error; err != nil {
		return "", fmt.Errorf("ensure admin: %w", err)
	}
	if n > 0 {
		return "", nil
	}
	pw := randomToken(12)
	if err := s.SetPassword(ctx, email, "Administrator", RoleAdmin, pw); err != nil {
		return "", fmt.Errorf("ensure admin: %w", err)
	}
	return pw, nil
}

// SetPassword creates or updates an agent with a login password.
func (s *Store) SetPassword(ctx context.Context, email, name, role, password string) error {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	row := Agent{Email: strings.ToLower(email), Name: name, Role: role, PasswordHash: string(hash), CreatedAt: s.now()}
	err = s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "email"}},
		DoUpdates: clause.AssignmentColumns([]string{"password_hash", "role"}),
	}).Create(&row).Error
	if err != nil {
		return fmt.Errorf("set password %s: %w", email, err)
	}
	return nil
}

// ErrBadCredentials is returned for a wrong login or an unknown token.
var ErrBadCredentials = errors.New("bad credentials")

// CheckPassword returns the agent whose email and password match.
func (s *Store) CheckPassword(ctx context.Context, email, password string) (Agent, error) {
	var a Agent
	err := s.db.WithContext(ctx).Where("email = ?", strings.ToLower(strings.TrimSpace(email))).Take(&a).Error
	if errors.Is(err, gorm.ErrRecordNotFound) || (err == nil && a.PasswordHash == "") {
		// Spend the same time as a real comparison so that timing does
		// not tell which addresses have accounts.
		s.dummyOnce.Do(func() { s.dummyHash, _ = bcrypt.GenerateFromPassword([]byte("x"), bcrypt.DefaultCost) })
		_ = bcrypt.CompareHashAndPassword(s.dummyHash, []byte(password))
		return Agent{}, ErrBadCredentials
	}
	if err != nil {
		return Agent{}, fmt.Errorf("check password: %w", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(a.PasswordHash), []byte(password)) != nil {
		return Agent{}, ErrBadCredentials
	}
	return a, nil
}

// CreateToken makes an API token and returns its secret, which is shown
// once: only its hash is stored.
func (s *Store) CreateToken(ctx context.Context, name, role string) (string, error) {
	secret := "tend_" + randomToken(24)
	row := APIToken{Name: name, Role: role, Hash: HashToken(secret), CreatedAt: s.now()}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	return secret, nil
}

// CheckToken returns the API token matching secret. Lookup is by the hash,
// so the comparison never touches the secret itself.
func (s *Store) CheckToken(ctx context.Context, secret string) (APIToken, error) {
	var t APIToken
	err := s.db.WithContext(ctx).Where("hash = ?", HashToken(secret)).Take(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return APIToken{}, ErrBadCredentials
	}
	if err != nil {
		return APIToken{}, fmt.Errorf("check token: %w", err)
	}
	return t, nil
}

// Setting returns a named installation value.
func (s *Store) Setting(ctx context.Context, key string) (string, bool, error) {
	var row Setting
	err := s.db.WithContext(ctx).Where("key = ?", key).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("setting %s: %w", key, err)
	}
	return row.Value, true, nil
}

// SaveSetting stores a named installation value.
func (s *Store) SaveSetting(ctx context.Context, key, value string) error {
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "key"}},
		DoUpdates: clause.AssignmentColumns([]string{"value"}),
	}).Create(&Setting{Key: key, Value: value}).Error
	if err != nil {
		return fmt.Errorf("save setting %s: %w", key, err)
	}
	return nil
}

// EnsureSetting returns the value of key, storing gen() first when it is
// absent. Two replicas racing both end with the first stored value.
func (s *Store) EnsureSetting(ctx context.Context, key string, gen func() string) (string, error) {
	err := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&Setting{Key: key, Value: gen()}).Error
	if err != nil {
		return "", fmt.Errorf("ensure setting %s: %w", key, err)
	}
	v, _, err := s.Setting(ctx, key)
	return v, err
}

// SwapSetting sets key to value only if it still holds old ("" meaning
// absent), and reports whether it did. It is the compare-and-set that
// makes a state change happen once when replicas race: of two
// transactions swapping from the same old value, one updates the row and
// the other finds it changed.
func (t *Tx) SwapSetting(ctx context.Context, key, old, value string) (bool, error) {
	db := t.db.WithContext(ctx)
	var res *gorm.DB
	if old == "" {
		res = db.Clauses(clause.OnConflict{DoNothing: true}).Create(&Setting{Key: key, Value: value})
	} else {
		res = db.Model(&Setting{}).Where("key = ? AND value = ?", key, old).Update("value", value)
	}
	if res.Error != nil {
		return false, fmt.Errorf("swap setting %s: %w", key, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// Setting returns a named installation value within the transaction.
func (t *Tx) Setting(ctx context.Context, key string) (string, bool, error) {
	var row Setting
	err := t.db.WithContext(ctx).Where("key = ?", key).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("setting %s: %w", key, err)
	}
	return row.Value, true, nil
}
