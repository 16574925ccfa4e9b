package rules

import (
	"strings"
	"testing"
	"time"
)

func TestCalendarAdd(t *testing.T) {
	t.Parallel()
	berlin, _ := time.LoadLocation("Europe/Berlin")
	cal, err := NewCalendar("Europe/Berlin", "Mon-Fri 09:00-17:00", []string{"2026-12-25"})
	if err != nil {
		t.Fatal(err)
	}
	split, err := NewCalendar("Europe/Berlin", "Mon-Thu 09:00-12:00 13:00-17:00, Fri 09:00-13:00", nil)
	if err != nil {
		t.Fatal(err)
	}
	at := func(y int, m time.Month, d, h, mi int) time.Time { return time.Date(y, m, d, h, mi, 0, 0, berlin) }
	cases := []struct {
		name string
		cal  *Calendar
		from time.Time
		d    time.Duration
		want time.Time
	}{
		{"inside the day", cal, at(2026, 12, 1, 10, 0), 4 * time.Hour, at(2026, 12, 1, 14, 0)},
		{"over the evening", cal, at(2026, 12, 1, 15, 0), 4 * time.Hour, at(2026, 12, 2, 11, 0)},
		{"friday afternoon to monday", cal, at(2026, 12, 4, 15, 0), 4 * time.Hour, at(2026, 12, 7, 11, 0)},
		{"weekend counts from monday 9", cal, at(2026, 12, 5, 11, 0), 2 * time.Hour, at(2026, 12, 7, 11, 0)},
		{"before opening", cal, at(2026, 12, 1, 6, 0), time.Hour, at(2026, 12, 1, 10, 0)},
		{"holiday skipped", cal, at(2026, 12, 24, 16, 0), 2 * time.Hour, at(2026, 12, 28, 10, 0)},
		{"exactly closing", cal, at(2026, 12, 1, 13, 0), 4 * time.Hour, at(2026, 12, 1, 17, 0)},
		{"lunch break", split, at(2026, 12, 1, 11, 0), 2 * time.Hour, at(2026, 12, 1, 14, 0)},
		{"short friday", split, at(2026, 12, 4, 12, 0), 2 * time.Hour, at(2026, 12, 7, 10, 0)},
		{"nil calendar", nil, at(2026, 12, 5, 11, 0), 2 * time.Hour, at(2026, 12, 5, 13, 0)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.cal.Add(c.from, c.d); !got.Equal(c.want) {
				t.Errorf("Add(%s, %s) = %s, want %s", c.from, c.d, got.In(berlin), c.want)
			}
		})
	}
}

func TestNewCalendarErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ zone, hours, holiday, want string }{
		{"Mars/Olympus", "", "", "time zone"},
		{"", "Mon-Fri", "", "want days and times"},
		{"", "Mon-Fro 09:00-17:00", "", "not a weekday"},
		{"", "Mon-Fri 9-17", "", "not a time range"},
		{"", "Mon-Fri 17:00-09:00", "", "within one day"},
		{"", "Mon-Fri 09:00-25:00", "", "within one day"},
		{"", "", "25.12.2026", "want a date"},
	} {
		var hol []string
		if c.holiday != "" {
			hol = []string{c.holiday}
		}
		if _, err := NewCalendar(c.zone, c.hours, hol); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewCalendar(%q, %q, %q) = %v, want %q", c.zone, c.hours, c.holiday, err, c.want)
		}
	}
}

func TestDescribeDeadline(t *testing.T) {
	t.Parallel()
	berlin, _ := time.LoadLocation("Europe/Berlin")
	now := time.Date(2026, 12, 4, 15, 0, 0, 0, berlin) // a Friday
	monday := time.Date(2026, 12, 7, 11, 0, 0, 0, berlin)
	for lang, want := range map[string]string{
		"en": "by Monday 11:00 CET", "de": "bis Montag, 11:00 Uhr CET", "fr": "d'ici lundi 11:00 CET",
		"es": "antes del lunes a las 11:00 CET", "pt": "até segunda-feira às 11:00 CET", "nl": "uiterlijk maandag 11:00 CET",
	} {
		if got := DescribeDeadline(lang, monday, now); got != want {
			t.Errorf("%s: %q, want %q", lang, got, want)
		}
	}
	if got := DescribeDeadline("en", now.Add(2*time.Hour+30*time.Second), now); got != "by 17:01 CET today" {
		t.Errorf("today, rounded up: %q", got)
	}
	if got := DescribeDeadline("en", now.Add(20*time.Hour), now); got != "by tomorrow 11:00 CET" {
		t.Errorf("tomorrow: %q", got)
	}
	if got := DescribeDeadline("de", now.AddDate(0, 0, 10), now); got != "bis 14. Dezember, 15:00 Uhr CET" {
		t.Errorf("far: %q", got)
	}
	for lang, want := range map[string]string{"en": "within 4 hours", "de": "innerhalb von 4 Stunden", "fr": "sous 2 jours", "nl": "binnen 30 minuten"} {
		d := map[string]time.Duration{"en": 4 * time.Hour, "de": 4 * time.Hour, "fr": 48 * time.Hour, "nl": 30 * time.Minute}[lang]
		if got := DescribeResponseTimeIn(lang, d); got != want {
			t.Errorf("%s: %q, want %q", lang, got, want)
		}
	}
}
