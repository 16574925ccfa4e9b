package compose

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// alone is m's body moved into a Content seeded with m's own Message-ID.
func alone(m Message) Message {
	shared := m
	shared.Content = NewContent(m.MessageID, m)
	shared.Text, shared.HTML, shared.Body, shared.Attachments = "", "", nil, nil
	return shared
}

// TestSharedContentGivesTheSameBytes: a message whose body is a Content
// seeded with its Message-ID is byte for byte the message written alone,
// for every shape of body (one text part, an HTML alternative, inline and
// attached parts), so the framing of a shared body is the framing of
// Build.
func TestSharedContentGivesTheSameBytes(t *testing.T) {
	t.Parallel()
	cases := fixtures()
	withFile := plainReply()
	withFile.Attachments = []Attachment{{Filename: "log.txt", ContentType: "text/plain", Data: []byte("line 1\nline 2\n")}}
	cases = append(cases, namedMsg{"text_with_attachment", withFile})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := mustBuild(t, tc.msg)
			got := mustBuild(t, alone(tc.msg))
			if !bytes.Equal(got, want) {
				t.Errorf("shared content differs from the message written alone:\n%s\n--- want:\n%s", got, want)
			}
		})
	}
}

// TestSharedContentIsMadeOnce: two agents' notifications carrying one
// Content, written at once on two goroutines, make the body once; each
// keeps its own recipient and Reply-To, the bodies are the same bytes,
// and both parse with their text and attachments.
func TestSharedContentIsMadeOnce(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	src := htmlReply()
	text, html := src.Text, src.HTML
	src.Text, src.HTML = "", ""
	src.Body = func() (string, string, error) {
		calls.Add(1)
		return text, html, nil
	}
	content := NewContent("notify/1043", src)
	drafts := make([]*Draft, 2)
	for i, who := range []Address{{"Lena", "lena@acme.example"}, {"Bob", "bob@acme.example"}} {
		m := src
		m.Body, m.Attachments, m.Content = nil, nil, content
		m.To, m.Cc = []Address{who}, nil
		m.ReplyTo = []Address{{"Acme Support", "r-" + strings.ToLower(who.Name) + "@reply.acme.example"}}
		m.MessageID = "t1043.n" + who.Name + "@acme.example"
		d, err := Check(m)
		if err != nil {
			t.Fatal(err)
		}
		drafts[i] = d
	}
	raws := make([][]byte, len(drafts))
	errs := make([]error, len(drafts))
	var wg sync.WaitGroup
	for i, d := range drafts {
		wg.Go(func() { raws[i], errs[i] = d.Bytes() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("draft %d: %v", i, err)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the shared body was made %d times, want once", n)
	}
	var bodies [][]byte
	for i, raw := range raws {
		checkWire(t, raw)
		env := parse(t, raw)
		want := []string{"lena@acme.example", "bob@acme.example"}[i]
		if got := env.GetHeader("To"); !strings.Contains(got, want) {
			t.Errorf("draft %d is to %q, want %s", i, got, want)
		}
		if got := env.GetHeader("Reply-To"); !strings.Contains(got, []string{"r-lena@", "r-bob@"}[i]) {
			t.Errorf("draft %d replies to %q", i, got)
		}
		if strings.TrimSpace(strings.ReplaceAll(env.Text, "\r\n", "\n")) != strings.TrimSpace(text) {
			t.Errorf("draft %d text %q, want %q", i, env.Text, text)
		}
		checkAttachments(t, env, htmlReply().Attachments)
		// The shared entity begins with the MIME-Version field (go-message
		// writes the name in its canonical case).
		_, body, ok := bytes.Cut(raw, []byte("\r\nMime-Version: 1.0\r\n"))
		if !ok {
			t.Fatalf("draft %d has no MIME-Version field", i)
		}
		bodies = append(bodies, body)
	}
	if !bytes.Equal(bodies[0], bodies[1]) {
		t.Error("the two drafts' bodies differ")
	}
}

// TestSharedContentErrors: a body that fails fails every mail that shares
// it, saying so; a message with shared content and a body of its own is
// refused (one of the two would be dropped).
func TestSharedContentErrors(t *testing.T) {
	t.Parallel()
	src := plainReply()
	src.Text = ""
	src.Body = func() (string, string, error) { return "", "", errors.New("html: no such field") }
	content := NewContent("seed", src)
	for i := range 2 {
		m := plainReply()
		m.Text, m.Content = "", content
		if _, err := Build(m); err == nil || !strings.Contains(err.Error(), "no such field") {
			t.Errorf("mail %d with a failing shared body: err %v", i, err)
		}
	}
	both := plainReply()
	both.Content = NewContent("seed", plainReply())
	if _, err := Check(both); !errors.Is(err, ErrInvalidHeader) {
		t.Errorf("shared content beside a text of its own: err %v, want ErrInvalidHeader", err)
	}
}
