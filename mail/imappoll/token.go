package imappoll

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/tendhq/tend/storage"
)

// ErrEmptyToken reports a token (or password) source that yielded nothing.
var ErrEmptyToken = errors.New("imappoll: empty token")

// FileToken reads a token or password from a file at every login, so a
// credential rotated on disk is used without a restart. Surrounding
// whitespace (the trailing newline of most editors) is dropped. Its Token
// method also serves as Options.Password for password_file.
type FileToken struct {
	Path string
}

// Token returns the file's trimmed content.
func (f FileToken) Token(context.Context) (string, error) {
	b, err := os.ReadFile(f.Path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token file %s: %w", f.Path, ErrEmptyToken)
	}
	return tok, nil
}

// CommandToken runs a command and takes its standard output as the token
// (for helpers such as `gcloud auth print-access-token` or a vault CLI).
// The command is killed after Timeout (default 30 seconds) or when ctx
// ends, so a hung helper cannot stall the poller.
type CommandToken struct {
	Command []string
	Timeout time.Duration
}

// Token runs the command and returns its trimmed standard output.
func (c CommandToken) Token(ctx context.Context) (string, error) {
	if len(c.Command) == 0 {
		return "", errors.New("token command: empty command")
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Command[0], c.Command[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 200 {
			msg = msg[:200]
		}
		return "", fmt.Errorf("token command %s: %w: %s", c.Command[0], err, msg)
	}
	tok := strings.TrimSpace(string(out))
	if tok == "" {
		return "", fmt.Errorf("token command %s: %w", c.Command[0], ErrEmptyToken)
	}
	return tok, nil
}

// SecretStore is the part of StateStore that OAuth2Token needs.
type SecretStore interface {
	Secret(ctx context.Context, name string) (string, bool, error)
	SaveSecret(ctx context.Context, name, value string) error
}

// OAuth2Token exchanges a refresh token for access tokens (RFC 6749
// section 6) with golang.org/x/oauth2. Providers such as Microsoft rotate
// the refresh token on use; the new one is saved in the SecretStore under
// SecretName before the access token is used, so a restart never falls
// back to a revoked token. It is safe for concurrent use.
type OAuth2Token struct {
	config  *oauth2.Config
	store   SecretStore
	name    string
	initial string
	clock   storage.Clock

	mu     sync.Mutex
	cached *oauth2.Token
}

// NewOAuth2Token returns a TokenSource for config. The refresh token is
// read from store under secretName, or is initial when none was stored
// yet (the one from the configuration).
func NewOAuth2Token(config *oauth2.Config, store SecretStore, secretName, initial string, clock storage.Clock) *OAuth2Token {
	if clock == nil {
		clock = storage.SystemClock{}
	}
	return &OAuth2Token{config: config, store: store, name: secretName, initial: initial, clock: clock}
}

// Token returns a valid access token, refreshing it a minute before it
// expires.
func (o *OAuth2Token) Token(ctx context.Context) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cached != nil && (o.cached.Expiry.IsZero() || o.cached.Expiry.Sub(o.clock.Now()) > time.Minute) {
		return o.cached.AccessToken, nil
	}
	refresh, ok, err := o.store.Secret(ctx, o.name)
	if err != nil {
		return "", fmt.Errorf("oauth2: load refresh token: %w", err)
	}
	if !ok || refresh == "" {
		refresh = o.initial
	}
	if refresh == "" {
		return "", fmt.Errorf("oauth2: no refresh token: %w", ErrEmptyToken)
	}
	tok, err := o.config.TokenSource(ctx, &oauth2.Token{RefreshToken: refresh}).Token()
	if err != nil {
		return "", fmt.Errorf("oauth2: refresh: %w", err)
	}
	if tok.RefreshToken != "" && tok.RefreshToken != refresh {
		if err := o.store.SaveSecret(ctx, o.name, tok.RefreshToken); err != nil {
			return "", fmt.Errorf("oauth2: save rotated refresh token: %w", err)
		}
	}
	o.cached = tok
	return tok.AccessToken, nil
}
