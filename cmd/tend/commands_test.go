package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/storage"
)

// TestStoreCommandsNeedTheServersDatabase is issue 13's newcomer trap:
// "tend token create" without the server's --config used to create a
// second, empty database and print a token the server then called
// invalid. Now a command that acts on an installation opens only a
// database that exists, and says what is missing.
func TestStoreCommandsNeedTheServersDatabase(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	env := []string{"TEND_DATA_DIR=" + dir}
	for _, args := range [][]string{
		{"token", "create", "ci", "--role", "lead"},
		{"user", "add", "lena@acme.test", "--role", "lead"},
	} {
		var out, errb bytes.Buffer
		if code := run(ctx, args, env, &out, &errb); code == 0 {
			t.Fatalf("%v with no database: exit 0, printed %q", args, out.String())
		}
		if msg := errb.String(); !strings.Contains(msg, "no database") || !strings.Contains(msg, "--config") {
			t.Errorf("%v: the error does not say what is missing: %q", args, msg)
		}
		if out.Len() != 0 {
			t.Errorf("%v printed %q although nothing was created", args, out.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "tend.db")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a database was created: %v", err)
	}

	// The server's first start creates it; then the command works.
	st, err := storage.Open(ctx, storage.Options{Driver: storage.DriverSQLite, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"token", "create", "ci", "--role", "lead"}, env, &out, &errb); code != 0 || strings.TrimSpace(out.String()) == "" {
		t.Fatalf("with the database: exit %d, out %q, err %q", code, out.String(), errb.String())
	}
}

// TestOneLogLinePerMailInAndOut is issue 13's "at the default log level
// nothing is logged when mail arrives or leaves": with log.level left at
// its default, each received message and each mail handed to the relay
// is one line.
func TestOneLogLinePerMailInAndOut(t *testing.T) {
	relay := startRelayCapture(t)
	cfg := writeAccessConfig(t, "sqlite", relay.addr)
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The default level, not the harness's explicit one.
	b = []byte(strings.Replace(string(b), "log: {level: info}\n", "", 1))
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startTend(t, cfg)
	if err := sendMail(p.SMTPAddr, "ann@example.com", []string{"support@acme.test"},
		mailText("Ann <ann@example.com>", "support@acme.test", "Printer on fire", "ann-log-1@example.com", "", "Help.")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the acknowledgement and Bob's notification logged", 30*time.Second, func() bool {
		log := p.Log()
		return strings.Contains(log, `msg="mail sent"`) && strings.Contains(log, "to=bob@acme.test") &&
			strings.Contains(log, "to=ann@example.com")
	})
	if log := p.Log(); strings.Count(log, `msg="message received"`) != 1 || !strings.Contains(log, "message_id=ann-log-1@example.com") {
		t.Errorf("want one 'message received' line naming the message:\n%s", log)
	}
}

// TestFirstStartPasswordSurvivesAFailedStart is issue 13's newcomer trap:
// a first start that failed (the web port taken) printed the admin
// password and used it up; and the login URL came from base_url's
// default although only web.listen was changed.
func TestFirstStartPasswordSurvivesAFailedStart(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "tend.yaml")
	write := func(webListen string) {
		cfg := fmt.Sprintf("data_dir: %s\nsmtp: {listen: \"127.0.0.1:0\"}\nweb: {listen: %q}\nsender_auth: {verify: false}\n",
			filepath.Join(dir, "data"), webListen)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(taken.Addr().String())
	out, err := exec.Command(tendBinary(t), "serve", "--config", cfgPath).CombinedOutput()
	if err == nil {
		t.Fatalf("serve with its web port taken exited 0:\n%s", out)
	}
	if strings.Contains(string(out), "with the password") {
		t.Fatalf("a failed first start printed the password:\n%s", out)
	}

	write("127.0.0.1:0")
	p := startTend(t, cfgPath)
	// The password is on stdout, the log on stderr: wait for the line.
	waitFor(t, "the first-start password", 10*time.Second, func() bool { return strings.Contains(p.Log(), "with the password") })
	if want := "log in at http://" + p.WebAddr + "/ as"; !strings.Contains(p.Log(), want) {
		t.Errorf("the login URL is not where the web server listens (%q):\n%s", want, p.Log())
	}
}

// TestUnwritableDataDirIsAConfigError: check-config and serve name the
// data directory they cannot write instead of passing, then failing in
// SQLite. A path under a regular file fails even for root, who may write
// anywhere else.
func TestUnwritableDataDirIsAConfigError(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "not-a-dir")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "tend.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf("data_dir: %s\nsmtp: {listen: \"127.0.0.1:0\"}\nweb: {listen: \"127.0.0.1:0\"}\n", filepath.Join(file, "data"))), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check-config", cfgPath}, {"serve", "--config", cfgPath}} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, nil, &out, &errb); code == 0 {
			t.Errorf("%v: exit 0 with an unusable data_dir: %s", args, out.String())
		}
		if !strings.Contains(errb.String(), "data_dir") || !strings.Contains(errb.String(), "not a directory") {
			t.Errorf("%v: the error does not name the data directory: %q", args, errb.String())
		}
	}
	// And a writable one passes, leaving nothing behind.
	if err := checkDataDir(filepath.Join(dir, "fresh", "data")); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("the check left files behind: %v", entries)
	}
}

// TestServePprof: `serve --pprof` serves Go's profiles beside /metrics,
// behind the metrics token, and refuses to start without one.
func TestServePprof(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	cfg := writeConfig(t, dir, "sqlite", "")
	if code := run(context.Background(), []string{"serve", "--pprof", "--config", cfg}, nil, &out, &errb); code != 2 {
		t.Fatalf("--pprof without web.metrics_token_file: exit %d, want 2 (%q)", code, errb.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("the refused start touched the data directory: %v", err)
	}
	tok := filepath.Join(dir, "metrics.tok")
	if err := os.WriteFile(tok, []byte("s3cret-profiles\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	web := `web: {listen: "127.0.0.1:0", base_url: "http://127.0.0.1"}`
	if !bytes.Contains(text, []byte(web)) {
		t.Fatalf("writeConfig's web line changed: %s", text)
	}
	text = bytes.Replace(text, []byte(web), []byte(`web: {listen: "127.0.0.1:0", base_url: "http://127.0.0.1", metrics_token_file: `+tok+`}`), 1)
	if err := os.WriteFile(cfg, text, 0o600); err != nil {
		t.Fatal(err)
	}
	p := startTendArgs(t, cfg, []string{"--pprof"})
	for auth, want := range map[string]int{"": http.StatusUnauthorized, "Bearer s3cret-profiles": http.StatusOK} {
		req, err := http.NewRequest(http.MethodGet, "http://"+p.WebAddr+"/debug/pprof/goroutine?debug=1", nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("profile with %q = %d, want %d", auth, resp.StatusCode, want)
		}
		if want == http.StatusOK && !strings.Contains(string(body), "goroutine") {
			t.Errorf("no goroutine profile: %.200q", body)
		}
	}
}
