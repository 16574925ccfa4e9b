package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tendhq/tend/cmd/tend/config"
	"github.com/tendhq/tend/storage/storagetest"
)

// BenchmarkIngest sends messages over SMTP to a whole tend (SMTP door,
// ingest, group commit, and the processor, rules and outbox running
// behind it) with C concurrent connections, and reports messages/second,
// DATA-to-250 latency and CPU per message. Messages come from the shared
// load generator's corpus when TEND_BENCH_CORPUS names its directory
// (../shared/bench: go run ./cmd/gencorpus -dir DIR), else from a
// generated set of the same shapes. The CPU figure is the whole test
// process, client included.
func BenchmarkIngest(b *testing.B) {
	msgs := benchCorpus(b)
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, c := range []int{1, 4, 16} {
			b.Run(fmt.Sprintf("%s/c=%d", backend, c), func(b *testing.B) {
				addr := startInProcess(b, backend)
				benchSend(b, addr, msgs, c)
			})
		}
	}
}

// startInProcess runs serve() with a fresh database and returns the SMTP
// address.
func startInProcess(b *testing.B, backend string) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	cfg := config.Default()
	cfg.DataDir = b.TempDir()
	cfg.Database.DSN = filepath.Join(cfg.DataDir, "tend.db")
	if backend == "postgres" {
		cfg.Database.Driver, cfg.Database.DSN = "postgres", storagetest.PostgresDSN(b)
	}
	cfg.SMTP.Listen, cfg.Web.Listen, cfg.SMTP.Hostname = addr, "", "mail.acme.test"
	cfg.Inboxes = []config.Inbox{{Address: "support@acme.test", Name: "Acme Support", ResponseTime: 4 * time.Hour}}
	cfg.Agents = []config.Agent{{Email: "alice@acme.test", Name: "Alice", Role: "agent"}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.DiscardHandler), io.Discard) }()
	b.Cleanup(func() { cancel(); <-done })
	for range 500 {
		if c, err := net.Dial("tcp", addr); err == nil {
			_ = c.Close()
			return addr
		}
		select {
		case err := <-done:
			b.Fatalf("serve: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	b.Fatal("tend did not listen")
	return ""
}

func benchSend(b *testing.B, addr string, msgs [][]byte, conc int) {
	var next atomic.Int64
	lat := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	cpu0 := cpuTime()
	b.ResetTimer()
	start := time.Now()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := smtp.Dial(addr)
			if err != nil {
				b.Error(err)
				return
			}
			defer c.Close()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				raw := msgs[i%int64(len(msgs))]
				if i >= int64(len(msgs)) { // keep every message distinct
					raw = append([]byte(fmt.Sprintf("X-Bench-Copy: %d\r\n", i)), raw...)
				}
				if err := c.Mail("sender@example.com"); err != nil {
					b.Error(err)
					return
				}
				if err := c.Rcpt("support@acme.test"); err != nil {
					b.Error(err)
					return
				}
				wc, err := c.Data()
				if err != nil {
					b.Error(err)
					return
				}
				if _, err := wc.Write(raw); err != nil {
					b.Error(err)
					return
				}
				t0 := time.Now()
				if err := wc.Close(); err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) == 0 {
		return
	}
	pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(len(all))/took.Seconds(), "msgs/s")
	b.ReportMetric(pct(0.5), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(len(all)), "cpu_ms/msg")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchCorpus loads TEND_BENCH_CORPUS or generates messages shaped like
// the shared load generator's: plain and HTML+text, replies with
// References, several charsets, 5% with a 200 KB attachment.
func benchCorpus(b *testing.B) [][]byte {
	if dir := os.Getenv("TEND_BENCH_CORPUS"); dir != "" {
		files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
		if err != nil || len(files) == 0 {
			b.Fatalf("TEND_BENCH_CORPUS=%s: no .eml files", dir)
		}
		var out [][]byte
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				b.Fatal(err)
			}
			out = append(out, bytes.ReplaceAll(bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n")))
		}
		return out
	}
	r := rand.New(rand.NewPCG(1, 2))
	var out [][]byte
	for i := range 2000 {
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
