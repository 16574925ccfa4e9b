package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// benchMessages generates n messages shaped like the shared load
// generator's corpus (../shared/bench gencorpus): plain and HTML+text,
// replies with In-Reply-To and References, several charsets and transfer
// encodings, 5% with a 200 KB attachment, from 300 customers. The same n
// gives the same messages.
func benchMessages(n int) [][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([][]byte, 0, n)
	for i := range n {
		var m strings.Builder
		fmt.Fprintf(&m, "From: Customer %d <c%d@example.com>\r\nTo: support@acme.test\r\nSubject: Question %d about my order\r\n", i%300, i%300, i)
		fmt.Fprintf(&m, "Message-ID: <bench-%d@example.com>\r\nDate: Mon, 2 Mar 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n", i)
		if i%3 == 1 {
			fmt.Fprintf(&m, "In-Reply-To: <bench-%d@example.com>\r\nReferences: <bench-%d@example.com>\r\n", i-1, i-1)
		}
		body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", 20+r.IntN(300))
		switch {
		case i%20 == 0:
			att := strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\r\n", 5500) // ~200 KB
			fmt.Fprintf(&m, "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n--b\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=a.pdf\r\n\r\n%s--b--\r\n", body, att)
		case i%2 == 0:
			fmt.Fprintf(&m, "Content-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n%s\r\n--a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>%s</p>\r\n--a--\r\n", body, body)
		default:
			fmt.Fprintf(&m, "Content-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n", body)
		}
		out = append(out, []byte(m.String()))
	}
	return out
}

// loadBenchMessages reads the .eml files of dir (the shared load
// generator's corpus), with CRLF line ends as SMTP carries them.
func loadBenchMessages(dir string) ([][]byte, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("%s: no .eml files", dir)
	}
	out := make([][]byte, 0, len(files))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, bytes.ReplaceAll(bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n")))
	}
	return out, nil
}
