// Package agentcmd parses the one-line commands an agent writes at the top
// or bottom of a reply (after replytext has removed the quoted chain):
// "#resolve", "#note", "#assign lena", "#priority high", "#close spam",
// "#waiting", "#tag billing", "#send", and the follow-ups "#waiting until
// 2026-12-05", "#remind 3d", "#snooze monday" (see When).
//
// It is deliberately strict: a line in the command area that looks like a
// command but is not a valid one is reported as a Problem with a
// suggestion, so that the caller can send nothing to the customer and
// explain the mistake to the agent, rather than leak "#reslove" into a
// customer's inbox or silently ignore it.
package agentcmd

import (
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
)

// ErrInvalid is returned (wrapped) by Parse when Result.Problems is not
// empty; the Result is still complete so the caller can explain.
var ErrInvalid = errors.New("agentcmd: invalid commands")

// Kind names a command.
type Kind string

// The commands. Their meaning is the ticket's (see docs/design.md): Resolve
// proposes resolution, Note keeps the reply internal (its argument, if
// any, is the note's text), Waiting waits for the customer, Send sends a
// reply that was held because someone else answered first.
const (
	Resolve  Kind = "resolve"
	Note     Kind = "note"
	Assign   Kind = "assign"
	Priority Kind = "priority"
	Close    Kind = "close"
	Waiting  Kind = "waiting"
	Tag      Kind = "tag"
	Send     Kind = "send"
)

var kinds = []Kind{Resolve, Note, Assign, Priority, Close, Waiting, Tag, Send, Remind, Snooze}

// Priorities accepted by #priority, lowest first.
var priorities = []string{"low", "normal", "high", "urgent"}

// Close reasons accepted by #close.
const (
	ReasonSpam       = "spam"
	ReasonDuplicate  = "duplicate"
	ReasonNoResponse = "no response"
)

// Command is one parsed command.
type Command struct {
	Kind Kind
	// Arg is the assignee ("me", a name or an address) for Assign, the
	// priority for Priority, the reason for Close, the word for Tag, the
	// note's text for Note ("#note called her, she is fine").
	Arg string
	// DuplicateOf is the ticket number for "#close duplicate of #N".
	DuplicateOf int
	// Line is the 1-based line number in the parsed text.
	Line int
	// When is set for the follow-ups: #waiting until …, #remind, #snooze.
	When *When
}

// Problem is a command line that could not be used.
type Problem struct {
	Line       int    // 1-based
	Text       string // the line as written
	Msg        string // what is wrong
	Suggestion string // what would work, if we can tell
}

func (p Problem) String() string {
	s := fmt.Sprintf("line %d: %q: %s", p.Line, p.Text, p.Msg)
	if p.Suggestion != "" {
		s += " (" + p.Suggestion + ")"
	}
	return s
}

// Result is what Parse found.
type Result struct {
	Commands []Command
	// Text is what the customer would see: the command lines removed and
	// the blank lines around them tidied.
	Text     string
	Problems []Problem
}

// commandLine is a line that claims to be a command: "#" then a letter.
// "#123" (a ticket reference) and "#1 thing to check" do not match.
var commandLine = regexp.MustCompile(`^#(\pL[\pL\pN_-]*)(?:\s+(.*))?$`)

// Parse finds commands in the block of lines at the top and the block at
// the bottom of text; lines starting with "#" elsewhere are ordinary text.
// Command names and fixed arguments are case-insensitive. When any command
// line is invalid, Parse returns the full Result and an error wrapping
// ErrInvalid.
func Parse(text string) (Result, error) {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	lines := strings.Split(text, "\n")
	isCmd := func(i int) bool { return commandLine.MatchString(strings.TrimSpace(lines[i])) }
	isBlank := func(i int) bool { return strings.TrimSpace(lines[i]) == "" }

	drop := make([]bool, len(lines))
	var res Result
	// Top block: leading command and blank lines.
	top := 0
	for top < len(lines) && (isCmd(top) || isBlank(top)) {
		top++
	}
	// Bottom block: trailing command and blank lines, not overlapping.
	bottom := len(lines)
	for bottom > top && (isCmd(bottom-1) || isBlank(bottom-1)) {
		bottom--
	}
	for i := range lines {
		if (i < top || i >= bottom) && isCmd(i) {
			drop[i] = true
			res.parseLine(i+1, strings.TrimSpace(lines[i]))
		}
	}
	res.checkConflicts()
	var kept []string
	for i, l := range lines {
		if !drop[i] {
			kept = append(kept, l)
		}
	}
	res.Text = tidy(kept)
	if len(res.Problems) > 0 {
		return res, fmt.Errorf("%w: %d problem(s)", ErrInvalid, len(res.Problems))
	}
	return res, nil
}

func (r *Result) problem(line int, text, msg, suggestion string) {
	r.Problems = append(r.Problems, Problem{Line: line, Text: text, Msg: msg, Suggestion: suggestion})
}

func (r *Result) parseLine(n int, line string) {
	m := commandLine.FindStringSubmatch(line)
	name := strings.ToLower(m[1])
	arg := strings.TrimSpace(m[2])
	add := func(k Kind, a string) { r.Commands = append(r.Commands, Command{Kind: k, Arg: a, Line: n}) }
	if k := Kind(name); k == Remind || k == Snooze || (k == Waiting && arg != "") {
		r.parseFollowUp(n, line, k, arg)
		return
	}
	switch Kind(name) {
	case Note:
		// "#note called her" is a note with that text: what a person
		// writing on one line means.
		add(Note, arg)
	case Send:
		if arg != "" {
			r.problem(n, line, "#send takes no argument", "write #send alone on its line, in a reply to the warning")
			return
		}
		add(Send, "")
	case Resolve, Waiting:
		if arg != "" {
			r.problem(n, line, fmt.Sprintf("#%s takes no argument", name), fmt.Sprintf("write #%s alone on its line", name))
			return
		}
		add(Kind(name), "")
	case Assign:
		r.parseAssign(n, line, arg)
	case Priority:
		p := strings.ToLower(arg)
		for _, ok := range priorities {
			if p == ok {
				add(Priority, p)
				return
			}
		}
		msg := fmt.Sprintf("%q is not a priority", arg)
		if arg == "" {
			msg = "#priority needs a level"
		}
		r.problem(n, line, msg, suggest(p, priorities, "#priority ", "use one of: #priority low, normal, high, urgent"))
	case Close:
		r.parseClose(n, line, arg)
	case Tag:
		if arg == "" {
			r.problem(n, line, "#tag needs a word", "e.g. #tag billing")
			return
		}
		for _, w := range strings.Fields(arg) {
			w = strings.TrimPrefix(w, "#")
			if !tagWord.MatchString(w) {
				r.problem(n, line, fmt.Sprintf("%q is not a tag: use letters, digits, - and _", w), "")
				continue
			}
			add(Tag, strings.ToLower(w))
		}
	default:
		names := make([]string, len(kinds))
		for i, k := range kinds {
			names[i] = string(k)
		}
		r.problem(n, line, fmt.Sprintf("unknown command %q", "#"+m[1]),
			suggest(name, names, "#", "known commands: #resolve #note #assign #priority #close #waiting #tag #send #remind #snooze"))
	}
}

var (
	tagWord    = regexp.MustCompile(`^[\pL\pN_-]{1,64}$`)
	nameWord   = regexp.MustCompile(`^[\pL\pN._-]{1,64}$`)
	dupPattern = regexp.MustCompile(`(?i)^duplicate\s+(?:of\s+)?#?(\d{1,12})$`)
)

func (r *Result) parseAssign(n int, line, arg string) {
	switch {
	case arg == "":
		r.problem(n, line, "#assign needs someone", "#assign me, #assign NAME or #assign EMAIL")
	case strings.EqualFold(arg, "me"):
		r.Commands = append(r.Commands, Command{Kind: Assign, Arg: "me", Line: n})
	case strings.Contains(arg, "@"):
		a, err := mail.ParseAddress(arg)
		if err != nil || strings.ContainsAny(arg, " <>") {
			r.problem(n, line, fmt.Sprintf("%q is not an email address", arg), "#assign name@example.com")
			return
		}
		r.Commands = append(r.Commands, Command{Kind: Assign, Arg: strings.ToLower(a.Address), Line: n})
	case nameWord.MatchString(arg):
		r.Commands = append(r.Commands, Command{Kind: Assign, Arg: arg, Line: n})
	default:
		r.problem(n, line, fmt.Sprintf("%q is not one agent", arg), "assign one agent by user name or email, e.g. #assign lena")
	}
}

func (r *Result) parseClose(n int, line, arg string) {
	a := strings.Join(strings.Fields(strings.ToLower(arg)), " ")
	switch {
	case a == ReasonSpam:
		r.Commands = append(r.Commands, Command{Kind: Close, Arg: ReasonSpam, Line: n})
	case a == ReasonNoResponse || a == "no-response":
		r.Commands = append(r.Commands, Command{Kind: Close, Arg: ReasonNoResponse, Line: n})
	case dupPattern.MatchString(a):
		num, err := strconv.Atoi(dupPattern.FindStringSubmatch(a)[1])
		if err != nil || num <= 0 {
			r.problem(n, line, "the duplicate's ticket number is not valid", "#close duplicate of #123")
			return
		}
		r.Commands = append(r.Commands, Command{Kind: Close, Arg: ReasonDuplicate, DuplicateOf: num, Line: n})
	case a == "":
		r.problem(n, line, "#close needs a reason", "#close spam, #close duplicate of #123 or #close no response")
	case strings.HasPrefix(a, "duplicate"):
		r.problem(n, line, "#close duplicate needs the other ticket's number", "#close duplicate of #123")
	default:
		r.problem(n, line, fmt.Sprintf("%q is not a close reason", arg),
			suggest(a, []string{ReasonSpam, ReasonNoResponse}, "#close ", "#close spam, #close duplicate of #123 or #close no response"))
	}
}

// checkConflicts reports commands that contradict each other: two
// different priorities or assignees, or more than one state change.
func (r *Result) checkConflicts() {
	seen := map[Kind]Command{}
	var state *Command
	for i := range r.Commands {
		c := r.Commands[i]
		switch c.Kind {
		case Priority, Assign:
			if prev, ok := seen[c.Kind]; ok && !strings.EqualFold(prev.Arg, c.Arg) {
				r.problem(c.Line, "#"+string(c.Kind)+" "+c.Arg,
					fmt.Sprintf("conflicts with #%s %s on line %d", prev.Kind, prev.Arg, prev.Line), "keep one")
			}
			seen[c.Kind] = c
		case Resolve, Close, Waiting:
			if state != nil && state.Kind != c.Kind {
				r.problem(c.Line, "#"+string(c.Kind),
					fmt.Sprintf("conflicts with #%s on line %d: a ticket takes one state change", state.Kind, state.Line), "keep one")
			}
			state = &r.Commands[i]
		}
	}
}

// suggest returns "did you mean …?" for the closest candidate within
// edit distance 2, else the fallback.
func suggest(word string, candidates []string, prefix, fallback string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := distance(word, c); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" {
		return fallback
	}
	return fmt.Sprintf("did you mean %s%s?", prefix, best)
}

// distance is the optimal string alignment distance (Levenshtein plus
// adjacent transpositions, so "reslove" is one step from "resolve").
// Written here because it is a dozen lines and no dependency is worth it.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 64 || len(rb) > 64 {
		return 1 << 30 // nothing sensible to suggest; also bounds the work
	}
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// tidy drops leading and trailing blank lines and collapses the runs of
// blank lines that removing a command line can leave behind.
func tidy(lines []string) string {
	var out []string
	blank := false
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			blank = len(out) > 0
			continue
		}
		if blank {
			out = append(out, "")
		}
		blank = false
		out = append(out, strings.TrimRight(l, " \t"))
	}
	return strings.Join(out, "\n")
}
