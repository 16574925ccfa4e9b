package relay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// scriptedServer is the smarthost's side of a net.Pipe: it writes replies,
// as they are, whatever the client says, and records the client's
// commands: how many lines came before DATA and whether the body's final
// dot line came.
type scriptedServer struct {
	commands  int // command lines read (the end of DATA counts as one)
	dataAt    int // the number of the DATA command, 0: none
	dataEnded int // the number of the end-of-DATA "command", 0: never
	rcpts     []int
}

func (s *scriptedServer) run(conn net.Conn, replies []byte) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = conn.Write(replies)
	}()
	// Once the client waits for a reply the script does not hold, hang
	// up, so that it fails now rather than at its timeout.
	codes := replyCodes(replies)
	have := len(codes)
	if have == 0 {
		_ = conn.Close()
	}
	r := bufio.NewReader(conn)
	inData := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break
		}
		line = strings.TrimRight(line, "\r\n")
		if inData {
			if line == "." {
				inData = false
				s.commands++
				s.dataEnded = s.commands
				s.hangUpPast(conn, have)
			}
			continue
		}
		s.commands++
		s.hangUpPast(conn, have)
		verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		switch {
		case verb == "DATA" && s.dataAt == 0:
			// The body follows only if the script says "go ahead".
			s.dataAt, inData = s.commands, s.commands < have && codes[s.commands] == 354
		case strings.HasPrefix(strings.ToUpper(line), "RCPT TO:"):
			s.rcpts = append(s.rcpts, s.commands)
		}
	}
	_ = conn.Close()
	wg.Wait()
}

// hangUpPast closes conn when the last command read has no reply among
// the have the script holds (the greeting is reply 0).
func (s *scriptedServer) hangUpPast(conn net.Conn, have int) {
	if s.commands >= have {
		_ = conn.Close()
	}
}

// replyCodes reads replies as the client's textproto does; reply 0 is the
// greeting, reply i the answer to command i. It stops at the first reply
// that does not parse.
func replyCodes(replies []byte) []int {
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(replies)))
	var codes []int
	for {
		code, _, err := r.ReadResponse(0)
		var pe textproto.ProtocolError
		if err != nil && (errors.As(err, &pe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
			return codes
		}
		codes = append(codes, code)
	}
}

// sendScripted sends testMsg through a fake smarthost that answers with
// replies, over net.Pipe; a Send that does not return is a failure.
func sendScripted(t *testing.T, replies []byte, to []string) (*scriptedServer, error) {
	t.Helper()
	srv := &scriptedServer{}
	done := make(chan struct{})
	c := New(Config{Addr: "smarthost.test:25", TLS: TLSNone, Timeout: 2 * time.Second, HelloName: "mail.acme.test"})
	c.dialContext = func(context.Context, string, string) (net.Conn, error) {
		client, server := net.Pipe()
		go func() { defer close(done); srv.run(server, replies) }()
		return client, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.Send(ctx, "bounce+1.x@acme.test", to, testMsg) }()
	select {
	case err := <-errc:
		<-done
		return srv, err
	case <-time.After(20 * time.Second):
		t.Fatalf("Send did not return; replies %q", replies)
		return nil, nil
	}
}

// FuzzSendReplies feeds the SMTP client arbitrary server replies. Send
// never panics or hangs; it fails with a *SendError that says something;
// and it reports the mail sent only when the server answered every
// command as go-smtp requires (250 to EHLO and MAIL, 25x to each RCPT,
// 354 to DATA) and 250 to the body's final dot, after the whole body was
// written.
func FuzzSendReplies(f *testing.F) {
	ok := "220 smarthost.test ESMTP\r\n250-smarthost.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n250 2.0.0 Ok: queued\r\n221 Bye\r\n"
	for _, s := range []string{ok,
		"220 x\r\n250 x\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n",
		"220 x\r\n250 x\r\n250 ok\r\n550 5.1.1 no such user\r\n251 ok\r\n354 go\r\n250 queued\r\n",
		"220 x\r\n250 x\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n451 4.3.0 try later\r\n",
		"220 x\r\n250 x\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n554 5.7.1 spam\r\n",
		"220 x\r\n250 x\r\n250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n250 queued\r\n",
		"220 x\r\n250 x\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n",
		"220 x\r\n250 x\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250-multi\r\n250 line\r\n",
		"220 x\r\n250 x\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n25O queued\r\n",
		"220 x\r\n500 no ehlo\r\n250 helo ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n",
		"421 4.3.2 busy\r\n", "", "220", "220 x\n250 x\n", "220-a\r\n220 b\r\n250 x\r\n250\r\n250\r\n250\r\n354\r\n250\r\n"} {
		f.Add([]byte(s), uint8(2))
	}
	f.Fuzz(func(t *testing.T, replies []byte, n uint8) {
		to := []string{"anna@example.ru", "boris@example.ru", "carl@example.org"}[:1+int(n)%3]
		srv, err := sendScripted(t, replies, to)
		if err != nil {
			var se *SendError
			if !errors.As(err, &se) || err.Error() == "" {
				t.Fatalf("error %T %q is not a *SendError that says something", err, err)
			}
			return
		}
		codes := replyCodes(replies)
		at := func(i int) int {
			if i < len(codes) {
				return codes[i]
			}
			return -1
		}
		if srv.dataAt == 0 || srv.dataEnded == 0 {
			t.Fatalf("reported sent, but DATA at %d, body ended at %d; replies %q", srv.dataAt, srv.dataEnded, replies)
		}
		if at(srv.dataAt) != 354 || at(srv.dataEnded) != 250 {
			t.Fatalf("reported sent on %d to DATA and %d to its end; replies %q", at(srv.dataAt), at(srv.dataEnded), replies)
		}
		for _, i := range srv.rcpts {
			if at(i)/10 != 25 {
				t.Fatalf("reported sent to every recipient, yet RCPT %d was answered %d; replies %q", i, at(i), replies)
			}
		}
		if len(srv.rcpts) != len(to) {
			t.Fatalf("%d RCPT commands for %d recipients", len(srv.rcpts), len(to))
		}
	})
}

// TestSendScripted checks FuzzSendReplies's harness on known scripts, so
// that its invariant is not vacuous.
func TestSendScripted(t *testing.T) {
	ok := "220 x\r\n250 x\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n221 bye\r\n"
	if srv, err := sendScripted(t, []byte(ok), []string{"anna@example.ru"}); err != nil || srv.dataAt != 4 || srv.dataEnded != 5 || len(srv.rcpts) != 1 {
		t.Fatalf("good script: %v, %+v", err, srv)
	}
	for _, bad := range []string{
		"220 x\r\n250 x\r\n250 ok\r\n250 ok\r\n354 go\r\n",               // no answer after the dot
		"220 x\r\n250 x\r\n250 ok\r\n250 ok\r\n354 go\r\n451 later\r\n",  // refused after the dot
		"220 x\r\n250 x\r\n250 ok\r\n250 ok\r\n250 go\r\n250 queued\r\n", // DATA not answered 354
		"220 x\r\n250 x\r\n250 ok\r\n550 no\r\n354 go\r\n250 queued\r\n", // the one recipient refused
	} {
		_, err := sendScripted(t, []byte(bad), []string{"anna@example.ru"})
		var se *SendError
		if !errors.As(err, &se) {
			t.Errorf("script %q: Send = %v, want a *SendError", bad, err)
		}
	}
}
