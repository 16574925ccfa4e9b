package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	moderncsqlite "modernc.org/sqlite"
)

// countingDriver is a driver whose statements do nothing but count how
// often they were compiled and finalized.
type countingDriver struct{ prepared, closed map[string]int }

func (d *countingDriver) Open(string) (driver.Conn, error) { return &countingConn{d: d}, nil }

type countingConn struct{ d *countingDriver }

func (c *countingConn) Prepare(q string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), q)
}
func (c *countingConn) PrepareContext(_ context.Context, q string) (driver.Stmt, error) {
	c.d.prepared[q]++
	return &countingStmt{d: c.d, q: q}, nil
}
func (c *countingConn) Close() error              { return nil }
func (c *countingConn) Begin() (driver.Tx, error) { return countingTx{}, nil }
func (c *countingConn) BeginTx(context.Context, driver.TxOptions) (driver.Tx, error) {
	return countingTx{}, nil
}

type countingTx struct{}

func (countingTx) Commit() error   { return nil }
func (countingTx) Rollback() error { return nil }

type countingStmt struct {
	d *countingDriver
	q string
}

func (s *countingStmt) Close() error  { s.d.closed[s.q]++; return nil }
func (s *countingStmt) NumInput() int { return -1 }
func (s *countingStmt) Exec([]driver.Value) (driver.Result, error) {
	return driver.RowsAffected(1), nil
}
func (s *countingStmt) Query([]driver.Value) (driver.Rows, error) { return emptyRows{}, nil }
func (s *countingStmt) ExecContext(context.Context, []driver.NamedValue) (driver.Result, error) {
	return driver.RowsAffected(1), nil
}
func (s *countingStmt) QueryContext(context.Context, []driver.NamedValue) (driver.Rows, error) {
	return emptyRows{}, nil
}

type emptyRows struct{}

func (emptyRows) Columns() []string         { return []string{"x"} }
func (emptyRows) Close() error              { return nil }
func (emptyRows) Next([]driver.Value) error { return io.EOF }

// TestStatementCacheReuses: a statement run in one transaction after
// another is compiled once per connection; past the cache's size the
// oldest is finalized and compiled again when it comes back.
func TestStatementCacheReuses(t *testing.T) {
	ctx := context.Background()
	d := &countingDriver{prepared: map[string]int{}, closed: map[string]int{}}
	db := sql.OpenDB(cachingConnector{drv: d})
	db.SetMaxOpenConns(1)
	defer db.Close()
	const q = "UPDATE t SET x = ? WHERE id = ?"
	for i := range 50 {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, q, i, i); err != nil {
			t.Fatal(err)
		}
		rows, err := tx.QueryContext(ctx, "SELECT x FROM t WHERE id = ?", i)
		if err != nil {
			t.Fatal(err)
		}
		_ = rows.Close()
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if d.prepared[q] != 1 || d.closed[q] != 0 {
		t.Fatalf("%q compiled %d times, finalized %d, want once and never", q, d.prepared[q], d.closed[q])
	}
	for i := range stmtCacheSize {
		if _, err := db.ExecContext(ctx, fmt.Sprintf("SELECT %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if d.closed[q] != 1 {
		t.Fatalf("after %d other statements %q was finalized %d times, want once (evicted)", stmtCacheSize, q, d.closed[q])
	}
	if _, err := db.ExecContext(ctx, q, 1, 1); err != nil {
		t.Fatal(err)
	}
	if d.prepared[q] != 2 {
		t.Fatalf("%q compiled %d times after its eviction, want 2", q, d.prepared[q])
	}
}

// TestStatementCacheNestedQuery: the same query run again while its rows
// are still open (a loop over one query's results that asks it again)
// gets a statement of its own, on real SQLite: sharing the open one
// would reset it under the outer loop.
func TestStatementCacheNestedQuery(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "t.db")
	db := sql.OpenDB(cachingConnector{drv: &moderncsqlite.Driver{}, dsn: "file:" + path})
	db.SetMaxOpenConns(1)
	defer db.Close()
	for _, st := range []string{"CREATE TABLE t (id INTEGER PRIMARY KEY, parent INTEGER)",
		"INSERT INTO t (id, parent) VALUES (1, 0), (2, 0), (3, 1), (4, 1), (5, 2)"} {
		if _, err := db.ExecContext(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	const q = "SELECT id FROM t WHERE parent = ? ORDER BY id"
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	ids := func(rows *sql.Rows) []int {
		var out []int
		for rows.Next() {
			var id int
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			out = append(out, id)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	outer, err := tx.QueryContext(ctx, q, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int][]int{}
	var roots []int
	for outer.Next() {
		var id int
		if err := outer.Scan(&id); err != nil {
			t.Fatal(err)
		}
		roots = append(roots, id)
		inner, err := tx.QueryContext(ctx, q, id)
		if err != nil {
			t.Fatal(err)
		}
		got[id] = ids(inner)
		_ = inner.Close()
	}
	_ = outer.Close()
	if fmt.Sprint(roots) != "[1 2]" || fmt.Sprint(got[1]) != "[3 4]" || fmt.Sprint(got[2]) != "[5]" {
		t.Fatalf("roots %v, children %v; want [1 2] with 1: [3 4], 2: [5]", roots, got)
	}
	// And the cached statement is still good afterwards.
	again, err := tx.QueryContext(ctx, q, 1)
	if err != nil {
		t.Fatal(err)
	}
	if g := ids(again); fmt.Sprint(g) != "[3 4]" {
		t.Fatalf("after the nested use: %v, want [3 4]", g)
	}
	_ = again.Close()
}
