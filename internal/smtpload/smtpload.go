// Package smtpload is the large-mail burst the benchmarks send (issue 10:
// "bounded memory, bounded disk"): N large messages at once, each on its
// own connection, and small mail one after another beside them. Both
// `tend bench --burst` and the side-by-side comparison (cmd/sidebyside)
// send it, so tend and the reference server get the same load.
package smtpload

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/smtp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Result is what one burst measured.
type Result struct {
	// Small is the DATA-to-250 latency of each small message answered
	// 250 while the large ones were in flight, in order of sending.
	Small []time.Duration
	// Refused holds why each message not answered 250 failed (451 and
	// the like). A figure, not a failure: the burst measures what
	// happens, refusals included.
	Refused []error
	// Took is from the first connection to the last large message's 250.
	Took time.Duration
}

// SmallP99 is the 99th percentile of Small (0 when none were sent).
func (r Result) SmallP99() time.Duration {
	if len(r.Small) == 0 {
		return 0
	}
	s := slices.Clone(r.Small)
	slices.Sort(s)
	return s[(len(s)-1)*99/100]
}

// Burst sends n messages of about size bytes to addr at once, and small
// mail one at a time until the last of them is answered. Every message is
// addressed to rcpt.
func Burst(ctx context.Context, addr, rcpt string, n, size int) Result {
	start := time.Now()
	var mu sync.Mutex
	var res Result
	refuse := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if len(res.Refused) < 10_000 { // counted enough
			res.Refused = append(res.Refused, err)
		}
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := SendOne(addr, "customer@example.com", rcpt, &BigMessage{ID: i, Size: size, To: rcpt}); err != nil {
				refuse(fmt.Errorf("large message %d: %w", i, err))
			}
		}()
	}
	stop := make(chan struct{})
	smallDone := make(chan struct{})
	go func() {
		defer close(smallDone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			default:
			}
			d, err := SendOne(addr, "customer@example.com", rcpt, strings.NewReader(SmallMessage(i, rcpt)))
			if err != nil {
				refuse(fmt.Errorf("small message %d: %w", i, err))
				continue
			}
			mu.Lock()
			res.Small = append(res.Small, d)
			mu.Unlock()
		}
	}()
	wg.Wait()
	res.Took = time.Since(start)
	close(stop)
	<-smallDone
	return res
}

// SendOne sends one message on its own connection and returns the time
// from the end of DATA to the 250.
func SendOne(addr, from, rcpt string, body io.Reader) (time.Duration, error) {
	c, err := smtp.Dial(addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.Mail(from); err != nil {
		return 0, err
	}
	if err := c.Rcpt(rcpt); err != nil {
		return 0, err
	}
	w, err := c.Data()
	if err != nil {
		return 0, err
	}
	if _, err := io.Copy(w, body); err != nil {
		return 0, errors.Join(err, w.Close())
	}
	start := time.Now()
	if err := w.Close(); err != nil {
		return 0, err
	}
	took := time.Since(start)
	return took, c.Quit()
}

// SmallMessage is a short plain-text question, distinct for each i (and
// each call: its Message-ID carries the time).
func SmallMessage(i int, rcpt string) string {
	return fmt.Sprintf("From: Small %d <small%d@example.com>\r\nTo: %s\r\nSubject: Small question %d\r\n"+
		"Message-ID: <small-%d-%d@example.com>\r\nDate: Mon, 2 Mar 2026 09:00:00 +0000\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
		i, i, rcpt, i, i, time.Now().UnixNano(), strings.Repeat("Where is my order? ", 50))
}

// BigMessage generates a mail with one base64 attachment of about Size
// bytes, as a stream: the sender never holds it.
type BigMessage struct {
	ID, Size int
	To       string // the To: header; support@acme.test when empty
	r        io.Reader
}

func (m *BigMessage) Read(p []byte) (int, error) {
	if m.r == nil {
		to := m.To
		if to == "" {
			to = "support@acme.test"
		}
		head := fmt.Sprintf("From: Big %d <big%d@example.com>\r\nTo: %s\r\nSubject: Scans %d\r\n"+
			"Message-ID: <big-%d-%d@example.com>\r\nDate: Mon, 2 Mar 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"+
			"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe scans are attached.\r\n"+
			"--b\r\nContent-Type: application/pdf; name=scans.pdf\r\nContent-Transfer-Encoding: base64\r\n"+
			"Content-Disposition: attachment; filename=scans.pdf\r\n\r\n", m.ID, m.ID, to, m.ID, m.ID, time.Now().UnixNano())
		lines := (m.Size - len(head)) / 78
		m.r = io.MultiReader(strings.NewReader(head), &base64Lines{src: rand.New(rand.NewPCG(uint64(m.ID), 7)), left: lines},
			strings.NewReader("--b--\r\n"))
	}
	return m.r.Read(p)
}

// base64Lines yields left lines of 76 base64 characters and CRLF.
type base64Lines struct {
	src  *rand.Rand
	left int
	buf  []byte
}

func (l *base64Lines) Read(p []byte) (int, error) {
	if len(l.buf) == 0 {
		if l.left == 0 {
			return 0, io.EOF
		}
		var raw [57]byte
		for i := range raw {
			raw[i] = byte(l.src.Uint32())
		}
		l.buf = append(base64.StdEncoding.AppendEncode(l.buf[:0], raw[:]), '\r', '\n')
		l.left--
	}
	n := copy(p, l.buf)
	l.buf = l.buf[n:]
	return n, nil
}
