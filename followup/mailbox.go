package followup

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tendhq/tend/mail/compose"
	"github.com/tendhq/tend/rules"
	"github.com/tendhq/tend/storage"
	"github.com/tendhq/tend/vocab"
)

// Mailbox alert templates.
const (
	templateMailboxDown = "notify_mailbox_down"
	templateMailboxUp   = "notify_mailbox_up"
)

// MailboxHealth is what an IMAP poller says of its mailbox, for
// MailboxAlert. followup does not import the poller: cmd fills this in.
type MailboxHealth struct {
	// Inbox is the inbox address the mailbox feeds, InboxName its display
	// name (the alert's sender); Mailbox the IMAP mailbox, Server and User
	// where and as whom it logs in.
	Inbox, InboxName, Mailbox, Server, User string
	// Stale is true when nothing was read for StaleAfter.
	Stale      bool
	StaleAfter time.Duration
	// FailingSince is the first failure since the last success; zero
	// while it works.
	FailingSince time.Time
	// LastSuccess is the last successful read in this process (zero: none
	// yet).
	LastSuccess time.Time
	// Error is the last error the server (or the connection) gave.
	Error string
}

// mailboxState is the durable alert state of one mailbox, a setting.
type mailboxState struct {
	Down  bool      `json:"down"`
	Since time.Time `json:"since"`
	Error string    `json:"error,omitempty"`
	// At is when the alert (or the recovery mail) was queued.
	At time.Time `json:"at"`
}

// mailboxKey names the setting that holds a mailbox's alert state.
func mailboxKey(h MailboxHealth) string {
	return "imap-alert:" + strings.ToLower(h.Inbox) + "/" + h.Mailbox
}

// MailboxAlert mails every admin and lead once when a mailbox has been
// stale for StaleAfter (notify_mailbox_down: which mailbox, since when,
// the server's error), and once when it reads mail again
// (notify_mailbox_up). It returns the template it queued, or "".
//
// The state lives in the database, changed by compare-and-set in the
// transaction that queues the mails: a restart while the mailbox fails
// sends no second alert (and still sends the recovery), and of several
// replicas only one sends each mail. Recovery needs a success after the
// stored failure began, not only "not stale": a freshly started poller
// is not stale yet, and must not announce a recovery it has not seen.
func (x *Executor) MailboxAlert(ctx context.Context, h MailboxHealth) (string, error) {
	key := mailboxKey(h)
	var sent string
	err := x.opts.Store.InTx(ctx, func(tx *storage.Tx) error {
		sent = ""
		old, _, err := tx.Setting(ctx, key)
		if err != nil {
			return err
		}
		var cur mailboxState
		if old != "" {
			if err := json.Unmarshal([]byte(old), &cur); err != nil {
				return fmt.Errorf("mailbox alert state %s: %w", key, err)
			}
		}
		now := x.opts.Clock.Now()
		var next mailboxState
		var data rules.MailboxData
		switch {
		case h.Stale && !cur.Down:
			since := h.FailingSince
			if since.IsZero() {
				since = h.LastSuccess
			}
			if since.IsZero() {
				since = now.Add(-h.StaleAfter)
			}
			next = mailboxState{Down: true, Since: since, Error: h.Error, At: now}
			sent = templateMailboxDown
			data = mailboxData(h, since, h.LastSuccess, now)
		case cur.Down && !h.Stale && h.LastSuccess.After(cur.Since):
			next = mailboxState{Since: cur.Since, Error: cur.Error, At: now}
			sent = templateMailboxUp
			data = mailboxData(h, cur.Since, h.LastSuccess, h.LastSuccess)
			if data.Error == "" {
				data.Error = cur.Error
			}
			data.RecoveredAt = h.LastSuccess
		default:
			return nil
		}
		b, err := json.Marshal(next)
		if err != nil {
			return err
		}
		swapped, err := tx.SwapSetting(ctx, key, old, string(b))
		if err != nil || !swapped {
			sent = ""
			return err // another replica changed it first: it mails
		}
		return x.mailAdmins(ctx, tx, h, sent, data)
	})
	if err != nil {
		return "", fmt.Errorf("mailbox alert %s: %w", key, err)
	}
	switch sent {
	case templateMailboxDown:
		x.log.Warn("imap mailbox alert queued", "inbox", h.Inbox, "mailbox", h.Mailbox, "template", sent, "failing_since", h.FailingSince, "err", h.Error)
	case templateMailboxUp:
		x.log.Info("imap mailbox recovery mail queued", "inbox", h.Inbox, "mailbox", h.Mailbox, "template", sent, "last_success", h.LastSuccess)
	}
	return sent, nil
}

func mailboxData(h MailboxHealth, since, last, until time.Time) rules.MailboxData {
	return rules.MailboxData{
		Inbox: h.Inbox, Name: h.Mailbox, Server: h.Server, User: h.User, Since: since,
		For:         strings.TrimSuffix(rules.DescribeAgo(until.Sub(since)), " ago"),
		LastSuccess: last, Error: h.Error,
		StaleAfter: strings.TrimSuffix(rules.DescribeAgo(h.StaleAfter), " ago"),
	}
}

// mailAdmins queues template to every admin and lead, on no ticket.
// Plain agents are not told: the mailbox's credentials are an admin's
// business.
func (x *Executor) mailAdmins(ctx context.Context, tx *storage.Tx, h MailboxHealth, template string, md rules.MailboxData) error {
	agents, err := tx.Agents(ctx)
	if err != nil {
		return err
	}
	for _, ag := range agents {
		if ag.Role != storage.RoleLead && ag.Role != storage.RoleAdmin {
			continue
		}
		if strings.HasSuffix(ag.Email, "@localhost") && ag.Role == storage.RoleAdmin {
			continue // the bootstrap admin has no real mailbox
		}
		data := rules.TemplateData{
			Agent:   rules.Person{Address: ag.Email, Name: ag.Name},
			Inbox:   rules.InboxData{Name: h.InboxName, Address: h.Inbox},
			Mailbox: md,
		}
		r, err := x.opts.Templates.RenderIn(template, h.Inbox, "", data)
		if err != nil {
			return fmt.Errorf("template %s: %w", template, err)
		}
		m := compose.Message{
			From:    compose.Address{Name: h.InboxName, Email: h.Inbox},
			To:      []compose.Address{{Name: ag.Name, Email: ag.Email}},
			Subject: r.Subject, Text: r.Text, HTML: r.HTML,
		}
		row := storage.OutboxMail{Kind: storage.OutboxToStaff, Auto: true, EnvTo: ag.Email, Template: template}
		msg := storage.Message{FromAddr: h.Inbox, FromName: h.InboxName, ToAddrs: ag.Email, Subject: r.Subject,
			Class: vocab.ClassHuman, Role: "system", Text: r.Text, HTML: r.HTML}
		if _, err := tx.QueueMail(ctx, row, msg, func(id int64) (storage.Composed, error) {
			return x.build(0, id, true, m)
		}); err != nil {
			return err
		}
	}
	return nil
}
