package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tendhq/tend/storage"
)

// The operator's commands on an installation: export, forget, backup,
// verify-raw
// (README, Operations).

// exportManifest is DIR/export.json.
type exportManifest struct {
	ExportedAt time.Time `json:"exported_at"`
	Ticket     int64     `json:"ticket,omitempty"`
	Customer   string    `json:"customer,omitempty"`
	Tickets    []int64   `json:"tickets"`
}

// exportTicket is DIR/ticket-N/ticket.json: the ticket as the database
// holds it. Each message names the file its raw bytes were written to.
type exportTicket struct {
	Ticket       storage.TicketRow     `json:"ticket"`
	Inboxes      []string              `json:"inboxes"`
	Participants []storage.Participant `json:"participants"`
	Messages     []exportMessage       `json:"messages"`
	Events       []storage.Event       `json:"events"`
}

type exportMessage struct {
	storage.Message
	// RawFile is the .eml file beside ticket.json ("" when the bytes of
	// an outgoing mail were pruned by retention.outbox_bodies).
	RawFile string `json:"raw_file"`
}

func cmdExport(ctx context.Context, args, env []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file")
	ticket := fs.Int64("ticket", 0, "the ticket to export")
	customer := fs.String("customer", "", "export every ticket this address takes part in")
	out := fs.String("out", "", "the directory to write (absent or empty)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *out == "" || (*ticket == 0) == (*customer == "") {
		return fmt.Errorf("%w: export --ticket N | --customer EMAIL --out DIR", errUsage)
	}
	if err := emptyDir(*out); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	st, _, err := openExisting(ctx, "export", *cfgPath, env, false)
	if err != nil {
		return err
	}
	defer st.Close()
	m := exportManifest{ExportedAt: time.Now().UTC(), Ticket: *ticket, Customer: *customer}
	if *ticket != 0 {
		m.Tickets = []int64{*ticket}
	} else if m.Tickets, err = st.PersonTickets(ctx, *customer); err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	var files int
	for i, n := range m.Tickets {
		number, k, err := exportOne(ctx, st, n, *out)
		if err != nil {
			return err
		}
		m.Tickets[i] = number // a merged ticket's number exports the ticket it went into
		files += k
	}
	if err := writeJSON(filepath.Join(*out, "export.json"), m); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "exported %d tickets, %d raw messages, to %s\n", len(m.Tickets), files, *out)
	return nil
}

// exportOne writes ticket n into out/ticket-N and returns its number and
// how many .eml files it wrote.
func exportOne(ctx context.Context, st *storage.Store, n int64, out string) (int64, int, error) {
	d, err := st.GetTicket(ctx, n)
	if err != nil {
		return 0, 0, fmt.Errorf("export: %w", err)
	}
	dir := filepath.Join(out, "ticket-"+strconv.FormatInt(d.Number, 10))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, 0, fmt.Errorf("export: %w", err)
	}
	t := exportTicket{Ticket: d.TicketRow, Inboxes: d.Inboxes, Events: d.Events}
	if t.Participants, err = st.Participants(ctx, d.Number); err != nil {
		return 0, 0, err
	}
	files := 0
	for _, msg := range d.Messages {
		var raw []byte
		if msg.Direction == storage.DirectionOut && msg.OutboxID != nil {
			raw, err = st.OutboxRaw(ctx, *msg.OutboxID)
		} else {
			raw, err = st.Raw(ctx, msg.RawHash)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("export: message %d: %w", msg.ID, err)
		}
		em := exportMessage{Message: msg}
		if raw != nil {
			em.RawFile = fmt.Sprintf("message-%d.eml", msg.ID)
			if err := os.WriteFile(filepath.Join(dir, em.RawFile), raw, 0o600); err != nil {
				return 0, 0, fmt.Errorf("export: %w", err)
			}
			files++
		}
		t.Messages = append(t.Messages, em)
	}
	return d.Number, files, writeJSON(filepath.Join(dir, "ticket.json"), t)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// emptyDir fails unless dir is absent or an empty directory.
func emptyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		return fmt.Errorf("%s is not empty", dir)
	}
	return nil
}

func cmdForget(ctx context.Context, args, env []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("forget", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file")
	by := fs.String("by", envValue(env, "USER"), "who asked for or ran the erasure, for the audit record")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || !strings.Contains(pos[0], "@") {
		return fmt.Errorf("%w: forget EMAIL", errUsage)
	}
	// Exclusive: on SQLite the erasure rewrites segment files the server
	// appends to, so it runs with the server stopped.
	st, _, err := openExisting(ctx, "forget", *cfgPath, env, true)
	if err != nil {
		return err
	}
	defer st.Close()
	res, err := st.Forget(ctx, pos[0], *by)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "erased %s (erasure %d): %d tickets %v, %d messages, %d raw messages, %d outgoing mails; messages taken off %d other tickets %v\n",
		pos[0], res.Erasure, len(res.Tickets), res.Tickets, res.Messages, res.RawMessages, res.Outbox, len(res.Touched), res.Touched)
	return nil
}

func cmdBackup(ctx context.Context, args, env []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] == "" {
		return fmt.Errorf("%w: backup DIR", errUsage)
	}
	st, cfg, err := openExisting(ctx, "backup", *cfgPath, env, false)
	if err != nil {
		return err
	}
	defer st.Close()
	res, err := st.Backup(ctx, pos[0])
	if errors.Is(err, storage.ErrBackupUnsupported) {
		return fmt.Errorf("%w: tend keeps everything in the database there (raw bytes too), so\n"+
			"  pg_dump --format=custom --file %s/tend.pgdump '%s'\n"+
			"takes a consistent copy while tend runs; restore with pg_restore --dbname NEWDB --no-owner, then point database.dsn at it (README, Operations)",
			err, pos[0], redactDSN(cfg.Database.DSN))
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backed up to %s: database %d bytes, %d segment files, %d message files (%d bytes); restore: use it as data_dir\n",
		pos[0], res.DBBytes, res.Segments, res.Files, res.RawBytes)
	return nil
}

// errCorrupt is verify-raw's error when stored raw mail is damaged or
// missing.
var errCorrupt = errors.New("raw mail damaged or missing")

func cmdVerifyRaw(ctx context.Context, args, env []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("verify-raw", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("%w: verify-raw [--config FILE]", errUsage)
	}
	// Not exclusive: it only reads, beside a running server; the raw
	// directory's shared lock keeps it from running during tend forget.
	st, _, err := openExisting(ctx, "verify-raw", *cfgPath, env, false)
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := st.VerifyRaw(ctx)
	if err != nil {
		return err
	}
	for _, p := range rep.Bad {
		fmt.Fprintf(stdout, "bad: %s\n", p)
	}
	fmt.Fprintf(stdout, "raw mail: %d records, %d bytes; %d bad; %d orphaned (%d bytes, garbage for compaction)",
		rep.Records, rep.Bytes, len(rep.Bad), rep.Orphaned, rep.OrphanedBytes)
	if rep.Legacy > 0 {
		fmt.Fprintf(stdout, "; %d segment files without record headers, checked through the database only (compaction rewrites them)", rep.Legacy)
	}
	fmt.Fprintln(stdout)
	if len(rep.Bad) > 0 {
		return fmt.Errorf("verify-raw: %d messages: %w", len(rep.Bad), errCorrupt)
	}
	return nil
}

// redactDSN hides a password in a PostgreSQL URL.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	return u.Redacted()
}

// envValue is the value of key in env ("" when absent).
func envValue(env []string, key string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}
