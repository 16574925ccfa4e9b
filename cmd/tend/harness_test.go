package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tendhq/tend/storage/storagetest"
)

// The end-to-end tests run the real binary, as an operator would: built
// once per test run, started on free ports with a temporary config, and
// stopped (or killed) by the test.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func tendBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tend-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "tend")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// tendProc is a running `tend serve`.
type tendProc struct {
	t        *testing.T
	cmd      *exec.Cmd
	dir      string
	cfgPath  string
	SMTPAddr string
	WebAddr  string
	// MetricsAddr is set when web.metrics_listen gives /metrics its own
	// listener.
	MetricsAddr string
	Password    string // the first-start admin password, if printed
	exited      chan struct{}
	logMu       sync.Mutex
	log         strings.Builder
}

// backendConfig returns the database lines of a config for a backend.
func backendConfig(t *testing.T, backend string) string {
	if backend == "postgres" {
		return fmt.Sprintf("database: {driver: postgres, dsn: %q}\n", storagetest.PostgresDSN(t))
	}
	return ""
}

// writeConfig writes a config for a test under dir; extra is appended.
func writeConfig(t *testing.T, dir, backend, extra string) string {
	cfg := fmt.Sprintf(`data_dir: %s
smtp: {listen: "127.0.0.1:0", hostname: mail.acme.test, max_message_bytes: 1048576}
web: {listen: "127.0.0.1:0", base_url: "http://127.0.0.1"}
inboxes:
  - {address: support@acme.test, name: Acme Support, response_time: 4h}
  - {address: billing@acme.test, name: Acme Billing, response_time: 1h}
agents:
  - {email: alice@acme.test, name: Alice, role: agent}
  - {email: lena@acme.test, name: Lena, role: lead}
log: {level: info}
# Offline and hermetic: no live DNS. The wiring of sender_auth is tested
# in senderauth_test.go through a fake resolver.
sender_auth: {verify: false}
`, filepath.Join(dir, "data")) + backendConfig(t, backend) + extra
	p := filepath.Join(dir, "tend.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	listenRE   = regexp.MustCompile(`msg="(smtp|web|metrics) listening" addr=(\S+)`)
	passwordRE = regexp.MustCompile(`with the password (\S+)`)
)

// startTend runs `tend serve --config cfgPath` and waits until it listens.
func startTend(t *testing.T, cfgPath string, env ...string) *tendProc {
	t.Helper()
	return startTendArgs(t, cfgPath, nil, env...)
}

// startTendArgs is startTend with more arguments to serve.
func startTendArgs(t *testing.T, cfgPath string, args []string, env ...string) *tendProc {
	t.Helper()
	p := &tendProc{t: t, cfgPath: cfgPath, dir: filepath.Dir(cfgPath), exited: make(chan struct{})}
	p.cmd = exec.Command(tendBinary(t), append([]string{"serve", "--config", cfgPath}, args...)...)
	p.cmd.Env = append(os.Environ(), env...)
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	var once sync.Once
	var readers sync.WaitGroup
	scan := func(r io.Reader) {
		defer readers.Done()
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.logMu.Lock()
			p.log.WriteString(line + "\n")
			if m := listenRE.FindStringSubmatch(line); m != nil {
				switch m[1] {
				case "smtp":
					p.SMTPAddr = m[2]
				case "web":
					p.WebAddr = m[2]
				case "metrics":
					p.MetricsAddr = m[2]
				}
			}
			if m := passwordRE.FindStringSubmatch(line); m != nil {
				p.Password = m[1]
			}
			if strings.Contains(line, "tend is running") {
				once.Do(func() { close(ready) })
			}
			p.logMu.Unlock()
		}
	}
	readers.Add(2)
	go scan(stdout)
	go scan(stderr)
	go func() {
		readers.Wait()
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	select {
	case <-ready:
	case <-p.exited:
		t.Fatalf("tend exited before it was ready:\n%s", p.Log())
	case <-time.After(60 * time.Second):
		p.Kill()
		t.Fatalf("tend did not start within 60s:\n%s", p.Log())
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("tend log:\n%s", p.Log())
		}
	})
	return p
}

// Log returns everything tend printed.
func (p *tendProc) Log() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}

// Stop asks tend to stop and waits for it.
func (p *tendProc) Stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.Kill()
	}
}

// Kill kills tend with SIGKILL: no shutdown code runs.
func (p *tendProc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// token creates an API token with the real CLI.
func (p *tendProc) token(role string) string {
	p.t.Helper()
	out, err := exec.Command(tendBinary(p.t), "token", "create", "test", "--role", role, "--config", p.cfgPath).CombinedOutput()
	if err != nil {
		p.t.Fatalf("token create: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// getJSON fetches an API path into v and returns the status code.
func (p *tendProc) getJSON(token, path string, v any) int {
	p.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+p.WebAddr+path, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			p.t.Fatalf("GET %s: %v", path, err)
		}
	}
	return resp.StatusCode
}

// waitFor polls cond until it holds or the deadline passes. It waits on a
// condition, never on a guess of how long something takes.
func waitFor(t *testing.T, what string, deadline time.Duration, cond func() bool) {
	t.Helper()
	end := time.After(deadline)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-end:
			t.Fatalf("timed out after %v waiting for %s", deadline, what)
		case <-tick.C:
		}
	}
}
