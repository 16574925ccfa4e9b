package agentcmd

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		in       string
		commands []Command
		text     string
		problems []string // "line: suggestion-substring"
	}{
		{name: "no commands", in: "Hello\n\nBye", text: "Hello\n\nBye"},
		{name: "resolve at bottom", in: "Fixed it.\n\n#resolve\n",
			commands: []Command{{Kind: Resolve, Line: 3}}, text: "Fixed it."},
		{name: "note at top, case-insensitive", in: "#NOTE\nInternal: customer is on the old plan.",
			commands: []Command{{Kind: Note, Line: 1}}, text: "Internal: customer is on the old plan."},
		{name: "note with its text on one line", in: "#note called her, she is fine with the delay",
			commands: []Command{{Kind: Note, Arg: "called her, she is fine with the delay", Line: 1}}},
		{name: "send a held reply", in: "#send", commands: []Command{{Kind: Send, Line: 1}}},
		{name: "send with argument", in: "#send now", problems: []string{"1:alone on its line"}},
		{name: "all kinds", in: "#assign me\n#priority Urgent\n#tag vip\n#tag billing late-fee\n\nText\n\n#close duplicate of #123",
			commands: []Command{
				{Kind: Assign, Arg: "me", Line: 1}, {Kind: Priority, Arg: "urgent", Line: 2},
				{Kind: Tag, Arg: "vip", Line: 3}, {Kind: Tag, Arg: "billing", Line: 4}, {Kind: Tag, Arg: "late-fee", Line: 4},
				{Kind: Close, Arg: ReasonDuplicate, DuplicateOf: 123, Line: 8},
			}, text: "Text"},
		{name: "assign email", in: "#assign Lena.Fischer@Acme.Example\nok",
			commands: []Command{{Kind: Assign, Arg: "lena.fischer@acme.example", Line: 1}}, text: "ok"},
		{name: "assign name", in: "#assign lena\nok", commands: []Command{{Kind: Assign, Arg: "lena", Line: 1}}, text: "ok"},
		{name: "close reasons", in: "bye\n#close spam", commands: []Command{{Kind: Close, Arg: ReasonSpam, Line: 2}}, text: "bye"},
		{name: "close no response", in: "#close No Response", commands: []Command{{Kind: Close, Arg: ReasonNoResponse, Line: 1}}},
		{name: "close duplicate short", in: "#close duplicate #77", commands: []Command{{Kind: Close, Arg: ReasonDuplicate, DuplicateOf: 77, Line: 1}}},
		{name: "waiting", in: "Please send the log.\n#waiting", commands: []Command{{Kind: Waiting, Line: 2}}, text: "Please send the log."},
		{name: "hash lines in the middle are text", in: "Hi\n#1 thing to check\n#resolve is what I'd do\nBye",
			text: "Hi\n#1 thing to check\n#resolve is what I'd do\nBye"},
		{name: "ticket reference is not a command", in: "#123\nsee above", text: "#123\nsee above"},
		{name: "crlf and blank lines tidied", in: "\r\n#resolve\r\n\r\n\r\nDone.\r\n\r\n", commands: []Command{{Kind: Resolve, Line: 2}}, text: "Done."},
		{name: "only commands", in: "#resolve\n#tag x", commands: []Command{{Kind: Resolve, Line: 1}, {Kind: Tag, Arg: "x", Line: 2}}},
		{name: "typo in command", in: "Done\n#reslove", text: "Done", problems: []string{"2:did you mean #resolve?"}},
		{name: "unknown far word", in: "#foobarbaz\nx", text: "x", problems: []string{"1:known commands"}},
		{name: "bad priority", in: "#priority hihg\nx", text: "x", problems: []string{"1:did you mean #priority high?"}},
		{name: "missing priority", in: "#priority\nx", text: "x", problems: []string{"1:use one of"}},
		{name: "bad close reason", in: "#close spma", problems: []string{"1:did you mean #close spam?"}},
		{name: "duplicate without number", in: "#close duplicate", problems: []string{"1:#close duplicate of #123"}},
		{name: "close without reason", in: "#close", problems: []string{"1:#close spam"}},
		{name: "resolve with argument", in: "#resolve now", problems: []string{"1:alone on its line"}},
		{name: "assign nobody", in: "#assign", problems: []string{"1:#assign me"}},
		{name: "assign two people", in: "#assign lena tom", problems: []string{"1:one agent"}},
		{name: "assign bad email", in: "#assign lena@", problems: []string{"1:name@example.com"}},
		{name: "conflicting priorities", in: "#priority high\n#priority low",
			commands: []Command{{Kind: Priority, Arg: "high", Line: 1}, {Kind: Priority, Arg: "low", Line: 2}},
			problems: []string{"2:keep one"}},
		{name: "conflicting states", in: "#resolve\n#close spam",
			commands: []Command{{Kind: Resolve, Line: 1}, {Kind: Close, Arg: ReasonSpam, Line: 2}},
			problems: []string{"2:keep one"}},
		{name: "tag needs word", in: "#tag", problems: []string{"1:#tag billing"}},
		{name: "bad tag", in: "#tag a/b", problems: []string{"1:"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, err := Parse(tc.in)
			if (err != nil) != (len(tc.problems) > 0) || (err != nil && !errors.Is(err, ErrInvalid)) {
				t.Errorf("err = %v with problems %v", err, res.Problems)
			}
			if !reflect.DeepEqual(res.Commands, tc.commands) {
				t.Errorf("commands = %+v\nwant %+v", res.Commands, tc.commands)
			}
			if res.Text != tc.text {
				t.Errorf("text = %q, want %q", res.Text, tc.text)
			}
			if len(res.Problems) != len(tc.problems) {
				t.Fatalf("problems = %v, want %v", res.Problems, tc.problems)
			}
			for i, p := range tc.problems {
				line, sub, _ := strings.Cut(p, ":")
				got := res.Problems[i]
				if strconv.Itoa(got.Line) != line || !strings.Contains(got.Suggestion+got.Msg, sub) || got.Text == "" {
					t.Errorf("problem %d = %s, want line %s containing %q", i, got, line, sub)
				}
			}
		})
	}
}

func TestParseTestdata(t *testing.T) {
	t.Parallel()
	cases := []struct {
		file     string
		kinds    []Kind
		problems int
		textHas  string
	}{
		{"reply_commands_top.txt", []Kind{Priority, Assign, Tag, Tag}, 0, "The #1 thing to check now is your\nbank statement for ticket #1042."},
		{"reply_typos_bottom.txt", nil, 2, "Best regards\nAnna"},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			res, _ := Parse(string(b))
			var got []Kind
			for _, c := range res.Commands {
				got = append(got, c.Kind)
			}
			if !reflect.DeepEqual(got, tc.kinds) || len(res.Problems) != tc.problems {
				t.Errorf("kinds = %v problems = %v", got, res.Problems)
			}
			if !strings.Contains(res.Text, tc.textHas) || strings.Contains(res.Text, "#priority") {
				t.Errorf("text = %q", res.Text)
			}
		})
	}
}

func TestDistance(t *testing.T) {
	t.Parallel()
	cases := []struct {
		a, b string
		want int
	}{
		{"resolve", "resolve", 0}, {"reslove", "resolve", 1}, {"hihg", "high", 1},
		{"", "abc", 3}, {"note", "nope", 1}, {"prio", "priority", 4},
	}
	for _, tc := range cases {
		if got := distance(tc.a, tc.b); got != tc.want {
			t.Errorf("distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
