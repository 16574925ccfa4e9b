package ingest_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/internal/testenv"
	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// BenchmarkClusterPlace measures what placing a new ticket in its
// cluster costs inside the processing transaction (on SQLite, the one
// writer's time), on a store already holding 1,000 tickets about a few
// problems in varied words: the burst case, where every new ticket's
// bands are full of look-alikes. With prepared, the stems and bands are
// worked out before the transaction (Clusterer.Prepare), as serve does.
// It reports the time inside the transaction per ticket (tx-µs/ticket).
func BenchmarkClusterPlace(b *testing.B) {
	for _, backend := range storagetest.Backends() {
		for _, prepared := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/prepared=%v", backend.Name, prepared), func(b *testing.B) {
				pi := newProcInstall(b, backend)
				cl := ingest.Clusterer{Window: 7 * 24 * time.Hour, Clock: pi.clock}
				place := cl.Then(func(context.Context, *storage.Tx, storage.Message) error { return nil })
				var inTx testenv.Part
				opts := ingest.ProcessorOptions{Owner: "b", Clock: pi.clock,
					AfterParse: func(ctx context.Context, tx *storage.Tx, m storage.Message) error {
						return inTx.Time(func() error { return place(ctx, tx, m) })
					}}
				if prepared {
					opts.Prepare = cl.Prepare
				}
				p := ingest.NewProcessor(pi.store, opts)
				rng := rand.New(rand.NewPCG(7, 7))
				n := 0
				one := func() {
					n++
					subject, body := complaint(rng)
					pi.deliver(b, subject, plainMail(fmt.Sprintf("%s %d", subject, n), body))
					drain(b, pi, p, 1)
				}
				inTx.Loop(b, 1000, one, "tx-µs/ticket")
			})
		}
	}
}

// complaint is a customer's mail about one of a few problems, in words
// drawn from that problem's vocabulary.
func complaint(rng *rand.Rand) (subject, body string) {
	problems := [][]string{
		{"invoice", "pdf", "empty", "blank", "download", "page", "file", "document", "opens", "nothing"},
		{"login", "password", "reset", "link", "expired", "account", "locked", "email", "code", "sign"},
		{"charged", "twice", "card", "refund", "payment", "double", "bank", "statement", "money", "order"},
		{"app", "crashes", "android", "start", "phone", "update", "version", "closes", "screen", "launch"},
		{"delivery", "parcel", "late", "tracking", "courier", "address", "week", "package", "arrived", "status"},
	}
	words := problems[rng.IntN(len(problems))]
	pick := func(k int) string {
		out := make([]string, k)
		for i := range out {
			out[i] = words[rng.IntN(len(words))]
		}
		return strings.Join(out, " ")
	}
	return pick(4), "Hello, " + pick(30) + ". Thanks, a customer"
}
