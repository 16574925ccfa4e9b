package storage

import "testing"

// TestDollarPlaceholders: PostgreSQL's numbered placeholders, in order,
// whatever stands around them.
func TestDollarPlaceholders(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"SELECT * FROM t WHERE a = ?", "SELECT * FROM t WHERE a = $1"},
		{"SELECT ?::bigint[], x FROM t WHERE a = ? AND b IN (?,?) LIMIT ?", "SELECT $1::bigint[], x FROM t WHERE a = $2 AND b IN ($3,$4) LIMIT $5"},
		{"?", "$1"},
	} {
		if got := dollarPlaceholders(tc.in); got != tc.want {
			t.Errorf("dollarPlaceholders(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
