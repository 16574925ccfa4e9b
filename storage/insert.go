package storage

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// insertRows is gorm's Create of rows, for the rows the pipeline writes
// for every message (messages, events, outbox rows, work, tickets,
// participants). gorm builds each INSERT anew from the model's schema,
// through its callback chain and clause builders: two fifths of the time
// of queueing outgoing mail in tend bench's profile (0.72 of 1.76 s, the
// rest SQLite's). insertRows builds the statement text once per model,
// row count and conflict clause, binds the rows' values straight to the
// transaction's connection, and gives each row its autoincrement key back
// from RETURNING (SQLite 3.35, PostgreSQL), in the rows' order, as gorm's
// Create does.
//
// What a row gets is what gorm's Create would give it
// (TestInsertRowsAsGorm): a zero field with a default in its tag takes
// the default, a zero creation or update time the clock's now (the
// store's NowFunc), a zero autoincrement key the database's next; a field
// gorm may not write (generated columns, "->") is left out. Rows that
// carry an association, or whose keys are set on some rows and not on
// others, go through gorm's Create.
func insertRows[T any](ctx context.Context, s *Store, db *gorm.DB, rows []T, doNothing bool) error {
	if len(rows) == 0 {
		return nil
	}
	p, err := planInsert[T](s, db)
	if err != nil {
		return err
	}
	// A dry run (CaptureSQL) must run nothing; a conflict skipped would
	// leave a key unreturned, which gorm's Create knows how to take.
	if db.DryRun || !p.plain(ctx, rows) || doNothing && p.returned != nil {
		if doNothing {
			db = db.Clauses(clause.OnConflict{DoNothing: true})
		}
		return db.WithContext(ctx).Create(&rows).Error
	}
	now := db.NowFunc()
	for start := 0; start < len(rows); start += p.chunk {
		batch := rows[start:min(start+p.chunk, len(rows))]
		// The keys are written when the first row has one (plain
		// checked that all agree), else read back.
		keyed := p.returned != nil && !isZero(ctx, p.returned, reflect.ValueOf(&batch[0]).Elem())
		vars := make([]any, 0, len(batch)*(len(p.cols)+1))
		for i := range batch {
			rv := reflect.ValueOf(&batch[i]).Elem()
			for _, f := range p.cols {
				v, zero := f.ValueOf(ctx, rv)
				switch {
				case !zero:
				case f.DefaultValueInterface != nil:
					v = f.DefaultValueInterface
					if err := f.Set(ctx, rv, v); err != nil {
						return fmt.Errorf("insert %s: %w", p.table, err)
					}
				case f.AutoCreateTime > 0 || f.AutoUpdateTime > 0:
					if err := f.Set(ctx, rv, now); err != nil {
						return fmt.Errorf("insert %s: %w", p.table, err)
					}
					v, _ = f.ValueOf(ctx, rv)
				}
				vars = append(vars, v)
			}
			if keyed {
				v, _ := p.returned.ValueOf(ctx, rv)
				vars = append(vars, v)
			}
		}
		q := p.statement(len(batch), keyed, doNothing)
		pool := db.Statement.ConnPool
		if p.returned == nil || keyed {
			if _, err := pool.ExecContext(ctx, q, vars...); err != nil {
				return fmt.Errorf("insert %s: %w", p.table, err)
			}
			continue
		}
		if err := p.scanKeys(ctx, pool, q, vars, batch); err != nil {
			return err
		}
	}
	return nil
}

// insertRow is insertRows of one row, which gets its key.
func insertRow[T any](ctx context.Context, s *Store, db *gorm.DB, row *T) error {
	rows := []T{*row}
	if err := insertRows(ctx, s, db, rows, false); err != nil {
		return err
	}
	*row = rows[0]
	return nil
}

// scanKeys runs q and sets batch's keys from what it returns, in order.
func (p *insertPlan) scanKeys(ctx context.Context, pool gorm.ConnPool, q string, vars []any, batch any) error {
	rs, err := pool.QueryContext(ctx, q, vars...)
	if err != nil {
		return fmt.Errorf("insert %s: %w", p.table, err)
	}
	defer rs.Close()
	bv := reflect.ValueOf(batch)
	i := 0
	for rs.Next() {
		var id int64
		if err := rs.Scan(&id); err != nil {
			return fmt.Errorf("insert %s: %w", p.table, err)
		}
		if i >= bv.Len() {
			return fmt.Errorf("insert %s: more keys returned than rows", p.table)
		}
		if err := p.returned.Set(ctx, bv.Index(i), id); err != nil {
			return fmt.Errorf("insert %s: %w", p.table, err)
		}
		i++
	}
	if err := rs.Err(); err != nil {
		return fmt.Errorf("insert %s: %w", p.table, err)
	}
	if i != bv.Len() {
		return fmt.Errorf("insert %s: %d keys returned for %d rows", p.table, i, bv.Len())
	}
	return nil
}

// insertPlan is what insertRows needs of one model, made once per store.
type insertPlan struct {
	table    string
	quoted   string // the table, quoted
	cols     []*schema.Field
	returned *schema.Field // the autoincrement key; nil when there is none
	rels     []*schema.Field
	postgres bool
	chunk    int // rows per statement, under the bound-variable limits

	mu   sync.Mutex
	text map[[3]int]string // by rows, keyed, doNothing
}

// planInsert returns the store's plan for T, made on first use
// (Store.inserts, by type).
func planInsert[T any](s *Store, db *gorm.DB) (*insertPlan, error) {
	typ := reflect.TypeFor[T]()
	if p, ok := s.inserts.Load(typ); ok {
		return p.(*insertPlan), nil
	}
	stmt := &gorm.Statement{DB: db}
	if err := stmt.Parse(new(T)); err != nil {
		return nil, fmt.Errorf("insert plan %v: %w", typ, err)
	}
	sch := stmt.Schema
	p := &insertPlan{table: sch.Table, quoted: stmt.Quote(sch.Table), postgres: s.driver == DriverPostgres, text: map[[3]int]string{}}
	for _, f := range sch.Fields {
		if f.DBName == "" || !f.Creatable {
			continue
		}
		if f.HasDefaultValue && f.DefaultValueInterface == nil {
			// The database's own value (an autoincrement key): gorm
			// writes it only when set. One such column is handled.
			if p.returned != nil || f.FieldType.Kind() != reflect.Int64 {
				return nil, fmt.Errorf("insert plan %s: column %s has a database default insertRows does not handle", sch.Table, f.DBName)
			}
			p.returned = f
			continue
		}
		p.cols = append(p.cols, f)
	}
	for _, r := range sch.Relationships.Relations {
		p.rels = append(p.rels, r.Field)
	}
	// SQLite binds at most 32,766 variables, PostgreSQL 65,535.
	p.chunk = max(1, min(insertChunk, 30000/(len(p.cols)+1)))
	got, _ := s.inserts.LoadOrStore(typ, p)
	return got.(*insertPlan), nil
}

// plain reports whether insertRows may write rows itself: no row carries
// an association, and the key is set on all of them or on none.
func (p *insertPlan) plain(ctx context.Context, rows any) bool {
	rv := reflect.ValueOf(rows)
	keyed := 0
	for i := range rv.Len() {
		row := rv.Index(i)
		for _, f := range p.rels {
			if !isZero(ctx, f, row) {
				return false
			}
		}
		if p.returned != nil && !isZero(ctx, p.returned, row) {
			keyed++
		}
	}
	return keyed == 0 || keyed == rv.Len()
}

func isZero(ctx context.Context, f *schema.Field, row reflect.Value) bool {
	_, zero := f.ValueOf(ctx, row)
	return zero
}

// statement is the INSERT of n rows, with the key written (keyed) or
// returned, and with ON CONFLICT DO NOTHING.
func (p *insertPlan) statement(n int, keyed, doNothing bool) string {
	k := [3]int{n, b2i(keyed), b2i(doNothing)}
	p.mu.Lock()
	defer p.mu.Unlock()
	if q, ok := p.text[k]; ok {
		return q
	}
	cols := make([]string, 0, len(p.cols)+1)
	for _, f := range p.cols {
		cols = append(cols, quoteIdent(f.DBName, p.postgres))
	}
	if keyed {
		cols = append(cols, quoteIdent(p.returned.DBName, p.postgres))
	}
	var b strings.Builder
	b.WriteString("INSERT INTO " + p.quoted + " (" + strings.Join(cols, ",") + ") VALUES ")
	arg := 0
	for r := range n {
		if r > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for c := range cols {
			if c > 0 {
				b.WriteByte(',')
			}
			arg++
			if p.postgres {
				b.WriteString("$" + strconv.Itoa(arg))
			} else {
				b.WriteByte('?')
			}
		}
		b.WriteByte(')')
	}
	if doNothing {
		b.WriteString(" ON CONFLICT DO NOTHING")
	}
	if p.returned != nil && !keyed {
		b.WriteString(" RETURNING " + quoteIdent(p.returned.DBName, p.postgres))
	}
	q := b.String()
	p.text[k] = q
	return q
}

// quoteIdent quotes a column name as the dialect does.
func quoteIdent(name string, postgres bool) string {
	if postgres {
		return `"` + name + `"`
	}
	return "`" + name + "`"
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
