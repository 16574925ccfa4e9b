package storage

import (
	"container/list"
	"context"
	"database/sql/driver"
	"errors"
)

// stmtCacheSize bounds each SQLite connection's prepared statements. tend
// runs a few dozen distinct statements on its hot paths; the rest (IN
// lists of every length, multi-row inserts) pass through the cache and
// age out.
const stmtCacheSize = 256

// cachingConnector opens SQLite connections that keep their prepared
// statements. The pure-Go driver compiles SQL afresh on every Prepare, and
// database/sql prepares on every Exec and Query of a driver that does not
// run them itself; gorm's PrepareStmt does not help inside transactions,
// where tend writes: a statement it prepares there belongs to that
// transaction, and database/sql prepares it again in the next one. SQLite's
// parser was a sixth of the CPU of the whole pipeline (issue 13). The
// cache lives in the connection, so a statement is only ever used by the
// connection that compiled it.
type cachingConnector struct {
	drv driver.Driver
	dsn string
}

// Connect opens one connection with an empty statement cache.
func (c cachingConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &cachingConn{Conn: conn, stmts: map[string]*list.Element{}, lru: list.New()}, nil
}

// Driver returns the underlying driver.
func (c cachingConnector) Driver() driver.Driver { return c.drv }

// cachingConn is a driver connection with an LRU of prepared statements,
// keyed by their SQL text. database/sql uses a connection from one
// goroutine at a time, so it needs no lock of its own.
//
// It deliberately implements neither driver.ExecerContext nor
// driver.QueryerContext: database/sql then prepares every statement it
// runs, through PrepareContext, which is where the cache answers.
type cachingConn struct {
	driver.Conn
	stmts map[string]*list.Element // of *cachedStmt
	lru   *list.List               // front: most recently used
}

// errNoContext: the driver connection lacks the context-aware methods
// tend's driver has; a different driver needs a different wrapper.
var errNoContext = errors.New("sqlite driver connection lacks a context-aware method")

// PrepareContext returns the cached statement for query when it is not in
// use (by rows still open), and otherwise compiles one. A statement
// compiled while the cached one is busy is not cached: it is finalized
// when closed.
func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if el, ok := c.stmts[query]; ok {
		cs := el.Value.(*cachedStmt)
		if !cs.busy {
			c.lru.MoveToFront(el)
			cs.busy = true
			return cs, nil
		}
		st, err := c.prepare(ctx, query)
		if err != nil {
			return nil, err
		}
		return &cachedStmt{Stmt: st}, nil
	}
	st, err := c.prepare(ctx, query)
	if err != nil {
		return nil, err
	}
	cs := &cachedStmt{Stmt: st, query: query, cached: true, busy: true}
	c.stmts[query] = c.lru.PushFront(cs)
	for c.lru.Len() > stmtCacheSize {
		c.evict(c.lru.Back())
	}
	return cs, nil
}

func (c *cachingConn) prepare(ctx context.Context, query string) (driver.Stmt, error) {
	p, ok := c.Conn.(driver.ConnPrepareContext)
	if !ok {
		return nil, errNoContext
	}
	return p.PrepareContext(ctx, query)
}

// evict drops a statement from the cache; one still in use is finalized
// when its user closes it.
func (c *cachingConn) evict(el *list.Element) {
	cs := el.Value.(*cachedStmt)
	c.lru.Remove(el)
	delete(c.stmts, cs.query)
	cs.cached = false
	if !cs.busy {
		_ = cs.Stmt.Close()
	}
}

// Close finalizes the cached statements, then closes the connection.
func (c *cachingConn) Close() error {
	for c.lru.Len() > 0 {
		c.evict(c.lru.Back())
	}
	return c.Conn.Close()
}

// BeginTx passes through to the driver.
func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	b, ok := c.Conn.(driver.ConnBeginTx)
	if !ok {
		return nil, errNoContext
	}
	return b.BeginTx(ctx, opts)
}

// Ping passes through to the driver.
func (c *cachingConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// ResetSession passes through to the driver.
func (c *cachingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

// IsValid passes through to the driver.
func (c *cachingConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// cachedStmt is a prepared statement whose Close returns it to its
// connection's cache instead of finalizing it. The driver resets a
// statement when its rows close or its Exec ends, so it is ready for the
// next use.
type cachedStmt struct {
	driver.Stmt
	query  string
	cached bool // in conn's cache; false once evicted
	busy   bool // handed out and not yet closed
}

// Close hands a cached statement back; others are finalized.
func (s *cachedStmt) Close() error {
	s.busy = false
	if s.cached {
		return nil
	}
	return s.Stmt.Close()
}

// ExecContext passes through to the driver.
func (s *cachedStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	e, ok := s.Stmt.(driver.StmtExecContext)
	if !ok {
		return nil, errNoContext
	}
	return e.ExecContext(ctx, args)
}

// QueryContext passes through to the driver.
func (s *cachedStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := s.Stmt.(driver.StmtQueryContext)
	if !ok {
		return nil, errNoContext
	}
	return q.QueryContext(ctx, args)
}
