package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"

	"github.com/tendhq/tend/cmd/tend/config"
	"github.com/tendhq/tend/followup"
	"github.com/tendhq/tend/mail/imappoll"
	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
)

// imapDeliverer feeds IMAP mail into the same ingest path as SMTP: each
// message streams from the server's literal into the doors' spool, and
// the poller's concurrent deliveries meet in the group committer.
type imapDeliverer struct {
	pipe  *ingest.Pipeline
	spool *ingest.Spooler
}

func (d imapDeliverer) Spool(ctx context.Context, r io.Reader, size int64) (imappoll.Spooled, error) {
	return d.spool.SpoolSized(ctx, r, size)
}

func (d imapDeliverer) Deliver(ctx context.Context, ms []imappoll.Spooled, dls []imappoll.Delivery) ([]imappoll.DeliveryResult, []error) {
	sps, envs := make([]*ingest.Spool, len(ms)), make([]ingest.Envelope, len(ms))
	for i, m := range ms {
		sp, ok := m.(*ingest.Spool)
		if !ok {
			errs := make([]error, len(ms))
			for j := range errs {
				errs[j] = fmt.Errorf("imap: deliver %T, not a spool of this deliverer", m)
			}
			return make([]imappoll.DeliveryResult, len(ms)), errs
		}
		dl := dls[i]
		sps[i], envs[i] = sp, ingest.Envelope{To: []string{dl.Inbox}, Source: dl.Source, Imported: dl.Imported, Unknown: true}
	}
	ds, errs := d.pipe.DeliverSpools(ctx, sps, envs)
	res := make([]imappoll.DeliveryResult, len(ds))
	for i, dd := range ds {
		res[i] = imappoll.DeliveryResult{Duplicate: dd.Duplicate}
	}
	return res, errs
}

// imapState keeps the pollers' checkpoints, leases and secrets in the
// database, so that several replicas share them.
type imapState struct{ st *storage.Store }

func (s imapState) MailboxState(ctx context.Context, key string) (imappoll.MailboxState, bool, error) {
	m, ok, err := s.st.GetMailboxState(ctx, key)
	if err != nil || !ok {
		return imappoll.MailboxState{}, ok, err
	}
	return imappoll.MailboxState{UIDValidity: m.UIDValidity, LastUID: m.LastUID, ConnectedAt: m.ConnectedAt,
		BackfillDone: m.BackfillDone, Synced: m.Synced, Total: m.Total}, true, nil
}

func (s imapState) SaveMailboxState(ctx context.Context, key string, m imappoll.MailboxState) error {
	return s.st.PutMailboxState(ctx, storage.MailboxState{Key: key, UIDValidity: m.UIDValidity, LastUID: m.LastUID,
		ConnectedAt: m.ConnectedAt, BackfillDone: m.BackfillDone, Synced: m.Synced, Total: m.Total})
}

func (s imapState) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	return s.st.AcquireLease(ctx, name, holder, ttl)
}

func (s imapState) ReleaseLease(ctx context.Context, name, holder string) error {
	return s.st.ReleaseLease(ctx, name, holder)
}

func (s imapState) Secret(ctx context.Context, name string) (string, bool, error) {
	return s.st.Setting(ctx, "secret:"+name)
}

func (s imapState) SaveSecret(ctx context.Context, name, value string) error {
	return s.st.SaveSetting(ctx, "secret:"+name, value)
}

// imapPollers builds one poller per inbox with an imap block.
func imapPollers(cfg config.Config, st *storage.Store, pipe *ingest.Pipeline, owner string, reg prometheus.Registerer, log *slog.Logger) ([]*imappoll.Poller, error) {
	var out []*imappoll.Poller
	spool := ingest.NewSpooler(ingest.SpoolDir(cfg.DataDir), diskGuard(cfg))
	for _, in := range cfg.Inboxes {
		c := in.IMAP
		if c == nil {
			continue
		}
		opts := imapOptions(in, st)
		opts.Holder, opts.Registerer, opts.Logger = owner, reg, log.With("inbox", in.Address)
		opts.LeaseTTL = cfg.Database.Lease
		p, err := imappoll.New(opts, imapDeliverer{pipe: pipe, spool: spool}, imapState{st})
		if err != nil {
			return nil, fmt.Errorf("inbox %s: imap: %w", in.Address, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// imapOptions are the poller's options from an inbox with an imap block.
func imapOptions(in config.Inbox, st *storage.Store) imappoll.Options {
	c := in.IMAP
	opts := imappoll.Options{
		Inbox: strings.ToLower(in.Address), Addr: c.Addr, TLS: c.TLS, Insecure: c.Insecure, Username: c.Username,
		Auth: c.Auth, Mailbox: c.Mailbox, PollInterval: c.PollInterval, StaleAfter: c.StaleAfter,
		BackfillLive: in.Backfill == "live", BackfillRate: float64(c.BackfillRate), After: imapAfter(c.After),
	}
	password := c.Password
	opts.Password = func(context.Context) (string, error) { return password, nil }
	switch {
	case c.OAuth != nil:
		opts.Token = imappoll.NewOAuth2Token(imapOAuth(c.OAuth), imapState{st}, "oauth-refresh:"+opts.Inbox, c.OAuth.RefreshToken, storage.SystemClock{})
	case c.TokenFile != "":
		opts.Token = imappoll.FileToken{Path: c.TokenFile}
	case c.TokenCommand != "":
		opts.Token = imappoll.CommandToken{Command: []string{"/bin/sh", "-c", c.TokenCommand}, Timeout: 30 * time.Second}
	}
	return opts
}

func imapOAuth(o *config.OAuth) *oauth2.Config {
	return &oauth2.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret, Endpoint: oauth2.Endpoint{TokenURL: o.TokenURL}}
}

// imapReady reports a stale or failing mailbox to /readyz.
func imapReady(p *imappoll.Poller) func(context.Context) error {
	return func(context.Context) error {
		s := p.Status()
		if s.Stale {
			return fmt.Errorf("%s/%s: no successful fetch since %s (%s): %s", s.Inbox, s.Mailbox, s.LastSuccess.Format(time.RFC3339), s.State, s.LastError)
		}
		return nil
	}
}

func imapAfter(a config.After) imappoll.After {
	switch a.Action {
	case config.AfterMove:
		return imappoll.After{Action: imappoll.AfterMove, Folder: a.Folder}
	case config.AfterDelete:
		return imappoll.After{Action: imappoll.AfterDelete}
	default:
		return imappoll.After{Action: imappoll.AfterSeen}
	}
}

// imapAlerts mails the admins and leads when a mailbox has been failing
// for its stale_after, and again when it recovers (followup.MailboxAlert
// keeps that state in the database).
type imapAlerts struct {
	exec    *followup.Executor
	pollers []*imappoll.Poller
	inboxes map[string]config.Inbox // by lower-case address
	log     *slog.Logger
	// stale remembers which mailboxes this process last saw stale, only
	// to log each change once; what is mailed is decided in the database.
	stale map[*imappoll.Poller]bool
}

func newIMAPAlerts(cfg config.Config, exec *followup.Executor, pollers []*imappoll.Poller, log *slog.Logger) *imapAlerts {
	a := &imapAlerts{exec: exec, pollers: pollers, inboxes: map[string]config.Inbox{}, log: log, stale: map[*imappoll.Poller]bool{}}
	for _, in := range cfg.Inboxes {
		a.inboxes[strings.ToLower(in.Address)] = in
	}
	return a
}

// check looks at every mailbox once.
func (a *imapAlerts) check(ctx context.Context) {
	for _, p := range a.pollers {
		s := p.Status()
		if s.State == imappoll.StateLeaseHeldElsewhere || s.State == imappoll.StateStopped {
			// Another replica polls it (and judges it), or it is not
			// running: its staleness here says nothing about the mailbox.
			continue
		}
		in := a.inboxes[s.Inbox]
		h := followup.MailboxHealth{Inbox: s.Inbox, InboxName: in.Name, Mailbox: s.Mailbox, Stale: s.Stale,
			FailingSince: s.FailingSince, LastSuccess: s.LastSuccess, Error: s.LastError}
		if in.IMAP != nil {
			h.Server, h.User, h.StaleAfter = in.IMAP.Addr, in.IMAP.Username, in.IMAP.StaleAfter
		}
		if _, err := a.exec.MailboxAlert(ctx, h); err != nil {
			a.log.Error("imap mailbox alert", "inbox", s.Inbox, "mailbox", s.Mailbox, "err", err)
			continue
		}
		if s.Stale != a.stale[p] {
			a.stale[p] = s.Stale
			if s.Stale {
				a.log.Warn("imap mailbox stale: admins and leads are mailed once", "inbox", s.Inbox, "mailbox", s.Mailbox, "failing_since", s.FailingSince, "err", s.LastError)
			}
		}
	}
}

// alertPeriod is how often imapAlerts looks: four times per the shortest
// stale_after, at most every 15 seconds, so an alert follows the
// staleness promptly.
func alertPeriod(cfg config.Config) time.Duration {
	d := 15 * time.Second
	for _, in := range cfg.Inboxes {
		if in.IMAP != nil && in.IMAP.StaleAfter > 0 {
			d = min(d, in.IMAP.StaleAfter/4)
		}
	}
	return max(d, 10*time.Millisecond)
}

// run checks every period until ctx ends.
func (a *imapAlerts) run(ctx context.Context, period time.Duration) error {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			a.check(ctx)
		}
	}
}
