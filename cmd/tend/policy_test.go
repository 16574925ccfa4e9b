package main

import (
	"testing"
	"time"

	"github.com/tendhq/tend/cmd/tend/config"
)

// TestInboxPolicyKeys: language, time_zone, business_hours and holidays
// each change what the executor is given: fails if any key is ignored.
func TestInboxPolicyKeys(t *testing.T) {
	cfg, err := config.Parse("tend.yaml", []byte(`
inboxes:
  - address: Support@Acme.Test
    response_time: 4h
    language: de
    time_zone: Europe/Berlin
    business_hours: "Mon-Fri 09:00-17:00"
    holidays: [2026-03-09]
  - address: plain@acme.test
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := inboxPolicies(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, plain := ps["support@acme.test"], ps["plain@acme.test"]
	if p.Language != "de" || plain.Language != "en" {
		t.Errorf("language: %q / %q, want de / en", p.Language, plain.Language)
	}
	if p.Calendar == nil || p.Calendar.Loc.String() != "Europe/Berlin" || plain.Calendar.Loc != time.UTC {
		t.Fatalf("time_zone ignored: %+v", p.Calendar)
	}
	friday := time.Date(2026, 3, 6, 14, 0, 0, 0, time.UTC) // 15:00 in Berlin
	// business_hours: 2 h on Friday, 2 h on the next working day; the
	// holiday on Monday 9 March moves it to Tuesday 11:00 CET.
	if got, want := p.Calendar.Add(friday, 4*time.Hour), time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("business_hours/holidays: due %s, want %s", got.UTC(), want)
	}
	if got, want := plain.Calendar.Add(friday, 4*time.Hour), friday.Add(4*time.Hour); !got.Equal(want) {
		t.Errorf("an inbox without hours: due %s, want %s", got, want)
	}
}
