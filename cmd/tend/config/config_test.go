package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, name, y string, env []string) Config {
	t.Helper()
	c, err := Parse(name, []byte(y), env)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

// effectiveDefault is what Load("") returns without environment: Default()
// with paths resolved against dir and derived values filled.
func effectiveDefault(dir string) Config {
	c := Default()
	resolvePaths(reflect.ValueOf(&c).Elem(), dir)
	derive(&c)
	return c
}

func TestDefault(t *testing.T) {
	t.Parallel()
	c, err := Load("", nil)
	if err != nil {
		t.Fatalf("Load(\"\"): %v", err)
	}
	// The contract of docs/design.md, spelled out rather than compared with
	// Default() so that a change to Default() cannot pass unnoticed.
	checks := []struct {
		name      string
		got, want any
	}{
		{"data_dir", c.DataDir, "tend-data"},
		{"database.driver", c.Database.Driver, "sqlite"},
		{"database.dsn", c.Database.DSN, filepath.Join("tend-data", "tend.db")},
		{"secret_file", c.SecretFile, filepath.Join("tend-data", "secret")},
		{"smtp.listen", c.SMTP.Listen, "127.0.0.1:2525"},
		{"smtp.max_message_bytes", c.SMTP.MaxMessageBytes, Size(26214400)},
		{"web.listen", c.Web.Listen, "127.0.0.1:8080"},
		{"web.base_url", c.Web.BaseURL, "http://127.0.0.1:8080"},
		{"relay.addr", c.Relay.Addr, ""},
		{"inboxes", len(c.Inboxes), 1},
		{"inboxes[0].address", c.Inboxes[0].Address, "support@localhost"},
		{"follow_through.nudges", c.FollowThrough.Nudges, []time.Duration{48 * time.Hour, 120 * time.Hour}},
		{"follow_through.reopen_window", c.FollowThrough.ReopenWindow, 14 * 24 * time.Hour},
		{"log.level", c.Log.Level, "info"},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
	if !reflect.DeepEqual(c, effectiveDefault(".")) {
		t.Errorf("Load(\"\") differs from the effective default:\n%+v", c)
	}
	// An empty file, or one holding only comments, is the default too.
	for _, y := range []string{"", "# nothing\n", "---\n"} {
		if got := mustParse(t, "tend.yaml", y, nil); !reflect.DeepEqual(got, c) {
			t.Errorf("Parse(%q) differs from the default", y)
		}
	}
}

// TestDefaultIsFresh checks that Default hands out new slices each time, so
// that one caller's edit cannot leak into another's config.
func TestDefaultIsFresh(t *testing.T) {
	t.Parallel()
	a := Default()
	a.Inboxes[0].Address = "changed@x.test"
	a.FollowThrough.Nudges[0] = time.Second
	b := Default()
	if b.Inboxes[0].Address != "support@localhost" || b.FollowThrough.Nudges[0] != 48*time.Hour {
		t.Fatal("Default shares state between calls")
	}
}

func TestParseValues(t *testing.T) {
	t.Parallel()
	y := `x-imap: &imap
  addr: imap.acme.test:993
  username: support@acme.test
  password_file: secrets/imap
data_dir: /var/lib/tend
database:
  driver: postgres
  dsn: postgres://tend:pw@db:5432/tend
smtp:
  max_message_bytes: 10MB
  read_timeout: 2m30s
web:
  trusted_proxies: [10.0.0.0/8, "::1"]
follow_through:
  nudges: [1d, 2d12h, 7d]
  acknowledge: false
  fuse_max_mails: 7
  fuse_window: 90s
  fuse_max_mails_per_day: 40
  notify_window: 30s
sender_auth: {verify: false, timeout: 2s, reply_token_lifetime: 30d}
inboxes:
  - address: Support@Acme.Test
    imap:
      <<: *imap
      after: {move: Done}
  - address: sales@acme.test
    imap:
      <<: *imap
      username: sales@acme.test
      after: delete
agents:
  - {email: Lena@Acme.test, name: Lena, role: lead}
  - email: bob@acme.test
`
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets", "imap"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, filepath.Join(dir, "tend.yaml"), y, nil)

	wantIMAP := func(user string, after After) *IMAP {
		m := &IMAP{}
		m.applyDefaults()
		m.Addr, m.Username, m.After = "imap.acme.test:993", user, after
		m.PasswordFile, m.Password = filepath.Join(dir, "secrets", "imap"), "s3cret"
		return m
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"absolute data_dir kept", c.DataDir, "/var/lib/tend"},
		{"postgres dsn kept", c.Database.DSN, "postgres://tend:pw@db:5432/tend"},
		{"secret_file derived from data_dir", c.SecretFile, "/var/lib/tend/secret"},
		{"SI size", c.SMTP.MaxMessageBytes, Size(10_000_000)},
		{"duration", c.SMTP.ReadTimeout, 150 * time.Second},
		{"untouched sibling keeps default", c.SMTP.WriteTimeout, 60 * time.Second},
		{"scalar list", c.Web.TrustedProxies, []string{"10.0.0.0/8", "::1"}},
		{"days", c.FollowThrough.Nudges, []time.Duration{24 * time.Hour, 60 * time.Hour, 168 * time.Hour}},
		{"false overrides true", c.FollowThrough.Acknowledge, false},
		{"fuse size", c.FollowThrough.FuseMaxMails, 7},
		{"fuse window", c.FollowThrough.FuseWindow, 90 * time.Second},
		{"fuse per day", c.FollowThrough.FuseMaxMailsPerDay, 40},
		{"notify window", c.FollowThrough.NotifyWindow, 30 * time.Second},
		{"sender_auth", c.SenderAuth, SenderAuth{Verify: false, Timeout: 2 * time.Second, ReplyTokenLifetime: 30 * 24 * time.Hour}},
		{"address lowercased", c.Inboxes[0].Address, "support@acme.test"},
		{"inbox defaults", c.Inboxes[0].ResponseTime, 24 * time.Hour},
		{"merge key, move, password file", c.Inboxes[0].IMAP, wantIMAP("support@acme.test", After{Action: AfterMove, Folder: "Done"})},
		{"explicit key beats merge", c.Inboxes[1].IMAP, wantIMAP("sales@acme.test", After{Action: AfterDelete})},
		{"agent lowercased", c.Agents[0].Email, "lena@acme.test"},
		{"agent role default", c.Agents[1].Role, "agent"},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s: got %#v, want %#v", ck.name, ck.got, ck.want)
		}
	}
}

func TestRelativePaths(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, f := range []string{"rules.yaml", "dkim.pem", "relay.pw"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "templates"), 0o700); err != nil {
		t.Fatal(err)
	}
	y := `rules_file: rules.yaml
templates_dir: ./templates
dkim: {domain: acme.test, selector: s1, private_key_file: dkim.pem}
relay: {addr: "smtp.acme.test:587", username: u, password_file: relay.pw}
`
	path := filepath.Join(dir, "tend.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, []string{"TEND_SECRET_FILE=from-env/secret"})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checks := []struct{ name, got, want string }{
		{"default data_dir resolves against the file", c.DataDir, filepath.Join(dir, "tend-data")},
		{"sqlite dsn follows", c.Database.DSN, filepath.Join(dir, "tend-data", "tend.db")},
		{"rules_file", c.RulesFile, filepath.Join(dir, "rules.yaml")},
		{"templates_dir", c.TemplatesDir, filepath.Join(dir, "templates")},
		{"private_key_file", c.DKIM.PrivateKeyFile, filepath.Join(dir, "dkim.pem")},
		{"password_file read", c.Relay.Password, "x"},
		{"env paths stay relative to the working directory", c.SecretFile, "from-env/secret"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s: got %q, want %q", ck.name, ck.got, ck.want)
		}
	}
}

func TestEnvOverrides(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env   string
		check func(Config) bool
	}{
		{"TEND_DATA_DIR=/srv/tend", func(c Config) bool {
			return c.DataDir == "/srv/tend" && c.Database.DSN == "/srv/tend/tend.db"
		}},
		{"TEND_SMTP_LISTEN=", func(c Config) bool { return c.SMTP.Listen == "" }},
		{"TEND_SMTP_MAX_MESSAGE_BYTES=50MiB", func(c Config) bool { return c.SMTP.MaxMessageBytes == 50<<20 }},
		{"TEND_SMTP_READ_TIMEOUT=2m", func(c Config) bool { return c.SMTP.ReadTimeout == 2*time.Minute }},
		{"TEND_WEB_BASE_URL=https://help.acme.test", func(c Config) bool { return c.Web.BaseURL == "https://help.acme.test" }},
		{"TEND_WEB_TRUSTED_PROXIES=10.0.0.1, 192.168.0.0/16", func(c Config) bool {
			return slices.Equal(c.Web.TrustedProxies, []string{"10.0.0.1", "192.168.0.0/16"})
		}},
		{"TEND_RELAY_PASSWORD=hunter2", func(c Config) bool { return c.Relay.Password == "hunter2" }},
		{"TEND_RELAY_INSECURE_SKIP_VERIFY=true", func(c Config) bool { return c.Relay.InsecureSkipVerify }},
		{"TEND_FOLLOW_THROUGH_NUDGES=1d,3d,7d", func(c Config) bool {
			return slices.Equal(c.FollowThrough.Nudges, []time.Duration{24 * time.Hour, 72 * time.Hour, 168 * time.Hour})
		}},
		{"TEND_FOLLOW_THROUGH_MAX_AUTO_PER_TICKET_PER_DAY=4", func(c Config) bool { return c.FollowThrough.MaxAutoPerTicketPerDay == 4 }},
		{"TEND_LOG_FORMAT=json", func(c Config) bool { return c.Log.Format == "json" }},
	}
	base := "relay:\n  username: u\n  password: from-file\nsmtp:\n  listen: 0.0.0.0:25\n"
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Parallel()
			c := mustParse(t, "tend.yaml", base, []string{"TEND_RELAY_PASSWORD=first", tt.env})
			if !tt.check(c) {
				t.Errorf("%s not applied: %+v", tt.env, c)
			}
		})
	}
	t.Run("postgres from the environment", func(t *testing.T) {
		t.Parallel()
		c := mustParse(t, "", "", []string{"TEND_DATABASE_DRIVER=postgres", "TEND_DATABASE_DSN=postgres://u@h/db"})
		if c.Database.Driver != "postgres" || c.Database.DSN != "postgres://u@h/db" {
			t.Errorf("database = %+v", c.Database)
		}
	})
	t.Run("last duplicate wins, like the shell", func(t *testing.T) {
		t.Parallel()
		c := mustParse(t, "", "", []string{"TEND_LOG_LEVEL=debug", "TEND_LOG_LEVEL=warn"})
		if c.Log.Level != "warn" {
			t.Errorf("log.level = %q, want warn", c.Log.Level)
		}
	})
}

// TestEnvKeys checks the derived variable list: every scalar outside the
// lists has exactly one variable, and the names are the documented ones.
func TestEnvKeys(t *testing.T) {
	t.Parallel()
	keys, sections := envKeys()
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k.Name] {
			t.Errorf("duplicate variable %s", k.Name)
		}
		seen[k.Name] = true
		if strings.HasPrefix(k.Path, "inboxes") || strings.HasPrefix(k.Path, "agents") {
			t.Errorf("%s: lists must not get variables", k.Name)
		}
	}
	for _, name := range []string{"TEND_DATA_DIR", "TEND_DATABASE_DRIVER", "TEND_DATABASE_DSN", "TEND_SMTP_LISTEN",
		"TEND_WEB_BASE_URL", "TEND_RELAY_PASSWORD", "TEND_FOLLOW_THROUGH_NUDGES", "TEND_DKIM_PRIVATE_KEY_FILE", "TEND_AUTH_SERV_ID"} {
		if !seen[name] {
			t.Errorf("missing variable %s", name)
		}
	}
	if len(keys) != 71 {
		t.Errorf("%d variables, want 71: a key was added or lost; update REFERENCE.md and this count", len(keys))
	}
	if !slices.Contains(sections, "TEND_FOLLOW_THROUGH") || !slices.Contains(sections, "TEND_INBOXES") {
		t.Errorf("sections = %v", sections)
	}
}

func TestDurationAndSize(t *testing.T) {
	t.Parallel()
	durations := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"90s", 90 * time.Second, true},
		{"4h", 4 * time.Hour, true},
		{"14d", 14 * 24 * time.Hour, true},
		{"2d12h", 60 * time.Hour, true},
		{"0d", 0, true},
		{"1d30m", 24*time.Hour + 30*time.Minute, true},
		{"-3h", -3 * time.Hour, true}, // parses; validation rejects it
		{"4 hours", 0, false},
		{"60", 0, false},
		{"d", 0, false},
		{"-1d", 0, false},
		{"+1d", 0, false},
		{"1d-2h", 0, false},
		{"1d2d", 0, false},
		{"999999999999d", 0, false},
		{"106751d24h", 0, false},
		{"", 0, false},
	}
	for _, tt := range durations {
		got, err := parseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	sizes := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"26214400", 26214400, true},
		{"25MB", 25_000_000, true},
		{"25MiB", 25 << 20, true},
		{"25 mib", 25 << 20, true},
		{"1KB", 1000, true},
		{"-1", 0, false},
		{"lots", 0, false},
		{"", 0, false},
		{"25XB", 0, false},
	}
	for _, tt := range sizes {
		got, err := parseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSize(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	formats := map[time.Duration]string{
		0: "0s", 90 * time.Second: "1m30s", time.Minute: "1m", 48 * time.Hour: "48h", 168 * time.Hour: "168h",
		14 * 24 * time.Hour: "14d", 10 * time.Second: "10s", 90 * time.Minute: "1h30m", -time.Second: "-1s",
	}
	for d, want := range formats {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
		if back, err := parseDuration(formatDuration(d)); err != nil || back != d {
			t.Errorf("parseDuration(formatDuration(%v)) = %v, %v", d, back, err)
		}
	}
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	y := `database: {driver: postgres, dsn: "postgres://tend:pw@db/tend"}
relay: {addr: "smtp.acme.test:587", username: u, password: hunter2}
inboxes:
  - address: a@acme.test
    imap: {addr: "imap.acme.test:993", username: u, password: imappw}
  - address: b@acme.test
    imap: {addr: "imap.acme.test:993", username: u, auth: xoauth2, token_command: "get-token --secret=x"}
`
	c := mustParse(t, "tend.yaml", y, nil)
	r := c.Redacted()
	checks := []struct{ name, got, want string }{
		{"relay password", r.Relay.Password, redactedMark},
		{"imap password", r.Inboxes[0].IMAP.Password, redactedMark},
		{"token command", r.Inboxes[1].IMAP.TokenCommand, redactedMark},
		{"dsn keeps user and host", r.Database.DSN, "postgres://tend:xxxxx@db/tend"},
		{"unset secrets stay empty", r.Inboxes[0].IMAP.TokenCommand, ""},
		{"original untouched", c.Inboxes[0].IMAP.Password, "imappw"},
		{"original relay untouched", c.Relay.Password, "hunter2"},
		{"non-secret kept", r.Relay.Username, "u"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s: got %q, want %q", ck.name, ck.got, ck.want)
		}
	}
	dsns := map[string]string{
		"host=db user=tend password=pw dbname=tend":       "host=db user=tend password=REDACTED dbname=tend",
		"host=db password='p w\\'x' dbname=tend":          "host=db password=REDACTED dbname=tend",
		"postgres://db/tend":                              "postgres://db/tend",
		"/var/lib/tend/tend.db":                           "/var/lib/tend/tend.db",
		"postgresql://u:p@[::1]:5432/tend?sslmode=verify": "postgresql://u:xxxxx@[::1]:5432/tend?sslmode=verify",
	}
	for in, want := range dsns {
		if got := redactDSN(in); got != want {
			t.Errorf("redactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNotes(t *testing.T) {
	t.Parallel()
	y := `relay: {addr: "smtp.acme.test:25", username: u, password: p}
inboxes:
  - address: a@acme.test
    imap: {addr: "imap.acme.test:143", tls: none, insecure: true, username: u, password: p, after: delete}
`
	got := mustParse(t, "tend.yaml", y, nil).Notes()
	want := []string{
		"relay: credentials are sent without TLS",
		"inboxes[0].imap.after: delete removes each message from imap.acme.test:143 once tend has stored it",
		"inboxes[0].imap.insecure: the server's certificate is not checked",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Notes:\n got %q\nwant %q", got, want)
	}
	if got := Default().Notes(); !slices.Equal(got, []string{"relay.addr is empty: outgoing mail stays in the outbox"}) {
		t.Errorf("default Notes = %q", got)
	}
}

// TestFileMode: a mode is octal whether written bare (which YAML alone
// would read as decimal 660), quoted, or in the environment.
func TestFileMode(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		yaml string
		env  []string
		want FileMode
		ok   bool
	}{
		{"smtp: {lmtp_socket_mode: 0660}", nil, 0o660, true},
		{`smtp: {lmtp_socket_mode: "0600"}`, nil, 0o600, true},
		{"smtp: {lmtp_socket_mode: 666}", nil, 0o666, true},
		{"", []string{"TEND_SMTP_LMTP_SOCKET_MODE=0640"}, 0o640, true},
		{"", nil, 0o660, true}, // the default
		{"smtp: {lmtp_socket_mode: 0999}", nil, 0, false},
		{"smtp: {lmtp_socket_mode: rw-rw----}", nil, 0, false},
		{"smtp: {lmtp_socket_mode: 17777}", nil, 0, false},
	} {
		c, err := Parse("tend.yaml", []byte(tt.yaml), tt.env)
		if (err == nil) != tt.ok {
			t.Errorf("%q %v: err %v, want ok=%v", tt.yaml, tt.env, err, tt.ok)
			continue
		}
		if tt.ok && c.SMTP.LMTPSocketMode != tt.want {
			t.Errorf("%q %v: mode %v, want %v", tt.yaml, tt.env, c.SMTP.LMTPSocketMode, tt.want)
		}
	}
	if s := FileMode(0o640).String(); s != "0640" {
		t.Errorf("String() = %q", s)
	}
}
