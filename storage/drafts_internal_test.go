package storage

import (
	"slices"
	"testing"
)

// TestBodyChunks: bodies are stored in runs that keep each statement
// within bodyStatementBytes, a larger body alone, none lost or reordered.
func TestBodyChunks(t *testing.T) {
	body := func(id int64, n int) OutboxBody { return OutboxBody{OutboxID: id, Raw: make([]byte, n)} }
	half, big := bodyStatementBytes/2, bodyStatementBytes+1
	cases := []struct {
		name string
		rows []OutboxBody
		want [][]int64
	}{
		{"none", nil, nil},
		{"small ones together", []OutboxBody{body(1, 10), body(2, 10), body(3, 10)}, [][]int64{{1, 2, 3}}},
		{"two halves fit, a third does not", []OutboxBody{body(1, half), body(2, half), body(3, half)}, [][]int64{{1, 2}, {3}}},
		{"a large one alone", []OutboxBody{body(1, 10), body(2, big), body(3, 10)}, [][]int64{{1}, {2}, {3}}},
	}
	for _, c := range cases {
		var got [][]int64
		for _, chunk := range bodyChunks(c.rows) {
			var ids []int64
			for _, r := range chunk {
				ids = append(ids, r.OutboxID)
			}
			got = append(got, ids)
		}
		if !slices.EqualFunc(got, c.want, slices.Equal[[]int64]) {
			t.Errorf("%s: chunks %v, want %v", c.name, got, c.want)
		}
	}
}
