package config

import (
	"fmt"
	"net/url"
	"reflect"
	"regexp"
	"slices"
)

// redactedMark replaces a secret in Redacted; it is not empty so that a
// reader of the log can tell "set but hidden" from "not set".
const redactedMark = "REDACTED"

// Redacted returns a copy of c safe to log: every `tend:"secret"` field
// that is set (passwords, token commands) is replaced by REDACTED, and a
// database DSN keeps everything but its password. c itself is not changed.
func (c Config) Redacted() Config {
	c.Inboxes = slices.Clone(c.Inboxes)
	for i := range c.Inboxes {
		if m := c.Inboxes[i].IMAP; m != nil {
			cp := *m
			c.Inboxes[i].IMAP = &cp
		}
	}
	c.Agents = slices.Clone(c.Agents)
	dsn := c.Database.DSN
	redact(reflect.ValueOf(&c).Elem())
	c.Database.DSN = redactDSN(dsn)
	return c
}

func redact(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			redact(v.Elem())
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Struct {
			for i := range v.Len() {
				redact(v.Index(i))
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := v.Field(i)
			if t.Field(i).Tag.Get("tend") == "secret" && f.Kind() == reflect.String {
				if f.String() != "" {
					f.SetString(redactedMark)
				}
				continue
			}
			redact(f)
		}
	}
}

// redactDSN hides the password of a database DSN but keeps host, user and
// database, which are what one looks for in a log.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" && u.User != nil {
		return u.Redacted()
	}
	// password=... in a key=value DSN (libpq form), quoted or not.
	// Compiled per call: Redacted runs once at startup, and the package
	// keeps no globals.
	re := regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)
	return re.ReplaceAllString(dsn, "${1}"+redactedMark)
}

// Notes returns remarks about a valid configuration that are not errors
// but deserve a line in the log at startup, such as an IMAP mailbox whose
// messages are deleted once stored.
func (c Config) Notes() []string {
	var notes []string
	if c.Relay.Addr == "" {
		notes = append(notes, "relay.addr is empty: outgoing mail stays in the outbox")
	} else {
		if c.Relay.TLS == "none" && c.Relay.Username != "" {
			notes = append(notes, "relay: credentials are sent without TLS")
		}
		if c.Relay.InsecureSkipVerify {
			notes = append(notes, "relay.insecure_skip_verify: the relay's certificate is not checked")
		}
	}
	for i, in := range c.Inboxes {
		if in.IMAP == nil {
			continue
		}
		if in.IMAP.After.Action == AfterDelete {
			notes = append(notes, fmt.Sprintf("inboxes[%d].imap.after: delete removes each message from %s once tend has stored it", i, in.IMAP.Addr))
		}
		if in.IMAP.Insecure {
			notes = append(notes, fmt.Sprintf("inboxes[%d].imap.insecure: the server's certificate is not checked", i))
		}
	}
	return notes
}
