package storagetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver to create and drop test databases

	"github.com/tendhq/tend/internal/testenv"
	"github.com/tendhq/tend/storage"
)

// PostgresEnv names the variable holding the DSN of a PostgreSQL server
// the tests may create databases on.
const PostgresEnv = "TEND_TEST_POSTGRES_DSN"

// Backend opens a fresh, empty store of one kind.
type Backend struct {
	Name string
	Open func(t testing.TB, clock storage.Clock) *storage.Store
}

// Backends returns SQLite and, when configured, PostgreSQL. Without
// PostgreSQL the PostgreSQL backend skips (or fails under CI) when opened.
func Backends() []Backend {
	return []Backend{{"sqlite", OpenSQLite}, {"postgres", OpenPostgres}}
}

// OpenSQLite opens a store in a fresh SQLite file under t.TempDir().
func OpenSQLite(t testing.TB, clock storage.Clock) *storage.Store {
	t.Helper()
	s, err := storage.Open(context.Background(), storage.Options{Driver: storage.DriverSQLite, DataDir: t.TempDir(), Clock: clock})
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// OpenPostgres creates a fresh database on the server named by
// TEND_TEST_POSTGRES_DSN, opens a store on it and drops it after the test.
func OpenPostgres(t testing.TB, clock storage.Clock) *storage.Store {
	t.Helper()
	dsn := PostgresDSN(t)
	s, err := storage.Open(context.Background(), storage.Options{Driver: storage.DriverPostgres, DSN: dsn, Clock: clock})
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// PostgresDSN creates a fresh database and returns its DSN; the database
// is dropped when the test ends.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		testenv.SkipOrFail(t, PostgresEnv+" is not set: PostgreSQL tests skipped")
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", PostgresEnv, err)
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	defer admin.Close()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "tend_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		testenv.SkipOrFail(t, fmt.Sprintf("postgres at %s unusable: %v", u.Host, err))
	}
	t.Cleanup(func() {
		admin, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer admin.Close()
		_, _ = admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	})
	u.Path = "/" + name
	return u.String()
}
