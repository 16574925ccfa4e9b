package agentcmd

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Follow-up commands: set a timer after which the ticket comes back.
const (
	// Remind: "#remind 3d", "#remind friday": the ticket leaves the queue
	// and comes back with a notification then.
	Remind Kind = "remind"
	// Snooze: the same, said the other way round ("#snooze monday").
	Snooze Kind = "snooze"
)

// When is when a follow-up is due, as an agent wrote it: a delay ("3d",
// "2 weeks"), a date ("2026-12-05", with an optional "14:00"), a weekday
// ("monday") or "tomorrow". It is resolved against the clock and the
// inbox's time zone only when the command runs (At), so that parsing
// stays pure.
type When struct {
	// After is a delay; zero for the other forms.
	After time.Duration
	// Date is a calendar date (its location is ignored: the date is read
	// in the inbox's zone); zero for the other forms.
	Date time.Time
	// Weekday is the next such day when HasWeekday; Tomorrow is the day
	// after today.
	Weekday    time.Weekday
	HasWeekday bool
	Tomorrow   bool
	// Hour and Minute are the time of day for the date, weekday and
	// tomorrow forms; -1 means the start of the working day.
	Hour, Minute int
}

// DefaultHour is the time of day a follow-up "on monday" or "until
// 2026-12-05" comes back when no time is written: the start of a working
// day, not midnight.
const DefaultHour = 9

// At resolves w at now in loc. A date or weekday without a time is due at
// DefaultHour local time.
func (w When) At(now time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	if w.After > 0 {
		return now.Add(w.After)
	}
	local := now.In(loc)
	h, m := w.Hour, w.Minute
	if h < 0 {
		h, m = DefaultHour, 0
	}
	var y int
	var mo time.Month
	var d int
	switch {
	case !w.Date.IsZero():
		y, mo, d = w.Date.Date()
	case w.Tomorrow:
		y, mo, d = local.AddDate(0, 0, 1).Date()
	default:
		ahead := (int(w.Weekday) - int(local.Weekday()) + 7) % 7
		if ahead == 0 {
			ahead = 7 // "monday" said on a Monday is next week's
		}
		y, mo, d = local.AddDate(0, 0, ahead).Date()
	}
	return time.Date(y, mo, d, h, m, 0, 0, loc)
}

var (
	whenDuration = regexp.MustCompile(`^(\d{1,4})\s*(m|min|mins|minutes?|h|hrs?|hours?|d|days?|w|wks?|weeks?)$`)
	whenClock    = regexp.MustCompile(`^(?:at\s+)?(\d{1,2})(?::(\d{2}))?$`)
	weekdays     = map[string]time.Weekday{
		"sunday": time.Sunday, "sun": time.Sunday, "monday": time.Monday, "mon": time.Monday,
		"tuesday": time.Tuesday, "tue": time.Tuesday, "tues": time.Tuesday, "wednesday": time.Wednesday, "wed": time.Wednesday,
		"thursday": time.Thursday, "thu": time.Thursday, "thurs": time.Thursday, "friday": time.Friday, "fri": time.Friday,
		"saturday": time.Saturday, "sat": time.Saturday,
	}
)

// maxFollowUp bounds a follow-up: a timer years away is a typo.
const maxFollowUp = 366 * 24 * time.Hour

// ParseWhen reads a follow-up time: "3d", "2 weeks", "90m", "2026-12-05",
// "2026-12-05 14:00", "monday", "mon 10:00", "tomorrow", each optionally
// after "until" or "in".
func ParseWhen(s string) (When, error) {
	s = strings.Join(strings.Fields(strings.ToLower(s)), " ")
	for _, p := range []string{"until ", "in ", "on "} {
		s = strings.TrimPrefix(s, p)
	}
	if s == "" {
		return When{}, fmt.Errorf("no time given")
	}
	if m := whenDuration.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		unit := map[byte]time.Duration{'m': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour}[m[2][0]]
		d := time.Duration(n) * unit
		if d <= 0 || d > maxFollowUp {
			return When{}, fmt.Errorf("%q is not a delay between a minute and a year", s)
		}
		return When{After: d, Hour: -1}, nil
	}
	day, rest, _ := strings.Cut(s, " ")
	w := When{Hour: -1}
	wd, isWeekday := weekdays[day]
	switch {
	case day == "tomorrow":
		w.Tomorrow = true
	case isWeekday:
		w.Weekday, w.HasWeekday = wd, true
	default:
		d, err := time.Parse("2006-01-02", day)
		if err != nil {
			return When{}, fmt.Errorf("%q is not a delay (3d, 2 weeks), a date (2026-12-05) or a weekday (monday)", s)
		}
		w.Date = d
	}
	if rest != "" {
		m := whenClock.FindStringSubmatch(rest)
		if m == nil {
			return When{}, fmt.Errorf("%q is not a time of day (14:00)", rest)
		}
		h, _ := strconv.Atoi(m[1])
		mi := 0
		if m[2] != "" {
			mi, _ = strconv.Atoi(m[2])
		}
		if h > 23 || mi > 59 {
			return When{}, fmt.Errorf("%q is not a time of day (14:00)", rest)
		}
		w.Hour, w.Minute = h, mi
	}
	return w, nil
}

// parseFollowUp handles "#waiting until …", "#remind …" and "#snooze …".
func (r *Result) parseFollowUp(n int, line string, k Kind, arg string) {
	const hint = "e.g. #remind 3d, #snooze monday, #waiting until 2026-12-05"
	if arg == "" {
		r.problem(n, line, fmt.Sprintf("#%s needs a time", k), hint)
		return
	}
	w, err := ParseWhen(arg)
	if err != nil {
		r.problem(n, line, err.Error(), hint)
		return
	}
	if k == Waiting && !strings.HasPrefix(strings.ToLower(arg), "until ") {
		r.problem(n, line, "#waiting takes no argument but \"until …\"", "#waiting alone, or #waiting until 2026-12-05")
		return
	}
	for _, c := range r.Commands {
		if c.When != nil {
			r.problem(n, line, fmt.Sprintf("conflicts with #%s %s on line %d: a ticket takes one follow-up", c.Kind, c.Arg, c.Line), "keep one")
			return
		}
	}
	r.Commands = append(r.Commands, Command{Kind: k, Arg: strings.Join(strings.Fields(arg), " "), When: &w, Line: n})
}
