package threadingtest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tendhq/tend/threading"
)

// Direction says who sent a corpus message.
type Direction string

// Directions in a manifest.
const (
	// In is mail that arrives: threading decides it.
	In Direction = "in"
	// Bounce is arriving mail that is a delivery status notification.
	Bounce Direction = "bounce"
	// Out is mail we sent: the replay records it as outbound on its ticket
	// with its Message-ID, without deciding anything.
	Out Direction = "out"
	// Lost is mail we sent whose database row was lost: the replay records
	// nothing, so replies to it can only thread through the ticket signed
	// into its Message-ID.
	Lost Direction = "lost"
)

// Step is one line of a conversation manifest: a message, or an event
// (Action "merge" or "state") that a lead or the state machine performs
// between messages.
type Step struct {
	// File and Raw are the message file and its bytes, a template (see
	// Render). Empty for events.
	File string
	Raw  []byte
	// Label is the expected ticket: the same label means the same ticket, a
	// label not seen before means a new ticket, "-" means no ticket.
	Label string
	Dir   Direction
	// Via is the expected kind of accepted evidence (threading's
	// EvidenceKind values), "" when the manifest does not say.
	Via string
	// Envelope are the RCPT TO addresses, templates; empty means the mail
	// came without an envelope (IMAP).
	Envelope []string
	// Action and Args describe an event: "merge B A" merges the ticket of
	// label B into that of A; "state A resolved" sets a ticket's state.
	Action string
	Args   []string
}

// Conversation is one directory of the corpus.
type Conversation struct {
	Name        string
	Description string
	Steps       []Step
}

// Messages counts the message steps.
func (c Conversation) Messages() int {
	n := 0
	for _, s := range c.Steps {
		if s.Action == "" {
			n++
		}
	}
	return n
}

// LoadConversations reads every conversation directory under dir (each
// with a manifest.tsv and its .eml files), sorted by name.
//
// manifest.tsv lines are "file<TAB>label<TAB>direction<TAB>via<TAB>envelope"
// where envelope is a comma-separated list or "-", and via is "-" when not
// asserted; lines starting with "#" are the description; lines starting
// with "!" are events ("!merge<TAB>B<TAB>A", "!state<TAB>A<TAB>resolved").
func LoadConversations(dir string) ([]Conversation, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load conversations: %w", err)
	}
	var out []Conversation
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		c, err := loadConversation(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("load conversation %s: %w", e.Name(), err)
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func loadConversation(dir string) (Conversation, error) {
	c := Conversation{Name: filepath.Base(dir)}
	f, err := os.Open(filepath.Join(dir, "manifest.tsv"))
	if err != nil {
		return c, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var desc []string
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.TrimSpace(text) == "":
			continue
		case strings.HasPrefix(text, "#"):
			desc = append(desc, strings.TrimSpace(strings.TrimPrefix(text, "#")))
			continue
		}
		cols := strings.Split(text, "\t")
		if strings.HasPrefix(cols[0], "!") {
			c.Steps = append(c.Steps, Step{Action: cols[0][1:], Args: cols[1:]})
			continue
		}
		if len(cols) != 5 {
			return c, fmt.Errorf("manifest line %d: want 5 columns, got %d", line, len(cols))
		}
		st := Step{File: cols[0], Label: cols[1], Dir: Direction(cols[2])}
		switch st.Dir {
		case In, Bounce, Out, Lost:
		default:
			return c, fmt.Errorf("manifest line %d: unknown direction %q", line, cols[2])
		}
		if cols[3] != "-" {
			st.Via = cols[3]
		}
		if cols[4] != "-" {
			st.Envelope = strings.Split(cols[4], ",")
		}
		if st.Raw, err = os.ReadFile(filepath.Join(dir, st.File)); err != nil {
			return c, err
		}
		c.Steps = append(c.Steps, st)
	}
	if err := sc.Err(); err != nil {
		return c, err
	}
	c.Description = strings.Join(desc, " ")
	return c, nil
}

// CorpusDomain is the domain of our reply addresses and Message-IDs in the
// corpus; CorpusInboxes are its inbox addresses.
const CorpusDomain = "tend.acme.example"

// CorpusInboxes are the inbox addresses the corpus writes to.
var CorpusInboxes = []string{"support@acme.example", "billing@acme.example"}

// corpusSecret returns fixed test secrets; they protect nothing.
func corpusSecret(id string) []byte {
	return bytes.Repeat([]byte("corpus-key-"+id+"/"), 3)
}

// CorpusSigner returns the Signer the corpus was written for: it signs
// with key "b" and still verifies key "a" (a rotation in progress).
func CorpusSigner() *threading.Signer {
	// The arguments are fixed and valid, so NewSigner cannot fail here.
	s, _ := threading.NewSigner("b", threading.Key{ID: "a", Secret: corpusSecret("a")}, threading.Key{ID: "b", Secret: corpusSecret("b")})
	return s
}

// retiredSigner signs with key "z", which CorpusSigner does not know.
func retiredSigner() *threading.Signer {
	s, _ := threading.NewSigner("z", threading.Key{ID: "z", Secret: corpusSecret("z")})
	return s
}

// previousSigner signs with key "a", still configured in CorpusSigner.
func previousSigner() *threading.Signer {
	s, _ := threading.NewSigner("a", threading.Key{ID: "a", Secret: corpusSecret("a")})
	return s
}

// CorpusConfig returns the threading configuration the corpus expects.
func CorpusConfig() threading.Config {
	return threading.Config{
		OwnAddresses:  CorpusInboxes,
		OwnDomains:    []string{CorpusDomain},
		TagPrefix:     "Acme",
		SubjectWindow: 7 * 24 * time.Hour,
		Signer:        CorpusSigner(),
	}
}

var placeholderRE = regexp.MustCompile(`\{\{([a-z-]+)((?: [A-Za-z0-9]+)*)\}\}`)

// Render fills the placeholders of a corpus template. ticket maps a label
// to the ticket it was given so far. Placeholders:
//
//	{{ticket A}}        the number of ticket A
//	{{mid A N}}         our Message-ID for the N-th mail we sent on A
//	{{reply A G}}       agent G's signed reply address on A
//	{{note A G}}        agent G's signed note address on A
//	{{reply-prev A G}}  the same, signed with the previous (still known) key
//	{{reply-retired A G}} the same, signed with a retired key
//	{{bounce N}}        the VERP bounce address of outbox row N
//
// Outbox ids in {{mid}} and {{bounce}} are the N given, offset by the
// ticket number times 1000 so that they are unique across the corpus.
func Render(raw []byte, ticket func(label string) (int64, bool)) ([]byte, error) {
	var firstErr error
	out := placeholderRE.ReplaceAllFunc(raw, func(m []byte) []byte {
		sub := placeholderRE.FindSubmatch(m)
		name, args := string(sub[1]), strings.Fields(string(sub[2]))
		s, err := renderOne(name, args, ticket)
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("render %s: %w", m, err)
		}
		return []byte(s)
	})
	return out, firstErr
}

func renderOne(name string, args []string, ticket func(string) (int64, bool)) (string, error) {
	num := func(i int) (int64, error) {
		if i >= len(args) {
			return 0, fmt.Errorf("missing argument %d", i+1)
		}
		return strconv.ParseInt(args[i], 10, 64)
	}
	if name == "bounce" {
		n, err := num(0)
		if err != nil {
			return "", err
		}
		return CorpusSigner().BounceAddress(n) + "@" + CorpusDomain, nil
	}
	if len(args) == 0 {
		return "", fmt.Errorf("missing label")
	}
	t, ok := ticket(args[0])
	if !ok {
		return "", fmt.Errorf("label %s has no ticket yet", args[0])
	}
	if name == "ticket" {
		return strconv.FormatInt(t, 10), nil
	}
	n, err := num(1)
	if err != nil {
		return "", err
	}
	switch name {
	case "mid":
		return CorpusSigner().MessageID(t, t*1000+n, CorpusDomain), nil
	case "reply":
		return CorpusSigner().Sign(threading.PurposeReply, t, n) + "@" + CorpusDomain, nil
	case "note":
		return CorpusSigner().Sign(threading.PurposeNote, t, n) + "@" + CorpusDomain, nil
	case "reply-prev":
		return previousSigner().Sign(threading.PurposeReply, t, n) + "@" + CorpusDomain, nil
	case "reply-retired":
		return retiredSigner().Sign(threading.PurposeReply, t, n) + "@" + CorpusDomain, nil
	}
	return "", fmt.Errorf("unknown placeholder %q", name)
}
