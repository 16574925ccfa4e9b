package compose

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jhillyerd/enmime/v2"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

var t0 = time.Date(2026, 3, 14, 9, 26, 53, 0, time.FixedZone("CET", 3600))

// plainReply is an agent's reply relayed to a customer.
func plainReply() Message {
	return Message{
		From:        Address{"Lena Fischer via Acme Support", "support@acme.example"},
		To:          []Address{{"Jürgen Weiß", "juergen@kunde.example"}},
		Cc:          []Address{{"", "buchhaltung@kunde.example"}},
		ReplyTo:     []Address{{"Acme Support", "support@acme.example"}},
		Subject:     "Re: Rechnung März doppelt abgebucht [#1042]",
		MessageID:   "t1042.m7.f3a9c2@acme.example",
		InReplyTo:   "CAF=xyz123@mail.gmail.com",
		References:  []string{"CAF=xyz123@mail.gmail.com", "t1042.m1.aa11@acme.example", "CAF=xyz999@mail.gmail.com"},
		Date:        t0,
		Text:        "Hallo Herr Weiß,\n\ndie doppelte Abbuchung ist storniert; die Gutschrift sehen Sie in 2–3 Werktagen.\n\nViele Grüße\nLena Fischer\n",
		LoopHeader:  "X-Tend-Loop: inst-7f3e",
		ThreadTopic: "Rechnung März doppelt abgebucht",
		ThreadIndex: "AQHZbWJ0mB1m2QdKq0yJmE8vYk3Qbw==",
		Extra:       map[string]string{"X-Tend-Ticket": "1042"},
	}
}

// htmlReply has an HTML alternative, an inline logo and a PDF attachment.
func htmlReply() Message {
	m := plainReply()
	m.To = []Address{{"山田 太郎", "taro.yamada@example.jp"}}
	m.Cc = nil
	m.Subject = "Re: 請求書の件について [#1043]"
	m.MessageID = "t1043.m2.b7e1@acme.example"
	m.InReplyTo = "000001d9a1b2$c3d4e5f0$6b7c8d9e@example.jp"
	m.References = []string{m.InReplyTo}
	m.Text = "山田様\n\nご連絡ありがとうございます。請求書を添付いたします。\n"
	m.HTML = `<p>山田様</p><p>ご連絡ありがとうございます。請求書を添付いたします。</p><img src="cid:logo.1043@acme.example">`
	m.Attachments = []Attachment{
		{Filename: "logo.png", ContentType: "image/png", Data: []byte("\x89PNG\r\n\x1a\nfake"), ContentID: "logo.1043@acme.example", Inline: true},
		{Filename: "請求書 2026-03.pdf", ContentType: "application/pdf", Data: bytes.Repeat([]byte("%PDF-1.7 binary\x00\xff"), 40)},
	}
	m.Extra = map[string]string{"X-Tend-Ticket": "1043"}
	return m
}

// autoAck is the automatic acknowledgement of a new ticket.
func autoAck() Message {
	return Message{
		From:       Address{"Служба поддержки Acme", "support@acme.example"},
		To:         []Address{{"Анна Смирнова", "anna@example.ru"}},
		Subject:    "[#1044] Мы получили ваше письмо 📬",
		MessageID:  "t1044.ack.c0ffee@acme.example",
		InReplyTo:  "5f1e2d3c-aaaa-bbbb@example.ru",
		References: []string{"5f1e2d3c-aaaa-bbbb@example.ru"},
		Date:       t0,
		Text:       "Здравствуйте!\n\nВаш запрос зарегистрирован под номером #1044. Мы ответим в течение 4 рабочих часов.\n",
		Auto:       true,
		LoopHeader: "inst-7f3e",
		Extra:      map[string]string{"X-Tend-Ticket": "1044"},
	}
}

type namedMsg struct {
	name string
	msg  Message
}

// fixtures are the golden-file cases; their names are the file names.
func fixtures() []namedMsg {
	return []namedMsg{
		{"plain_reply", plainReply()},
		{"html_attachment_reply", htmlReply()},
		{"auto_ack", autoAck()},
	}
}

func TestBuildGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range fixtures() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := mustBuild(t, tc.msg)
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run with -update to create): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s (run with -update if intended)\n--- got\n%s", path, got)
			}
			again, err := Build(tc.msg)
			if err != nil || !bytes.Equal(got, again) {
				t.Errorf("Build is not deterministic")
			}
		})
	}
}

// mustBuild builds m and checks the wire rules.
func mustBuild(t *testing.T, m Message) []byte {
	t.Helper()
	raw, err := Build(m)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	checkWire(t, raw)
	return raw
}

// parse reads raw back with enmime, as the receiving side would.
func parse(t *testing.T, raw []byte) *enmime.Envelope {
	t.Helper()
	env, err := enmime.ReadEnvelope(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("enmime: %v", err)
	}
	return env
}

// checkWire asserts the transport rules of RFC 5322 section 2.1.1 and
// RFC 2047 section 2: CRLF only, no line over 998 octets, header lines
// with encoded words within 76 characters.
func checkWire(t *testing.T, raw []byte) {
	t.Helper()
	if bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\n")) {
		t.Errorf("bare LF in output")
	}
	if bytes.Contains(bytes.ReplaceAll(raw, []byte("\r\n"), nil), []byte("\r")) {
		t.Errorf("bare CR in output")
	}
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	for _, l := range strings.Split(string(raw), "\r\n") {
		if len(l) > 998 {
			t.Errorf("line of %d octets", len(l))
		}
	}
	for _, l := range strings.Split(string(head), "\r\n") {
		if strings.Contains(l, "=?") && len(l) > 76 {
			t.Errorf("header line with encoded word is %d chars: %q", len(l), l)
		}
	}
}

func TestBuildRoundTrip(t *testing.T) {
	t.Parallel()
	// The fixtures cover German, Japanese and Russian with emoji.
	cases := append(fixtures(), []namedMsg{
		{"long_emoji_subject", func() Message {
			m := autoAck()
			m.Subject = strings.Repeat("🎉 Überraschung, «Привет» — こんにちは! ", 6)
			m.From.Name = `Support, "Team" Müller (Nord) <no>`
			return m
		}()},
		{"ascii_specials", func() Message {
			m := plainReply()
			m.Subject = "=?utf-8?q?not_an_encoded_word?= " + strings.Repeat("x", 120)
			m.To = []Address{{`O'Brien, "Pat"`, "pat.o'brien@example.ie"}}
			return m
		}()},
	}...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := parse(t, mustBuild(t, tc.msg))
			for _, e := range env.Errors {
				t.Errorf("enmime part error: %v", e)
			}
			m := tc.msg
			if got := env.GetHeader("Subject"); got != m.Subject {
				t.Errorf("Subject = %q, want %q", got, m.Subject)
			}
			checkAddrs(t, env, "From", []Address{m.From})
			checkAddrs(t, env, "To", m.To)
			checkAddrs(t, env, "Cc", m.Cc)
			checkAddrs(t, env, "Reply-To", m.ReplyTo)
			if got := env.GetHeader("Message-ID"); got != "<"+m.MessageID+">" {
				t.Errorf("Message-ID = %q", got)
			}
			if got := env.GetHeader("In-Reply-To"); got != "<"+m.InReplyTo+">" {
				t.Errorf("In-Reply-To = %q", got)
			}
			if got := env.GetHeader("References"); got != "<"+strings.Join(m.References, "> <")+">" {
				t.Errorf("References = %q", got)
			}
			if d, err := env.Date(); err != nil || !d.Equal(m.Date) {
				t.Errorf("Date = %v, %v; want %v", d, err, m.Date)
			}
			if got := env.GetHeader("Auto-Submitted"); (got == "auto-replied") != m.Auto {
				t.Errorf("Auto-Submitted = %q with Auto=%v", got, m.Auto)
			}
			if got := env.GetHeader("X-Auto-Response-Suppress"); (got == "All") != m.Auto {
				t.Errorf("X-Auto-Response-Suppress = %q with Auto=%v", got, m.Auto)
			}
			if env.GetHeader("Precedence") != "" {
				t.Errorf("Precedence set; RFC 3834 discourages it")
			}
			if got := env.GetHeader("X-Tend-Loop"); got != "inst-7f3e" {
				t.Errorf("X-Tend-Loop = %q", got)
			}
			if got := env.GetHeader("Thread-Topic"); got != m.ThreadTopic {
				t.Errorf("Thread-Topic = %q, want %q", got, m.ThreadTopic)
			}
			for k, v := range m.Extra {
				if got := env.GetHeader(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if got := strings.ReplaceAll(env.Text, "\r\n", "\n"); strings.TrimRight(got, "\n") != strings.TrimRight(m.Text, "\n") {
				t.Errorf("Text = %q, want %q", got, m.Text)
			}
			if m.HTML != "" && !strings.Contains(env.HTML, m.HTML) {
				t.Errorf("HTML = %q, want %q", env.HTML, m.HTML)
			}
			checkAttachments(t, env, m.Attachments)
		})
	}
}

func checkAddrs(t *testing.T, env *enmime.Envelope, key string, want []Address) {
	t.Helper()
	got, err := env.AddressList(key)
	if len(want) == 0 {
		if len(got) != 0 {
			t.Errorf("%s = %v, want none", key, got)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	if len(got) != len(want) {
		t.Fatalf("%s has %d addresses, want %d", key, len(got), len(want))
	}
	for i := range want {
		if got[i].Name != want[i].Name || got[i].Address != want[i].Email {
			t.Errorf("%s[%d] = %q <%s>, want %q <%s>", key, i, got[i].Name, got[i].Address, want[i].Name, want[i].Email)
		}
	}
}

func checkAttachments(t *testing.T, env *enmime.Envelope, want []Attachment) {
	t.Helper()
	parts := append(append([]*enmime.Part{}, env.Attachments...), env.Inlines...)
	if len(parts) != len(want) {
		t.Fatalf("%d attachment parts, want %d", len(parts), len(want))
	}
	for _, w := range want {
		found := false
		for _, p := range parts {
			if p.FileName != w.Filename {
				continue
			}
			found = true
			if !bytes.Equal(p.Content, w.Data) {
				t.Errorf("%s: content differs", w.Filename)
			}
			if p.ContentType != w.ContentType {
				t.Errorf("%s: type %q, want %q", w.Filename, p.ContentType, w.ContentType)
			}
			if p.ContentID != w.ContentID {
				t.Errorf("%s: content-id %q, want %q", w.Filename, p.ContentID, w.ContentID)
			}
		}
		if !found {
			t.Errorf("attachment %q missing", w.Filename)
		}
	}
}

func TestBuildErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		mutate func(*Message)
		want   error
	}{
		{"no from", func(m *Message) { m.From.Email = "" }, ErrMissingField},
		{"no message-id", func(m *Message) { m.MessageID = "" }, ErrMissingField},
		{"no date", func(m *Message) { m.Date = time.Time{} }, ErrMissingField},
		{"no loop header", func(m *Message) { m.LoopHeader = " " }, ErrMissingField},
		{"no recipients", func(m *Message) { m.To, m.Cc = nil, nil }, ErrMissingField},
		{"bad to", func(m *Message) { m.To = []Address{{"x", "not an address"}} }, ErrInvalidAddress},
		{"crlf in address", func(m *Message) { m.Cc = []Address{{"", "a@b.example\r\nBcc: x@y"}} }, ErrInvalidAddress},
		{"bracketed message-id", func(m *Message) { m.MessageID = "<a@b>" }, ErrInvalidHeader},
		{"injected reference", func(m *Message) { m.References = []string{"a@b>\r\nBcc: <x@y"} }, ErrInvalidHeader},
		{"bad extra name", func(m *Message) { m.Extra = map[string]string{"X Bad": "v"} }, ErrInvalidHeader},
		{"extra overrides from", func(m *Message) { m.Extra = map[string]string{"from": "x@y"} }, ErrInvalidHeader},
		{"bad content-id", func(m *Message) {
			m.Attachments = []Attachment{{Filename: "a", ContentID: "a b", Inline: true}}
		}, ErrInvalidHeader},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := plainReply()
			tc.mutate(&m)
			if _, err := Build(m); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestBuildHeaderInjectionEncoded(t *testing.T) {
	t.Parallel()
	m := plainReply()
	m.Subject = "hi\r\nBcc: victim@example.com"
	m.From.Name = "Eve\r\nBcc: victim@example.com"
	m.Extra = map[string]string{"X-Tend-Ticket": "1\r\nBcc: victim@example.com"}
	raw, err := Build(m)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(bytes.ToLower(raw), []byte("\r\nbcc:")) {
		t.Errorf("header injection got through:\n%s", raw)
	}
}

func TestBuildAgentReplyIsNotAuto(t *testing.T) {
	t.Parallel()
	raw, err := Build(plainReply())
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"Auto-Submitted", "X-Auto-Response-Suppress", "Precedence"} {
		if bytes.Contains(raw, []byte(k+":")) {
			t.Errorf("agent reply carries %s", k)
		}
	}
}

// TestBodyMadeWhenWritten: a Message whose Body makes its text and HTML
// when it is written gives the very bytes of one that carried them from
// the start (Build and Check then Bytes alike), Check does not call Body
// (it runs in the transaction that queues the mail; the body beside it),
// and a Body that fails fails the writing, saying so.
func TestBodyMadeWhenWritten(t *testing.T) {
	whole := htmlReply()
	want, err := Build(whole)
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	later := whole
	later.Text, later.HTML = "", ""
	later.Body = func() (string, string, error) {
		calls++
		return whole.Text, whole.HTML, nil
	}
	d, err := Check(later)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 0 {
		t.Fatalf("Check made the body (%d calls)", calls)
	}
	got, err := d.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	built, err := Build(later)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) || !bytes.Equal(built, want) {
		t.Errorf("a body made when written differs from one given:\n%s\n--- want:\n%s", got, want)
	}
	broken := later
	broken.Body = func() (string, string, error) { return "", "", errors.New("html: no such field") }
	if _, err := Build(broken); err == nil || !strings.Contains(err.Error(), "body") || !strings.Contains(err.Error(), "no such field") {
		t.Errorf("a failing body: err %v, want it named", err)
	}
}
