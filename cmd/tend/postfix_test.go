package main

import (
	"bufio"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tendhq/tend/internal/testenv"
)

// TestPostfixRecipe runs the README's "Behind Postfix" recipe as written,
// with Debian's Postfix as a private instance (its own config, queue and
// port): the transport map and main.cf lines are taken from the README's
// code blocks, tend's smtp keys from its YAML block. Only the paths move
// into a temporary directory.
//
// It first shows the bug the recipe's keys fix: a socket with tend's
// default group is refused to Postfix's lmtp client (it runs as user
// postfix), and the mail waits in Postfix's queue. With the README's
// lmtp_socket_group the queued mail is delivered, and after a restart of
// tend (which recreates the socket) new mail still is.
func TestPostfixRecipe(t *testing.T) {
	recipe := readmeRecipe(t)
	pf := startPostfix(t, recipe)

	dir := t.TempDir()
	sock := filepath.Join(pf.spool, "tend", "lmtp.sock")
	if err := os.MkdirAll(filepath.Dir(sock), 0o750); err != nil {
		t.Fatal(err)
	}
	pfGroup, err := user.LookupGroup("postfix")
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(pfGroup.Gid)
	// install -d -o tend -g postfix -m 0750: tend is root in this test.
	if err := os.Chown(filepath.Dir(sock), 0, gid); err != nil {
		t.Fatal(err)
	}
	smtpKeys := func(withGroup bool) string {
		var b strings.Builder
		b.WriteString("smtp:\n  listen: \"\"\n")
		for _, line := range recipe.smtp {
			k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
			v = strings.TrimSpace(v)
			switch k {
			case "lmtp_socket":
				v = sock
			case "lmtp_socket_group":
				if !withGroup {
					continue
				}
			}
			fmt.Fprintf(&b, "  %s: %s\n", k, v)
		}
		return b.String()
	}
	config := func(withGroup bool) string {
		cfg := fmt.Sprintf(`data_dir: %s
web: {listen: "127.0.0.1:0", base_url: "http://127.0.0.1"}
inboxes:
  - {address: support@example.com, name: Example Support}
  - {address: billing@example.com, name: Example Billing}
agents:
  - {email: alice@example.com, name: Alice, role: agent}
log: {level: info}
sender_auth: {verify: false}
`, filepath.Join(dir, "data")) + smtpKeys(withGroup)
		p := filepath.Join(dir, "tend.yaml")
		if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// tend's default group: Postfix is refused, the mail waits queued.
	tend := startTend(t, config(false))
	first := pf.send(t, "support@example.com", "Printer on fire")
	pf.waitLog(t, first, "Permission denied")
	tend.Stop()

	// The recipe's group: the queued mail is delivered once flushed.
	tend = startTend(t, config(true))
	st, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o660 {
		t.Errorf("socket mode %04o, want 0660", mode)
	}
	if g := st.Sys().(*syscall.Stat_t).Gid; int(g) != gid {
		t.Errorf("socket group %d, want postfix (%d)", g, gid)
	}
	pf.flush(t)
	pf.waitLog(t, first, "status=sent")
	waitFor(t, "tend to take the first mail", 30*time.Second, func() bool {
		return strings.Count(tend.Log(), `msg="message received"`) == 1
	})

	// A restart recreates the socket; Postfix can still use it.
	tend.Stop()
	tend = startTend(t, config(true))
	second := pf.send(t, "billing@example.com", "Invoice missing")
	pf.waitLog(t, second, "status=sent")
	// tend's own host name is routed as a whole domain: an unknown
	// address there reaches tend, which refuses it, and Postfix bounces.
	third := pf.send(t, "nobody@tend.example.com", "Anyone?")
	pf.waitLog(t, third, "status=bounced")
	waitFor(t, "tend to take the second mail", 30*time.Second, func() bool {
		return strings.Count(tend.Log(), `msg="message received"`) == 1
	})
}

// recipe is what the README's "Behind Postfix" section tells an operator
// to write.
type recipe struct {
	smtp      []string // the keys under smtp: in the tend.yaml block
	transport string   // /etc/postfix/transport
	mainCF    string   // the lines added to /etc/postfix/main.cf
}

// readmeRecipe extracts the recipe's code blocks from the README, each
// found by the file its first line names.
func readmeRecipe(t *testing.T) recipe {
	t.Helper()
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	var cur []string
	in := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			if in && len(cur) > 0 {
				blocks[strings.Fields(cur[0] + " x x")[1]] = cur[1:]
			}
			in, cur = !in, nil
			continue
		}
		if in {
			cur = append(cur, line)
		}
	}
	var r recipe
	yaml, ok := blocks["/etc/tend/tend.yaml"]
	transport, ok2 := blocks["/etc/postfix/transport"]
	mainCF, ok3 := blocks["/etc/postfix/main.cf"]
	if !ok || !ok2 || !ok3 {
		t.Fatalf("README lacks a recipe block (tend.yaml %v, transport %v, main.cf %v)", ok, ok2, ok3)
	}
	for _, l := range yaml {
		if strings.HasPrefix(l, "  ") {
			keyValue, _, _ := strings.Cut(l, "#") // drop the comment
			r.smtp = append(r.smtp, strings.TrimRight(keyValue, " "))
		}
	}
	r.transport = strings.Join(transport, "\n") + "\n"
	r.mainCF = strings.Join(mainCF, "\n") + "\n"
	return r
}

// postfix is a private Postfix instance: its own config directory, queue
// directory and SMTP port, stopped when the test ends.
type postfix struct {
	conf, spool, maillog string
	addr                 string
}

func startPostfix(t *testing.T, r recipe) *postfix {
	t.Helper()
	if _, err := exec.LookPath("postfix"); err != nil {
		testenv.SkipOrFail(t, "postfix is not installed (apt-get install postfix)")
	}
	if os.Geteuid() != 0 {
		testenv.SkipOrFail(t, "a Postfix instance needs root")
	}
	root, err := os.MkdirTemp("", "tend-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	// Postfix's daemons run as user postfix: they must reach the queue.
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	pf := &postfix{conf: filepath.Join(root, "conf"), spool: filepath.Join(root, "spool"), maillog: filepath.Join(root, "maillog")}
	data := filepath.Join(root, "data")
	for _, d := range []string{pf.conf, pf.spool, data} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pfUser, err := user.Lookup("postfix")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(pfUser.Uid)
	if err := os.Chown(data, uid, -1); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	pf.addr = fmt.Sprintf("127.0.0.1:%d", port)

	// The instance: local domain example.com (where agents' own mailboxes
	// would live), loopback only, logging to a file.
	base := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %s
data_directory = %s
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.example.com
mydestination = example.com, localhost
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtputf8_enable = yes
maillog_file_prefixes = %s
maillog_file = %s
`, pf.spool, data, root, pf.maillog)
	mainCF := base + strings.ReplaceAll(r.mainCF, "/etc/postfix/", pf.conf+"/")
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(pf.conf, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("main.cf", mainCF)
	write("transport", r.transport)
	master, err := os.ReadFile("/etc/postfix/master.cf")
	if err != nil {
		t.Fatal(err)
	}
	// Debian's master.cf as shipped (chrooted services included), with the
	// SMTP listener moved to our port.
	smtpLine := regexp.MustCompile(`(?m)^smtp(\s+inet\s)`)
	write("master.cf", smtpLine.ReplaceAllString(string(master), pf.addr+"$1"))
	pf.run(t, "postmap", "-c", pf.conf, "hash:"+filepath.Join(pf.conf, "transport"))
	pf.run(t, "postfix", "-c", pf.conf, "check")
	pf.run(t, "postfix", "-c", pf.conf, "start")
	t.Cleanup(func() {
		_ = exec.Command("postfix", "-c", pf.conf, "stop").Run()
		if t.Failed() {
			if b, err := os.ReadFile(pf.maillog); err == nil {
				t.Logf("postfix log:\n%s", b)
			}
		}
		_ = os.RemoveAll(root)
	})
	waitFor(t, "postfix to listen", 30*time.Second, func() bool {
		c, err := net.Dial("tcp", pf.addr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	return pf
}

func (pf *postfix) run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(pf.maillog)
		t.Fatalf("%s %v: %v\n%s\n%s", name, args, err, out, log)
	}
}

// send submits a mail to Postfix's SMTP port and returns its queue ID.
func (pf *postfix) send(t *testing.T, to, subject string) string {
	t.Helper()
	c, err := smtp.Dial(pf.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("carol@customer.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(to); err != nil {
		t.Fatalf("RCPT %s: %v", to, err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "From: Carol <carol@customer.test>\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%d.%s@customer.test>\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\nHello.\r\n",
		to, subject, time.Now().UnixNano(), strings.ReplaceAll(subject, " ", "."))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// net/smtp does not expose the DATA reply; the queue ID is in
	// Postfix's log, on the cleanup line naming our Message-ID.
	_ = c.Quit()
	var id string
	waitFor(t, "postfix to queue "+subject, 30*time.Second, func() bool {
		log, _ := os.ReadFile(pf.maillog)
		re := regexp.MustCompile(`([0-9A-F]{6,}): message-id=<\d+\.` + regexp.QuoteMeta(strings.ReplaceAll(subject, " ", ".")) + `@`)
		if m := re.FindSubmatch(log); m != nil {
			id = string(m[1])
		}
		return id != ""
	})
	return id
}

// waitLog waits until Postfix logged want on a line about queue ID id.
func (pf *postfix) waitLog(t *testing.T, id, want string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("postfix to log %q for %s", want, id), 60*time.Second, func() bool {
		log, _ := os.ReadFile(pf.maillog)
		for _, line := range strings.Split(string(log), "\n") {
			if strings.Contains(line, id+":") && strings.Contains(line, want) {
				return true
			}
		}
		return false
	})
}

// flush asks Postfix to retry its deferred mail now.
func (pf *postfix) flush(t *testing.T) {
	t.Helper()
	pf.run(t, "postqueue", "-c", pf.conf, "-f")
}

// freePort returns a TCP port nothing listens on at the moment.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
