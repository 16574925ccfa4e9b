package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/threading"
)

// loadSigner returns the installation's signer. The keys come from
// secret_file when that file exists (one "id:base64-secret" per line, the
// first is the current key, the others still verify: that is how a key is
// rotated), otherwise from the database, where the first start stores a
// random key, so that every replica on one database signs alike.
func loadSigner(ctx context.Context, st *storage.Store, secretFile string) (*threading.Signer, error) {
	data, err := os.ReadFile(secretFile)
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist) || secretFile == "":
		v, err := st.EnsureSetting(ctx, "signing_keys", func() string {
			b := make([]byte, 32)
			_, _ = rand.Read(b)
			return "a:" + base64.StdEncoding.EncodeToString(b)
		})
		if err != nil {
			return nil, err
		}
		data = []byte(v)
	default:
		return nil, fmt.Errorf("secret_file: %w", err)
	}
	keys, err := parseKeys(data)
	if err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	return threading.NewSigner(keys[0].ID, keys...)
}

func parseKeys(data []byte) ([]threading.Key, error) {
	var keys []threading.Key
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, secret, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: want id:base64-secret", n)
		}
		b, err := base64.StdEncoding.DecodeString(secret)
		if err != nil || len(b) < 16 {
			return nil, fmt.Errorf("line %d: secret must be base64 of at least 16 bytes", n)
		}
		keys = append(keys, threading.Key{ID: id, Secret: b})
	}
	if len(keys) == 0 {
		return nil, errors.New("no key")
	}
	return keys, nil
}
