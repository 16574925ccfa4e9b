package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/cmd/tend/config"
	"github.com/tendhq/tend/mail/imappoll"
	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/threading"
)

// keyProofs names, for the keys the builder check below cannot see (they
// are used inline by serve, or are read by the config loader itself), the
// test that fails when the key is ignored. Every other key must change what
// the builders give the components.
var keyProofs = map[string]string{
	"smtp.listen":                        "TestServeEndToEnd", // the test mails the address tend logs it listens on
	"web.listen":                         "TestServeEndToEnd",
	"smtp.lmtp_socket":                   "TestLMTP",                // mail/smtpd; serve listens on the unix socket
	"smtp.lmtp_socket_mode":              "TestPostfixRecipe",       // Postfix's lmtp (user postfix) reaches the socket
	"smtp.lmtp_socket_group":             "TestPostfixRecipe",       // without the group Postfix gets "Permission denied"
	"web.metrics_listen":                 "TestAccessEndToEnd",      // also MetricsSeparate in webOptions
	"smtp.shutdown_grace":                "TestShutdownGrace",       // serve's runSMTP: a DATA past it is cut and the process exits
	"relay.password_file":                "TestParseValues",         // config: read into relay.password at load
	"inboxes[].imap.password_file":       "TestParseValues",         // config: read into imap.password at load
	"inboxes[].imap.oauth.refresh_token": "TestOAuth2TokenRotation", // mail/imappoll: the first refresh token, handed to NewOAuth2Token
	// inboxPolicies (serve sets followup.Options.Inboxes from it) builds a
	// *rules.Calendar whose pointer would make every rendering differ, so
	// these are proven by a test of what it builds.
	"inboxes[].language":       "TestInboxPolicyKeys",
	"inboxes[].time_zone":      "TestInboxPolicyKeys",
	"inboxes[].business_hours": "TestInboxPolicyKeys",
	"inboxes[].holidays":       "TestInboxPolicyKeys",
}

// pendingProofs are proofs being written on another branch: the key is
// listed so it cannot be forgotten, and the test fails the day the proof
// exists without this entry being removed.
var pendingProofs = map[string]string{}

// leafKeys walks the Config type the way the YAML decoder does: every
// key that holds a value (not a block or a list of blocks).
func leafKeys(t reflect.Type, path string, out *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		p := name
		if path != "" {
			p = path + "." + name
		}
		ft := f.Type
		switch {
		case ft == reflect.TypeFor[config.After]():
			*out = append(*out, p)
		case ft.Kind() == reflect.Struct:
			leafKeys(ft, p, out)
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct:
			leafKeys(ft.Elem(), p, out)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			leafKeys(ft.Elem(), p+"[]", out)
		default:
			*out = append(*out, p)
		}
	}
}

// field finds the value of key in v (a *config.Config), allocating
// optional blocks and using the first element of lists.
func field(v reflect.Value, key string) reflect.Value {
	for _, part := range strings.Split(key, ".") {
		list := strings.HasSuffix(part, "[]")
		part = strings.TrimSuffix(part, "[]")
		for v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		t := v.Type()
		found := false
		for i := range t.NumField() {
			if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name == part {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			panic("no key " + key)
		}
		if list {
			v = v.Index(0)
		}
	}
	return v
}

// alternatives are valid other values for keys whose value is one of a
// set: a suffixed string would not be a value the builders act on.
var alternatives = map[string]string{
	"database.driver": "postgres", "relay.tls": "tls", "log.level": "debug", "log.format": "json",
	"inboxes[].backfill": "live", "inboxes[].imap.tls": "starttls", "inboxes[].imap.auth": "login", "agents[].role": "lead",
}

// mutate changes v to another value of its type.
func mutate(key string, v reflect.Value) {
	switch x := v.Addr().Interface().(type) {
	case *string:
		if alt, ok := alternatives[key]; ok {
			*x = alt
		} else if strings.HasSuffix(key, "_file") || strings.HasSuffix(key, "_dir") || key == "data_dir" {
			*x = "/nonexistent/tend-key-test"
		} else {
			*x += "-changed"
		}
	case *bool:
		*x = !*x
	case *int:
		*x += 7
	case *config.Size:
		*x += 7
	case *time.Duration:
		*x += time.Minute
	case *[]string:
		*x = append(*x, "10.9.9.9/32")
	case *[]time.Duration:
		*x = append(*x, 400*time.Hour)
	case *config.After:
		*x = config.After{Action: config.AfterMove, Folder: "Archive"}
	default:
		panic(fmt.Sprintf("%s: no mutation for %T", key, x))
	}
}

// baseConfig is the default config with every optional block present, so
// each key has something to reach: one inbox with IMAP, one agent, DKIM
// and secret files that exist.
func baseConfig(t *testing.T, oauth bool) config.Config {
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "dkim.pem")
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	secretFile := filepath.Join(dir, "secret")
	tokFile := filepath.Join(dir, "metrics-token")
	rulesFile := filepath.Join(dir, "rules.yaml")
	defaults, err := os.ReadFile("../../rules/default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		keyFile: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), secretFile: []byte("a:" + base64.StdEncoding.EncodeToString(secret) + "\n"),
		tokFile: []byte("tok\n"), rulesFile: defaults,
	} {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := config.Default()
	cfg.DataDir, cfg.SecretFile, cfg.RulesFile, cfg.TemplatesDir = dir, secretFile, rulesFile, dir
	cfg.DKIM = config.DKIM{Domain: "acme.test", Selector: "s1", PrivateKeyFile: keyFile}
	cfg.Web.MetricsTokenFile = tokFile
	cfg.Inboxes[0].IMAP = &config.IMAP{Addr: "imap.acme.test:993", TLS: "tls", Auth: "plain", Username: "u", Password: "p", Mailbox: "INBOX",
		After: config.After{Action: config.AfterSeen}, PollInterval: time.Minute, StaleAfter: 10 * time.Minute}
	if oauth {
		cfg.Inboxes[0].IMAP.Auth = "xoauth2"
		cfg.Inboxes[0].IMAP.OAuth = &config.OAuth{TokenURL: "https://oauth.acme.test/token", ClientID: "id", ClientSecret: "cs", RefreshToken: "rt"}
	}
	cfg.Agents = []config.Agent{{Email: "alice@acme.test", Name: "Alice", Role: "agent"}}
	return cfg
}

// wiring renders everything the builders make of cfg: what the components
// are given. Two configs that render alike run alike.
func wiring(st *storage.Store, cfg config.Config) string {
	var b strings.Builder
	p := func(v ...any) {
		for _, x := range v {
			fmt.Fprintf(&b, "%#v\n", x)
		}
	}
	inboxes := inboxAddresses(cfg)
	accepted := append(append([]string{}, inboxes...), postmasters(cfg)...)
	specs, agents := directory(cfg)
	p(specs, agents, storeOptions(cfg), smtpOptions(cfg, nil, nil), relayConfig(cfg), senderOptions(cfg), threadingConfig(cfg, accepted),
		ownConfig(cfg, accepted), followupOptions(cfg), webOptions(cfg), rulesOptions(cfg, inboxes),
		processorLimits(cfg, ingest.ProcessorOptions{}), housekeeping(cfg), senderAuthOptions(cfg, nil))
	d, err := dkimConfig(cfg)
	if d != nil {
		p(d.Domain, d.Selector, d.Key)
	}
	p(fmt.Sprint(err))
	tok, err := readTokenFile(cfg.Web.MetricsTokenFile)
	p(tok, fmt.Sprint(err))
	_, _, err = loadRules(cfg, inboxes)
	p(fmt.Sprint(err))
	if signer, err := loadSigner(context.Background(), st, cfg.SecretFile); err != nil {
		p(err.Error())
	} else {
		p(signer.Sign(threading.PurposeReply, 1, 1), replySigner(cfg, signer, nil).ReplyLifetime())
	}
	var logged bytes.Buffer
	log := newLogger(cfg.Log, &logged)
	log.Debug("debug line")
	log.Info("info line")
	p(strings.HasPrefix(logged.String(), "{"), strings.Contains(logged.String(), "debug line"))
	for _, in := range cfg.Inboxes {
		if in.IMAP == nil {
			continue
		}
		o := imapOptions(in, nil)
		pw, _ := o.Password(context.Background())
		switch tk := o.Token.(type) {
		case imappoll.FileToken, imappoll.CommandToken:
			p(tk)
		default:
			if in.IMAP.OAuth != nil {
				p(imapOAuth(in.IMAP.OAuth))
			}
		}
		o.Password, o.Token = nil, nil
		p(o, pw)
	}
	return b.String()
}

// testNames are the Test functions of every _test.go file in the module.
func testNames(t *testing.T) map[string]bool {
	names := map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != "../.." {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			if fn, ok := decl.(*ast.FuncDecl); ok && fn.Recv == nil && strings.HasPrefix(fn.Name.Name, "Test") {
				names[fn.Name.Name] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestConfigKeysTakeEffect walks config.Config and proves each key is
// used: changing it changes what a component is given (the components'
// own tests prove they honour it), or a named test proves it end to end.
// A key that decodes and does nothing fails here.
func TestConfigKeysTakeEffect(t *testing.T) {
	var keys []string
	leafKeys(reflect.TypeFor[config.Config](), "", &keys)
	tests := testNames(t)
	// One store for every rendering: a secret_file that is not there falls
	// back to the database's key, the same each time.
	st := storagetest.OpenSQLite(t, nil)
	for k, name := range keyProofs {
		if !tests[name] && pendingProofs[name] == "" {
			t.Errorf("%s: proof %s is no test function in this module", k, name)
		}
		if tests[name] && pendingProofs[name] != "" {
			t.Errorf("%s exists now: remove it from pendingProofs", name)
		}
	}
	known := map[string]bool{}
	for _, k := range keys {
		known[k] = true
	}
	for k := range keyProofs {
		if !known[k] {
			t.Errorf("keyProofs lists %s, which is no key", k)
		}
	}
	for _, k := range keys {
		t.Run(k, func(t *testing.T) {
			if name, ok := keyProofs[k]; ok {
				if why := pendingProofs[name]; why != "" {
					t.Logf("proof %s pending: %s", name, why)
				}
				return
			}
			oauth := strings.HasPrefix(k, "inboxes[].imap.oauth.")
			base := baseConfig(t, oauth)
			changed := baseConfig(t, oauth)
			// The same temporary files, so only the key differs.
			changed = sameFiles(changed, base)
			mutate(k, field(reflect.ValueOf(&changed), k))
			if wiring(st, base) == wiring(st, changed) {
				t.Errorf("changing %s changes nothing any component is given: the key is ignored", k)
			}
		})
	}
}

// sameFiles points c at base's files, so that two base configs differ
// only where a test changes them.
func sameFiles(c, base config.Config) config.Config {
	c.DataDir, c.SecretFile, c.RulesFile, c.TemplatesDir = base.DataDir, base.SecretFile, base.RulesFile, base.TemplatesDir
	c.DKIM.PrivateKeyFile, c.Web.MetricsTokenFile = base.DKIM.PrivateKeyFile, base.Web.MetricsTokenFile
	return c
}
