package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
	"github.com/tendhq/tend/vocab"
)

// TestOperations runs the operator's commands against a real server on
// SQLite: tend backup while mail is being delivered over SMTP (the copy is
// opened and every message's raw bytes read back, then tend serve starts on
// it and the tickets are there), tend export of one customer (JSON and the
// raw bytes as received), and tend forget with the server stopped (no file
// of the data directory holds the erased mail's text any more; the others'
// mail is intact).
func TestOperations(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "sqlite", "")
	p := startTend(t, cfg)

	send := func(from, id, body string) string {
		t.Helper()
		msg := mailText(from, "support@acme.test", "Question "+id, id+"@example.com", "", body)
		if err := sendMail(p.SMTPAddr, from, []string{"support@acme.test"}, msg); err != nil {
			t.Fatalf("send %s: %v", id, err)
		}
		return msg
	}
	annMsg := send("ann@example.com", "ann1", "ANN-ERASE-ME-3c9d the order number is 4711")
	bobMsg := send("bob@example.com", "bob1", "BOB-KEEP-ME-17aa")

	// Mail keeps arriving while the backup runs.
	var sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("load%d-%d", w, i)
				msg := mailText("load@example.com", "support@acme.test", "Load "+id, id+"@example.com", "", strings.Repeat("load "+id+"\r\n", 200))
				if err := sendMail(p.SMTPAddr, "load@example.com", []string{"support@acme.test"}, msg); err != nil {
					t.Errorf("send %s: %v", id, err)
					return
				}
				sent.Add(1)
			}
		}()
	}
	waitFor(t, "mail flowing", 30e9, func() bool { return sent.Load() >= 10 })
	backup := filepath.Join(t.TempDir(), "backup")
	before := sent.Load()
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"backup", backup, "--config", cfg}, nil, &out, &errb); code != 0 {
		t.Fatalf("backup: exit %d: %s", code, errb.String())
	}
	during := sent.Load() - before
	close(stop)
	wg.Wait()
	// How much arrives during the copy depends on the machine's load;
	// storage's TestBackupWhileDelivering commits mail inside the copy
	// deterministically.
	t.Logf("backup: %s (%d mails delivered during it)", strings.TrimSpace(out.String()), during)

	// Export Ann's tickets while the server runs.
	exp := filepath.Join(t.TempDir(), "export")
	out.Reset()
	if code := run(ctx, []string{"export", "--customer", "ann@example.com", "--out", exp, "--config", cfg}, nil, &out, &errb); code != 0 {
		t.Fatalf("export: exit %d: %s", code, errb.String())
	}
	var man exportManifest
	readJSON(t, filepath.Join(exp, "export.json"), &man)
	if len(man.Tickets) != 1 {
		t.Fatalf("export of ann: tickets %v", man.Tickets)
	}
	var et exportTicket
	readJSON(t, filepath.Join(exp, fmt.Sprintf("ticket-%d", man.Tickets[0]), "ticket.json"), &et)
	if et.Ticket.Customer != "ann@example.com" || len(et.Messages) == 0 || len(et.Participants) == 0 {
		t.Fatalf("exported ticket: %+v", et)
	}
	var inbound int
	for _, m := range et.Messages {
		if m.RawFile == "" {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(exp, fmt.Sprintf("ticket-%d", man.Tickets[0]), m.RawFile))
		if err != nil {
			t.Fatal(err)
		}
		if m.Direction == storage.DirectionIn {
			inbound++
			// Byte-exact: what the client sent, after the trace fields
			// the door adds on top.
			if !bytes.HasSuffix(raw, []byte(annMsg)) || hashHex(raw) != m.RawHash {
				t.Errorf("exported %s: %d bytes, not the %d sent", m.RawFile, len(raw), len(annMsg))
			}
		}
	}
	if inbound != 1 {
		t.Errorf("%d inbound raw files exported, want Ann's 1", inbound)
	}

	// On SQLite forget rewrites the segment files the server appends
	// to: it refuses while the server runs.
	errb.Reset()
	if code := run(ctx, []string{"forget", "ann@example.com", "--config", cfg}, nil, &out, &errb); code == 0 || !strings.Contains(errb.String(), "stop tend serve first") {
		t.Errorf("forget beside a running server: exit %d, %q", code, errb.String())
	}
	p.Stop()

	// The copy opens, every message's raw bytes read back, and it holds
	// at least what was delivered before the backup began.
	checkCopy(t, backup, before)

	// Forget Ann on the original.
	out.Reset()
	if code := run(ctx, []string{"forget", "ann@example.com", "--by", "dpo", "--config", cfg}, nil, &out, &errb); code != 0 {
		t.Fatalf("forget: exit %d: %s", code, errb.String())
	}
	t.Logf("forget: %s", out.String())
	data := filepath.Join(dir, "data")
	for _, needle := range []string{"ANN-ERASE-ME-3c9d", annMsg[len(annMsg)/2:]} {
		if found := storagetest.FilesContaining(t, data, []byte(needle)); len(found) > 0 {
			t.Errorf("%.30q still on disk after tend forget, in %v", needle, found)
		}
	}
	if len(storagetest.FilesContaining(t, data, []byte("BOB-KEEP-ME-17aa"))) == 0 {
		t.Error("Bob's mail went too")
	}

	// Restore: tend serve on the copy; the tickets are there, Ann's too
	// (the backup predates her erasure).
	rdir := t.TempDir()
	rcfg := writeConfig(t, rdir, "sqlite", "")
	if err := os.Rename(backup, filepath.Join(rdir, "data")); err != nil {
		t.Fatal(err)
	}
	r := startTend(t, rcfg)
	tok := r.token("lead")
	var list ticketList
	customers := map[string]int{}
	for path := "/api/tickets?state=all&limit=500"; ; {
		list = ticketList{}
		if code := r.getJSON(tok, path, &list); code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, code)
		}
		for _, tk := range list.Tickets {
			customers[tk.Customer]++
		}
		if list.NextCursor == "" {
			break
		}
		path = "/api/tickets?state=all&limit=500&cursor=" + list.NextCursor
	}
	if customers["ann@example.com"] != 1 || customers["bob@example.com"] != 1 || int64(customers["load@example.com"]) < before {
		t.Errorf("restored tickets by customer %v, want ann and bob and at least %d load tickets", customers, before)
	}
	_ = bobMsg
}

// TestOperationsPostgres: on PostgreSQL export and forget run beside the
// server; after the erasure the API knows neither the person's ticket nor
// their message on another customer's ticket, and the other customer's
// ticket carries the erasure event.
func TestOperationsPostgres(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "postgres", "")
	p := startTend(t, cfg)
	send := func(from, id, parent, body string) string {
		t.Helper()
		extra := "Cc: ann@example.com\r\n"
		if parent != "" {
			extra = "In-Reply-To: <" + parent + "@example.com>\r\n"
		}
		msg := mailText(from, "support@acme.test", "Question "+id, id+"@example.com", extra, body)
		if err := sendMail(p.SMTPAddr, from, []string{"support@acme.test"}, msg); err != nil {
			t.Fatalf("send %s: %v", id, err)
		}
		return msg
	}
	send("bob@example.com", "bob1", "", "BOB-KEEP")
	annMsg := send("ann@example.com", "ann1", "", "ANN-ERASE-ME")
	send("ann@example.com", "ann2", "bob1", "ANN-ON-BOB")
	tok := p.token("lead")
	var list ticketList
	waitFor(t, "two tickets", 30e9, func() bool {
		list = ticketList{}
		p.getJSON(tok, "/api/tickets?state=all", &list)
		return len(list.Tickets) >= 2
	})
	if len(list.Tickets) != 2 {
		t.Fatalf("tickets: %+v, want Bob's and Ann's", list.Tickets)
	}
	numbers := map[string]int64{}
	for _, tk := range list.Tickets {
		numbers[tk.Customer] = tk.Number
	}

	exp := filepath.Join(t.TempDir(), "export")
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"export", "--ticket", fmt.Sprint(numbers["ann@example.com"]), "--out", exp, "--config", cfg}, nil, &out, &errb); code != 0 {
		t.Fatalf("export: exit %d: %s", code, errb.String())
	}
	var et exportTicket
	tdir := filepath.Join(exp, fmt.Sprintf("ticket-%d", numbers["ann@example.com"]))
	readJSON(t, filepath.Join(tdir, "ticket.json"), &et)
	if len(et.Messages) == 0 || et.Messages[0].RawFile == "" {
		t.Fatalf("exported: %+v", et)
	}
	if raw, err := os.ReadFile(filepath.Join(tdir, et.Messages[0].RawFile)); err != nil || !bytes.HasSuffix(raw, []byte(annMsg)) {
		t.Errorf("exported raw message: %d bytes, %v", len(raw), err)
	}

	if code := run(ctx, []string{"forget", "ann@example.com", "--by", "dpo", "--config", cfg}, nil, &out, &errb); code != 0 {
		t.Fatalf("forget: exit %d: %s", code, errb.String())
	}
	if code := p.getJSON(tok, fmt.Sprintf("/api/tickets/%d", numbers["ann@example.com"]), nil); code != http.StatusNotFound {
		t.Errorf("Ann's ticket after forget: %d", code)
	}
	var bob ticketDetail
	if code := p.getJSON(tok, fmt.Sprintf("/api/tickets/%d", numbers["bob@example.com"]), &bob); code != http.StatusOK {
		t.Fatalf("Bob's ticket: %d", code)
	}
	var erased bool
	for _, e := range bob.Events {
		erased = erased || e.Kind == string(vocab.EventErased)
	}
	for _, m := range bob.Messages {
		if m.From == "ann@example.com" {
			t.Errorf("Ann's message %s is still on Bob's ticket", m.MessageID)
		}
	}
	if !erased || len(bob.Messages) == 0 {
		t.Errorf("Bob's ticket after forget: %d messages, erasure event %v", len(bob.Messages), erased)
	}
}

// TestBackupPostgresGuidance: on PostgreSQL tend backup makes no copy of
// its own; it fails (a script must not believe it has a backup) and says
// how to take one with pg_dump, without printing the DSN's password.
func TestBackupPostgresGuidance(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "postgres", "")
	st, err := loadConfig(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := openStore(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	env := []string{"TEND_DATABASE_DSN=" + strings.Replace(st.Database.DSN, "postgres@", "postgres:s3cret-pw@", 1)}
	var out, errb bytes.Buffer
	code := run(ctx, []string{"backup", filepath.Join(dir, "b"), "--config", cfg}, env, &out, &errb)
	if code == 0 || !strings.Contains(errb.String(), "pg_dump --format=custom") || !strings.Contains(errb.String(), "pg_restore") {
		t.Errorf("backup on PostgreSQL: exit %d, %q", code, errb.String())
	}
	if strings.Contains(errb.String(), "s3cret-pw") {
		t.Errorf("the guidance prints the password: %q", errb.String())
	}
}

// checkCopy opens a backup and reads back every message's raw bytes.
func checkCopy(t *testing.T, dir string, atLeast int64) {
	t.Helper()
	ctx := context.Background()
	st, err := storage.Open(ctx, storage.Options{Driver: storage.DriverSQLite, DataDir: dir, Existing: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var n int64
	for before := int64(0); ; {
		rows, next, err := st.ListTickets(ctx, storage.TicketFilter{State: "all", Limit: 500, Before: before})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			d, err := st.GetTicket(ctx, r.Number)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range d.Messages {
				if m.Direction != storage.DirectionIn {
					continue
				}
				raw, err := st.Raw(ctx, m.RawHash)
				if err != nil || hashHex(raw) != m.RawHash {
					t.Errorf("backup: message %d (%s): %d bytes, %v", m.ID, m.MessageID, len(raw), err)
				}
				n++
			}
		}
		if next == 0 {
			break
		}
		before = next
	}
	if n < atLeast {
		t.Errorf("backup holds %d messages, want at least the %d delivered before it began", n, atLeast)
	}
	t.Logf("backup: %d messages read back", n)
}

func hashHex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestOpsUsage: a mistyped operator command is a usage error (exit 2)
// and touches nothing.
func TestOpsUsage(t *testing.T) {
	dir := t.TempDir()
	env := []string{"TEND_DATA_DIR=" + dir}
	for _, args := range [][]string{
		{"export", "--out", filepath.Join(dir, "x")},
		{"export", "--ticket", "1", "--customer", "a@example.com", "--out", filepath.Join(dir, "x")},
		{"export", "--ticket", "1"},
		{"forget"},
		{"forget", "not-an-address"},
		{"forget", "a@example.com", "b@example.com"},
		{"backup"},
		{"verify-raw", "extra"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, env, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%q)", args, code, errb.String())
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 0 {
		t.Errorf("the usage errors created %d entries (%v)", len(ents), err)
	}
}
