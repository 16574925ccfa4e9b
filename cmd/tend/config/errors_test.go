package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// errStrings parses y and returns each error formatted, failing the test
// if the result is not Errors.
func errStrings(t *testing.T, y string, env []string) []string {
	t.Helper()
	_, err := Parse("tend.yaml", []byte(y), env)
	if err == nil {
		return nil
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error is %T, want Errors: %v", err, err)
	}
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Error()
	}
	return out
}

// TestErrors covers every kind of error with the line it must report.
func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		env  []string
		want []string
	}{
		{"syntax", "smtp:\n  listen: [\n", nil,
			[]string{"tend.yaml:2: sequence end token ']' not found"}},
		{"two documents", "data_dir: a\n---\ndata_dir: b\n", nil,
			[]string{"tend.yaml:3: only one YAML document is allowed"}},
		{"top level not a mapping", "- a\n- b\n", nil,
			[]string{"tend.yaml:1: expected a mapping, got a list"}},
		{"unknown top-level key", "data_dri: x\n", nil,
			[]string{"tend.yaml:1: data_dri: unknown key (did you mean data_dir?)"}},
		{"unknown nested key with suggestion", "smtp:\n  hostname: mx.acme.test\n\n\n\n\n  listn: :25\n", nil,
			[]string{"tend.yaml:7: smtp.listn: unknown key (did you mean listen?)"}},
		{"unknown key without suggestion", "web:\n  colour: blue\n", nil,
			[]string{"tend.yaml:2: web.colour: unknown key"}},
		{"unknown key in list element", "inboxes:\n  - address: a@b.test\n    adress: c@d.test\n", nil,
			[]string{"tend.yaml:3: inboxes[0].adress: unknown key (did you mean address?)"}},
		{"bad inbox calendar", "inboxes:\n  - address: support@acme.test\n    language: it\n    time_zone: Mars/Olympus\n    business_hours: Mon-Fri 9-5\n    holidays: [25.12.2026]\n", nil,
			[]string{`tend.yaml:3: inboxes[0].language: invalid value "it" (want one of en, de, fr, es, pt, nl)`,
				`tend.yaml:4: inboxes[0].time_zone: time zone "Mars/Olympus": unknown time zone Mars/Olympus`,
				`tend.yaml:5: inboxes[0].business_hours: business hours "Mon-Fri 9-5": "9-5" is not a time range like 09:00-17:00`,
				`tend.yaml:6: inboxes[0].holidays[0]: holiday "25.12.2026": want a date like 2026-12-25`}},
		{"bad duration", "inboxes:\n  - address: support@acme.test\n    response_time: 4 hours\n", nil,
			[]string{`tend.yaml:3: inboxes[0].response_time: invalid duration "4 hours"`}},
		{"duration without unit", "smtp: {read_timeout: 60}\n", nil,
			[]string{`tend.yaml:1: smtp.read_timeout: invalid duration "60"`}},
		{"bad size", "smtp:\n  max_message_bytes: lots\n", nil,
			[]string{`tend.yaml:2: smtp.max_message_bytes: invalid size "lots" (bytes, or with a unit: 25MB, 25MiB)`}},
		{"bad integer", "smtp:\n  max_recipients: 5.5\n", nil,
			[]string{`tend.yaml:2: smtp.max_recipients: invalid integer "5.5"`}},
		{"bad boolean", "follow_through:\n  acknowledge: sometimes\n", nil,
			[]string{`tend.yaml:2: follow_through.acknowledge: invalid boolean "sometimes" (want true or false)`}},
		{"mapping where a value belongs", "data_dir: {a: b}\n", nil,
			[]string{"tend.yaml:1: data_dir: expected a single value, got a mapping"}},
		{"scalar where a mapping belongs", "smtp: yes\n", nil,
			[]string{"tend.yaml:1: smtp: expected a mapping, got a single value"}},
		{"scalar where a list belongs", "follow_through:\n  nudges: 48h\n", nil,
			[]string{"tend.yaml:2: follow_through.nudges: expected a list, got a single value"}},
		{"unknown alias", "data_dir: *nowhere\n", nil,
			[]string{"tend.yaml:1: data_dir: unknown alias *nowhere"}},
		{"bad address", "inboxes:\n  - address: Acme <support@acme.test>\n", nil,
			[]string{`tend.yaml:2: inboxes[0].address: invalid address "Acme <support@acme.test>" (want a bare address like support@example.com)`}},
		{"missing address", "inboxes:\n  - name: Nameless\n", nil,
			[]string{"tend.yaml:2: inboxes[0].address: required"}},
		{"duplicate address, case-insensitive", "inboxes:\n  - address: a@acme.test\n  - address: A@Acme.Test\n", nil,
			[]string{"tend.yaml:3: inboxes[1].address: duplicate of inboxes[0].address (addresses are compared ignoring case)"}},
		{"no inboxes", "inboxes: []\n", nil,
			[]string{"tend.yaml:1: inboxes: at least one inbox is required"}},
		{"agent is an inbox", "inboxes: [{address: s@acme.test}]\nagents:\n  - {email: S@acme.test}\n", nil,
			[]string{"tend.yaml:3: agents[0].email: is also inboxes[0].address"}},
		{"duplicate agent and bad role", "agents:\n  - {email: a@acme.test}\n  - email: a@acme.test\n    role: boss\n", nil,
			[]string{"tend.yaml:3: agents[1].email: duplicate of agents[0].email (addresses are compared ignoring case)",
				`tend.yaml:4: agents[1].role: invalid value "boss" (want agent, lead or admin)`}},
		{"name with line break", "inboxes:\n  - address: a@acme.test\n    name: \"Acme\\r\\nBcc: x@evil.test\"\n", nil,
			[]string{"tend.yaml:3: inboxes[0].name: must not contain line breaks"}},
		{"listen not host:port", "smtp:\n  listen: 2525\n", nil,
			[]string{`tend.yaml:2: smtp.listen: invalid host:port "2525"`}},
		{"bad port", "relay: {addr: \"smtp.acme.test:99999\"}\n", nil,
			[]string{`tend.yaml:1: relay.addr: invalid port in "smtp.acme.test:99999"`}},
		{"base_url not absolute", "web:\n  base_url: /tend\n", nil,
			[]string{`tend.yaml:2: web.base_url: must be an absolute http(s) URL, got "/tend"`}},
		{"trusted proxy", "web:\n  trusted_proxies:\n    - 10.0.0.0/8\n    - proxy.local\n", nil,
			[]string{`tend.yaml:4: web.trusted_proxies[1]: invalid IP address or CIDR prefix "proxy.local"`}},
		{"enum", "log:\n  level: loud\n  format: xml\n", nil,
			[]string{`tend.yaml:2: log.level: invalid value "loud" (want debug, info, warn or error)`,
				`tend.yaml:3: log.format: invalid value "xml" (want text or json)`}},
		{"negative and zero durations", "relay:\n  timeout: -1s\n  retry_for: 0s\n", nil,
			[]string{"tend.yaml:2: relay.timeout: must be a positive duration, got -1s",
				"tend.yaml:3: relay.retry_for: must be a positive duration, got 0s"}},
		{"null clears a value, then validation names it", "smtp:\n  read_timeout:\n", nil,
			[]string{"tend.yaml:2: smtp.read_timeout: must be a positive duration, got 0s"}},
		{"sender auth bounds", "sender_auth:\n  timeout: 0s\n  reply_token_lifetime: 12h\n", nil,
			[]string{"tend.yaml:2: sender_auth.timeout: must be a positive duration, got 0s",
				"tend.yaml:3: sender_auth.reply_token_lifetime: must be at least 24h (reply addresses carry their issue day): 12h0m0s"}},
		{"nudges not ascending", "follow_through:\n  nudges:\n    - 5d\n    - 2d\n", nil,
			[]string{"tend.yaml:4: follow_through.nudges[1]: nudges must be ascending: 48h is not after 120h"}},
		{"line length below RFC 5321", "smtp: {max_line_length: 998}\n", nil,
			[]string{"tend.yaml:1: smtp.max_line_length: must be at least 1000 (RFC 5321 §4.5.3.1.6), got 998"}},
		{"postgres without dsn", "database:\n  driver: postgres\n", nil,
			[]string{"tend.yaml:2: database.dsn: required with driver postgres (postgres://user:pass@host/db)"}},
		{"bad driver", "database: {driver: mysql}\n", nil,
			[]string{`tend.yaml:1: database.driver: invalid value "mysql" (want sqlite or postgres)`}},
		{"postgres URL with another scheme hides the password", "database:\n  driver: postgres\n  dsn: mysql://u:hunter2@h/db\n", nil,
			[]string{"tend.yaml:3: database.dsn: invalid postgres URL (want postgres://user:pass@host/db)"}},
		{"relay password and password_file", "relay:\n  addr: smtp.acme.test:587\n  username: u\n  password: p\n  password_file: /nonexistent\n", nil,
			[]string{"tend.yaml:5: relay.password_file: password and password_file are exclusive"}},
		{"relay username without password", "relay:\n  addr: smtp.acme.test:587\n  username: u\n", nil,
			[]string{"tend.yaml:3: relay.password: required when username is set (or password_file)"}},
		{"dkim partial", "dkim:\n  domain: acme.test\n", nil,
			[]string{"tend.yaml:1: dkim: domain, selector and private_key_file are needed together (or none)"}},
		{"imap block without addr", "inboxes:\n  - address: a@acme.test\n    imap:\n      username: u\n      password: p\n", nil,
			[]string{"tend.yaml:3: inboxes[0].imap.addr: required in an imap block"}},
		{"imap tls none without insecure", "inboxes:\n  - address: a@acme.test\n    imap:\n      addr: imap.acme.test:143\n      tls: none\n      username: u\n      password: p\n", nil,
			[]string{"tend.yaml:5: inboxes[0].imap.tls: none sends the password in clear text; set insecure: true to allow it"}},
		{"imap oauth without token", "inboxes:\n  - address: a@acme.test\n    imap:\n      addr: imap.acme.test:993\n      username: u\n      auth: xoauth2\n", nil,
			[]string{"tend.yaml:6: inboxes[0].imap.auth: auth xoauth2 needs exactly one of token_file, token_command or oauth"}},
		{"imap oauth block incomplete", "inboxes:\n  - address: a@acme.test\n    imap:\n      addr: imap.acme.test:993\n      username: u\n      auth: xoauth2\n      oauth: {client_id: tend}\n", nil,
			[]string{"tend.yaml:7: inboxes[0].imap.oauth: needs token_url, client_id and refresh_token"}},
		{"imap oauth with password", "inboxes:\n  - address: a@acme.test\n    imap:\n      addr: imap.acme.test:993\n      username: u\n      auth: oauthbearer\n      token_command: get-token\n      password: p\n", nil,
			[]string{"tend.yaml:6: inboxes[0].imap.auth: auth oauthbearer uses a token, not password or password_file"}},
		{"imap plain without password", "inboxes:\n  - address: a@acme.test\n    imap:\n      addr: imap.acme.test:993\n      username: u\n", nil,
			[]string{"tend.yaml:3: inboxes[0].imap.password: auth plain needs password or password_file"}},
		{"imap bad after", "inboxes:\n  - address: a@acme.test\n    imap:\n      addr: imap.acme.test:993\n      username: u\n      password: p\n      after: archive\n", nil,
			[]string{`tend.yaml:7: inboxes[0].imap.after: invalid value "archive" (want seen, delete or {move: FOLDER})`}},
		{"imap after move without folder", "inboxes:\n  - address: a@acme.test\n    imap:\n      addr: imap.acme.test:993\n      username: u\n      password: p\n      after:\n        mvoe: Done\n", nil,
			[]string{"tend.yaml:8: inboxes[0].imap.after.mvoe: unknown key (did you mean move?)"}},
		{"imap stale_after not after poll_interval", "inboxes:\n  - address: a@acme.test\n    imap:\n      addr: imap.acme.test:993\n      username: u\n      password: p\n      poll_interval: 5m\n      stale_after: 5m\n", nil,
			[]string{"tend.yaml:8: inboxes[0].imap.stale_after: must be longer than poll_interval (5m)"}},
		{"missing rules file", "rules_file: no-such-rules.yaml\n", nil,
			[]string{"tend.yaml:1: rules_file: stat no-such-rules.yaml: no such file or directory"}},
		{"all errors are collected, in file order", "log: {level: loud}\nsmtp:\n  listn: x\n  read_timeout: soon\n", nil,
			[]string{`tend.yaml:1: log.level: invalid value "loud" (want debug, info, warn or error)`,
				"tend.yaml:3: smtp.listn: unknown key (did you mean listen?)",
				`tend.yaml:4: smtp.read_timeout: invalid duration "soon"`}},
		{"merge cycle", "x-a: &a {<<: *a}\nsmtp: *a\n", nil,
			[]string{"tend.yaml:1: smtp: merge keys nested too deeply"}},
		{"a value that does not parse is reported once", "follow_through:\n  nudges: [[1d]]\n", nil,
			[]string{"tend.yaml:2: follow_through.nudges[0]: expected a single value, got a list"}},
		{"env fixes a bad file value, file error still shown", "smtp:\n  read_timeout: soon\n", []string{"TEND_SMTP_READ_TIMEOUT=0s"},
			[]string{`tend.yaml:2: smtp.read_timeout: invalid duration "soon"`,
				"env TEND_SMTP_READ_TIMEOUT: smtp.read_timeout: must be a positive duration, got 0s"}},
		{"env: bad value names the variable", "", []string{"TEND_SMTP_READ_TIMEOUT=4 hours"},
			[]string{`env TEND_SMTP_READ_TIMEOUT: smtp.read_timeout: invalid duration "4 hours"`}},
		{"env: validation names the variable", "web:\n  base_url: http://ok.test\n", []string{"TEND_WEB_BASE_URL=ftp://acme.test"},
			[]string{`env TEND_WEB_BASE_URL: web.base_url: must be an absolute http(s) URL, got "ftp://acme.test"`}},
		{"env: list element names the variable", "", []string{"TEND_FOLLOW_THROUGH_NUDGES=5d,2d"},
			[]string{"env TEND_FOLLOW_THROUGH_NUDGES: follow_through.nudges[1]: nudges must be ascending: 48h is not after 120h"}},
		{"env: typo under a known section", "", []string{"TEND_SMTP_LISTN=:25"},
			[]string{"env TEND_SMTP_LISTN: unknown variable (did you mean TEND_SMTP_LISTEN?)"}},
		{"env: lists are file-only", "", []string{"TEND_INBOXES_0_ADDRESS=a@b.test"},
			[]string{"env TEND_INBOXES_0_ADDRESS: lists (inboxes, agents) can only be set in the config file"}},
		{"env: unrelated TEND_ variables are ignored", "", []string{"TEND_CI=1", "TEND_TEST_POSTGRES_DSN=postgres://x", "HOME=/root"},
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := errStrings(t, tt.yaml, tt.env)
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n got: %q\nwant: %q", got, tt.want)
			}
		})
	}
}

// TestErrorsFieldsAndWrapping checks the structured fields callers may
// branch on, and that errors.As reaches one *Error through Errors.
func TestErrorsFieldsAndWrapping(t *testing.T) {
	t.Parallel()
	_, err := Parse("conf/tend.yaml", []byte("smtp:\n  listn: x\n"), nil)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("errors.As(*Error) failed on %v", err)
	}
	want := Error{File: "conf/tend.yaml", Line: 2, Key: "smtp.listn", Msg: "unknown key (did you mean listen?)"}
	if *e != want {
		t.Errorf("got %+v, want %+v", *e, want)
	}
}

func TestErrorFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		e    Error
		want string
	}{
		{Error{File: "tend.yaml", Line: 12, Key: "a.b", Msg: "bad"}, "tend.yaml:12: a.b: bad"},
		{Error{File: "tend.yaml", Key: "a.b", Msg: "bad"}, "tend.yaml: a.b: bad"},
		{Error{Line: 3, Key: "a", Msg: "bad"}, "line 3: a: bad"},
		{Error{Key: "a", Msg: "bad"}, "a: bad"},
		{Error{File: "tend.yaml", Env: "TEND_A", Key: "a", Msg: "bad"}, "env TEND_A: a: bad"},
		{Error{File: "tend.yaml", Line: 1, Msg: "syntax"}, "tend.yaml:1: syntax"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			if got := tt.e.Error(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	if got := (Errors{&tests[0].e, &tests[3].e}).Error(); got != "tend.yaml:12: a.b: bad\na: bad" {
		t.Errorf("Errors.Error() = %q", got)
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := Load(filepath.Join(t.TempDir(), "absent.yaml"), nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load of a missing file: %v, want fs.ErrNotExist", err)
	}
	if !strings.HasPrefix(err.Error(), "read config: ") {
		t.Errorf("error lacks context: %v", err)
	}
}
