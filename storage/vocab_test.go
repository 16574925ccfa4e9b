package storage

import (
	"regexp"
	"slices"
	"testing"

	"github.com/tendhq/tend/vocab"
)

// TestAttentionSQLStates: the attention rank is SQL (a generated column,
// migration step 5), so its states are literals there; each must be a
// state of the vocabulary, and the ranks below AttentionDone must cover
// exactly the open states, or a renamed or added state would fall into
// "done" without a word.
func TestAttentionSQLStates(t *testing.T) {
	lits := regexp.MustCompile(`'([^']*)'`).FindAllStringSubmatch(attentionSQL, -1)
	if len(lits) == 0 {
		t.Fatal("no state literals found in attentionSQL")
	}
	seen := map[vocab.State]bool{}
	for _, m := range lits {
		st, err := vocab.ParseState(m[1])
		if err != nil {
			t.Errorf("attentionSQL: %v", err)
		}
		seen[st] = true
	}
	for _, st := range vocab.States() {
		open := slices.Contains(openStates(), st)
		if seen[st] != open {
			t.Errorf("state %q: ranked in attentionSQL %v, open %v", st, seen[st], open)
		}
	}
}
