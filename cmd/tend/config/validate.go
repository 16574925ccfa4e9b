package config

import (
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tendhq/tend/rules"
)

// validator collects every problem; each names the key path, and the
// caller locates it in the file or environment.
type validator struct {
	errs []issue
}

// issue is a validation error before it is located. near names the key
// whose line to report when the key itself was not written (a dsn missing
// because of the driver line).
type issue struct {
	err  *Error
	near string
}

func (v *validator) add(key, format string, args ...any) {
	v.addNear(key, "", format, args...)
}

func (v *validator) addNear(key, near, format string, args ...any) {
	v.errs = append(v.errs, issue{&Error{Key: key, Msg: fmt.Sprintf(format, args...)}, near})
}

// validate checks c and normalizes it in place: addresses are lowercased
// and password files are read into their password fields.
func validate(c *Config) []issue {
	v := &validator{}
	if c.DataDir == "" {
		v.add("data_dir", "must not be empty")
	}
	v.notNegative("min_free_disk", int64(c.MinFreeDisk))
	v.database(c.Database)
	v.positive("database.lease", c.Database.Lease)
	v.smtp(c.SMTP)
	v.web(c.Web)
	v.relay(&c.Relay)
	v.dkim(c.DKIM)
	if strings.ContainsAny(c.AuthServID, " \t\r\n;()\"") {
		v.add("auth_serv_id", "invalid authserv-id %q (RFC 8601 §2.5: a token without spaces or ;)", c.AuthServID)
	}
	if strings.ContainsAny(c.Threading.TagPrefix, " \t\r\n[]#") {
		v.add("threading.tag_prefix", "must not contain spaces, brackets or #: %q", c.Threading.TagPrefix)
	}
	v.positive("threading.subject_window", c.Threading.SubjectWindow)
	v.positive("sender_auth.timeout", c.SenderAuth.Timeout)
	if c.SenderAuth.ReplyTokenLifetime < 24*time.Hour {
		v.add("sender_auth.reply_token_lifetime", "must be at least 24h (reply addresses carry their issue day): %s", c.SenderAuth.ReplyTokenLifetime)
	}
	v.followThrough(c.FollowThrough)
	v.limits(c)
	v.existing("rules_file", c.RulesFile, false)
	v.existing("templates_dir", c.TemplatesDir, true)
	v.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", c.Log.Format, "text", "json")
	v.inboxes(c.Inboxes)
	v.agents(c.Agents, c.Inboxes)
	return v.errs
}

func (v *validator) database(d Database) {
	switch d.Driver {
	case "sqlite":
	case "postgres":
		if d.DSN == "" {
			v.addNear("database.dsn", "database.driver", "required with driver postgres (postgres://user:pass@host/db)")
		} else if strings.Contains(d.DSN, "://") {
			u, err := url.Parse(d.DSN)
			if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
				// The DSN may hold a password: never echo it.
				v.add("database.dsn", "invalid postgres URL (want postgres://user:pass@host/db)")
			}
		}
	default:
		v.add("database.driver", "invalid value %q (want sqlite or postgres)", d.Driver)
	}
}

func (v *validator) smtp(s SMTP) {
	if s.Listen != "" {
		v.hostPort("smtp.listen", s.Listen)
	}
	if !validDomain(s.Hostname) {
		v.add("smtp.hostname", "invalid host name %q", s.Hostname)
	}
	if s.MaxMessageBytes <= 0 {
		v.add("smtp.max_message_bytes", "must be positive")
	}
	if s.MaxRecipients <= 0 {
		v.add("smtp.max_recipients", "must be positive")
	}
	if s.MaxConnections <= 0 {
		v.add("smtp.max_connections", "must be positive")
	}
	if s.MaxLineLength < 1000 {
		v.add("smtp.max_line_length", "must be at least 1000 (RFC 5321 §4.5.3.1.6), got %d", s.MaxLineLength)
	}
	v.positive("smtp.read_timeout", s.ReadTimeout)
	v.positive("smtp.write_timeout", s.WriteTimeout)
	v.positive("smtp.data_idle_timeout", s.DataIdleTimeout)
	v.positive("smtp.data_timeout", s.DataTimeout)
	v.notNegative("smtp.max_session_time", int64(s.MaxSessionTime))
	v.notNegative("smtp.max_commands", int64(s.MaxCommands))
	v.positive("smtp.shutdown_grace", s.ShutdownGrace)
}

func (v *validator) web(w Web) {
	v.hostPort("web.listen", w.Listen)
	u, err := url.Parse(w.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.add("web.base_url", "must be an absolute http(s) URL, got %q", w.BaseURL)
	}
	for i, p := range w.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err == nil {
			continue
		}
		if _, err := netip.ParseAddr(p); err != nil {
			v.add(fmt.Sprintf("web.trusted_proxies[%d]", i), "invalid IP address or CIDR prefix %q", p)
		}
	}
	if w.MetricsListen != "" {
		v.hostPort("web.metrics_listen", w.MetricsListen)
		if w.MetricsListen == w.Listen && !strings.HasSuffix(w.Listen, ":0") {
			v.add("web.metrics_listen", "is web.listen; leave it empty to serve /metrics there")
		}
	}
	if w.MetricsTokenFile != "" {
		// Read here so a missing or empty file is a config error, not a
		// /metrics left open; serve reads it again.
		_ = v.readSecret("web.metrics_token_file", w.MetricsTokenFile)
	}
}

func (v *validator) relay(r *Relay) {
	if r.Addr != "" {
		v.hostPort("relay.addr", r.Addr)
	}
	v.oneOf("relay.tls", r.TLS, "none", "starttls", "tls")
	v.positive("relay.timeout", r.Timeout)
	v.positive("relay.retry_for", r.RetryFor)
	switch {
	case r.Password != "" && r.PasswordFile != "":
		v.add("relay.password_file", "password and password_file are exclusive")
	case r.PasswordFile != "":
		r.Password = v.readSecret("relay.password_file", r.PasswordFile)
	}
	if r.Username == "" && r.Password != "" {
		v.add("relay.username", "required when a password is set")
	}
	if r.Username != "" && r.Password == "" && r.PasswordFile == "" {
		v.addNear("relay.password", "relay.username", "required when username is set (or password_file)")
	}
}

func (v *validator) dkim(d DKIM) {
	set := 0
	for _, s := range []string{d.Domain, d.Selector, d.PrivateKeyFile} {
		if s != "" {
			set++
		}
	}
	if set == 0 {
		return
	}
	if set != 3 {
		v.add("dkim", "domain, selector and private_key_file are needed together (or none)")
		return
	}
	if !validDomain(d.Domain) {
		v.add("dkim.domain", "invalid domain %q", d.Domain)
	}
	if !validDomain(d.Selector) {
		v.add("dkim.selector", "invalid selector %q", d.Selector)
	}
	v.existing("dkim.private_key_file", d.PrivateKeyFile, false)
}

func (v *validator) followThrough(f FollowThrough) {
	if f.RepeatContactsToLead < 1 {
		v.add("follow_through.repeat_contacts_to_lead", "must be at least 1")
	}
	if len(f.Nudges) == 0 {
		// The rules would quietly fall back to 48h, 120h.
		v.add("follow_through.nudges", "must list at least one delay (the default rules use two)")
	}
	for i, n := range f.Nudges {
		key := fmt.Sprintf("follow_through.nudges[%d]", i)
		v.positive(key, n)
		if i > 0 && n <= f.Nudges[i-1] {
			v.add(key, "nudges must be ascending: %s is not after %s", formatDuration(n), formatDuration(f.Nudges[i-1]))
		}
	}
	v.positive("follow_through.reopen_window", f.ReopenWindow)
	v.positive("follow_through.bounce_suppression", f.BounceSuppression)
	// The rules read 0 as "use the default" (3 and 10), so a 0 here would
	// quietly mean the opposite of what it says: refused.
	if f.MaxAutoPerAddressPerHour < 1 {
		v.add("follow_through.max_auto_per_address_per_hour", "must be at least 1 (to send no acknowledgements, set acknowledge: false)")
	}
	if f.MaxAutoPerTicketPerDay < 1 {
		v.add("follow_through.max_auto_per_ticket_per_day", "must be at least 1 (to send no acknowledgements, set acknowledge: false)")
	}
	if f.FuseMaxMails < 1 {
		v.add("follow_through.fuse_max_mails", "must be at least 1")
	}
	v.positive("follow_through.fuse_window", f.FuseWindow)
	if f.FuseMaxMailsPerDay < 1 {
		v.add("follow_through.fuse_max_mails_per_day", "must be at least 1")
	}
	v.positive("follow_through.notify_window", f.NotifyWindow)
}

func (v *validator) inboxes(in []Inbox) {
	if len(in) == 0 {
		v.add("inboxes", "at least one inbox is required")
	}
	seen := map[string]string{}
	for i := range in {
		b := &in[i]
		key := fmt.Sprintf("inboxes[%d]", i)
		b.Address = v.address(key+".address", b.Address, seen)
		v.displayName(key+".name", b.Name)
		v.positive(key+".response_time", b.ResponseTime)
		v.oneOf(key+".backfill", b.Backfill, "quiet", "live")
		if b.IMAP != nil {
			v.imap(key+".imap", b.IMAP)
		}
		v.calendar(key, b)
	}
}

// calendar checks an inbox's language, zone, hours and holidays, with the
// same code that applies them (rules.NewCalendar).
func (v *validator) calendar(key string, b *Inbox) {
	if !rules.ShippedLanguage(b.Language) {
		v.add(key+".language", "invalid value %q (want one of %s)", b.Language, strings.Join(rules.Languages(), ", "))
	}
	if b.TimeZone != "" {
		if _, err := rules.NewCalendar(b.TimeZone, "", nil); err != nil {
			v.add(key+".time_zone", "%v", err)
		}
	}
	if _, err := rules.NewCalendar("", b.BusinessHours, nil); err != nil {
		v.add(key+".business_hours", "%v", err)
	}
	for j, h := range b.Holidays {
		if _, err := rules.NewCalendar("", "", []string{h}); err != nil {
			v.add(fmt.Sprintf("%s.holidays[%d]", key, j), "%v", err)
		}
	}
}

func (v *validator) imap(key string, m *IMAP) {
	if m.Addr == "" {
		v.add(key+".addr", "required in an imap block")
	} else {
		v.hostPort(key+".addr", m.Addr)
	}
	v.oneOf(key+".tls", m.TLS, "tls", "starttls", "none")
	if m.TLS == "none" && !m.Insecure {
		v.add(key+".tls", "none sends the password in clear text; set insecure: true to allow it")
	}
	if m.Username == "" {
		v.add(key+".username", "required")
	}
	if m.Mailbox == "" {
		v.add(key+".mailbox", "must not be empty")
	}
	switch m.Auth {
	case "plain", "login":
		switch {
		case m.Password != "" && m.PasswordFile != "":
			v.add(key+".password_file", "password and password_file are exclusive")
		case m.PasswordFile != "":
			m.Password = v.readSecret(key+".password_file", m.PasswordFile)
		case m.Password == "":
			v.addNear(key+".password", key+".auth", "auth %s needs password or password_file", m.Auth)
		}
		if m.TokenFile != "" || m.TokenCommand != "" || m.OAuth != nil {
			v.add(key+".auth", "token_file, token_command and oauth need auth xoauth2 or oauthbearer")
		}
	case "xoauth2", "oauthbearer":
		n := 0
		for _, set := range []bool{m.TokenFile != "", m.TokenCommand != "", m.OAuth != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			v.add(key+".auth", "auth %s needs exactly one of token_file, token_command or oauth", m.Auth)
		}
		if o := m.OAuth; o != nil && (o.TokenURL == "" || o.ClientID == "" || o.RefreshToken == "") {
			v.add(key+".oauth", "needs token_url, client_id and refresh_token")
		}
		if m.Password != "" || m.PasswordFile != "" {
			v.add(key+".auth", "auth %s uses a token, not password or password_file", m.Auth)
		}
	default:
		v.add(key+".auth", "invalid value %q (want plain, login, xoauth2 or oauthbearer)", m.Auth)
	}
	v.positive(key+".poll_interval", m.PollInterval)
	v.positive(key+".stale_after", m.StaleAfter)
	v.notNegative(key+".backfill_rate", int64(m.BackfillRate))
	if m.StaleAfter > 0 && m.StaleAfter <= m.PollInterval {
		v.add(key+".stale_after", "must be longer than poll_interval (%s)", formatDuration(m.PollInterval))
	}
}

func (v *validator) agents(agents []Agent, inboxes []Inbox) {
	seen := map[string]string{}
	for i := range agents {
		a := &agents[i]
		key := fmt.Sprintf("agents[%d]", i)
		a.Email = v.address(key+".email", a.Email, seen)
		v.displayName(key+".name", a.Name)
		v.oneOf(key+".role", a.Role, "agent", "lead", "admin")
		for j, want := range a.Inboxes {
			a.Inboxes[j] = strings.ToLower(want)
			if !slices.ContainsFunc(inboxes, func(in Inbox) bool { return strings.EqualFold(in.Address, want) }) {
				v.add(fmt.Sprintf("%s.inboxes[%d]", key, j), "%q is not one of inboxes[].address", want)
			}
		}
		for j, in := range inboxes {
			if a.Email != "" && a.Email == in.Address {
				// Notifications to the agent would come straight back
				// in as customer mail: a loop.
				v.add(key+".email", "is also inboxes[%d].address", j)
				break
			}
		}
	}
}

// address checks a bare addr-spec (RFC 5322 §3.4.1), returns it lowercased
// and reports duplicates among those already seen.
func (v *validator) address(key, s string, seen map[string]string) string {
	if s == "" {
		v.add(key, "required")
		return s
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		v.add(key, "invalid address %q (want a bare address like support@example.com)", s)
		return s
	}
	s = strings.ToLower(s)
	if prev, ok := seen[s]; ok {
		v.add(key, "duplicate of %s (addresses are compared ignoring case)", prev)
	} else {
		seen[s] = key
	}
	return s
}

// displayName rejects line breaks: the name goes into From headers, where
// a newline would inject header fields.
func (v *validator) displayName(key, s string) {
	if strings.ContainsAny(s, "\r\n\x00") {
		v.add(key, "must not contain line breaks")
	}
}

func (v *validator) hostPort(key, s string) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		v.add(key, "invalid host:port %q", s)
		return
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && !strings.HasSuffix(key, "listen")) {
		v.add(key, "invalid port in %q", s)
	}
	if strings.ContainsAny(host, " \t\r\n/") {
		v.add(key, "invalid host in %q", s)
	}
}

func (v *validator) oneOf(key, s string, allowed ...string) {
	if !slices.Contains(allowed, s) {
		v.add(key, "invalid value %q (want %s)", s, orList(allowed))
	}
}

func orList(s []string) string {
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

func (v *validator) positive(key string, d time.Duration) {
	if d <= 0 {
		v.add(key, "must be a positive duration, got %s", formatDuration(d))
	}
}

// notNegative checks a limit where 0 means none.
func (v *validator) notNegative(key string, n int64) {
	if n < 0 {
		v.add(key, "must not be negative")
	}
}

// existing checks that a configured file or directory is there, so that
// check-config finds a typo before the server starts.
func (v *validator) existing(key, path string, dir bool) {
	if path == "" {
		return
	}
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		v.add(key, "%v", err)
	case dir && !fi.IsDir():
		v.add(key, "%s is not a directory", path)
	case !dir && fi.IsDir():
		v.add(key, "%s is a directory", path)
	}
}

// readSecret reads a password file; one trailing newline, as editors and
// `echo` leave, is not part of the secret.
func (v *validator) readSecret(key, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		v.add(key, "%v", err)
		return ""
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		v.add(key, "%s is empty", path)
	}
	return s
}

// validDomain accepts a host name of LDH labels (RFC 1035 §2.3.1, relaxed
// to allow underscores as DKIM selectors and internal names use them).
func validDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

func (v *validator) limits(c *Config) {
	if c.Processing.MaxAttempts < 1 {
		v.add("processing.max_attempts", "must be at least 1")
	}
	v.positive("processing.retry_backoff", c.Processing.RetryBackoff)
	if c.Processing.BatchBytes <= 0 {
		v.add("processing.batch_bytes", "must be positive")
	}
	if c.Processing.Workers < 0 || c.Processing.Workers > 64 {
		v.add("processing.workers", "must be between 0 (by database) and 64")
	}
	if c.Processing.MaxBodyText < 1024 {
		v.add("processing.max_body_text", "must be at least 1KiB")
	}
	if c.Notifications.MaxText < 1024 {
		v.add("notifications.max_text", "must be at least 1KiB")
	}
	if c.Notifications.AttachMax < 0 {
		v.add("notifications.attach_max", "must not be negative")
	}
	v.positive("retention.outbox_bodies", c.Retention.OutboxBodies)
	v.notNegative("retention.notification_bodies", int64(c.Retention.NotificationBodies))
	v.positive("retention.compact_every", c.Retention.CompactEvery)
	if c.Clusters.Window < 0 {
		v.add("clusters.window", "must not be negative (0 turns clustering off)")
	}
}
