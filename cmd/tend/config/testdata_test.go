package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTestdataFull loads a production-like file using most features:
// anchors with merge keys, quoted numbers as strings, YAML 1.1 booleans,
// IPv6 listen addresses, libpq key=value DSNs.
func TestTestdataFull(t *testing.T) {
	t.Parallel()
	c, err := Load(filepath.Join("testdata", "full.yaml"), nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"username stays text", c.Relay.Username, "0123456789"},
		{"quoted password", c.Relay.Password, "0xdeadbeef"},
		{"ipv6 listen", c.SMTP.Listen, "[::]:25"},
		{"yes is true", c.FollowThrough.Acknowledge, true},
		{"day and hours", c.FollowThrough.ReopenWindow, 36 * time.Hour},
		{"folder with brackets", c.Inboxes[0].IMAP.After, After{Action: AfterMove, Folder: "[Gmail]/All Mail"}},
		{"merge kept token_command", c.Inboxes[1].IMAP.TokenCommand, "/usr/local/bin/gmail-token"},
		{"merge overridden auth", c.Inboxes[1].IMAP.Auth, "oauthbearer"},
		{"merge kept poll_interval", c.Inboxes[1].IMAP.PollInterval, 30 * time.Second},
		{"agent lowercased", c.Agents[1].Email, "lena@acme.test"},
		{"agent default role", c.Agents[2].Role, "agent"},
		{"dsn password redacted", c.Redacted().Database.DSN, "host=127.0.0.1 port=5432 user=tend password=REDACTED dbname=tend sslmode=disable"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s: got %#v, want %#v", ck.name, ck.got, ck.want)
		}
	}
}

// TestTestdataBroken checks the complete error report for a file with a
// mistake on nearly every line against testdata/broken.golden (refresh
// with -update).
func TestTestdataBroken(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join("testdata", "broken.yaml"), []string{"TEND_LOG_FORMAT=xml"})
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("want Errors, got %v", err)
	}
	got := es.Error() + "\n"
	golden := filepath.Join("testdata", "broken.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("errors differ from %s (run with -update after checking):\n%s", golden, got)
	}
	for _, e := range es {
		if e.Line == 0 && e.Env == "" {
			t.Errorf("error without a line or variable: %v", e)
		}
		if strings.Contains(e.Error(), "hunter") {
			t.Errorf("error leaks a secret: %v", e)
		}
	}
}
