package main

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// readMbox splits data from off and returns the messages.
func readMbox(t testing.TB, data []byte, off, max int64) ([]mboxMessage, error) {
	t.Helper()
	r := newMboxReader(bytes.NewReader(data[off:]), off, max)
	var out []mboxMessage
	for {
		m, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, m)
	}
}

func TestMboxSplit(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		max  int64
		want []string // "" with TooBig is "<big>"
		err  error
	}{
		{name: "empty file", in: ""},
		{name: "one message", in: "From a@b Mon Mar  2 09:00:00 2026\nSubject: x\n\nhi\n\n", want: []string{"Subject: x\n\nhi\n"}},
		{
			name: "two messages, Thunderbird style",
			in:   "From - Mon Mar  2 09:00:00 2026\nSubject: 1\n\none\n\nFrom - Mon Mar  2 09:01:00 2026\nSubject: 2\n\ntwo\n",
			want: []string{"Subject: 1\n\none\n", "Subject: 2\n\ntwo\n"},
		},
		{
			name: "mboxrd quoting is undone one level",
			in:   "From x\nSubject: q\n\n>From the desk of\n>>From here\n> From not quoted\nFromage\n\n",
			want: []string{"Subject: q\n\nFrom the desk of\n>From here\n> From not quoted\nFromage\n"},
		},
		{name: "no final newline", in: "From x\nSubject: 1\n\nend", want: []string{"Subject: 1\n\nend"}},
		{
			name: "CRLF file",
			in:   "From x\r\nSubject: 1\r\n\r\none\r\n\r\nFrom y\r\nSubject: 2\r\n\r\ntwo\r\n",
			want: []string{"Subject: 1\r\n\r\none\r\n", "Subject: 2\r\n\r\ntwo\r\n"},
		},
		{
			name: "a message over the limit is skipped, the next one kept",
			in:   "From x\nSubject: big\n\n" + strings.Repeat("0123456789\n", 20) + "\nFrom y\nSubject: 2\n\nsmall\n",
			max:  100,
			want: []string{"<big>", "Subject: 2\n\nsmall\n"},
		},
		{name: "not an mbox", in: "Subject: plain eml\n\nbody\n", err: errNotMbox},
	} {
		t.Run(tc.name, func(t *testing.T) {
			max := tc.max
			if max == 0 {
				max = 1 << 20
			}
			got, err := readMbox(t, []byte(tc.in), 0, max)
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("%d messages, want %d: %+v", len(got), len(tc.want), got)
			}
			var end int64
			for i, m := range got {
				s := string(m.Raw)
				if m.TooBig {
					s = "<big>"
				}
				if s != tc.want[i] {
					t.Errorf("message %d = %q, want %q", i, s, tc.want[i])
				}
				if m.Start != end {
					t.Errorf("message %d starts at %d, the previous ended at %d", i, m.Start, end)
				}
				end = m.End
			}
			if tc.err == nil && end != int64(len(tc.in)) {
				t.Errorf("the last message ends at %d of %d bytes", end, len(tc.in))
			}
		})
	}
}

// FuzzMboxRoundTrip writes messages as an mbox (mboxrd quoting) and
// splits them again: every message comes back as written (with a final
// newline), the byte ranges tile the file, and reading from any
// message's end (a resumed import) gives exactly the rest.
func FuzzMboxRoundTrip(f *testing.F) {
	f.Add([]byte("Subject: a\n\nFrom me\x00Subject: b\n\n>From you\n>>From them"), uint8(0))
	f.Add([]byte("From \x00\x00\n\nFrom x\n"), uint8(0))
	f.Add([]byte("a\r\n\r\n\x00b\r\n"), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, sep uint8) {
		msgs := bytes.Split(data, []byte{sep})
		var mbox bytes.Buffer
		for _, m := range msgs {
			if err := mboxQuote(&mbox, "sender@example.com Mon Mar  2 09:00:00 2026", m); err != nil {
				t.Fatal(err)
			}
		}
		got, err := readMbox(t, mbox.Bytes(), 0, int64(mbox.Len())+1)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(msgs) {
			t.Fatalf("%d messages written, %d read", len(msgs), len(got))
		}
		var end int64
		for i, m := range got {
			want := msgs[i]
			if len(want) == 0 || want[len(want)-1] != '\n' {
				want = append(want[:len(want):len(want)], '\n')
			}
			if !bytes.Equal(m.Raw, want) {
				t.Fatalf("message %d: read %q, wrote %q", i, m.Raw, msgs[i])
			}
			if m.Start != end {
				t.Fatalf("message %d starts at %d, the previous ended at %d", i, m.Start, end)
			}
			end = m.End
		}
		if end != int64(mbox.Len()) {
			t.Fatalf("the last message ends at %d of %d", end, mbox.Len())
		}
		if len(got) > 1 {
			k := len(got) / 2
			rest, err := readMbox(t, mbox.Bytes(), got[k-1].End, int64(mbox.Len())+1)
			if err != nil {
				t.Fatalf("resumed at %d: %v", got[k-1].End, err)
			}
			if len(rest) != len(got)-k || !bytes.Equal(rest[0].Raw, got[k].Raw) {
				t.Fatalf("resumed at message %d: %d messages, want %d", k, len(rest), len(got)-k)
			}
		}
	})
}

// FuzzMboxSplit feeds arbitrary bytes: no panic, and the messages found
// tile the file from the first "From " line to the end.
func FuzzMboxSplit(f *testing.F) {
	f.Add([]byte("From x\nSubject: 1\n\n>From\nFrom y\n\n"), int64(64))
	f.Add([]byte("From \r\n\r\n\r\nFrom "), int64(1))
	f.Fuzz(func(t *testing.T, data []byte, max int64) {
		if max <= 0 {
			max = 1
		}
		got, err := readMbox(t, data, 0, max)
		if err != nil {
			if !errors.Is(err, errNotMbox) || bytes.HasPrefix(data, []byte("From ")) {
				t.Fatalf("error %v on %q", err, data)
			}
			return
		}
		var end int64
		for i, m := range got {
			if m.Start != end || m.End <= m.Start {
				t.Fatalf("message %d: bytes %d-%d after %d", i, m.Start, m.End, end)
			}
			if !m.TooBig && int64(len(m.Raw)) > max {
				t.Fatalf("message %d: %d bytes kept, over the limit %d", i, len(m.Raw), max)
			}
			end = m.End
		}
		if end != int64(len(data)) {
			t.Fatalf("messages end at %d of %d", end, len(data))
		}
	})
}
