package config

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestKeyValidation: the keys of issue 9 (agents[].inboxes, metrics) and
// the values that would decode and do nothing are errors at load, naming
// the key and line.
func TestKeyValidation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"agent inbox that is no inbox", "agents:\n  - {email: a@acme.test, inboxes: [support@localhost, billing@elsewhere.test]}\n",
			[]string{`tend.yaml:2: agents[0].inboxes[1]: "billing@elsewhere.test" is not one of inboxes[].address`}},
		{"agent inbox in another case", "agents:\n  - {email: a@acme.test, inboxes: [Support@LOCALHOST]}\n", nil},
		{"metrics_listen not host:port", "web: {metrics_listen: nine}\n", []string{`tend.yaml:1: web.metrics_listen: invalid host:port "nine"`}},
		{"metrics_listen is web.listen", "web: {listen: \"127.0.0.1:8080\", metrics_listen: \"127.0.0.1:8080\"}\n",
			[]string{"tend.yaml:1: web.metrics_listen: is web.listen; leave it empty to serve /metrics there"}},
		{"metrics token file missing", "web: {metrics_token_file: /nonexistent/tok}\n",
			[]string{"tend.yaml:1: web.metrics_token_file: open /nonexistent/tok: no such file or directory"}},
		{"metrics token file empty", "web: {metrics_token_file: " + empty + "}\n",
			[]string{"tend.yaml:1: web.metrics_token_file: " + empty + " is empty"}},
		{"zero per-address cap would mean the default", "follow_through: {max_auto_per_address_per_hour: 0}\n",
			[]string{"tend.yaml:1: follow_through.max_auto_per_address_per_hour: must be at least 1 (to send no acknowledgements, set acknowledge: false)"}},
		{"zero per-ticket cap would mean the default", "follow_through: {max_auto_per_ticket_per_day: 0}\n",
			[]string{"tend.yaml:1: follow_through.max_auto_per_ticket_per_day: must be at least 1 (to send no acknowledgements, set acknowledge: false)"}},
		{"no nudges would mean the default ones", "follow_through: {nudges: []}\n",
			[]string{"tend.yaml:1: follow_through.nudges: must list at least one delay (the default rules use two)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := errStrings(t, tc.yaml, nil); !slices.Equal(got, tc.want) {
				t.Errorf("errors:\n got: %q\nwant: %q", got, tc.want)
			}
		})
	}
	// An empty list from the environment is the same empty list.
	if got := errStrings(t, "", []string{"TEND_FOLLOW_THROUGH_NUDGES="}); !slices.Equal(got, []string{"env TEND_FOLLOW_THROUGH_NUDGES: follow_through.nudges: must list at least one delay (the default rules use two)"}) {
		t.Errorf("empty nudges from the environment: %q", got)
	}
	c, err := Parse("tend.yaml", []byte("agents:\n  - {email: a@acme.test, inboxes: [Support@LOCALHOST]}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Agents[0].Inboxes; !slices.Equal(got, []string{"support@localhost"}) {
		t.Errorf("agents[0].inboxes = %q, want lowercased", got)
	}
}
