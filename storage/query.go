package storage

import (
	"context"
	"database/sql"
	"strconv"
	"strings"

	"gorm.io/gorm"
)

// queryRows runs q, written with ? placeholders, on db's connection (the
// transaction's, when db is a Tx's) and returns its rows for the caller
// to scan column by column. It is for the few reads the pipeline makes
// for every message whose rows it then walks itself: gorm's Raw and Scan
// build the statement anew, format it with its values for the logger and
// scan by reflection, a fifth of the time of such a read in tend bench's
// profile. On PostgreSQL the placeholders become $1, $2, …; q must not
// hold a ? of its own (in a literal or as an operator). A dry run
// (CaptureSQL) goes through gorm, which records the statement and runs
// nothing.
func queryRows(ctx context.Context, db *gorm.DB, postgres bool, q string, args ...any) (*sql.Rows, error) {
	if db.DryRun {
		return db.WithContext(ctx).Raw(q, args...).Rows()
	}
	if postgres {
		q = dollarPlaceholders(q)
	}
	return db.Statement.ConnPool.QueryContext(ctx, q, args...)
}

// dollarPlaceholders numbers q's ? placeholders as PostgreSQL's $n.
func dollarPlaceholders(q string) string {
	n := strings.Count(q, "?")
	if n == 0 {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 2*n)
	arg := 0
	for {
		i := strings.IndexByte(q, '?')
		if i < 0 {
			b.WriteString(q)
			return b.String()
		}
		arg++
		b.WriteString(q[:i])
		b.WriteString("$" + strconv.Itoa(arg))
		q = q[i+1:]
	}
}
