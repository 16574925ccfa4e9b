package threading_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/internal/testenv"
	"github.com/tendhq/tend/threading"
	"github.com/tendhq/tend/threading/threadingtest"
	"github.com/tendhq/tend/vocab"
)

// replayStats are the corpus figures reported by TestCorpusReplay.
type replayStats struct {
	decisions, correct, falseJoins, falseSplits, wrongVia int
	byVia                                                 map[string]int
}

// corpusOwn reports whether addr belongs to the corpus installation.
func corpusOwn(addr string) bool {
	return slices.Contains(threadingtest.CorpusInboxes, addr) || threading.Domain(addr) == threadingtest.CorpusDomain
}

// TestCorpusReplay replays every labelled conversation, in order, through
// Decide and a Fake that records each placement the way storage does. All
// conversations share one store, so a false join across conversations
// would show too. Every decision is asserted: the ticket label, the kind of
// evidence that decided, the reply token.
func TestCorpusReplay(t *testing.T) {
	convs, err := threadingtest.LoadConversations("testdata/conversations")
	if err != nil {
		t.Fatal(err)
	}
	if len(convs) < 60 {
		t.Fatalf("corpus has %d conversations, want at least 60", len(convs))
	}
	fake := threadingtest.NewFake(1001)
	clock := testenv.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	cfg := threadingtest.CorpusConfig()
	cfg.Clock = clock
	st := &replayStats{byVia: map[string]int{}}
	messages := 0
	for _, c := range convs {
		messages += c.Messages()
		t.Run(c.Name, func(t *testing.T) {
			replayConversation(t, c, cfg, fake, clock, st)
		})
	}
	calls := 0
	for _, n := range fake.Calls {
		calls += n
	}
	t.Logf("corpus: %d conversations, %d messages, %d threading decisions", len(convs), messages, st.decisions)
	t.Logf("accuracy: %d/%d correct (%.1f%%), false joins %d, false splits %d, wrong evidence kind %d",
		st.correct, st.decisions, 100*float64(st.correct)/float64(max(st.decisions, 1)), st.falseJoins, st.falseSplits, st.wrongVia)
	t.Logf("decided by: %v; lookups per decision: %.2f (%v)", st.byVia, float64(calls)/float64(max(st.decisions, 1)), fake.Calls)
	if st.falseJoins != 0 || st.correct != st.decisions {
		t.Errorf("want 100%% and no false join")
	}
}

func replayConversation(t *testing.T, c threadingtest.Conversation, cfg threading.Config, fake *threadingtest.Fake, clock *testenv.FakeClock, st *replayStats) {
	ctx := context.Background()
	labels := map[string]int64{}
	lookup := func(l string) (int64, bool) { n, ok := labels[l]; return n, ok }
	for _, step := range c.Steps {
		switch step.Action {
		case "merge":
			fake.Merge(labels[step.Args[0]], labels[step.Args[1]])
			continue
		case "state":
			st, err := vocab.ParseState(step.Args[1])
			if err != nil {
				t.Fatalf("state step: %v", err)
			}
			fake.SetState(labels[step.Args[0]], st, clock.Now())
			continue
		case "":
		default:
			t.Fatalf("unknown event %q", step.Action)
		}
		raw, err := threadingtest.Render(step.Raw, lookup)
		if err != nil {
			t.Fatalf("%s: %v", step.File, err)
		}
		var rcpt []string
		for _, e := range step.Envelope {
			r, err := threadingtest.Render([]byte(e), lookup)
			if err != nil {
				t.Fatalf("%s: envelope: %v", step.File, err)
			}
			rcpt = append(rcpt, string(r))
		}
		// The production parse: header.Read and header.Parse, as ingest's
		// spool, then threading.FromFields, as ingest's threader.
		msg := threading.ReadMessage(raw, rcpt)
		msg.IsBounce = step.Dir == threadingtest.Bounce
		if !msg.Date.IsZero() {
			clock.Set(msg.Date)
		}
		switch step.Dir {
		case threadingtest.Out:
			fake.Record(msg, labels[step.Label], true, corpusOwn, clock.Now())
			continue
		case threadingtest.Lost:
			continue
		}
		d, err := threading.Decide(ctx, cfg, msg, fake)
		if err != nil {
			t.Fatalf("%s: decide: %v", step.File, err)
		}
		st.decisions++
		ok := checkDecision(t, step, d, labels, st)
		if ok {
			st.correct++
		}
		ticket := d.Ticket
		if ticket == 0 && !d.NoTicket {
			ticket = fake.Open(msg, clock.Now())
			if _, seen := labels[step.Label]; !seen && step.Label != "-" {
				labels[step.Label] = ticket
			}
		}
		fake.Record(msg, ticket, false, corpusOwn, clock.Now())
	}
}

// checkDecision compares one decision with the manifest and counts it.
func checkDecision(t *testing.T, step threadingtest.Step, d threading.Decision, labels map[string]int64, st *replayStats) bool {
	t.Helper()
	want, known := labels[step.Label]
	var problem string
	switch {
	case step.Label == "-":
		if !d.NoTicket {
			problem = "want no ticket"
			if d.Ticket != 0 {
				st.falseJoins++
			}
		}
	case !known:
		if d.Ticket != 0 || d.NoTicket {
			problem = "want a new ticket"
			if d.Ticket != 0 {
				st.falseJoins++
			}
		}
	case d.Ticket != want:
		problem = fmt.Sprintf("want ticket %d (label %s)", want, step.Label)
		if d.Ticket != 0 {
			st.falseJoins++
		} else {
			st.falseSplits++
		}
	}
	via := string(d.Via())
	st.byVia[via]++
	if problem == "" && step.Via != "" && via != step.Via {
		problem = fmt.Sprintf("want evidence %s", step.Via)
		st.wrongVia++
	}
	if problem == "" && (d.Reply != nil) != (step.Via == string(threading.EvidenceSignedAddress)) {
		problem = fmt.Sprintf("reply token %+v does not fit evidence %s", d.Reply, step.Via)
	}
	for _, e := range d.Evidence {
		if strings.TrimSpace(e.Detail) == "" {
			problem = "evidence without detail"
		}
	}
	if problem != "" {
		t.Errorf("%s: %s; got ticket %d no-ticket=%v via %q\n%s", step.File, problem, d.Ticket, d.NoTicket, via, formatEvidence(d))
		return false
	}
	return true
}

func formatEvidence(d threading.Decision) string {
	var b strings.Builder
	for _, e := range d.Evidence {
		fmt.Fprintf(&b, "\t%-14s ticket=%-5d accepted=%-5v %s\n", e.Kind, e.Ticket, e.Accepted, e.Detail)
	}
	return b.String()
}
