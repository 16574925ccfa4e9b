package followup_test

import (
	"bufio"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tendhq/tend/followup"
	"github.com/tendhq/tend/internal/testenv"
	"github.com/tendhq/tend/mail/classify"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// TestCorpusBouncesFailTheirOutboxRows delivers real bounces from the
// shared corpus for mail we "sent" with the Message-ID each bounce
// reports, and checks each marks its outbox row failed without opening a
// ticket or answering.
func TestCorpusBouncesFailTheirOutboxRows(t *testing.T) {
	dir := "../../shared/corpus"
	f, err := os.Open(filepath.Join(dir, "index.tsv"))
	if err != nil {
		testenv.SkipOrFail(t, "corpus not found at "+dir)
	}
	defer f.Close()
	logs := &testenv.Buffer{}
	w := newWorldTuned(t, func(o *followup.Options) { o.Logger = slog.New(slog.NewTextHandler(logs, nil)) })
	w.mustSend(customer, []string{inbox}, customerMail("b0@example.com", "Hi", "Hello."))
	w.capture.take()
	ctx := context.Background()
	type sample struct {
		path string
		id   int64
	}
	var samples []sample
	var bounces [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() && len(samples) < 40 {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) < 2 || cols[1] != "bounce" {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, cols[0]))
		if err != nil {
			t.Fatal(err)
		}
		dsn, err := classify.ParseDSN(raw)
		if err != nil || dsn.OriginalMessageID == "" || len(dsn.Failed()) == 0 || !dsn.Failed()[0].Permanent {
			continue
		}
		var id int64
		err = w.store.InTx(ctx, func(tx *storage.Tx) error {
			if dup, ok, _ := tx.OutboxByMessageID(ctx, dsn.OriginalMessageID); ok {
				id = dup
				return nil
			}
			ticket := int64(1)
			id, err = tx.QueueMail(ctx, storage.OutboxMail{TicketID: &ticket, Kind: storage.OutboxToCustomer, EnvTo: customer},
				storage.Message{TicketID: &ticket}, func(int64) (storage.Composed, error) {
					return storage.Composed{MessageID: dsn.OriginalMessageID, EnvFrom: "bounce@" + domain, Raw: storagetest.Fixed([]byte("Subject: x\r\n\r\nx\r\n"))}, nil
				})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		samples = append(samples, sample{cols[0], id})
		bounces = append(bounces, raw)
	}
	w.settle() // the mail goes out...
	w.capture.take()
	for i, raw := range bounces { // ...and the bounces come back
		if err := w.send("", []string{inbox}, string(raw)); err != nil {
			t.Fatalf("%s: %v", samples[i].path, err)
		}
	}
	w.settle()
	if len(samples) < 10 {
		t.Fatalf("only %d usable bounce samples", len(samples))
	}
	rows, err := w.store.Outbox(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	status := map[int64]string{}
	for _, r := range rows {
		status[r.ID] = r.Status
	}
	// The operator sees each bounce in the log, not only on the timeline.
	if n := strings.Count(logs.String(), `msg="bounce report"`); n != len(samples) {
		t.Errorf("%d bounce reports logged for %d bounces", n, len(samples))
	}
	for _, s := range samples {
		if status[s.id] != storage.OutboxFailed {
			t.Errorf("%s: outbox row %d is %q, want failed", s.path, s.id, status[s.id])
		}
	}
	list, _, err := w.store.ListTickets(ctx, storage.TicketFilter{State: "all"})
	if err != nil || len(list) != 1 {
		t.Errorf("bounces opened tickets: %d tickets, %v", len(list), err)
	}
	if n := len(to(w.capture.take(), customer)); n != 0 {
		t.Errorf("a bounce was answered (%d mails to the customer)", n)
	}
	t.Logf("%d corpus bounces marked their outbox rows failed", len(samples))
}
