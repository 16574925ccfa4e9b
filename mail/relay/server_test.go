package relay

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/tendhq/tend/internal/testenv"
)

// testCert makes a self-signed certificate for 127.0.0.1 and a client
// config trusting it.
func testCert(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "relay.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Unix(0, 0),
		NotAfter:     time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool}
}

// received is one message as the capture server saw it.
type received struct {
	from     string
	to       []string
	data     []byte
	authUser string
	tls      bool
	utf8     bool // MAIL FROM carried SMTPUTF8
	body     smtp.BodyType
}

// captureServer is a go-smtp server whose answers each test chooses.
type captureServer struct {
	mu       sync.Mutex
	msgs     []received
	mechs    []string                   // AUTH mechanisms offered
	rcptErr  map[string]*smtp.SMTPError // per-recipient refusals
	dataErr  *smtp.SMTPError            // answer after the final dot
	dataHang chan struct{}              // if set, DATA blocks until closed
	user     string                     // expected credentials
	pass     string
	// smtputf8 offers the SMTPUTF8 extension (RFC 6531); strictUTF8
	// refuses a non-ASCII recipient in a transaction that did not declare
	// it, as Postfix does with strict_smtputf8 = yes.
	smtputf8, strictUTF8 bool
	trace                testenv.Buffer // the protocol as the server saw it
	conns                []*smtp.Conn   // every connection, in order of their first session
}

func (s *captureServer) messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

type session struct {
	srv  *captureServer
	conn *smtp.Conn
	cur  received
}

func (s *captureServer) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	// go-smtp starts a new session on the same connection after STARTTLS.
	if !slices.Contains(s.conns, c) {
		s.conns = append(s.conns, c)
	}
	s.mu.Unlock()
	return &session{srv: s, conn: c}, nil
}

// connections returns every connection the server has had.
func (s *captureServer) connections() []*smtp.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*smtp.Conn(nil), s.conns...)
}

func (s *session) AuthMechanisms() []string { return s.srv.mechs }

func (s *session) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		if user != s.srv.user || pass != s.srv.pass {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.cur.authUser = user
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, user, pass string) error { return check(user, pass) }), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	s.cur.from = from
	if opts != nil {
		s.cur.utf8, s.cur.body = opts.UTF8, opts.Body
	}
	_, s.cur.tls = s.conn.TLSConnectionState()
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if e := s.srv.rcptErr[to]; e != nil {
		return e
	}
	if s.srv.strictUTF8 && !s.cur.utf8 && !isASCII(to) {
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7}, Message: "Must declare SMTPUTF8 to send unicode address"}
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.srv.dataHang != nil {
		<-s.srv.dataHang
	}
	if s.srv.dataErr != nil {
		return s.srv.dataErr
	}
	s.cur.data = b
	s.srv.mu.Lock()
	s.srv.msgs = append(s.srv.msgs, s.cur)
	s.srv.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.cur = received{authUser: s.cur.authUser} }
func (s *session) Logout() error { return nil }

// loginServer is the server side of the obsolete LOGIN mechanism, which
// go-sasl implements only as a client; Outlook-era relays still offer it.
type loginServer struct {
	check func(user, pass string) error
	user  string
	step  int
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	l.step++
	switch l.step {
	case 1:
		if len(resp) > 0 { // initial response carries the username
			l.user = string(resp)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 2:
		l.user = string(resp)
		return []byte("Password:"), false, nil
	default:
		return nil, true, l.check(l.user, string(resp))
	}
}

// start runs the capture server on 127.0.0.1:0 in the given TLS mode.
func (s *captureServer) start(t *testing.T, mode string) (addr string, clientTLS *tls.Config) {
	t.Helper()
	serverTLS, clientTLS := testCert(t)
	srv := smtp.NewServer(s)
	srv.Domain = "relay.test"
	srv.AllowInsecureAuth = mode == TLSNone
	srv.EnableSMTPUTF8 = s.smtputf8
	srv.Debug = &s.trace
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	switch mode {
	case TLSStartTLS:
		srv.TLSConfig = serverTLS
	case TLSImplicit:
		l = tls.NewListener(l, serverTLS)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
			t.Logf("serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		if s.dataHang != nil {
			select {
			case <-s.dataHang:
			default:
				close(s.dataHang)
			}
		}
		srv.Close()
		l.Close() // Close may have run before Serve registered l
		<-done
	})
	return l.Addr().String(), clientTLS
}

// rawServer accepts connections and hands each to fn, for servers that
// misbehave in ways go-smtp's server cannot be made to.
func rawServer(t *testing.T, fn func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				fn(c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	return l.Addr().String()
}

var testMsg = []byte("From: support@acme.example\r\nTo: anna@example.ru\r\nSubject: hi\r\n\r\nHello.\r\n.leading dot\r\n")

func sameData(got []byte) bool {
	return bytes.Equal(bytes.TrimRight(got, "\r\n"), bytes.TrimRight(testMsg, "\r\n"))
}
