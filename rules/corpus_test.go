package rules

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tendhq/tend/internal/testenv"
	"github.com/tendhq/tend/vocab"
)

// corpusDir finds ../shared/corpus (relative to this package, two levels
// below /work: rules -> wt-NAME -> work). Without it the test is skipped,
// unless TEND_CI is set, where a missing corpus is a failure.
func corpusDir(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join("..", "..", "shared", "corpus")
	if _, err := os.Stat(filepath.Join(dir, "index.tsv")); err != nil {
		testenv.SkipOrFail(tb, fmt.Sprintf("corpus not found at %s: %v", dir, err))
	}
	return dir
}

type corpusRow struct{ path, category string }

func corpusRows(tb testing.TB) (string, []corpusRow) {
	dir := corpusDir(tb)
	f, err := os.Open(filepath.Join(dir, "index.tsv"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var rows []corpusRow
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) >= 2 {
			rows = append(rows, corpusRow{cols[0], cols[1]})
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return dir, rows
}

// body returns the raw text after the header block, bounded, as a rough
// stand-in for the new text the mail package extracts.
func body(raw []byte) string {
	raw = bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
	if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
		raw = raw[i+2:]
	}
	if len(raw) > 4096 {
		raw = raw[:4096]
	}
	return string(raw)
}

// classOf maps the corpus' categories to the classes ingest assigns.
func classOf(category string) vocab.Class {
	switch category {
	case "auto-reply":
		return vocab.ClassAutoReply
	case "bounce":
		return vocab.ClassBounce
	case "list":
		return vocab.ClassList
	case "spam":
		return vocab.ClassSpam
	}
	return vocab.ClassHuman
}

// Every corpus message labelled auto-reply, bounce, list or spam, delivered
// with that class in any ticket state, gets no automatic mail past the gate
// and no state change; the body is read as an answer without trouble.
func TestCorpusNoAutomaticMailToMachines(t *testing.T) {
	dir, rows := corpusRows(t)
	e := defaultEngine(t)
	checked := 0
	for _, r := range rows {
		class := classOf(r.category)
		raw, err := os.ReadFile(filepath.Join(dir, r.path))
		if err != nil {
			t.Fatalf("%s: %v", r.path, err)
		}
		text := body(raw)
		_ = ClassifyAnswer(text) // must not panic on real mail
		if class == vocab.ClassHuman {
			continue
		}
		checked++
		for _, typ := range []vocab.EventKind{vocab.EventTicketCreated, vocab.EventMessageReceived} {
			for _, state := range []vocab.State{vocab.StateNew, vocab.StateWaiting, vocab.StateOpen, vocab.StateProposed, vocab.StateUnconfirmed, vocab.StateResolved, vocab.StateClosed} {
				tk := baseTicket()
				tk.State = state
				tk.ResolvedAt = t0
				ev := Event{Type: typ, Now: t0, Ticket: tk, Message: &Message{Role: RoleCustomer, Class: class, Text: text}}
				acts, errs := e.Evaluate(ev)
				if len(errs) > 0 {
					t.Fatalf("%s: %v", r.path, errs)
				}
				for i, v := range GateAll(ev, acts, e.Options()) {
					a := acts[i]
					if (a.Kind == Send && v.Allowed) || a.Kind == SetState || a.Kind == OpenLinked {
						t.Errorf("%s (%s, %s in %s): %v", r.path, r.category, typ, state, a)
					}
				}
			}
		}
	}
	t.Logf("%d machine-generated corpus messages checked", checked)
}
