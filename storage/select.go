package storage

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"
)

// selectRows is gorm's Find of T's columns (less omit) for the clauses
// after FROM in tail (WHERE, ORDER BY, LIMIT; ? placeholders), for the
// reads the pipeline makes for every message (the ticket and what it is
// made of, its messages, its participants). gorm builds each SELECT anew
// through its callback chain and clause builders and scans by
// reflection through its own value pools: its own code was an eighth of
// tend bench's CPU, the joined read of a ticket alone 3.6%. selectRows
// builds the column list once per model, runs the statement through the
// connection's cached statements (queryRows) and scans each column
// straight into its field. What it reads is what gorm's Find reads
// (TestSelectRowsAsGorm).
func selectRows[T any](ctx context.Context, s *Store, db *gorm.DB, omit []string, tail string, args ...any) ([]T, error) {
	p, err := planSelect[T](s, db, omit)
	if err != nil {
		return nil, err
	}
	q := "SELECT " + p.list + " FROM " + p.quoted + " " + tail
	out := []T{} // gorm's Find of no rows: empty, not nil
	if db.DryRun {
		// CaptureSQL records the statement; nothing runs.
		return out, db.WithContext(ctx).Raw(q, args...).Scan(&out).Error
	}
	rs, err := queryRows(ctx, db, p.postgres, q, args...)
	if err != nil {
		return nil, fmt.Errorf("select %s: %w", p.table, err)
	}
	defer rs.Close()
	dest := make([]any, 0, len(p.cols))
	for rs.Next() {
		var row T
		dest = p.fields(&row, dest[:0])
		if err := rs.Scan(dest...); err != nil {
			return nil, fmt.Errorf("select %s: %w", p.table, err)
		}
		out = append(out, row)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("select %s: %w", p.table, err)
	}
	return out, nil
}

// selectPlan is what selectRows needs of one model and set of omitted
// columns, made once per store.
type selectPlan struct {
	table, quoted string
	cols          []*schema.Field
	names         []string // the columns, quoted
	list          string   // the columns, quoted and qualified by the table
	postgres      bool
}

// fields appends to dest a pointer to each of row's fields that the
// plan's columns fill, in their order; row points to the model.
func (p *selectPlan) fields(row any, dest []any) []any {
	rv := reflect.ValueOf(row).Elem()
	for _, f := range p.cols {
		dest = append(dest, rv.FieldByIndex(f.StructField.Index).Addr().Interface())
	}
	return dest
}

// columns is the plan's column list qualified by alias (the table, or
// its alias in a join).
func (p *selectPlan) columns(alias string) string {
	out := make([]string, len(p.names))
	for i, n := range p.names {
		out[i] = alias + "." + n
	}
	return strings.Join(out, ", ")
}

// selectKey tells plans apart: a model and the columns it leaves out.
type selectKey struct {
	typ  reflect.Type
	omit string
}

// planSelect returns the store's plan for T without omit, made on first
// use (Store.selects).
func planSelect[T any](s *Store, db *gorm.DB, omit []string) (*selectPlan, error) {
	key := selectKey{typ: reflect.TypeFor[T](), omit: strings.Join(omit, ",")}
	if p, ok := s.selects.Load(key); ok {
		return p.(*selectPlan), nil
	}
	stmt := &gorm.Statement{DB: db}
	if err := stmt.Parse(new(T)); err != nil {
		return nil, fmt.Errorf("select plan %v: %w", key.typ, err)
	}
	sch := stmt.Schema
	p := &selectPlan{table: sch.Table, quoted: stmt.Quote(sch.Table), postgres: s.driver == DriverPostgres}
	for _, f := range sch.Fields {
		if f.DBName == "" || !f.Readable || slices.Contains(omit, f.DBName) {
			continue
		}
		// Scanned in place: a field behind a pointer (an embedded
		// *struct) has no place until gorm makes one, and a serializer
		// is gorm's to run.
		if f.Serializer != nil || throughPointer(sch.ModelType, f.StructField.Index) {
			return nil, fmt.Errorf("select plan %s: column %s is not scanned in place", sch.Table, f.DBName)
		}
		p.cols = append(p.cols, f)
		p.names = append(p.names, stmt.Quote(f.DBName))
	}
	p.list = p.columns(p.quoted)
	got, _ := s.selects.LoadOrStore(key, p)
	return got.(*selectPlan), nil
}

// throughPointer reports whether the field at index path in typ lies
// behind a pointer to a struct.
func throughPointer(typ reflect.Type, index []int) bool {
	for _, i := range index[:len(index)-1] {
		typ = typ.Field(i).Type
		if typ.Kind() == reflect.Pointer {
			return true
		}
	}
	return false
}
