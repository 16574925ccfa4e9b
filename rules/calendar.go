package rules

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Calendar is an inbox's working time: a time zone, weekly business hours
// and holidays. Promises are made in it ("by Monday 10:00 CET") and the
// first-response clock counts only its business time. A nil Calendar, or
// one without hours, is open around the clock (in its zone).
type Calendar struct {
	Loc *time.Location
	// hours lists each weekday's open spans, minutes after local midnight.
	hours [7][]span
	open  bool // any hours set
	// holidays are local dates, "2006-01-02", closed all day.
	holidays map[string]bool
}

// span is [from, to) in minutes after local midnight.
type span struct{ from, to int }

var (
	dayRange  = regexp.MustCompile(`^(\pL+)(?:-(\pL+))?$`)
	timeRange = regexp.MustCompile(`^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$`)
	dayNames  = map[string]time.Weekday{
		"mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday, "thu": time.Thursday,
		"fri": time.Friday, "sat": time.Saturday, "sun": time.Sunday,
	}
)

// NewCalendar builds a calendar. zone is an IANA name ("" = UTC); hours is
// "Mon-Fri 09:00-17:00", several groups separated by commas and several
// spans per group ("Mon-Thu 09:00-12:00 13:00-17:00, Fri 09:00-13:00");
// "" means around the clock. holidays are dates, 2006-01-02.
func NewCalendar(zone, hours string, holidays []string) (*Calendar, error) {
	c := &Calendar{Loc: time.UTC, holidays: map[string]bool{}}
	if zone != "" {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			return nil, fmt.Errorf("time zone %q: %w", zone, err)
		}
		c.Loc = loc
	}
	if err := c.parseHours(hours); err != nil {
		return nil, err
	}
	for _, h := range holidays {
		d, err := time.Parse("2006-01-02", strings.TrimSpace(h))
		if err != nil {
			return nil, fmt.Errorf("holiday %q: want a date like 2026-12-25", h)
		}
		c.holidays[d.Format("2006-01-02")] = true
	}
	if len(c.holidays) > 0 && !c.open {
		// Holidays only mean something against working hours.
		for d := range 7 {
			c.hours[d] = []span{{0, 24 * 60}}
		}
		c.open = true
	}
	return c, nil
}

func (c *Calendar) parseHours(s string) error {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	for _, group := range strings.Split(s, ",") {
		f := strings.Fields(group)
		if len(f) < 2 {
			return fmt.Errorf("business hours %q: want days and times, e.g. Mon-Fri 09:00-17:00", strings.TrimSpace(group))
		}
		days, err := parseDays(f[0])
		if err != nil {
			return fmt.Errorf("business hours %q: %w", strings.TrimSpace(group), err)
		}
		for _, tr := range f[1:] {
			m := timeRange.FindStringSubmatch(tr)
			if m == nil {
				return fmt.Errorf("business hours %q: %q is not a time range like 09:00-17:00", strings.TrimSpace(group), tr)
			}
			n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
			from, to := n(1)*60+n(2), n(3)*60+n(4)
			if n(1) > 24 || n(3) > 24 || n(2) > 59 || n(4) > 59 || from >= to || to > 24*60 {
				return fmt.Errorf("business hours %q: %q is not a range within one day", strings.TrimSpace(group), tr)
			}
			for _, d := range days {
				c.hours[d] = append(c.hours[d], span{from, to})
			}
		}
	}
	c.open = true
	return nil
}

func parseDays(s string) ([]time.Weekday, error) {
	m := dayRange.FindStringSubmatch(strings.ToLower(s))
	if m == nil {
		return nil, fmt.Errorf("%q is not a day or day range like Mon-Fri", s)
	}
	day := func(n string) (time.Weekday, error) {
		if len(n) >= 3 {
			if d, ok := dayNames[n[:3]]; ok {
				return d, nil
			}
		}
		return 0, fmt.Errorf("%q is not a weekday", n)
	}
	from, err := day(m[1])
	if err != nil {
		return nil, err
	}
	to := from
	if m[2] != "" {
		if to, err = day(m[2]); err != nil {
			return nil, err
		}
	}
	var out []time.Weekday
	for d := from; ; d = (d + 1) % 7 {
		out = append(out, d)
		if d == to {
			return out, nil
		}
	}
}

// Add returns the moment d of business time after t: time outside the
// business hours and on holidays does not count. Without hours it is
// t.Add(d).
func (c *Calendar) Add(t time.Time, d time.Duration) time.Time {
	if c == nil || !c.open {
		return t.Add(d)
	}
	left := d
	cur := t.In(c.Loc)
	// A year of calendar days is enough for any promise; a calendar with
	// hours but no open day at all (every day a holiday) ends there.
	for range 400 {
		day := time.Date(cur.Year(), cur.Month(), cur.Day(), 0, 0, 0, 0, c.Loc)
		if !c.holidays[day.Format("2006-01-02")] {
			for _, s := range c.hours[day.Weekday()] {
				// Minutes are counted on the wall clock of that day, so a
				// DST change shifts the span, never the promise's length.
				start := day.Add(time.Duration(s.from) * time.Minute)
				end := day.Add(time.Duration(s.to) * time.Minute)
				if s.to == 24*60 {
					end = day.AddDate(0, 0, 1)
				}
				if !cur.Before(end) {
					continue
				}
				if cur.Before(start) {
					cur = start
				}
				if avail := end.Sub(cur); left <= avail {
					return cur.Add(left)
				} else {
					left -= avail
					cur = end
				}
			}
		}
		cur = day.AddDate(0, 0, 1)
	}
	return cur
}

// Open reports whether the calendar has business hours (or holidays):
// then promises name a local deadline instead of a duration.
func (c *Calendar) Open() bool { return c != nil && c.open }
