package followup_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"mime/quotedprintable"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tendhq/tend/followup"
	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/storage/storagetest"
)

// mailWithAttachment is a customer's mail as Thunderbird writes it: a
// text part and one base64 attachment of size bytes. The attachment is
// random bytes, as a scan or a PDF is compressed data: no database may
// compress it away.
func mailWithAttachment(msgID, subject, text, filename string, size int) string {
	seed := sha256.Sum256([]byte(msgID))
	blob := make([]byte, size)
	_, _ = rand.NewChaCha8(seed).Read(blob)
	data := base64.StdEncoding.EncodeToString(blob)
	var lines []string
	for len(data) > 76 {
		lines, data = append(lines, data[:76]), data[76:]
	}
	lines = append(lines, data)
	return fmt.Sprintf("From: Ann Example <%s>\r\nTo: Acme Support <%s>\r\nSubject: %s\r\nMessage-ID: <%s>\r\n"+
		"Date: Mon, 2 Mar 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\nUser-Agent: Mozilla/5.0 Thunderbird/128.3.0\r\n"+
		"Content-Type: multipart/mixed; boundary=\"------------b0undary\"\r\n\r\nThis is a multi-part message in MIME format.\r\n"+
		"--------------b0undary\r\nContent-Type: text/plain; charset=UTF-8; format=flowed\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s\r\n"+
		"--------------b0undary\r\nContent-Type: application/pdf; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--------------b0undary--\r\n",
		customer, inbox, subject, msgID, text, filename, filename, strings.Join(lines, "\r\n"))
}

// TestNotificationContentIsBounded: a customer's long mail reaches each
// agent as a bounded notification (notifications.max_text), its
// attachments listed with their sizes and a link to the ticket page; a
// small attachment is forwarded, one above notifications.attach_max is
// not.
func TestNotificationContentIsBounded(t *testing.T) {
	w := newWorldWith(t, storagetest.OpenSQLite, &worldTweaks{exec: func(o *followup.Options) {
		o.NotifyMaxText = 4 << 10
		o.NotifyAttachMax = 64 << 10
	}})
	long := strings.Repeat("The printer prints blank pages whatever I try.\r\n", 2000) // ~96 KB
	w.mustSend(customer, []string{inbox}, mailWithAttachment("big1@example.com", "Printer log", long, "log.pdf", 10<<10))
	got := w.expect("small attachment", map[string]int{customer: 1, alice: 1, lena: 1})
	for _, n := range append(to(got, alice), to(got, lena)...) {
		if len(n.Env.Text) > 6<<10 {
			t.Errorf("notification text is %d bytes, want about notifications.max_text (4 KiB)", len(n.Env.Text))
		}
		if !strings.Contains(n.Env.Text, "more not shown") || !strings.Contains(n.Env.Text, "https://support.acme.test/tickets/1") {
			t.Errorf("cut notification does not say where the rest is:\n%s", n.Env.Text[len(n.Env.Text)-600:])
		}
		if !strings.Contains(n.Env.Text, "log.pdf (10 KB)") {
			t.Errorf("notification does not list the attachment with its size")
		}
		if len(n.Env.Attachments) != 1 || len(n.Env.Attachments[0].Content) != 10<<10 {
			t.Errorf("small attachment not forwarded: %d attachments", len(n.Env.Attachments))
		}
	}

	w.mustSend(customer, []string{inbox}, mailWithAttachment("big2@example.com", "Scan of the contract", "Here is the scan.", "scan.pdf", 200<<10))
	got = w.expect("large attachment", map[string]int{customer: 1, alice: 1, lena: 1})
	for _, n := range to(got, alice) {
		if len(n.Env.Attachments) != 0 {
			t.Errorf("an attachment over attach_max was forwarded")
		}
		if !strings.Contains(n.Env.Text, "scan.pdf (200 KB)") || !strings.Contains(n.Env.Text, "on the ticket page: https://support.acme.test/tickets/2") {
			t.Errorf("large attachment not listed with size and link:\n%s", n.Env.Text)
		}
		if len(n.Raw) > 20<<10 {
			t.Errorf("notification of a mail with a 200 KB attachment is %d bytes", len(n.Raw))
		}
	}
}

// TestUnprocessableMessageIsStillAnswered: a message whose after-work
// always fails (an injected failing hook) is given up after
// processing.max_attempts; it is marked "could not be processed" on its
// ticket, the customer still gets the acknowledgement, the agents are
// told, and the mail behind it is handled normally meanwhile.
func TestUnprocessableMessageIsStillAnswered(t *testing.T) {
	onBackends(t, func(t *testing.T, b storagetest.Backend) { unprocessableMessageIsStillAnswered(t, b.Open) })
}

func unprocessableMessageIsStillAnswered(t *testing.T, open func(testing.TB, storage.Clock) *storage.Store) {
	boom := errors.New("injected: the parse cannot be saved")
	w := newWorldWith(t, open, &worldTweaks{proc: func(w *world, o *ingest.ProcessorOptions) {
		o.MaxAttempts, o.RetryBackoff = 2, time.Minute
		o.GiveUp = w.exec.Unprocessable
		o.AfterParse = func(ctx context.Context, tx *storage.Tx, m storage.Message) error {
			if m.Subject == "Poison" {
				return boom
			}
			return w.exec.HandleMessage(ctx, tx, m)
		}
	}})
	w.mustSend(customer, []string{inbox}, customerMail("poison@example.com", "Poison", "This one cannot be processed."))
	w.expect("first attempt", map[string]int{customer: 0, alice: 0})
	w.mustSend("bob@example.org", []string{inbox}, strings.Replace(customerMail("behind@example.com", "Behind the poison", "Hello?"), customer, "bob@example.org", 1))
	w.expect("the mail behind", map[string]int{"bob@example.org": 1, alice: 1})
	w.advance(2 * time.Minute)
	got := w.expect("given up", map[string]int{customer: 1, alice: 1, lena: 1})
	if n := to(got, alice)[0]; !strings.Contains(n.Env.Text, "could not be processed") || !strings.Contains(n.Env.Text, boom.Error()) {
		t.Errorf("agents not told why:\n%s", n.Env.Text)
	}
	d := w.ticket(1)
	found := false
	for _, ev := range d.Events {
		if ev.Kind == "message.unprocessable" && strings.Contains(ev.Detail, boom.Error()) {
			found = true
		}
	}
	if !found {
		t.Errorf("ticket timeline lacks the unprocessable entry: %+v", d.Events)
	}
}

// TestStaffMailBodiesAtRelay: once relayed, a notification (with the
// customer's attachment forwarded) keeps only its metadata by default,
// and keeps its bytes with KeepStaffBodies (retention.notification_bodies
// above 0); the acknowledgement to the customer keeps its bytes either way.
func TestStaffMailBodiesAtRelay(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("keep=%v", keep), func(t *testing.T) {
			w := newWorldWith(t, storagetest.OpenSQLite, &worldTweaks{sender: func(o *followup.SenderOptions) { o.KeepStaffBodies = keep }})
			w.mustSend(customer, []string{inbox}, mailWithAttachment("att@example.com", "Scan", "Attached.", "scan.pdf", 200<<10))
			got := w.expect("notified", map[string]int{customer: 1, alice: 1, lena: 1})
			if n := to(got, alice)[0]; len(n.Env.Attachments) != 1 {
				t.Fatalf("the attachment was not forwarded: %d", len(n.Env.Attachments))
			}
			rows, err := w.store.Outbox(context.Background(), 1)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range rows {
				raw, err := w.store.OutboxRaw(context.Background(), o.ID)
				if err != nil {
					t.Fatal(err)
				}
				if o.Status != storage.OutboxSent || o.MessageID == "" {
					t.Errorf("%s mail to %s: status %s, message-id %q", o.Kind, o.EnvTo, o.Status, o.MessageID)
				}
				if want := keep || o.Kind == storage.OutboxToCustomer; (raw != nil) != want {
					t.Errorf("%s mail to %s: %d bytes kept after relay, want kept %v", o.Kind, o.EnvTo, len(raw), want)
				}
			}
		})
	}
}

// TestDiskProportionalToMail sends a day's worth of mixed mail through
// the SMTP door with the default limits, shaped like the shared load
// generator's corpus (../shared/bench, see corpusMail: most mail a few KB
// of text, half of it with a longer HTML part, quoted-printable or
// base64, under the trace and DKIM headers an MTA adds; 5% with a 200 KB
// attachment, which are most of the bytes), plus mails with
// attachments over notifications.attach_max, long text-only logs and an
// MTA's redelivery of one of them through another hop. Once everything is
// processed, acknowledged and notified to two agents (the 200 KB
// attachments forwarded to both), with the database's maintenance
// running meanwhile and the background compaction after, the store holds
// at most 1.5 times the bytes received: the data directory on SQLite,
// the database on PostgreSQL.
func TestDiskProportionalToMail(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) { diskProportionalToMail(t, backend) })
	}
}

func diskProportionalToMail(t *testing.T, backend string) {
	ctx := context.Background()
	var w *world
	var size func() int64
	var pg *sql.DB
	if backend == "postgres" {
		dsn := storagetest.PostgresDSN(t)
		w = newWorldWith(t, func(t testing.TB, clock storage.Clock) *storage.Store {
			s, err := storage.Open(ctx, storage.Options{Driver: storage.DriverPostgres, DSN: dsn, Clock: clock})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		}, nil)
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		pg = db
		size = func() int64 {
			var n int64
			if err := db.QueryRow("SELECT pg_database_size(current_database())").Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
	} else {
		w = newWorldWith(t, nil, nil)
		size = func() int64 { return storagetest.DirBytes(t, w.dataDir) }
	}
	base := size()
	var received int64
	// Each from another customer, as a day's mail is: one customer's
	// acknowledgements are capped per hour.
	sent := 0
	send := func(raw string) {
		t.Helper()
		from := fmt.Sprintf("c%d@example.org", sent)
		sent++
		raw = strings.Replace(raw, customer, from, 1)
		received += int64(len(raw))
		w.mustSend(from, []string{inbox}, raw)
	}
	// What RunMaintenance does meanwhile (every second on SQLite, ten
	// on PostgreSQL): the day's mail arrives over hours, not in one
	// transaction.
	maintain := func() {
		t.Helper()
		if err := w.store.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		if err := w.store.Reclaim(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// check measures the store once the background jobs have run.
	check := func(what string, limit float64) {
		t.Helper()
		if _, err := w.store.CompactSegments(ctx, 0.25); err != nil {
			t.Fatal(err)
		}
		maintain()
		stored := size() - base
		if backend == "sqlite" {
			for _, name := range []string{"tend.db", "tend.db-wal", "raw"} {
				t.Logf("%s: %s: %d bytes", what, name, storagetest.DirBytes(t, filepath.Join(w.dataDir, name)))
			}
		} else {
			logTableSizes(t, pg)
		}
		ratio := float64(stored) / float64(received)
		t.Logf("%s: received %d bytes, store grew by %d: %.2f×", what, received, stored, ratio)
		if ratio > limit {
			t.Errorf("%s: store grew %.2f× the mail received, want at most %.2f×", what, ratio, limit)
		}
	}
	r := rand.New(rand.NewPCG(10, 1))
	for i := range 400 {
		if i%50 == 49 {
			maintain()
		}
		if i%20 == 0 {
			send(mailWithAttachment(fmt.Sprintf("scan%d@example.com", i), fmt.Sprintf("Scan %d", i), "The scan is attached.", "scan.pdf", 200<<10))
			continue
		}
		send(corpusMail(r, i))
	}
	if n := len(w.capture.take()); n < 3*400 {
		t.Fatalf("%d mails relayed, want an acknowledgement and two notifications for each of 400 tickets", n)
	}
	// The day's mail alone, as the generated corpus is: the large
	// mails below would otherwise make up most of the bytes.
	check("the corpus", 1.5)
	for i := range 2 {
		send(mailWithAttachment(fmt.Sprintf("att%d@example.com", i), fmt.Sprintf("Big scan %d", i), strings.Repeat("See the scan attached.\r\n", 500), "scan.pdf", 2<<20))
		send(customerMail(fmt.Sprintf("log%d@example.com", i), fmt.Sprintf("Log %d", i), strings.Repeat("2026-03-02T10:00:00Z worker[42]: request failed, retrying in 5s\r\n", 1<<20/64)))
	}
	again := strings.Replace(mailWithAttachment("att0@example.com", "Big scan 0", strings.Repeat("See the scan attached.\r\n", 500), "scan.pdf", 2<<20),
		customer, "c400@example.org", 1)
	received += int64(len(again))
	w.mustSend("c400@example.org", []string{inbox}, "Received: from relay2.example.net by mx.acme.test; Mon, 2 Mar 2026 10:05:00 +0100\r\n"+again)
	if n := len(w.capture.take()); n < 2*2+2 {
		t.Fatalf("%d mails relayed for the large mails, want their notifications", n)
	}
	check("with the large mails", 1.5)
}

// corpusWords is the vocabulary of corpusMail, as the shared load
// generator's (../shared/bench) is a support desk's.
var corpusWords = strings.Fields(`hello I have a problem with my order the invoice shows a wrong address
	please tell me when my refund will be processed thanks login password reset does not work error message
	screenshot attached browser chrome firefox safari mobile app version latest install update account
	subscription cancel renew payment card declined charged twice delivery tracking number package damaged
	missing item replacement return label warehouse customer service waiting since last week urgent`)

// corpusMail is mail number i as the shared load generator writes it
// (../shared/bench/blast gencorpus): Received, DKIM-Signature and
// Authentication-Results above the usual headers; about half plain text
// (8bit, quoted-printable or base64) and half multipart/alternative with
// a longer quoted-printable HTML part; 300 to 2,800 characters of text.
// The 5% with a 200 KB attachment are the caller's.
func corpusMail(r *rand.Rand, i int) string {
	para := func(n int) string {
		var b strings.Builder
		for line := 0; b.Len() < n; {
			w := corpusWords[r.IntN(len(corpusWords))]
			if line+len(w) > 72 {
				b.WriteString("\r\n")
				line = 0
			}
			b.WriteString(w + " ")
			line += len(w) + 1
		}
		return b.String()
	}
	text := "Hello support team,\r\n\r\n" + para(300+r.IntN(2500)) + "\r\n\r\nBest regards,\r\nAnn Example\r\n"
	sig := make([]byte, 192)
	for j := range sig {
		sig[j] = byte(r.Uint32())
	}
	b64 := base64.StdEncoding.EncodeToString(sig)
	hdr := fmt.Sprintf("Received: from mx1.example.com (mx1.example.com [203.0.113.%d])\r\n\tby mx.acme.test (Postfix) with ESMTPS id %X\r\n\tfor <%s>; Mon, 2 Mar 2026 10:00:00 +0100\r\n"+
		"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=s1;\r\n\th=from:to:subject:date:message-id:mime-version; bh=%s;\r\n\tb=%s\r\n"+
		"Authentication-Results: mx.acme.test; dkim=pass header.d=example.com; spf=pass smtp.mailfrom=%s\r\n"+
		"From: Ann Example <%s>\r\nTo: Acme Support <%s>\r\nSubject: Question %d\r\nMessage-ID: <q%d@example.com>\r\n"+
		"Date: Mon, 2 Mar 2026 10:00:00 +0100\r\nMIME-Version: 1.0\r\nX-Mailer: Microsoft Outlook 16.0\r\n",
		1+r.IntN(250), r.Uint32(), inbox, b64[:44], b64, "bounces@example.com", customer, inbox, i, i)
	encode := func(s, cte string) string {
		switch cte {
		case "base64":
			e := base64.StdEncoding.EncodeToString([]byte(s))
			var lines []string
			for len(e) > 76 {
				lines, e = append(lines, e[:76]), e[76:]
			}
			return strings.Join(append(lines, e), "\r\n") + "\r\n"
		case "quoted-printable":
			var b strings.Builder
			w := quotedprintable.NewWriter(&b)
			_, _ = w.Write([]byte(s))
			_ = w.Close()
			return b.String()
		}
		return s
	}
	cte := []string{"8bit", "quoted-printable", "base64"}[r.IntN(3)]
	textPart := "Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: " + cte + "\r\n\r\n" + encode(text, cte)
	if r.IntN(100) < 55 {
		return hdr + textPart
	}
	var h strings.Builder
	h.WriteString("<!DOCTYPE html>\n<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\n<style>body{font-family:Arial,Helvetica,sans-serif;font-size:14px;color:#222}p{margin:0 0 12px}</style></head>\n<body><div dir=\"ltr\">\n")
	for range 2 + r.IntN(6) {
		h.WriteString("<p style=\"margin:0 0 12px 0;line-height:1.4\">" + para(300+r.IntN(1500)) + "</p>\n")
	}
	h.WriteString("<div class=\"sig\">-- <br>Ann Example<br><a href=\"https://example.com/?utm_source=mail&amp;utm_medium=sig\">https://example.com</a></div></div>\n</body></html>\n")
	return hdr + "Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n--alt\r\n" + textPart + "\r\n--alt\r\n" +
		"Content-Type: text/html; charset=\"utf-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		encode(strings.ReplaceAll(h.String(), "\n", "\r\n"), "quoted-printable") + "\r\n--alt--\r\n"
}

// logTableSizes logs the largest tables of a PostgreSQL database, split
// into the heap, its TOAST (with the TOAST index) and its indexes, with
// the live and dead rows the statistics count: where the bytes are when
// the ratio fails.
func logTableSizes(t *testing.T, db *sql.DB) {
	rows, err := db.Query(`SELECT c.relname, pg_total_relation_size(c.oid), pg_relation_size(c.oid),
		COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0), pg_indexes_size(c.oid),
		COALESCE(s.n_live_tup, 0), COALESCE(s.n_dead_tup, 0)
		FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
		WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace ORDER BY 2 DESC LIMIT 8`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var total, heap, toast, idx, live, dead int64
		if err := rows.Scan(&name, &total, &heap, &toast, &idx, &live, &dead); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d bytes (heap %d, toast %d, indexes %d; %d rows live, %d dead)", name, total, heap, toast, idx, live, dead)
	}
}
