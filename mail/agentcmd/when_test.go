package agentcmd

import (
	"strings"
	"testing"
	"time"
)

func TestParseWhen(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	// Wednesday 2 December 2026, 16:30 in Berlin.
	now := time.Date(2026, 12, 2, 15, 30, 0, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Time // in Berlin unless the form is a delay
		err  string
	}{
		{in: "3d", want: now.Add(72 * time.Hour)},
		{in: "3 days", want: now.Add(72 * time.Hour)},
		{in: "in 2 weeks", want: now.Add(14 * 24 * time.Hour)},
		{in: "90m", want: now.Add(90 * time.Minute)},
		{in: "4h", want: now.Add(4 * time.Hour)},
		{in: "1 W", want: now.Add(7 * 24 * time.Hour)},
		{in: "until 2026-12-05", want: time.Date(2026, 12, 5, 9, 0, 0, 0, berlin)},
		{in: "2026-12-05 14:00", want: time.Date(2026, 12, 5, 14, 0, 0, 0, berlin)},
		{in: "monday", want: time.Date(2026, 12, 7, 9, 0, 0, 0, berlin)},
		{in: "Mon 10:30", want: time.Date(2026, 12, 7, 10, 30, 0, 0, berlin)},
		{in: "wednesday", want: time.Date(2026, 12, 9, 9, 0, 0, 0, berlin)}, // today is Wednesday: next week's
		{in: "sunday", want: time.Date(2026, 12, 6, 9, 0, 0, 0, berlin)},
		{in: "tomorrow", want: time.Date(2026, 12, 3, 9, 0, 0, 0, berlin)},
		{in: "on friday at 8", want: time.Date(2026, 12, 4, 8, 0, 0, 0, berlin)},
		{in: "", err: "no time"},
		{in: "0d", err: "between a minute and a year"},
		{in: "5000d", err: "between a minute and a year"},
		{in: "someday", err: "is not a delay"},
		{in: "2026-13-01", err: "is not a delay"},
		{in: "monday 25:00", err: "time of day"},
		{in: "monday noonish", err: "time of day"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			w, err := ParseWhen(c.in)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("ParseWhen(%q) = %+v, %v; want error %q", c.in, w, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := w.At(now, berlin); !got.Equal(c.want) {
				t.Errorf("At = %s, want %s", got, c.want)
			}
		})
	}
}

func TestParseFollowUpCommands(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in      string
		kind    Kind
		arg     string
		problem string
	}{
		{in: "I'll check back.\n#waiting until 2026-12-05", kind: Waiting, arg: "until 2026-12-05"},
		{in: "#remind 3d\nLet me look.", kind: Remind, arg: "3d"},
		{in: "ok\n#snooze Monday", kind: Snooze, arg: "Monday"},
		{in: "#waiting\nok", kind: Waiting},
		{in: "#remind\nok", problem: "needs a time"},
		{in: "#snooze someday\nok", problem: "is not a delay"},
		{in: "#waiting for the customer\nok", problem: "until"},
		{in: "#remind 3d\n#snooze monday\nok", kind: Remind, arg: "3d", problem: "one follow-up"},
		{in: "#remnd 3d\nok", problem: "did you mean #remind?"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			res, _ := Parse(c.in)
			var probs []string
			for _, p := range res.Problems {
				probs = append(probs, p.String())
			}
			if c.problem != "" {
				if !strings.Contains(strings.Join(probs, "\n"), c.problem) {
					t.Errorf("problems %q, want %q", probs, c.problem)
				}
			} else if len(probs) > 0 {
				t.Errorf("unexpected problems %q", probs)
			}
			if c.kind == "" {
				return
			}
			if len(res.Commands) == 0 || res.Commands[0].Kind != c.kind || res.Commands[0].Arg != c.arg {
				t.Fatalf("commands %+v, want #%s %s", res.Commands, c.kind, c.arg)
			}
			if (c.arg != "") != (res.Commands[0].When != nil) {
				t.Errorf("When = %+v for %q", res.Commands[0].When, c.arg)
			}
		})
	}
}

// FuzzParseWhen: never panics; whatever parses resolves to a time after
// now and within the bound.
func FuzzParseWhen(f *testing.F) {
	for _, s := range []string{"3d", "until 2026-12-05 14:00", "monday", "tomorrow", "in 2 weeks", "fri at 8", "9999w", "2026-02-30"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 2, 15, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWhen(s)
		if err != nil {
			return
		}
		at := w.At(now, time.UTC)
		if w.Date.IsZero() && (!at.After(now) || at.After(now.Add(maxFollowUp))) {
			t.Fatalf("%q: %s outside (now, now+1y]", s, at)
		}
	})
}
