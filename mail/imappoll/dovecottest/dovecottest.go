// Package dovecottest starts and stops a real Dovecot IMAP server for tests:
// a throwaway configuration, one user and a Maildir under a temporary
// folder, listening on a free port of 127.0.0.1.
//
// Tests that use it skip when the dovecot binary is missing (or the test
// does not run as root, which Dovecot needs to switch to the mail user),
// unless the environment variable TEND_CI is non-empty: then a missing
// Dovecot is a failure, so CI cannot pass by skipping.
package dovecottest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/tendhq/tend/internal/testenv"
)

// Server is a running Dovecot with one user. It is stopped by the test's
// cleanup.
type Server struct {
	// Addr is host:port of the plain-text IMAP listener.
	Addr string
	// User and Password log in with LOGIN or AUTHENTICATE PLAIN.
	User     string
	Password string

	dir     string
	conf    string
	pidFile string
}

// startTimeout bounds how long Dovecot may take to answer its first
// greeting; on a loaded 2-core machine it is well under a second.
const startTimeout = 15 * time.Second

var confTemplate = template.Must(template.New("dovecot.conf").Parse(`# written by dovecottest
protocols = imap
listen = 127.0.0.1
ssl = no
{{if .NewAuth}}auth_allow_cleartext = yes{{else}}disable_plaintext_auth = no{{end}}
auth_mechanisms = plain login
first_valid_uid = 0
base_dir = {{.Dir}}/base
state_dir = {{.Dir}}/state
log_path = {{.Dir}}/dovecot.log
info_log_path = {{.Dir}}/dovecot.log
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {{.Dir}}/passwd
}
userdb {
  driver = static
  args = uid=mail gid=mail home={{.Dir}}/home
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = {{.Port}}
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
}
`))

// Available reports whether Dovecot can be started here, and why not.
func Available() (bool, string) {
	if _, err := exec.LookPath("dovecot"); err != nil {
		return false, "dovecot is not installed (apt-get install -y dovecot-imapd)"
	}
	if os.Geteuid() != 0 {
		return false, "dovecot tests need root (Dovecot switches to the mail user)"
	}
	if _, err := user.Lookup("mail"); err != nil {
		return false, "no mail user on this machine"
	}
	return true, ""
}

// Require skips t when Dovecot is unavailable, or fails it when TEND_CI is
// set, so CI never passes by skipping.
func Require(t testing.TB) {
	t.Helper()
	ok, why := Available()
	if ok {
		return
	}
	if testenv.CI() {
		t.Fatalf("dovecot unavailable and %s is set: %s", testenv.CIEnv, why)
	}
	t.Skipf("skipping Dovecot test: %s", why)
}

// Start writes a configuration under a temporary folder, starts Dovecot and
// waits until it greets. It registers a cleanup that stops it.
func Start(t testing.TB) *Server {
	t.Helper()
	Require(t)
	// Not t.TempDir: its parent is private to root, and Dovecot's auth and
	// mail processes (other users) must traverse the folder.
	dir, err := os.MkdirTemp("", "tend-dovecot-")
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("chmod temp dir: %v", err)
	}
	s := &Server{User: "tend", Password: "tend-secret", dir: dir, conf: filepath.Join(dir, "dovecot.conf"), pidFile: filepath.Join(dir, "base", "master.pid")}
	for _, sub := range []string{"base", "state", "home"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatalf("mkdir: %v", err)
		}
	}
	if err := chownMail(filepath.Join(dir, "home")); err != nil {
		t.Fatalf("chown home: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "passwd"), []byte(s.User+":{PLAIN}"+s.Password+"\n"), 0o644); err != nil {
		t.Fatalf("write passwd: %v", err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var conf bytes.Buffer
	if err := confTemplate.Execute(&conf, map[string]any{"Dir": dir, "Port": port, "NewAuth": newAuthSetting()}); err != nil {
		t.Fatalf("config template: %v", err)
	}
	if err := os.WriteFile(s.conf, conf.Bytes(), 0o644); err != nil {
		t.Fatalf("write config: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop dovecot: %v", err)
		}
	})
	if err := s.start(); err != nil {
		t.Fatalf("%v\n%s", err, s.log())
	}
	return s
}

// start launches the daemon and waits for its greeting.
func (s *Server) start() error {
	// Dovecot daemonizes and keeps its standard streams: a pipe there would
	// make the test binary wait for the daemon to exit.
	// Its early errors go to a file, not a pipe, for the same reason.
	out, err := os.Create(filepath.Join(s.dir, "start.log"))
	if err != nil {
		return fmt.Errorf("start log: %w", err)
	}
	defer out.Close()
	cmd := exec.Command("dovecot", "-c", s.conf)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		return fmt.Errorf("start dovecot: %w: %s", err, b)
	}
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := imapclient.DialInsecure(s.Addr, nil)
		if err == nil {
			err = c.WaitGreeting()
			_ = c.Close()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dovecot did not greet on %s: %w", s.Addr, err)
		}
		<-tick.C
	}
}

// Stop terminates Dovecot through the pid in base_dir/master.pid and waits
// for the master process to exit. Stopping a stopped server is a no-op.
func (s *Server) Stop() error {
	b, err := os.ReadFile(s.pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("parse pid: %w", err)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill dovecot: %w", err)
	}
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("dovecot pid %d still running", pid)
		}
		<-tick.C
	}
	_ = os.Remove(s.pidFile)
	return nil
}

// Restart stops and starts the same server (same port, same mail), as a
// server restart in production would.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := s.start(); err != nil {
		t.Fatalf("%v\n%s", err, s.log())
	}
}

func (s *Server) log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "dovecot.log"))
	return string(b)
}

// Client logs in and returns a client closed at cleanup.
func (s *Server) Client(t testing.TB) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(s.Addr, nil)
	if err != nil {
		t.Fatalf("dial dovecot: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Login(s.User, s.Password).Wait(); err != nil {
		t.Fatalf("login: %v\n%s", err, s.log())
	}
	return c
}

// Append stores raw in mailbox with IMAP APPEND, creating the mailbox if
// needed, and returns its UID.
func (s *Server) Append(t testing.TB, mailbox string, raw []byte) imap.UID {
	t.Helper()
	c := s.Client(t)
	defer c.Close()
	return AppendWith(t, c, mailbox, raw, time.Time{})
}

// AppendWith appends over an existing connection (fast for many messages),
// with an optional INTERNALDATE, creating the mailbox if needed.
func AppendWith(t testing.TB, c *imapclient.Client, mailbox string, raw []byte, date time.Time) imap.UID {
	t.Helper()
	uid, err := appendMsg(c, mailbox, raw, date)
	if err != nil {
		var ierr *imap.Error
		if !errors.As(err, &ierr) || ierr.Code != imap.ResponseCodeTryCreate {
			t.Fatalf("append: %v", err)
		}
		if err := c.Create(mailbox, nil).Wait(); err != nil {
			t.Fatalf("create %s: %v", mailbox, err)
		}
		if uid, err = appendMsg(c, mailbox, raw, date); err != nil {
			t.Fatalf("append: %v", err)
		}
	}
	return uid
}

func appendMsg(c *imapclient.Client, mailbox string, raw []byte, date time.Time) (imap.UID, error) {
	cmd := c.Append(mailbox, int64(len(raw)), &imap.AppendOptions{Time: date})
	if _, err := cmd.Write(raw); err != nil {
		return 0, fmt.Errorf("write: %w", err)
	}
	if err := cmd.Close(); err != nil {
		return 0, fmt.Errorf("close: %w", err)
	}
	data, err := cmd.Wait()
	if err != nil {
		return 0, err
	}
	return data.UID, nil
}

// RecreateMailbox deletes and creates name again, which gives it a new
// UIDVALIDITY (RFC 9051 section 2.3.1.1) while keeping its messages: they
// are copied out first and appended back. Dovecot refuses to delete INBOX,
// so name must be another mailbox.
func (s *Server) RecreateMailbox(t testing.TB, name string) {
	t.Helper()
	c := s.Client(t)
	defer c.Close()
	var msgs [][]byte
	if sel, err := c.Select(name, nil).Wait(); err == nil && sel.NumMessages > 0 {
		body := &imap.FetchItemBodySection{Peek: true}
		all := imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}} // 1:*
		bufs, err := c.Fetch(all, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{body}}).Collect()
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		for _, b := range bufs {
			msgs = append(msgs, b.FindBodySection(body))
		}
		if err := c.Unselect().Wait(); err != nil {
			t.Fatalf("unselect: %v", err)
		}
	}
	if err := c.Delete(name).Wait(); err != nil {
		t.Fatalf("delete %s: %v", name, err)
	}
	if err := c.Create(name, nil).Wait(); err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	for _, m := range msgs {
		AppendWith(t, c, name, m, time.Time{})
	}
}

// Count returns the number of messages in mailbox (0 when it is missing).
func (s *Server) Count(t testing.TB, mailbox string) int {
	t.Helper()
	c := s.Client(t)
	defer c.Close()
	// Dovecot answers STATUS on a missing mailbox with a bare NO, without
	// the NONEXISTENT code, so existence is asked with LIST first.
	list, err := c.List("", mailbox, nil).Collect()
	if err != nil {
		t.Fatalf("list %s: %v", mailbox, err)
	}
	if len(list) == 0 {
		return 0
	}
	data, err := c.Status(mailbox, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		t.Fatalf("status %s: %v", mailbox, err)
	}
	return int(*data.NumMessages)
}

func chownMail(path string) error {
	u, err := user.Lookup("mail")
	if err != nil {
		return fmt.Errorf("lookup mail user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(path, uid, gid)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// newAuthSetting reports whether the installed Dovecot is 2.4 or newer,
// which renamed disable_plaintext_auth to auth_allow_cleartext.
func newAuthSetting() bool {
	out, err := exec.Command("dovecot", "--version").Output()
	if err != nil {
		return false
	}
	v := strings.TrimSpace(string(out))
	var major, minor int
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil {
		return false
	}
	return major > 2 || (major == 2 && minor >= 4)
}
