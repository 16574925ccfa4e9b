package rules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/internal/testenv"
	"github.com/tendhq/tend/vocab"
)

// addFileSeeds adds every file matching pattern as a seed.
func addFileSeeds(f *testing.F, pattern string) {
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		f.Fatalf("no seeds at %s: %v", pattern, err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
}

// addAnswerSeeds seeds from testdata replies and, when present, a sample of
// real mail bodies from the corpus.
func addAnswerSeeds(f *testing.F) {
	addFileSeeds(f, filepath.Join("testdata", "answers", "*.txt"))
	for _, s := range []string{"yes", "no", "Hi,\n\nyes it works", "not fixed", "ça marche", "werkt niet", "> yes", "-- \nyes"} {
		f.Add(s)
	}
	if _, err := os.Stat(filepath.Join("..", "..", "shared", "corpus", "index.tsv")); err != nil && !testenv.CI() {
		return // corpus seeds are a bonus; the testdata seeds suffice
	}
	dir, rows := corpusRows(f)
	for i, r := range rows {
		if i%10 != 0 {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, r.path))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body(raw))
	}
}

func FuzzClassifyAnswer(f *testing.F) {
	addAnswerSeeds(f)
	f.Fuzz(func(t *testing.T, text string) {
		switch got := ClassifyAnswer(text); got {
		case AnswerYes, AnswerNo, AnswerUnclear:
		default:
			t.Fatalf("ClassifyAnswer(%q) = %q", text, got)
		}
	})
}

// FuzzIsGratitude: arbitrary text never panics, and a reply with a
// question mark is never taken for a bare thank-you.
func FuzzIsGratitude(f *testing.F) {
	addAnswerSeeds(f)
	f.Add("Thanks again, great service!")
	f.Add("Merci, mais ça ne marche toujours pas.")
	f.Fuzz(func(t *testing.T, text string) {
		if IsGratitude(text) && strings.ContainsAny(firstLines(text), "?") {
			t.Fatalf("IsGratitude(%q) = true for a question", text)
		}
	})
}

// firstLines is the text before anything that ends a reply (quotes,
// attribution, signature), as IsGratitude reads it.
func firstLines(text string) string {
	var b strings.Builder
	for _, raw := range strings.Split(strings.ToValidUTF8(text, " "), "\n") {
		line := strings.TrimSpace(strings.Map(normalizeRune, raw))
		if line != "" && endsReply(line) {
			break
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// FuzzEvaluate drives the default rules with arbitrary message text and
// ticket state: the engine never panics, the default rules never fail at
// run time, and nothing automatic passes the gate for machine mail.
func FuzzEvaluate(f *testing.F) {
	addAnswerSeeds(f)
	e, err := Default(Options{})
	if err != nil {
		f.Fatal(err)
	}
	types := []vocab.EventKind{vocab.EventTicketCreated, vocab.EventMessageReceived, vocab.EventTimerDue, vocab.EventConfirmationClicked, vocab.EventResolveRequested, vocab.EventStateChanged, vocab.EventOutboxFailed}
	states := []vocab.State{vocab.StateNew, vocab.StateWaiting, vocab.StateOpen, vocab.StateProposed, vocab.StateResolved, vocab.StateUnconfirmed, vocab.StateClosed, "", "bogus"}
	classes := []vocab.Class{vocab.ClassHuman, vocab.ClassAutoReply, vocab.ClassBounce, vocab.ClassList, vocab.ClassOwnMail, vocab.ClassSpam, vocab.ClassReport, vocab.Class("unknown"), "own-mail", ""}
	roles := []string{RoleCustomer, RoleAgent, RoleCC, ""}
	f.Fuzz(func(t *testing.T, text string) {
		n := len(text)
		tk := baseTicket()
		tk.State = states[n%len(states)]
		tk.Priority = text
		tk.Customer.Address = text
		tk.ResolvedAt = t0.Add(-time.Duration(n) * time.Hour) // inside and beyond the reopen window
		ev := Event{
			Type: types[n%len(types)], Now: t0, Ticket: tk, Reason: text, Answer: text,
			Message: &Message{Role: roles[n%len(roles)], Class: classes[n%len(classes)], Text: text},
			Timer:   &Timer{Name: text}, Outbox: &Outbox{To: text, Permanent: n%2 == 0},
		}
		acts, errs := e.Evaluate(ev)
		for _, err := range errs {
			if ev.Type == vocab.EventOutboxFailed && ev.Outbox.Permanent && text == "" {
				continue // suppressing an empty address is rightly refused
			}
			t.Errorf("default rule failed: %v", err)
		}
		for i, v := range GateAll(ev, acts, e.Options()) {
			if v.Allowed && acts[i].Auto && ev.Message.Class != vocab.ClassHuman {
				t.Errorf("automatic %v allowed in answer to %q mail", acts[i], ev.Message.Class)
			}
		}
	})
}

// FuzzLoad feeds arbitrary YAML to Load: it returns an engine or an error,
// never panics, and a loaded engine evaluates without panicking.
func FuzzLoad(f *testing.F) {
	f.Add(string(DefaultRules()))
	addFileSeeds(f, filepath.Join("testdata", "rules", "*.yaml"))
	f.Add("- name: x\n  on: ticket.created\n  if: ticket.tags[1] == \"a\"\n  do: [{record: y}]\n")
	tm, err := LoadTemplates("")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Load("fuzz.yaml", []byte(src), Options{Templates: tm})
		if err != nil {
			return
		}
		for _, typ := range []vocab.EventKind{vocab.EventTicketCreated, vocab.EventMessageReceived, vocab.EventTimerDue} {
			e.Evaluate(Event{Type: typ, Now: t0, Ticket: baseTicket(), Message: customerMsg(src), Timer: &Timer{Name: "first_response"}})
		}
	})
}
