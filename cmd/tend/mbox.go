package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// mboxReader splits an mbox file (mboxo or mboxrd: every line that starts
// with "From " begins a message) into messages, with the byte offset of
// each one's end, so that an import can resume after the last message it
// committed. Lines quoted as ">From ", ">>From " … lose one '>' (mboxrd;
// for mboxo this also unquotes a body line that really began with
// ">From ", the usual reader's compromise).
//
// It is written here rather than taken from github.com/emersion/go-mbox
// because that module is not on the module proxy and because it gives no
// offsets, which resuming needs.
type mboxReader struct {
	r   *bufio.Reader
	off int64 // offset of the next byte r will return
	// next is the "From " line already read that starts the next
	// message, and nextOff its offset; nil before the first or at EOF.
	next    []byte
	nextOff int64
	max     int64 // messages larger than this are skipped (their bytes not kept)
	started bool
}

// errNotMbox is returned when the position does not start a message.
var errNotMbox = errors.New(`not at the start of an mbox message (no "From " line)`)

// newMboxReader reads messages from r, which is positioned at byte off of
// the file (0, or the end of a message an earlier import committed).
func newMboxReader(r io.Reader, off, max int64) *mboxReader {
	return &mboxReader{r: bufio.NewReaderSize(r, 256<<10), off: off, max: max}
}

// mboxMessage is one message of an mbox.
type mboxMessage struct {
	Raw        []byte // unquoted, without the "From " line; nil when TooBig
	Start, End int64  // the byte range in the file, "From " line included
	TooBig     bool
}

// line reads one line with its newline (none at EOF).
func (m *mboxReader) line() ([]byte, int64, error) {
	off := m.off
	l, err := m.r.ReadBytes('\n')
	m.off += int64(len(l))
	if err == io.EOF && len(l) > 0 {
		err = nil
	}
	return l, off, err
}

func isFromLine(l []byte) bool { return bytes.HasPrefix(l, []byte("From ")) }

// Next returns the next message, or io.EOF after the last one.
func (m *mboxReader) Next() (mboxMessage, error) {
	if !m.started {
		m.started = true
		l, off, err := m.line()
		if err != nil {
			return mboxMessage{}, err // io.EOF: an empty file, or resumed at its end
		}
		if !isFromLine(l) {
			return mboxMessage{}, fmt.Errorf("byte %d: %w", off, errNotMbox)
		}
		m.next, m.nextOff = l, off
	}
	if m.next == nil {
		return mboxMessage{}, io.EOF
	}
	msg := mboxMessage{Start: m.nextOff}
	m.next = nil
	var buf bytes.Buffer
	for {
		l, off, err := m.line()
		if err == io.EOF {
			msg.End = m.off
			break
		}
		if err != nil {
			return mboxMessage{}, err
		}
		if isFromLine(l) {
			m.next, m.nextOff = l, off
			msg.End = off
			break
		}
		if msg.TooBig {
			continue
		}
		if q := bytes.TrimLeft(l, ">"); len(q) < len(l) && isFromLine(q) {
			l = l[1:]
		}
		if int64(buf.Len()+len(l)) > m.max {
			msg.TooBig = true
			buf = bytes.Buffer{}
			continue
		}
		buf.Write(l)
	}
	if !msg.TooBig {
		msg.Raw = trimSeparator(buf.Bytes())
	}
	return msg, nil
}

// trimSeparator drops the empty line an mbox writer puts between a
// message and the next "From " line.
func trimSeparator(b []byte) []byte {
	switch {
	case bytes.HasSuffix(b, []byte("\r\n\r\n")):
		return b[:len(b)-2]
	case bytes.HasSuffix(b, []byte("\n\n")):
		return b[:len(b)-1]
	}
	return b
}

// mboxQuote writes msg as one mboxrd message: its "From " line, the body
// with "From " lines quoted, a final newline and the separating empty
// line. It is what the tests write mbox files with.
func mboxQuote(w io.Writer, from string, msg []byte) error {
	var b bytes.Buffer
	b.WriteString("From " + from + "\n")
	for l := range bytes.Lines(msg) {
		if isFromLine(bytes.TrimLeft(l, ">")) {
			b.WriteByte('>')
		}
		b.Write(l)
	}
	if len(msg) == 0 || msg[len(msg)-1] != '\n' {
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}
