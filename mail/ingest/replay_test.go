package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/mail/classify"
	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/threading"
	"github.com/tendhq/tend/threading/threadingtest"
	"github.com/tendhq/tend/vocab"
)

// corpusDir is the labelled threading corpus, relative to this package.
const corpusDir = "../../threading/testdata/conversations"

// corpusInstall is everything the ingest path of the corpus installation
// is made of, on one store.
type corpusInstall struct {
	store *storage.Store
	clock *storagetest.FakeClock
	pipe  *ingest.Pipeline
}

// newCorpusInstall opens a store of backend b with the corpus inboxes, a
// running group committer and the Pipeline the server builds (see
// cmd/tend/serve.go), threading with the corpus configuration on clock.
func newCorpusInstall(t testing.TB, b storagetest.Backend, clock *storagetest.FakeClock) *corpusInstall {
	t.Helper()
	ctx := context.Background()
	s := b.Open(t, clock)
	specs := make([]storage.InboxSpec, len(threadingtest.CorpusInboxes))
	for i, a := range threadingtest.CorpusInboxes {
		specs[i] = storage.InboxSpec{Address: a, Name: "Acme " + a, ResponseTime: 4 * time.Hour}
	}
	if err := s.SyncInboxes(ctx, specs); err != nil {
		t.Fatal(err)
	}
	c := storagetest.StartCommitter(t, s, 16)
	cfg := threadingtest.CorpusConfig()
	cfg.Clock = clock
	pipe, err := ingest.New(ingest.Options{
		Committer: c, Threader: ingest.DecisionThreader{Config: cfg}, Inboxes: threadingtest.CorpusInboxes,
		Own: classify.Own{Addresses: threadingtest.CorpusInboxes, Domains: []string{threadingtest.CorpusDomain}, LoopHeader: "X-Tend-Loop"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &corpusInstall{store: s, clock: clock, pipe: pipe}
}

// replayScore counts the decisions of a replay.
type replayScore struct {
	total, correct, falseJoins, falseSplits, wrongVia int
	via                                               map[string]int
}

// TestCorpusReplayThroughIngest replays every labelled conversation of
// threading's corpus through the real ingest path: Pipeline.Deliver with
// its envelope, classification, DecisionThreader inside the group
// committer's transaction, the real storage lookups. Mail we sent is
// queued with Tx.QueueMail the way the follow-through executor sends it;
// merges and state changes are the real storage operations. All
// conversations share one store per backend, so a false join across
// conversations shows. Every decision is asserted: the ticket label, the
// kind of evidence stored with the message, the agent of a signed
// address.
func TestCorpusReplayThroughIngest(t *testing.T) {
	replayCorpus(t, corpusDir, 60)
}

// TestIngestScenarios replays this package's own conversations (same
// format, testdata/conversations): what happens to the rows storage
// writes after a decision, which the threading corpus alone does not pin.
func TestIngestScenarios(t *testing.T) {
	replayCorpus(t, "testdata/conversations", 1)
}

// replayCorpus replays the conversations under dir on every backend and
// fails unless every decision is right.
func replayCorpus(t *testing.T, dir string, atLeast int) {
	convs, err := threadingtest.LoadConversations(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(convs) < atLeast {
		t.Fatalf("%s has %d conversations, want at least %d", dir, len(convs), atLeast)
	}
	for _, b := range storagetest.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			clock := storagetest.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			ci := newCorpusInstall(t, b, clock)
			sc := &replayScore{via: map[string]int{}}
			messages := 0
			for _, c := range convs {
				messages += c.Messages()
				t.Run(c.Name, func(t *testing.T) { ci.replay(t, c, sc) })
			}
			t.Logf("%s: %d conversations, %d messages, %d decisions through the ingest path", b.Name, len(convs), messages, sc.total)
			t.Logf("%s: accuracy %d/%d (%.1f%%), false joins %d, false splits %d, wrong evidence kind %d; decided by %v",
				b.Name, sc.correct, sc.total, 100*float64(sc.correct)/float64(max(sc.total, 1)), sc.falseJoins, sc.falseSplits, sc.wrongVia, sc.via)
			if sc.total == 0 || sc.correct != sc.total || sc.falseJoins != 0 {
				t.Errorf("want 100%% and no false join")
			}
		})
	}
}

// replay plays one conversation's steps in order.
func (ci *corpusInstall) replay(t *testing.T, c threadingtest.Conversation, sc *replayScore) {
	ctx := context.Background()
	labels := map[string]int64{}
	rows := map[string]int64{} // message file -> stored row
	ticketOf := func(l string) (int64, bool) { n, ok := labels[l]; return n, ok }
	for _, st := range c.Steps {
		if st.Action != "" {
			ci.event(t, st, labels, rows)
			continue
		}
		if st.Dir == threadingtest.Lost {
			continue // its row was lost: replies can only use the signed Message-ID
		}
		raw, err := threadingtest.Render(st.Raw, ticketOf)
		if err != nil {
			t.Fatalf("%s: %v", st.File, err)
		}
		h := ingest.ParseHeaders(raw)
		if h.Date != nil {
			ci.clock.Set(*h.Date)
		}
		if st.Dir == threadingtest.Out {
			ticket, ok := labels[st.Label]
			if !ok {
				t.Fatalf("%s: we sent mail on ticket %s before it exists", st.File, st.Label)
			}
			ci.recordSent(t, ticket, raw, h)
			continue
		}
		env := ingest.Envelope{From: h.From, Source: "smtp"}
		if st.Dir == threadingtest.Bounce {
			env.From = "" // a DSN comes from the null reverse path (RFC 3464 §2)
		}
		for _, e := range st.Envelope {
			r, err := threadingtest.Render([]byte(e), ticketOf)
			if err != nil {
				t.Fatalf("%s: envelope: %v", st.File, err)
			}
			env.To = append(env.To, strings.ToLower(string(r)))
		}
		if len(st.Envelope) == 0 {
			env.Source = "imap"
		}
		d, err := ci.pipe.Deliver(ctx, raw, env)
		if err != nil {
			t.Fatalf("%s: deliver: %v", st.File, err)
		}
		msg, err := ci.store.GetMessage(ctx, d.MessageRowID)
		if err != nil {
			t.Fatal(err)
		}
		rows[st.File] = d.MessageRowID
		sc.judge(t, st, d, msg, labels)
		if _, seen := labels[st.Label]; !seen && st.Label != "-" && d.NewTicket {
			labels[st.Label] = d.Ticket
		}
	}
}

// event applies a manifest event: a lead's merge ("!merge B A": B into
// A), a state change ("!state A resolved"), or a lead's split ("!split
// 03-apple.eml B": that message off into a new ticket labelled B, with the
// subject key the web layer passes).
func (ci *corpusInstall) event(t *testing.T, st threadingtest.Step, labels, rows map[string]int64) {
	t.Helper()
	ctx := context.Background()
	if len(st.Args) != 2 {
		t.Fatalf("event %s: want 2 arguments, got %v", st.Action, st.Args)
	}
	switch st.Action {
	case "merge":
		if err := ci.store.MergeTickets(ctx, labels[st.Args[0]], labels[st.Args[1]], "lead@acme.example"); err != nil {
			t.Fatalf("merge %v: %v", st.Args, err)
		}
	case "state":
		state, err := vocab.ParseState(st.Args[1])
		if err != nil {
			t.Fatalf("state %v: %v", st.Args, err)
		}
		err = ci.store.InTx(ctx, func(tx *storage.Tx) error {
			return tx.UpdateTicket(ctx, labels[st.Args[0]], storage.TicketUpdate{State: &state})
		})
		if err != nil {
			t.Fatalf("state %v: %v", st.Args, err)
		}
	case "split":
		row, ok := rows[st.Args[0]]
		if !ok {
			t.Fatalf("split %v: no such message delivered", st.Args)
		}
		m, err := ci.store.GetMessage(ctx, row)
		if err != nil {
			t.Fatal(err)
		}
		err = ci.store.InTx(ctx, func(tx *storage.Tx) error {
			n, err := tx.SplitMessage(ctx, row, storage.SplitOptions{By: "lead@acme.example", NormSubject: threading.NormalizeSubject(m.Subject)})
			labels[st.Args[1]] = n
			return err
		})
		if err != nil {
			t.Fatalf("split %v: %v", st.Args, err)
		}
	default:
		t.Fatalf("unknown event %q", st.Action)
	}
}

// recordSent queues raw as our mail on ticket, the way the follow-through
// executor does: the outbox row and the outbound message row with the
// fields threading looks up (Message-ID, Thread-Index root).
func (ci *corpusInstall) recordSent(t *testing.T, ticket int64, raw []byte, h ingest.Headers) {
	t.Helper()
	if h.Derived {
		t.Fatalf("mail we sent has no Message-ID:\n%s", raw)
	}
	ctx := context.Background()
	root, _ := threading.ThreadIndexRoot(h.ThreadIndex)
	m := storage.Message{
		TicketID: &ticket, FromAddr: h.From, FromName: h.FromName, ToAddrs: strings.Join(h.To, ","), CcAddrs: strings.Join(h.Cc, ","),
		Subject: h.Subject, Date: h.Date, InReplyTo: h.Parent(), References: strings.Join(h.References, " "),
		ThreadRoot: root, ThreadTopic: h.ThreadTopic, Role: "agent",
	}
	o := storage.OutboxMail{TicketID: &ticket, Kind: storage.OutboxToCustomer, EnvTo: strings.Join(h.To, ",")}
	err := ci.store.InTx(ctx, func(tx *storage.Tx) error {
		_, err := tx.QueueMail(ctx, o, m, func(int64) (storage.Composed, error) {
			return storage.Composed{MessageID: h.MessageID, EnvFrom: "bounces@" + threadingtest.CorpusDomain, Raw: storagetest.Fixed(raw)}, nil
		})
		if err != nil {
			return err
		}
		// An agent writing from their own mailbox takes part in the
		// ticket; mail from the inbox itself adds nobody.
		if slices.Contains(threadingtest.CorpusInboxes, h.From) || threading.Domain(h.From) == threadingtest.CorpusDomain {
			return nil
		}
		return tx.AddParticipants(ctx, ticket, []string{h.From}, "agent")
	})
	if err != nil {
		t.Fatalf("queue our mail %s: %v", h.MessageID, err)
	}
}

// judge compares one delivery with its manifest line and counts it.
func (sc *replayScore) judge(t *testing.T, st threadingtest.Step, d storage.Delivered, msg storage.Message, labels map[string]int64) {
	t.Helper()
	sc.total++
	var ev []struct {
		Kind     string `json:"kind"`
		Ticket   int64  `json:"ticket"`
		Detail   string `json:"detail"`
		Accepted bool   `json:"accepted"`
	}
	if err := json.Unmarshal([]byte(msg.Evidence), &ev); err != nil {
		t.Errorf("%s: stored evidence %q: %v", st.File, msg.Evidence, err)
	}
	via := ""
	for _, e := range ev {
		if e.Accepted && e.Kind != string(threading.EvidenceBounceAddress) {
			via = e.Kind
			break
		}
	}
	sc.via[via]++
	want, known := labels[st.Label]
	if st.Dir == threadingtest.Bounce && known {
		// Threading finds the ticket a delivery report is about, but the
		// ingest path keeps every report off tickets: it is about our
		// mail, not the customer's word (the outbox row it reports on is
		// failed on that ticket's timeline instead). The stored evidence
		// must still name the ticket.
		named := false
		for _, e := range ev {
			named = named || (e.Accepted && e.Ticket == want && e.Kind == string(threading.EvidenceBounce))
		}
		if d.Ticket != 0 || !named {
			if d.Ticket != 0 {
				sc.falseJoins++
			}
			t.Errorf("%s: a bounce about ticket %d must stay off tickets and name it; got ticket %d, evidence:\n%s", st.File, want, d.Ticket, msg.Evidence)
			return
		}
		sc.correct++
		return
	}
	var problem string
	switch {
	case st.Label == "-" && d.Ticket != 0:
		problem = "want no ticket"
		if !d.NewTicket {
			sc.falseJoins++
		}
	case st.Label == "-":
	case !known && !d.NewTicket:
		problem = "want a new ticket"
		if d.Ticket != 0 {
			sc.falseJoins++
		} else {
			sc.falseSplits++
		}
	case known && d.Ticket != want:
		problem = fmt.Sprintf("want ticket %d (label %s)", want, st.Label)
		if d.Ticket != 0 && !d.NewTicket {
			sc.falseJoins++
		} else {
			sc.falseSplits++
		}
	case st.Via != "" && via != st.Via:
		problem = "want evidence " + st.Via
		sc.wrongVia++
	case (msg.AgentID != nil) != (st.Via == string(threading.EvidenceSignedAddress)):
		problem = fmt.Sprintf("agent %v does not fit evidence %s", msg.AgentID, st.Via)
	}
	if problem != "" {
		t.Errorf("%s: %s; got ticket %d (new %v), class %s, evidence:\n%s", st.File, problem, d.Ticket, d.NewTicket, msg.Class, msg.Evidence)
		return
	}
	sc.correct++
}
