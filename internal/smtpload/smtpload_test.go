package smtpload

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	gosmtp "github.com/emersion/go-smtp"
)

// sink is an SMTP server that records the size of each message it
// accepts and refuses those over limit bytes.
type sink struct {
	limit int64
	mu    sync.Mutex
	sizes []int64
}

func (s *sink) NewSession(*gosmtp.Conn) (gosmtp.Session, error) { return session{s}, nil }

type session struct{ s *sink }

func (session) Mail(string, *gosmtp.MailOptions) error { return nil }
func (session) Rcpt(string, *gosmtp.RcptOptions) error { return nil }
func (session) Reset()                                 {}
func (session) Logout() error                          { return nil }
func (x session) Data(r io.Reader) error {
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		return err
	}
	if n > x.s.limit {
		return &gosmtp.SMTPError{Code: 452, Message: "too big for now"}
	}
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	x.s.sizes = append(x.s.sizes, n)
	return nil
}

func start(t *testing.T, limit int64) (*sink, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sink{limit: limit}
	srv := gosmtp.NewServer(s)
	srv.Domain = "sink.test"
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s, l.Addr().String()
}

func TestBurst(t *testing.T) {
	const size = 1 << 20
	tests := []struct {
		name               string
		limit              int64
		wantLarge, refused int
	}{
		{"every message accepted", 1 << 30, 3, 0},
		{"the large ones refused", 64 << 10, 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, addr := start(t, tt.limit)
			res := Burst(context.Background(), addr, "support@acme.test", 3, size)
			s.mu.Lock()
			defer s.mu.Unlock()
			large := 0
			for _, n := range s.sizes {
				if n > size/2 {
					large++
					if n < size*9/10 || n > size*11/10 {
						t.Errorf("a large message of %d bytes, want about %d", n, size)
					}
				}
			}
			if large != tt.wantLarge || len(res.Refused) != tt.refused || len(res.Small) == 0 || len(s.sizes) != large+len(res.Small) {
				t.Errorf("large %d, small %d, refused %v; the server kept %d", large, len(res.Small), res.Refused, len(s.sizes))
			}
			if res.SmallP99() <= 0 || res.Took <= 0 {
				t.Errorf("p99 %v, took %v", res.SmallP99(), res.Took)
			}
			for _, err := range res.Refused {
				if !strings.Contains(err.Error(), "452") {
					t.Errorf("refused with %v, want the server's 452", err)
				}
			}
		})
	}
}
