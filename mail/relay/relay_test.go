package relay

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

func TestSendTLSModesAndAuth(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, mode string
		mechs      []string
		user       string
		wantTLS    bool
	}{
		{"plain tcp no auth", TLSNone, nil, "", false},
		{"plain tcp auth plain to loopback", TLSNone, []string{"PLAIN"}, "agent", false},
		{"starttls no auth", TLSStartTLS, nil, "", true},
		{"starttls auth plain", TLSStartTLS, []string{"PLAIN", "LOGIN"}, "agent", true},
		{"starttls auth login only", TLSStartTLS, []string{"LOGIN"}, "agent", true},
		{"implicit tls auth plain", TLSImplicit, []string{"PLAIN"}, "agent", true},
		{"implicit tls auth login", TLSImplicit, []string{"LOGIN"}, "agent", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := &captureServer{mechs: tc.mechs, user: "agent", pass: "s3cret"}
			addr, clientTLS := srv.start(t, tc.mode)
			c := New(Config{Addr: addr, TLS: tc.mode, Username: tc.user, Password: "s3cret",
				Timeout: 10 * time.Second, HelloName: "tend.test", TLSConfig: clientTLS})
			err := c.Send(context.Background(), "bounce+42@acme.example", []string{"anna@example.ru", "cc@example.ru"}, testMsg)
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			msgs := srv.messages()
			if len(msgs) != 1 {
				t.Fatalf("%d messages delivered, want 1", len(msgs))
			}
			m := msgs[0]
			if m.from != "bounce+42@acme.example" || strings.Join(m.to, ",") != "anna@example.ru,cc@example.ru" {
				t.Errorf("envelope = %q -> %v", m.from, m.to)
			}
			if !sameData(m.data) {
				t.Errorf("data = %q", m.data)
			}
			if m.tls != tc.wantTLS {
				t.Errorf("tls = %v, want %v", m.tls, tc.wantTLS)
			}
			if m.authUser != tc.user {
				t.Errorf("authenticated as %q, want %q", m.authUser, tc.user)
			}
		})
	}
}

func TestSendFailures(t *testing.T) {
	t.Parallel()
	e451 := &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	e550 := &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	e554 := &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "rejected as spam"}
	cases := []struct {
		name      string
		srv       *captureServer
		cfg       func(*Config)
		to        []string
		temporary bool
		code      int
		enhanced  string
		delivered []string
		rejected  []string
		sentinel  error
	}{
		{name: "451 on data is temporary", srv: &captureServer{dataErr: e451},
			to: []string{"a@x.test"}, temporary: true, code: 451, enhanced: "4.3.0"},
		{name: "554 on data is permanent", srv: &captureServer{dataErr: e554},
			to: []string{"a@x.test"}, temporary: false, code: 554, enhanced: "5.7.1"},
		{name: "550 on only rcpt is permanent", srv: &captureServer{rcptErr: map[string]*smtp.SMTPError{"a@x.test": e550}},
			to: []string{"a@x.test"}, temporary: false, code: 550, enhanced: "5.1.1", rejected: []string{"a@x.test"}, sentinel: ErrNoneDelivered},
		{name: "partial: one accepted one 550", srv: &captureServer{rcptErr: map[string]*smtp.SMTPError{"gone@x.test": e550}},
			to: []string{"a@x.test", "gone@x.test"}, temporary: false, code: 550, enhanced: "5.1.1",
			delivered: []string{"a@x.test"}, rejected: []string{"gone@x.test"}},
		{name: "partial: one 451 one 550", srv: &captureServer{rcptErr: map[string]*smtp.SMTPError{"busy@x.test": e451, "gone@x.test": e550}},
			to: []string{"a@x.test", "busy@x.test", "gone@x.test"}, temporary: true, code: 451, enhanced: "4.3.0",
			delivered: []string{"a@x.test"}, rejected: []string{"busy@x.test", "gone@x.test"}},
		{name: "bad password is temporary config error", srv: &captureServer{mechs: []string{"PLAIN"}, user: "agent", pass: "right"},
			cfg: func(c *Config) { c.Username, c.Password = "agent", "wrong" },
			to:  []string{"a@x.test"}, temporary: true, code: 535, enhanced: "5.7.8", sentinel: ErrAuthFailed},
		{name: "no usable auth mechanism", srv: &captureServer{mechs: []string{"CRAM-MD5"}},
			cfg: func(c *Config) { c.Username, c.Password = "agent", "x" },
			to:  []string{"a@x.test"}, temporary: true, sentinel: ErrNoAuthMech},
		{name: "no recipients", srv: &captureServer{}, to: nil, sentinel: ErrNoRecipients},
		{name: "bad tls mode", srv: &captureServer{}, cfg: func(c *Config) { c.TLS = "ssl3" },
			to: []string{"a@x.test"}, temporary: true, sentinel: ErrBadConfig},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := tc.srv
			addr, clientTLS := srv.start(t, TLSStartTLS)
			cfg := Config{Addr: addr, TLS: TLSStartTLS, Timeout: 10 * time.Second, TLSConfig: clientTLS}
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			err := New(cfg).Send(context.Background(), "bounce@acme.example", tc.to, testMsg)
			var se *SendError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v (%T), want *SendError", err, err)
			}
			if se.Temporary != tc.temporary || se.Code != tc.code || se.Enhanced != tc.enhanced {
				t.Errorf("got temporary=%v code=%d enhanced=%q, want %v %d %q (%v)",
					se.Temporary, se.Code, se.Enhanced, tc.temporary, tc.code, tc.enhanced, err)
			}
			if tc.sentinel != nil && !errors.Is(err, tc.sentinel) {
				t.Errorf("err = %v, want %v", err, tc.sentinel)
			}
			if strings.Join(se.Delivered, ",") != strings.Join(tc.delivered, ",") {
				t.Errorf("delivered = %v, want %v", se.Delivered, tc.delivered)
			}
			var rej []string
			for _, r := range se.Rejected {
				rej = append(rej, r.Rcpt)
			}
			if strings.Join(rej, ",") != strings.Join(tc.rejected, ",") {
				t.Errorf("rejected = %v, want %v", rej, tc.rejected)
			}
			if n := len(srv.messages()); n != len(tc.delivered) && !(n == 0 && tc.delivered == nil) {
				t.Errorf("%d messages stored, want %d", n, len(tc.delivered))
			}
		})
	}
}

func TestSendRefusesPlaintextAuthToRemote(t *testing.T) {
	t.Parallel()
	dialled := make(chan struct{}, 1)
	// The check must happen before any connection: the relay address is
	// a name that would not be loopback, so use a listener and prove no
	// one connected.
	addr := rawServer(t, func(net.Conn) { dialled <- struct{}{} })
	_, port, _ := net.SplitHostPort(addr)
	c := New(Config{Addr: net.JoinHostPort("relay.invalid", port), TLS: TLSNone, Username: "u", Password: "p", Timeout: time.Second})
	err := c.Send(context.Background(), "a@b.test", []string{"c@d.test"}, testMsg)
	if !errors.Is(err, ErrInsecureAuth) {
		t.Fatalf("err = %v, want ErrInsecureAuth", err)
	}
	select {
	case <-dialled:
		t.Error("connected although credentials would go in the clear")
	default:
	}
}

func TestSendStartTLSRequired(t *testing.T) {
	t.Parallel()
	srv := &captureServer{}
	addr, _ := srv.start(t, TLSNone) // offers no STARTTLS
	err := New(Config{Addr: addr, TLS: TLSStartTLS, Timeout: 5 * time.Second}).
		Send(context.Background(), "a@b.test", []string{"c@d.test"}, testMsg)
	wantTemporary(t, err)
	if n := len(srv.messages()); n != 0 {
		t.Errorf("sent %d messages in the clear", n)
	}
}

func TestSendTLSHandshakeFailureIsTemporary(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{TLSStartTLS, TLSImplicit} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			srv := &captureServer{}
			addr, _ := srv.start(t, mode)
			// No RootCAs: the self-signed certificate is not trusted.
			err := New(Config{Addr: addr, TLS: mode, Timeout: 5 * time.Second}).
				Send(context.Background(), "a@b.test", []string{"c@d.test"}, testMsg)
			wantTemporary(t, err)
			var tlsErr *tlsError
			if !errors.As(err, &tlsErr) {
				t.Errorf("err = %v, want a tls error", err)
			}
			if len(srv.messages()) != 0 {
				t.Error("message delivered over an untrusted connection")
			}
		})
	}
}

func TestSendConnectionRefused(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	err = New(Config{Addr: addr, TLS: TLSNone, Timeout: 5 * time.Second}).
		Send(context.Background(), "a@b.test", []string{"c@d.test"}, testMsg)
	wantTemporary(t, err)
}

func TestSendTimeouts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		setup func(t *testing.T) string
	}{
		{"server never greets", func(t *testing.T) string {
			return rawServer(t, func(c net.Conn) { _, _ = c.Read(make([]byte, 1)) })
		}},
		{"server never answers after the final dot", func(t *testing.T) string {
			srv := &captureServer{dataHang: make(chan struct{})}
			addr, _ := srv.start(t, TLSNone)
			return addr
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := tc.setup(t)
			start := time.Now()
			err := New(Config{Addr: addr, TLS: TLSNone, Timeout: 300 * time.Millisecond}).
				Send(context.Background(), "a@b.test", []string{"c@d.test"}, testMsg)
			wantTemporary(t, err)
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("err = %v, want a timeout", err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

func TestSendContextCancel(t *testing.T) {
	t.Parallel()
	accepted := make(chan struct{})
	addr := rawServer(t, func(c net.Conn) {
		close(accepted)
		_, _ = c.Read(make([]byte, 1)) // never greets; returns when the client hangs up
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-accepted
		cancel()
	}()
	err := New(Config{Addr: addr, TLS: TLSNone, Timeout: time.Minute}).
		Send(ctx, "a@b.test", []string{"c@d.test"}, testMsg)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	wantTemporary(t, err)
}

// TestSendServerClosesMidData speaks SMTP by hand and hangs up while the
// body is being transferred.
func TestSendServerClosesMidData(t *testing.T) {
	t.Parallel()
	addr := rawServer(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		w := func(s string) { _, _ = c.Write([]byte(s + "\r\n")) }
		w("220 relay.test ESMTP")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			cmd := strings.ToUpper(strings.TrimSpace(line))
			switch {
			case strings.HasPrefix(cmd, "EHLO"):
				w("250-relay.test")
				w("250 8BITMIME")
			case strings.HasPrefix(cmd, "MAIL"), strings.HasPrefix(cmd, "RCPT"):
				w("250 2.0.0 ok")
			case cmd == "DATA":
				w("354 go ahead")
				_, _ = r.ReadString('\n') // first body line, then hang up
				return
			default:
				w("502 5.5.1 not implemented")
			}
		}
	})
	err := New(Config{Addr: addr, TLS: TLSNone, Timeout: 5 * time.Second}).
		Send(context.Background(), "a@b.test", []string{"c@d.test"}, testMsg)
	wantTemporary(t, err)
}

// wantTemporary fails the test unless err is a temporary *SendError.
func wantTemporary(t *testing.T, err error) {
	t.Helper()
	var se *SendError
	if !errors.As(err, &se) || !se.Temporary {
		t.Fatalf("err = %v, want temporary SendError", err)
	}
}
