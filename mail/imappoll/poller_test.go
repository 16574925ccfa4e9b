package imappoll

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tendhq/tend/storage/storagetest"
)

const wait = 10 * time.Second // generous: the machine is shared

func TestFirstSyncAfterActions(t *testing.T) {
	tests := []struct {
		name  string
		caps  imap.CapSet
		after After
		// want in INBOX (messages, unseen) and in the folder
		inbox, unseen, folder int
	}{
		{"seen", fullCaps, After{Action: AfterSeen}, 4, 0, 0},
		{"move", fullCaps, After{Action: AfterMove, Folder: "Processed"}, 0, 0, 4},
		{"move without MOVE or UIDPLUS", oldCaps, After{Action: AfterMove, Folder: "Archive/tend"}, 0, 0, 4},
		{"delete", fullCaps, After{Action: AfterDelete}, 0, 0, 0},
		{"delete without UIDPLUS", oldCaps, After{Action: AfterDelete}, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startMem(t, tc.caps)
			_, ids := srv.seed(t, "INBOX")
			clock := storagetest.NewFakeClock(t0)
			d, st := newFakeDeliverer(), newFakeStore(clock)
			opts := testOptions(t, srv.addr, clock)
			opts.After = tc.after
			p := start(t, opts, d, st)
			waitFor(t, wait, "all delivered and acted on", func() bool {
				n, unseen := srv.status(t, "INBOX")
				return d.storedCount() == len(ids) && n == tc.inbox && unseen == tc.unseen
			})
			d.checkExactlyOnce(t, ids)
			if tc.after.Action == AfterMove {
				if n, _ := srv.status(t, tc.after.Folder); n != tc.folder {
					t.Errorf("folder holds %d, want %d", n, tc.folder)
				}
			}
			waitFor(t, wait, "backfill done", func() bool { return st.state(p.opts.key()).BackfillDone })
			s := p.Status()
			if s.Synced != len(ids) || s.Total != len(ids) || s.Backfilling {
				t.Errorf("progress = %d/%d backfilling=%v, want %d/%d done", s.Synced, s.Total, s.Backfilling, len(ids), len(ids))
			}
			if s.LastSuccess.IsZero() || s.Stale {
				t.Errorf("status = %+v, want a success and not stale", s)
			}
		})
	}
}

func TestNewMailWhileRunning(t *testing.T) {
	for _, mode := range []struct {
		name   string
		noIdle bool
		state  State
	}{{"idle", false, StateIdle}, {"polling", true, StatePolling}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			srv, clock, d, st, opts := memRig(t)
			opts.DisableIdle = mode.noIdle
			if !mode.noIdle {
				// Only an EXISTS from the server can wake it within the test.
				opts.IdleRestart, opts.PollInterval = time.Hour, time.Hour
			}
			p := start(t, opts, d, st)
			waitFor(t, wait, "waiting state", func() bool { return p.Status().State == mode.state })
			for i := range 3 {
				raw, _ := genMessage(i)
				srv.append(t, "INBOX", raw, clock.Now().Add(time.Minute))
				waitFor(t, wait, "new mail delivered", func() bool { return d.storedCount() == i+1 })
			}
			d.mu.Lock()
			defer d.mu.Unlock()
			for id, imp := range d.imported {
				if imp {
					t.Errorf("%s is live mail but was delivered as imported", id)
				}
			}
		})
	}
}

// TestFlagUpdatesDuringFetch: FETCH responses that carry no body (flags
// another session changed while our FETCH ran) are not messages. They were
// delivered as empty mails, and the real body that followed was dropped as
// already taken: a replica killed mid-move left tickets with no text.
func TestFlagUpdatesDuringFetch(t *testing.T) {
	t.Parallel()
	srv, _, d, st, opts := memRig(t)
	_, ids := srv.seed(t, "INBOX")
	srv.flagsFirst.Store(true)
	start(t, opts, d, st)
	waitFor(t, wait, "all stored", func() bool { return d.storedCount() >= len(ids) })
	d.checkExactlyOnce(t, ids)
	d.mu.Lock()
	defer d.mu.Unlock()
	if n := d.calls[""]; n != 0 {
		t.Errorf("%d messages without a Message-ID delivered: flag updates taken for mail", n)
	}
}

func TestCrashResumeDeliversEachOnce(t *testing.T) {
	t.Parallel()
	srv := startMem(t, fullCaps)
	const n = 250
	var ids []string
	for i := range n {
		raw, id := genMessage(i)
		srv.append(t, "INBOX", raw, t0.Add(-time.Hour))
		ids = append(ids, id)
	}
	clock := storagetest.NewFakeClock(t0)
	d, st := newFakeDeliverer(), newFakeStore(clock)
	opts := testOptions(t, srv.addr, clock)
	opts.BatchSize = 20

	p1, err := New(opts, d, st)
	if err != nil {
		t.Fatal(err)
	}
	crashed := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	d.after = func(total int) {
		if total == 97 { // mid-batch, mid-backfill
			cancel()
		}
	}
	// One message the first process could not store holds its checkpoint
	// back while the batches after it are delivered: the restart fetches
	// those again, and progress must not count them twice (it showed
	// 253/253 and 300/300).
	stuck := ids[40]
	d.setFail(func(id string) error {
		if id == stuck {
			return errDatabaseDown
		}
		return nil
	})
	go func() { _ = p1.Run(ctx); close(crashed) }()
	<-crashed
	cp := st.state(p1.opts.key())
	if cp.LastUID != 40 || cp.BackfillDone {
		t.Fatalf("checkpoint after crash = %+v, want a partial backfill held at UID 40", cp)
	}
	if cp.Synced != 40 {
		t.Errorf("progress after crash = %d/%d, want 40 synced: only what the checkpoint covers", cp.Synced, cp.Total)
	}
	d.setFail(nil)
	d.mu.Lock()
	d.after = nil
	d.mu.Unlock()

	p2, err := New(opts, d, st) // a new process: nothing in memory
	if err != nil {
		t.Fatal(err)
	}
	run(t, p2)
	waitFor(t, wait, "all delivered and seen", func() bool {
		_, unseen := srv.status(t, "INBOX")
		return d.storedCount() == n && unseen == 0 && st.state(p2.opts.key()).BackfillDone
	})
	d.checkExactlyOnce(t, ids)
	// The checkpoint bounds the redelivery to what was not yet flagged: from
	// the stuck message on, at most up to the two batches in flight (one
	// fetched, one committing).
	d.mu.Lock()
	calls := 0
	for _, c := range d.calls {
		calls += c
	}
	d.mu.Unlock()
	if calls > n+(100-40)+2*opts.BatchSize {
		t.Errorf("%d Deliver calls for %d messages: the checkpoint did not hold", calls, n)
	}
	if s := st.state(p2.opts.key()); s.Synced != n || s.Total != n {
		t.Errorf("progress = %d/%d, want %d/%d", s.Synced, s.Total, n, n)
	}
}

func TestDeliverFailureLeavesMessageForNextPass(t *testing.T) {
	t.Parallel()
	srv := startMem(t, fullCaps)
	_, ids := srv.seed(t, "INBOX")
	clock := storagetest.NewFakeClock(t0)
	d, st := newFakeDeliverer(), newFakeStore(clock)
	stuck := ids[1]
	d.setFail(func(id string) error {
		if id == stuck {
			return errDatabaseDown
		}
		return nil
	})
	opts := testOptions(t, srv.addr, clock)
	p := start(t, opts, d, st)
	waitFor(t, wait, "the others delivered and a retry of the stuck one", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.stored) == len(ids)-1 && d.calls[stuck] >= 3
	})
	if _, unseen := srv.status(t, "INBOX"); unseen != 1 {
		t.Errorf("unseen = %d, want only the undelivered message", unseen)
	}
	s := p.Status()
	if s.Pending != 1 || !strings.Contains(s.LastError, errDatabaseDown.Error()) {
		t.Errorf("status = %+v, want one pending and the database error", s)
	}
	// The undelivered message (UID 2) holds the checkpoint back.
	if cp := st.state(p.opts.key()); cp.LastUID != 1 {
		t.Errorf("checkpoint LastUID = %d, want 1", cp.LastUID)
	}

	d.setFail(nil) // the database is back
	waitFor(t, wait, "stuck message delivered and seen", func() bool {
		_, unseen := srv.status(t, "INBOX")
		return d.storedCount() == len(ids) && unseen == 0
	})
	d.checkExactlyOnce(t, ids)
	waitFor(t, wait, "checkpoint past every message", func() bool { return st.state(p.opts.key()).LastUID == uint32(len(ids)) })
	if s := p.Status(); s.Pending != 0 {
		t.Errorf("pending = %d after recovery", s.Pending)
	}
}

func TestUIDValidityChangeDuplicatesNothing(t *testing.T) {
	t.Parallel()
	srv := startMem(t, fullCaps)
	if err := srv.user.Create("Support", nil); err != nil {
		t.Fatal(err)
	}
	raws, ids := srv.seed(t, "Support")
	clock := storagetest.NewFakeClock(t0)
	d, st := newFakeDeliverer(), newFakeStore(clock)
	opts := testOptions(t, srv.addr, clock)
	opts.Mailbox = "Support"
	opts.IdleRestart = 30 * time.Millisecond // re-SELECT often: the old mailbox sends nothing
	p := start(t, opts, d, st)
	waitFor(t, wait, "first sync", func() bool { return d.storedCount() == len(ids) })
	old := st.state(p.opts.key()).UIDValidity

	// Recreate the mailbox with the same mail plus one new message.
	if err := srv.user.Delete("Support"); err != nil {
		t.Fatal(err)
	}
	if err := srv.user.Create("Support", nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range raws {
		srv.append(t, "Support", r, time.Time{})
	}
	raw, id := genMessage(1)
	srv.append(t, "Support", raw, time.Time{})
	ids = append(ids, id)

	waitFor(t, wait, "resync", func() bool {
		_, unseen := srv.status(t, "Support")
		s := st.state(p.opts.key())
		return d.storedCount() == len(ids) && unseen == 0 && s.UIDValidity != old && s.LastUID == uint32(len(ids))
	})
	d.checkExactlyOnce(t, ids)
}

func TestBackfillImported(t *testing.T) {
	for _, live := range []bool{false, true} {
		t.Run(fmt.Sprintf("live=%v", live), func(t *testing.T) {
			t.Parallel()
			srv := startMem(t, fullCaps)
			clock := storagetest.NewFakeClock(t0)
			var oldIDs []string
			for i := range 3 {
				raw, id := genMessage(i)
				srv.append(t, "INBOX", raw, t0.AddDate(-1, 0, i))
				oldIDs = append(oldIDs, id)
			}
			d, st := newFakeDeliverer(), newFakeStore(clock)
			opts := testOptions(t, srv.addr, clock)
			opts.BackfillLive = live
			p := start(t, opts, d, st)
			waitFor(t, wait, "backfill", func() bool { return d.storedCount() == 3 })
			if got := st.state(p.opts.key()).ConnectedAt; !got.Equal(t0) {
				t.Errorf("ConnectedAt = %v, want %v", got, t0)
			}
			raw, newID := genMessage(99)
			srv.append(t, "INBOX", raw, t0.Add(time.Minute))
			waitFor(t, wait, "live mail", func() bool { return d.storedCount() == 4 })
			d.mu.Lock()
			defer d.mu.Unlock()
			for _, id := range oldIDs {
				if d.imported[id] == live {
					t.Errorf("old %s: imported = %v with backfill live=%v", id, d.imported[id], live)
				}
				if !strings.HasPrefix(d.sources[id], "imap:support@acme.example/INBOX/") {
					t.Errorf("source = %q", d.sources[id])
				}
			}
			if d.imported[newID] {
				t.Errorf("new mail delivered as imported")
			}
		})
	}
}

func TestLeaseHeldElsewhere(t *testing.T) {
	t.Parallel()
	srv, clock := startMemOne(t)
	d, st := newFakeDeliverer(), newFakeStore(clock)
	opts := testOptions(t, srv.addr, clock)
	name := "imap:support@acme.example/INBOX"
	if ok, _ := st.AcquireLease(context.Background(), name, "replica-2", time.Hour); !ok {
		t.Fatal("could not take the lease for the other replica")
	}
	p := start(t, opts, d, st)
	waitFor(t, wait, "lease_held_elsewhere", func() bool { return p.Status().State == StateLeaseHeldElsewhere })
	// Several retries later it still has not touched the mailbox.
	waitFor(t, wait, "retries", func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.saves == 0 && p.Status().State == StateLeaseHeldElsewhere
	})
	if d.storedCount() != 0 {
		t.Fatal("polled a mailbox whose lease another replica holds")
	}
	// The other replica stops (its lease expires): this one takes over.
	clock.Advance(2 * time.Hour)
	waitFor(t, wait, "take over", func() bool { return d.storedCount() == 1 })
}

// TestLeaseReleasedElsewhere: when the replica polling a mailbox stops
// and releases the lease, a replica waiting for it takes over within a
// few seconds, not after its poll interval (an hour here) or the lease.
func TestLeaseReleasedElsewhere(t *testing.T) {
	t.Parallel()
	srv, clock := startMemOne(t)
	d, st := newFakeDeliverer(), newFakeStore(clock)
	opts := testOptions(t, srv.addr, clock)
	opts.PollInterval, opts.LeaseTTL = time.Hour, time.Hour
	name := "imap:support@acme.example/INBOX"
	if ok, _ := st.AcquireLease(context.Background(), name, "replica-2", time.Hour); !ok {
		t.Fatal("could not take the lease for the other replica")
	}
	p := start(t, opts, d, st)
	waitFor(t, wait, "lease_held_elsewhere", func() bool { return p.Status().State == StateLeaseHeldElsewhere })
	if err := st.ReleaseLease(context.Background(), name, "replica-2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, wait, "take over after the release", func() bool { return d.storedCount() == 1 })
}

func TestBadCredentialsDoNotStopOthers(t *testing.T) {
	t.Parallel()
	srv, clock := startMemOne(t)
	st := newFakeStore(clock)

	dBad, dGood := newFakeDeliverer(), newFakeDeliverer()
	bad := testOptions(t, srv.addr, clock)
	bad.Inbox = "sales@acme.example"
	bad.Auth = AuthPlain
	bad.Password = func(context.Context) (string, error) { return "wrong", nil }
	pBad, err := New(bad, dBad, st)
	if err != nil {
		t.Fatal(err)
	}
	good := testOptions(t, srv.addr, clock)
	pGood, err := New(good, dGood, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunAll(ctx, []*Poller{pBad, pGood}) }()
	waitFor(t, wait, "bad auth_failed, good delivered", func() bool {
		return pBad.Status().State == StateAuthFailed && dGood.storedCount() == 1
	})
	if s := pBad.Status(); !strings.Contains(s.LastError, "authentication failed") {
		t.Errorf("bad poller last error = %q", s.LastError)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("RunAll = %v", err)
	}
	if pBad.Status().State != StateStopped || pGood.Status().State != StateStopped {
		t.Error("pollers not stopped")
	}
}

func TestServerRestartReconnects(t *testing.T) {
	t.Parallel()
	srv, _, d, st, opts := memRig(t)
	opts.IdleRestart, opts.PollInterval = time.Hour, time.Hour
	p := start(t, opts, d, st)
	waitFor(t, wait, "idle", func() bool { return p.Status().State == StateIdle })
	srv.restart(t)
	waitFor(t, wait, "error recorded", func() bool { return p.Status().LastError != "" })
	waitFor(t, wait, "idle again", func() bool { return p.Status().State == StateIdle })
	raw, _ := genMessage(7)
	srv.append(t, "INBOX", raw, time.Time{})
	waitFor(t, wait, "delivered after restart", func() bool { return d.storedCount() == 1 })
}

func TestMissingMailboxBacksOffAndStale(t *testing.T) {
	t.Parallel()
	srv, clock, d, st, opts := memRig(t)
	opts.Mailbox = "Gone"
	p := start(t, opts, d, st)
	waitFor(t, wait, "backoff with the select error", func() bool {
		s := p.Status()
		return s.State == StateBackoff && strings.Contains(s.LastError, "select Gone")
	})
	if p.Status().Stale {
		t.Error("stale before StaleAfter passed")
	}
	clock.Advance(p.opts.StaleAfter + time.Second)
	if !p.Status().Stale {
		t.Error("not stale after StaleAfter without a successful read")
	}
	// The mailbox comes back: the poller recovers on its own.
	if err := srv.user.Create("Gone", nil); err != nil {
		t.Fatal(err)
	}
	raw, _ := genMessage(3)
	srv.append(t, "Gone", raw, time.Time{})
	waitFor(t, wait, "recovered", func() bool { return d.storedCount() == 1 && !p.Status().Stale })
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	srv := startMem(t, fullCaps)
	_, ids := srv.seed(t, "INBOX")
	clock := storagetest.NewFakeClock(t0)
	reg := prometheus.NewRegistry()
	d, st := newFakeDeliverer(), newFakeStore(clock)
	opts := testOptions(t, srv.addr, clock)
	opts.Registerer = reg
	p, err := New(opts, d, st)
	if err != nil {
		t.Fatal(err)
	}
	other := opts
	other.Inbox = "billing@acme.example"
	if _, err := New(other, d, st); err != nil {
		t.Fatalf("second poller on one registry: %v", err)
	}
	run(t, p)
	waitFor(t, wait, "delivered", func() bool { return d.storedCount() == len(ids) })
	waitFor(t, wait, "counted", func() bool {
		return testutil.ToFloat64(p.met.fetched.WithLabelValues(opts.Inbox, "INBOX")) == float64(len(ids))
	})
	if v := testutil.ToFloat64(p.met.lastSuccess.WithLabelValues(opts.Inbox, "INBOX")); v != float64(t0.Unix()) {
		t.Errorf("last success = %v, want %v", v, t0.Unix())
	}
	waitFor(t, wait, "idle gauge", func() bool {
		return testutil.ToFloat64(p.met.state.WithLabelValues(opts.Inbox, "INBOX", string(StateIdle))) == 1
	})
}

func TestOptionsValidation(t *testing.T) {
	pw := func(context.Context) (string, error) { return "x", nil }
	base := Options{Inbox: "a@b", Addr: "h:993", Username: "u", Password: pw, Holder: "r"}
	tests := []struct {
		name   string
		mutate func(*Options)
		errSub string
	}{
		{"ok defaults", func(*Options) {}, ""},
		{"no inbox", func(o *Options) { o.Inbox = "" }, "inbox"},
		{"plain without insecure", func(o *Options) { o.TLS = "none" }, "insecure"},
		{"plain with insecure", func(o *Options) { o.TLS = "none"; o.Insecure = true }, ""},
		{"unknown tls", func(o *Options) { o.TLS = "ssl3" }, "tls"},
		{"oauth without token", func(o *Options) { o.Auth = "xoauth2" }, "token"},
		{"unknown auth", func(o *Options) { o.Auth = "cram-md5" }, "auth"},
		{"no password", func(o *Options) { o.Password = nil }, "password"},
		{"move without folder", func(o *Options) { o.After = After{Action: AfterMove} }, "folder"},
		{"move into itself", func(o *Options) { o.After = After{Action: AfterMove, Folder: "INBOX"} }, "watched"},
		{"no holder", func(o *Options) { o.Holder = "" }, "holder"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.mutate(&o)
			got, err := o.withDefaults()
			if tc.errSub == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if got.Mailbox != "INBOX" || got.TLS == "" || got.BatchSize != 100 || got.IdleRestart != 25*time.Minute || got.StaleAfter != 10*time.Minute {
					t.Errorf("defaults not applied: %+v", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errSub) {
				t.Fatalf("error = %v, want one mentioning %q", err, tc.errSub)
			}
		})
	}
}

func TestBackoffBounded(t *testing.T) {
	p := &Poller{opts: Options{MinBackoff: time.Second, MaxBackoff: time.Minute, AuthBackoff: 5 * time.Minute}}
	for failures := range 20 {
		d := p.backoff(failures, false)
		if d < 500*time.Millisecond || d > time.Minute {
			t.Errorf("backoff(%d) = %v out of [0.5s, 1m]", failures, d)
		}
		if a := p.backoff(failures, true); a < 150*time.Second || a > 5*time.Minute {
			t.Errorf("auth backoff(%d) = %v out of [2.5m, 5m]", failures, a)
		}
	}
	if d := p.backoff(10, false); d < 30*time.Second {
		t.Errorf("backoff(10) = %v, want near the cap", d)
	}
}

// startMemOne starts a server holding one message in INBOX.
func startMemOne(t *testing.T) (*memServer, *storagetest.FakeClock) {
	srv := startMem(t, fullCaps)
	raw, _ := genMessage(1)
	srv.append(t, "INBOX", raw, time.Time{})
	return srv, storagetest.NewFakeClock(t0)
}

// memRig is an empty server with a fake clock, deliverer, store and
// fast options.
func memRig(t *testing.T) (*memServer, *storagetest.FakeClock, *fakeDeliverer, *fakeStore, Options) {
	srv := startMem(t, fullCaps)
	clock := storagetest.NewFakeClock(t0)
	return srv, clock, newFakeDeliverer(), newFakeStore(clock), testOptions(t, srv.addr, clock)
}

// TestFailingSince: the first refused login after a success starts
// FailingSince (the mailbox alert's "since when"); later failures keep it;
// Stale follows StaleAfter on the clock; the login fixed clears it.
func TestFailingSince(t *testing.T) {
	t.Parallel()
	srv, clock := startMemOne(t)
	var mu sync.Mutex
	password := "wrong"
	opts := testOptions(t, srv.addr, clock)
	opts.StaleAfter = 10 * time.Minute
	opts.Password = func(context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		return password, nil
	}
	d := newFakeDeliverer()
	p, err := New(opts, d, newFakeStore(clock))
	if err != nil {
		t.Fatal(err)
	}
	// run stops the poller when the test ends, failed or not: a poller
	// left running would log after the test and panic the package.
	stop := run(t, p)
	t1 := clock.Now()
	waitFor(t, wait, "the login refused", func() bool { return p.Status().State == StateAuthFailed })
	if s := p.Status(); !s.FailingSince.Equal(t1) || s.Stale || !strings.Contains(s.LastError, "authentication failed") {
		t.Fatalf("after the first refusal: %+v, want FailingSince %s, not stale", s, t1)
	}
	clock.Advance(11 * time.Minute)
	before := p.Status().LastErrorAt
	waitFor(t, wait, "another refusal", func() bool { return p.Status().LastErrorAt.After(before) })
	if s := p.Status(); !s.FailingSince.Equal(t1) || !s.Stale {
		t.Fatalf("after 11 minutes of refusals: %+v, want FailingSince still %s and stale", s, t1)
	}
	mu.Lock()
	password = testPass
	mu.Unlock()
	waitFor(t, wait, "the mail read", func() bool { return d.storedCount() == 1 })
	// The pass is a success once it is over, a moment after the mail is
	// stored: wait for that, then check what it cleared.
	waitFor(t, wait, "the pass done", func() bool { return !p.Status().LastSuccess.IsZero() })
	if s := p.Status(); !s.FailingSince.IsZero() || s.Stale || !s.LastSuccess.After(t1) {
		t.Fatalf("after the login was fixed: %+v, want FailingSince cleared, not stale", s)
	}
	stop()
}

// TestBackfillRate: a rate throttles the quiet backfill (the poller waits
// for the limiter with the first message stored and the rest not
// fetched); backfill delivered live is not throttled whatever the rate,
// and neither is a mailbox with no rate.
func TestBackfillRate(t *testing.T) {
	for _, c := range []struct {
		name      string
		rate      float64
		live      bool
		throttled bool
	}{
		{"quiet with a rate", 0.001, false, true},
		{"live with a rate", 0.001, true, false},
		{"quiet without a rate", 0, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv, _, d, st, opts := memRig(t)
			for i := range 3 {
				raw, _ := genMessage(i)
				srv.append(t, "INBOX", raw, t0.AddDate(-1, 0, i))
			}
			// One message per FETCH: at 0.001/s the limiter grants the
			// first at once (its burst) and the second in 1,000 s.
			opts.BatchSize, opts.BackfillRate, opts.BackfillLive = 1, c.rate, c.live
			p := start(t, opts, d, st)
			if !c.throttled {
				waitFor(t, wait, "the whole backfill", func() bool { return d.storedCount() == 3 })
				if p.limiter != nil {
					t.Errorf("limiter %v set: mail would be throttled", p.limiter.Limit())
				}
				return
			}
			// The limiter reserved the second message's token (its balance
			// went negative) and waits: nothing more is fetched meanwhile.
			waitFor(t, wait, "the throttle to hold the second message", func() bool {
				return d.storedCount() == 1 && p.limiter.Tokens() < 0
			})
			if got := d.storedCount(); got != 1 {
				t.Errorf("%d messages stored while throttled, want 1", got)
			}
			// The batch before the wait is flagged, not held by it.
			waitFor(t, wait, "the first message flagged", func() bool { _, unseen := srv.status(t, "INBOX"); return unseen == 2 })
		})
	}
}

// TestDeliversInUIDOrder: a first sync hands messages over in UID order,
// batch after batch, though one FETCH streams while the one before
// commits: a mailbox's history is threaded as it happened (a reply after
// the mail it answers), and every spool is closed.
func TestDeliversInUIDOrder(t *testing.T) {
	t.Parallel()
	srv, _, d, st, opts := memRig(t)
	const n = 120
	for i := range n {
		raw, _ := genMessage(i)
		srv.append(t, "INBOX", raw, t0.Add(-time.Hour))
	}
	opts.BatchSize = 7
	p := start(t, opts, d, st)
	waitFor(t, wait, "the backfill", func() bool { return st.state(p.opts.key()).BackfillDone })
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.order) != n {
		t.Fatalf("%d stored, want %d", len(d.order), n)
	}
	last := -1
	for _, src := range d.order {
		uid, err := strconv.Atoi(src[strings.LastIndexByte(src, '/')+1:])
		if err != nil {
			t.Fatalf("source %q: %v", src, err)
		}
		if uid <= last {
			t.Fatalf("UID %d delivered after UID %d: %v", uid, last, d.order)
		}
		last = uid
	}
	if d.open != 0 {
		t.Errorf("%d spools left open", d.open)
	}
}
