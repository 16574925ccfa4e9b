package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
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
	cpu0 := cpuTime()
	b.ResetTimer()
	start := time.Now()
	all, _, err := blast(addr, msgs, b.N, conc, true, io.Discard)
	took := time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	b.ReportMetric(float64(len(all))/took.Seconds(), "msgs/s")
	b.ReportMetric(ms(pctile(all, 0.5)), "p50_ms")
	b.ReportMetric(ms(pctile(all, 0.99)), "p99_ms")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(len(all)), "cpu_ms/msg")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchCorpus loads TEND_BENCH_CORPUS (the shared load generator's
// corpus) or generates messages of the same shapes (benchMessages).
func benchCorpus(b testing.TB) [][]byte {
	if dir := os.Getenv("TEND_BENCH_CORPUS"); dir != "" {
		msgs, err := loadBenchMessages(dir)
		if err != nil {
			b.Fatalf("TEND_BENCH_CORPUS: %v", err)
		}
		return msgs
	}
	return benchMessages(2000)
}
