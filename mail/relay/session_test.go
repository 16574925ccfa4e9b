package relay

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// TestSessionCarriesSeveralMessages: a Session sends one message after
// another over one connection (one greeting, TLS handshake and AUTH),
// each with its own envelope; a refused message ends the session and the
// next one gets a new connection; a connection the relay closed while
// the session was idle is replaced without losing the message.
func TestSessionCarriesSeveralMessages(t *testing.T) {
	t.Parallel()
	srv := &captureServer{mechs: []string{"PLAIN"}, user: "agent", pass: "s3cret",
		rcptErr: map[string]*smtp.SMTPError{"gone@example.ru": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}}}
	addr, clientTLS := srv.start(t, TLSStartTLS)
	c := New(Config{Addr: addr, TLS: TLSStartTLS, Username: "agent", Password: "s3cret",
		Timeout: 10 * time.Second, HelloName: "tend.test", TLSConfig: clientTLS})
	s := c.Session(context.Background())
	defer s.Close()
	send := func(from, to string) error {
		t.Helper()
		return s.Send(from, []string{to}, testMsg)
	}
	for _, to := range []string{"a@example.ru", "b@example.ru", "c@example.ru"} {
		if err := send("bounce+"+to, to); err != nil {
			t.Fatalf("send to %s: %v", to, err)
		}
	}
	if n := len(srv.connections()); n != 1 {
		t.Fatalf("3 messages took %d connections, want 1", n)
	}
	var se *SendError
	if err := send("bounce+gone@acme.example", "gone@example.ru"); !errors.As(err, &se) || se.Temporary || !se.HardBounce() {
		t.Fatalf("send to a refused address: %v, want a permanent *SendError", err)
	}
	if err := send("bounce+d@acme.example", "d@example.ru"); err != nil {
		t.Fatalf("send after a refusal: %v", err)
	}
	if n := len(srv.connections()); n != 2 {
		t.Fatalf("after a refusal: %d connections, want 2", n)
	}
	// The relay drops the idle connection; the next message must arrive.
	conns := srv.connections()
	if err := conns[len(conns)-1].Close(); err != nil {
		t.Fatal(err)
	}
	if err := send("bounce+e@acme.example", "e@example.ru"); err != nil {
		t.Fatalf("send after the relay closed the session: %v", err)
	}
	if n := len(srv.connections()); n != 3 {
		t.Fatalf("after the relay closed: %d connections, want 3", n)
	}
	msgs := srv.messages()
	var got []string
	for _, m := range msgs {
		got = append(got, m.from+">"+strings.Join(m.to, ","))
		if !sameData(m.data) || !m.tls || m.authUser != "agent" {
			t.Errorf("message to %v: data %q, tls %v, user %q", m.to, m.data, m.tls, m.authUser)
		}
	}
	want := "bounce+a@example.ru>a@example.ru bounce+b@example.ru>b@example.ru bounce+c@example.ru>c@example.ru bounce+d@acme.example>d@example.ru bounce+e@acme.example>e@example.ru"
	if strings.Join(got, " ") != want {
		t.Errorf("delivered %q\nwant      %q", strings.Join(got, " "), want)
	}
}
