package ingest

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jhillyerd/enmime/v2"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/tendhq/tend/internal/worker"
	"github.com/tendhq/tend/mail/header"
	"github.com/tendhq/tend/storage"
)

// WorkStore is what the Processor needs from storage: its work queue.
type WorkStore = storage.WorkQueue

// AfterParse runs once a received message is parsed, inside the batch's
// transaction: the rules. It must be idempotent, as a crash may run it
// twice for one message.
type AfterParse func(ctx context.Context, tx *storage.Tx, msg storage.Message) error

// GiveUp runs, inside the batch's transaction, for a message whose
// after-work failed for the last time: cause is the last error. It tells
// the people concerned; what it fails to do is logged and not retried.
type GiveUp func(ctx context.Context, tx *storage.Tx, msg storage.Message, cause error) error

// Processor runs the work that follows a commit: the full MIME parse, then
// AfterParse. It is here, after the 250, because the parse is the most
// expensive step of ingest (enmime with charset detection costs several
// times the rest of the path) and nothing the sender waits for needs it.
type Processor struct {
	store    WorkStore
	after    AfterParse
	commit   func()
	busy     func() bool
	cut      func() bool
	deferMax time.Duration
	owner    string
	clock    storage.Clock
	log      *slog.Logger
	wakes    []chan struct{} // one per worker
	// inFlight bounds the raw bytes the workers' batches parse and hold
	// at once (2 × BatchBytes): a batch takes its size, at most all of
	// it, from claim to commit, so workers run small batches side by side
	// but large mail one batch at a time (issue 10's burst of 24 MB
	// messages: 4 workers held 443 MiB on PostgreSQL, one 235).
	inFlight *semaphore.Weighted
	budget   int64
	batch    int
	lease    time.Duration
	period   time.Duration

	maxAttempts int
	retryBase   time.Duration
	batchBytes  int64
	maxText     int
	giveUpHook  GiveUp
	onBatch     func(BatchStats)
	prepare     func(*storage.Message)
	keepAtt     int64
	// carry keeps the parses of claimed messages a batch handed back
	// unprocessed, for the batch that claims them next.
	carry carried
	// held are the claimed items a batch cut short kept leased, for the
	// next batch.
	held heldWork
}

// heldWork are work items a batch cut short (by its bytes, or for a
// waiting commit) keeps leased for the next batch, instead of giving them
// back and claiming them again: while mail arrives one message at a time
// each batch is cut after its first message, and every message cost an
// UPDATE of the thirty-odd items handed back and another of them claimed
// again. An item is worked on at most half its lease after it was claimed
// (measured on the processor's clock, as the lease may be the
// database's), however often it is held again: older ones are given back,
// and the next claim finds them.
type heldWork struct {
	mu    sync.Mutex
	items []storage.Work
	// at is when each item held, or in a batch, was claimed; an item
	// without one counts as too old.
	at map[int64]time.Time
}

// claimed notes that ws were claimed at now.
func (h *heldWork) claimed(ws []storage.Work, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.at == nil {
		h.at = map[int64]time.Time{}
	}
	for _, w := range ws {
		h.at[w.ID] = now
	}
}

// keep holds ws, claimed earlier.
func (h *heldWork) keep(ws []storage.Work) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.items = append(h.items, ws...)
}

// done forgets ws: worked on, given back, or retried later.
func (h *heldWork) done(ws []storage.Work) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range ws {
		delete(h.at, w.ID)
	}
}

// take returns the items held and forgets them: fresh were claimed at most
// maxAge before now, stale earlier (to be given back, not worked on).
func (h *heldWork) take(now time.Time, maxAge time.Duration) (fresh, stale []storage.Work) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range h.items {
		if at, ok := h.at[w.ID]; ok && now.Sub(at) <= maxAge {
			fresh = append(fresh, w)
		} else {
			stale = append(stale, w)
			delete(h.at, w.ID)
		}
	}
	h.items = nil
	return fresh, stale
}

// carried are parses made for messages a batch handed back (cut short for
// a waiting commit, or their customer held by another batch), by message
// row ID: a message's parse depends only on its stored bytes, so the
// next batch takes it instead of parsing again. While ingest was busy at
// one connection, a batch cut after each message had parsed all 32 it
// claimed: each message was parsed up to 32 times (tend bench, C=1:
// 24 ms of CPU a message, half of it in parses thrown away). It holds at
// most max bytes (2 × batch_bytes) besides the batches in flight
// (inFlight), each parse itself bounded by max_body_text and
// KeepAttachments; past that it starts over.
type carried struct {
	mu    sync.Mutex
	items map[int64]prepared
	bytes int64
	max   int64
}

// take removes and returns the parse carried for message id, if any.
func (c *carried) take(id int64) (prepared, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pp, ok := c.items[id]
	if ok {
		delete(c.items, id)
		c.bytes -= pp.size()
	}
	return pp, ok
}

// put keeps pp for message id.
func (c *carried) put(id int64, pp prepared) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.items == nil || c.bytes+pp.size() > c.max {
		c.items, c.bytes = map[int64]prepared{}, 0
	}
	if old, ok := c.items[id]; ok {
		c.bytes -= old.size()
	}
	c.items[id] = pp
	c.bytes += pp.size()
}

// size is about the bytes pp holds.
func (pp prepared) size() int64 {
	n := int64(len(pp.parsed.Text) + len(pp.parsed.HTML) + len(pp.parsed.Error))
	if pp.prepared != nil {
		for _, a := range pp.prepared.Attachments {
			n += int64(len(a.Data))
		}
	}
	return n
}

// ProcessorOptions configure a Processor.
type ProcessorOptions struct {
	Owner      string // this replica's name, for leases
	AfterParse AfterParse
	// AfterCommit, when set, is called after each batch commits (to wake
	// the outbox sender).
	AfterCommit func()
	// Busy, when set, tells whether ingest is in a burst; the processor
	// then holds back, at most MaxDefer per batch, so that senders
	// waiting for their 250 get the CPU and the write lock first. The
	// work waits in the database and is done when the burst ends.
	Busy     func() bool
	MaxDefer time.Duration
	// Interrupt, when set, tells whether a writer waits that a batch
	// should commit for (the group commit: storage.Store.IngestWaiting,
	// for SQLite's writer or a PostgreSQL row the batch holds): the batch then
	// ends after the message in hand and the rest of it is released for
	// the next one, so that a sender waiting for its 250 waits for one
	// message's after-work, not a batch's.
	Interrupt func() bool
	Clock     storage.Clock
	Logger    *slog.Logger
	Period    time.Duration // how often to look for work without a wake-up
	// Lease is how long claimed work stays this processor's without
	// renewal (default 5 minutes).
	Lease time.Duration

	// MaxAttempts bounds the tries of one message's after-work (default
	// 5); after the last, GiveUp runs and the work is done with.
	MaxAttempts int
	// RetryBackoff is the wait after the first failure, doubled after
	// each further one, capped at an hour (default 30s).
	RetryBackoff time.Duration
	// BatchBytes cuts a batch once its messages add up to this many raw
	// bytes (default 4 MiB); a bigger message is a batch of its own.
	BatchBytes int64
	// MaxText is the most bytes of a body's text (and HTML) stored in the
	// database (default 1 MiB); the raw message keeps the rest.
	MaxText int
	// GiveUp, when set, runs for a message that could not be processed.
	GiveUp GiveUp
	// Prepare, when set, works out of each parsed message, before the
	// batch's transaction and on all cores at once, what AfterParse
	// would otherwise compute inside it (followup.Executor.Prepare: the
	// language of a new conversation), into msg.Prepared.
	Prepare func(msg *storage.Message)
	// KeepAttachments keeps the bytes of a message's attachments from
	// its parse, in msg.Prepared, when they add up to at most this many
	// bytes (the notifications' forwarding cap), so that forwarding them
	// does not read and parse the message again inside the transaction;
	// 0 keeps none.
	KeepAttachments int64
	// OnBatch, when set, is told about each committed batch (metrics).
	OnBatch func(BatchStats)
	// Workers is how many batches run at once (default 1). More than one
	// only helps where writers do not queue for one lock (PostgreSQL):
	// there a batch spends most of its time waiting for the server's
	// round trips. Each batch first locks its tickets' customers
	// (storage.Tx.LockBatch), so two workers never decide about one
	// customer's tickets, or count their automatic mail, at the same time:
	// an item whose customer another batch holds is handed back for a
	// later batch, not waited for. Large mail is taken one batch at a time
	// (inFlight).
	Workers int
}

// Defaults of ProcessorOptions.
const (
	DefaultMaxAttempts  = 5
	DefaultRetryBackoff = 30 * time.Second
	DefaultBatchBytes   = 4 << 20
	DefaultMaxText      = 1 << 20
)

// NewProcessor returns a Processor over store.
func NewProcessor(store WorkStore, opts ProcessorOptions) *Processor {
	if opts.Clock == nil {
		opts.Clock = storage.SystemClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Period <= 0 {
		opts.Period = 2 * time.Second
	}
	if opts.Lease <= 0 {
		opts.Lease = 5 * time.Minute
	}
	if opts.MaxDefer <= 0 {
		opts.MaxDefer = 5 * time.Second
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = DefaultRetryBackoff
	}
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = DefaultBatchBytes
	}
	if opts.MaxText == 0 {
		opts.MaxText = DefaultMaxText
	}
	wakes := make([]chan struct{}, max(1, opts.Workers))
	for i := range wakes {
		wakes[i] = make(chan struct{}, 1)
	}
	return &Processor{
		store: store, after: opts.AfterParse, commit: opts.AfterCommit, busy: opts.Busy, cut: opts.Interrupt, deferMax: opts.MaxDefer, owner: opts.Owner, clock: opts.Clock, log: opts.Logger,
		wakes: wakes, inFlight: semaphore.NewWeighted(2 * opts.BatchBytes), budget: 2 * opts.BatchBytes, batch: 32, lease: opts.Lease, period: opts.Period,
		maxAttempts: opts.MaxAttempts, retryBase: opts.RetryBackoff, batchBytes: opts.BatchBytes, maxText: opts.MaxText,
		giveUpHook: opts.GiveUp, onBatch: opts.OnBatch, prepare: opts.Prepare, keepAtt: opts.KeepAttachments,
		carry: carried{max: 2 * opts.BatchBytes},
	}
}

// Wake tells the processor's workers that work may be waiting. It never
// blocks.
func (p *Processor) Wake() {
	for _, w := range p.wakes {
		worker.Wake(w)
	}
}

// Run processes work with each of its workers until ctx ends. The wake-up
// channels only shorten the wait: the work itself is in the database, so
// nothing is lost if a wake-up is.
func (p *Processor) Run(ctx context.Context) error {
	var g errgroup.Group
	for _, wake := range p.wakes {
		g.Go(func() error {
			return worker.Loop(ctx, worker.Options{Name: "processing work", Log: p.log, Wake: wake, Period: p.period, Linger: linger, Before: p.yield}, p.RunOnce)
		})
	}
	err := g.Wait()
	// What a cut batch held goes back for the next process (or this one
	// started again) at once, not when its lease runs out.
	if fresh, stale := p.held.take(time.Time{}, 0); len(fresh)+len(stale) > 0 {
		held := append(fresh, stale...)
		p.held.done(held)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if rerr := p.store.ReleaseWork(rctx, workIDs(held)); rerr != nil {
			p.log.Warn("could not give back held work: it waits for its lease", "items", len(held), "err", rerr)
		}
	}
	return err
}

// linger is how long a woken processor waits for more work to batch, so
// that mail arriving together is processed in one transaction (one fsync).
const linger = 20 * time.Millisecond

// yield waits while ingest is busy, at most MaxDefer. This is scheduling,
// not business time, so it uses the real clock.
func (p *Processor) yield(ctx context.Context) {
	if p.busy == nil {
		return
	}
	deadline := time.Now().Add(p.deferMax)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for p.busy() && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunOnce claims and processes one batch of due work and returns how many
// items it handled. The parses run first, outside any transaction, one
// message at a time; then one transaction saves every parse, runs the
// rules and completes the work, so a batch costs one durable commit, not
// several per message (the ingest path's group commit waits for every
// commit that holds the write lock). A batch is cut by the bytes of its
// messages as well as by count, and stored bodies are capped, so that the
// transaction's size, and with it the time it holds the writer, is bounded
// whatever the size of the mail.
//
// A batch that fails as a whole (the store cannot be read, the commit
// fails) releases what it claimed, so that the next run retries it at
// once rather than when the lease runs out; a message that fails alone
// (its rules, its raw bytes) is retried with backoff and in the end given
// up, and never holds up the messages claimed with it.
func (p *Processor) RunOnce(ctx context.Context) (int, error) {
	ws, stale := p.held.take(p.clock.Now(), p.lease/2)
	if len(stale) > 0 {
		if err := p.store.ReleaseWork(ctx, workIDs(stale)); err != nil {
			p.held.keep(ws)
			return 0, err
		}
	}
	if len(ws) < p.batch {
		more, err := p.store.ClaimWork(ctx, p.owner, p.batch-len(ws), p.lease)
		if err != nil {
			p.held.keep(ws)
			return 0, err
		}
		p.held.claimed(more, p.clock.Now())
		ws = append(ws, more...)
		// In the queue's order: the held items were claimed first, and
		// the claim's order is due time, then ID.
		slices.SortStableFunc(ws, func(a, b storage.Work) int {
			return cmp.Or(a.NotBefore.Compare(b.NotBefore), cmp.Compare(a.ID, b.ID))
		})
	}
	if len(ws) == 0 {
		return 0, nil
	}
	n, err := p.runBatch(ctx, ws)
	if err != nil {
		// Work already completed is gone and work already retried keeps
		// its due time: releasing every claimed item is safe. Items held
		// for the next batch are given back too.
		fresh, stale := p.held.take(time.Time{}, 0)
		ws = append(append(ws, fresh...), stale...)
		p.held.done(ws)
		if rerr := p.store.ReleaseWork(ctx, workIDs(ws)); rerr != nil {
			p.log.Warn("could not release work after a failed batch: it waits for its lease", "err", rerr)
		}
	}
	return n, err
}

// runBatch is RunOnce's work on the claimed items ws.
func (p *Processor) runBatch(ctx context.Context, ws []storage.Work) (int, error) {
	ids := make([]int64, len(ws))
	for i, w := range ws {
		ids[i] = w.MessageRowID
	}
	msgs, err := p.store.MessagesByID(ctx, ids)
	if err != nil {
		return 0, err
	}
	ws, rest := cutBatch(ws, msgs, p.batchBytes)
	p.held.keep(rest)
	var size int64
	for _, w := range ws {
		size += msgs[w.MessageRowID].Size
	}
	weight := min(max(size, 1), p.budget)
	if err := p.inFlight.Acquire(ctx, weight); err != nil {
		return 0, err
	}
	defer p.inFlight.Release(weight)
	stats := BatchStats{Items: len(ws)}
	parsed, unread, err := p.prepareAll(ctx, ws, msgs, &stats)
	if err != nil {
		return 0, err
	}
	failed := map[int64]error{}
	start := time.Now()
	done := len(ws)
	tickets := make([]int64, 0, len(ws))
	for _, w := range ws {
		if m, ok := msgs[w.MessageRowID]; ok && m.TicketID != nil {
			tickets = append(tickets, *m.TicketID)
		}
	}
	// todo are the items this batch processes; the others' customers
	// are another batch's now (LockBatch), and their work goes back.
	var todo, later []storage.Work
	err = p.store.InTx(ctx, func(tx *storage.Tx) error {
		busy, err := tx.LockBatch(ctx, tickets)
		if err != nil {
			return err
		}
		todo, later = splitBusy(ws, msgs, busy)
		done = len(todo)
		for i, w := range todo {
			if i > 0 && p.cut != nil && p.cut() {
				done = i
				break
			}
			sp := "w" + strconv.Itoa(i)
			if err := tx.Savepoint(sp); err != nil {
				return err
			}
			if err := p.one(ctx, tx, sp, w, msgs, parsed, unread, failed); err != nil {
				return err
			}
			if err := tx.Release(sp); err != nil {
				return err
			}
		}
		return nil
	})
	stats.Duration = time.Since(start)
	if err != nil {
		return 0, err
	}
	// The items cut off are held for the next batch; those whose
	// customer another batch holds go back, for whichever batch is free
	// first. Both keep their parses.
	for _, w := range append(later, todo[done:]...) {
		if pp, ok := parsed[w.MessageRowID]; ok {
			p.carry.put(w.MessageRowID, pp)
		}
	}
	p.held.keep(todo[done:])
	p.held.done(todo[:done])
	if len(later) > 0 {
		p.held.done(later)
		if err := p.store.ReleaseWork(ctx, workIDs(later)); err != nil {
			return 0, err
		}
	}
	ws = todo[:done]
	stats.Items = done
	if p.onBatch != nil {
		p.onBatch(stats)
	}
	if p.commit != nil {
		p.commit()
	}
	for _, w := range ws {
		if cause, ok := failed[w.ID]; ok {
			p.log.Warn("work failed, will retry", "work", w.ID, "message", w.MessageRowID, "attempt", w.Attempts+1, "err", cause)
			if err := p.store.RetryWork(ctx, w.ID, cause, p.clock.Now().Add(p.backoff(w.Attempts))); err != nil {
				return 0, err
			}
		}
	}
	return len(ws), nil
}

// prepared is one message's parse and what Prepare made of it.
type prepared struct {
	parsed   storage.Parsed
	prepared *storage.Prepared
}

// prepareAll reads and parses the batch's messages, and runs Prepare on
// each, outside any transaction and as many at once as there are cores:
// on SQLite the batch's transaction, one at a time, bounds the processing
// rate, and this is the work that need not be in it. It returns the
// parses by message row ID and, by work ID, the items whose raw bytes
// could not be read (a damaged segment file): each fails as itself, like
// a message whose rules fail, so that it cannot hold up the queue behind
// it.
func (p *Processor) prepareAll(ctx context.Context, ws []storage.Work, msgs map[int64]storage.Message, stats *BatchStats) (map[int64]prepared, map[int64]error, error) {
	out := make([]prepared, len(ws))
	errs := make([]error, len(ws))
	todo := make([]bool, len(ws))
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, w := range ws {
		m, ok := msgs[w.MessageRowID]
		if !ok || m.Parsed {
			continue
		}
		todo[i] = true
		if pp, ok := p.carry.take(m.ID); ok {
			out[i] = pp
			continue
		}
		g.Go(func() error {
			raw, err := p.store.Raw(ctx, m.RawHash)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				errs[i] = fmt.Errorf("read raw message: %w", err)
				return nil
			}
			pr, atts, kept := parse(raw, p.keepAtt)
			pr = capParsed(shownHTML(pr), p.maxText, m)
			raw = nil // the parse is all the batch keeps of the message
			pre := &storage.Prepared{Attachments: atts, HasAttachments: kept}
			if p.prepare != nil {
				m.Text, m.HTML, m.Parsed, m.ParseError, m.Prepared = pr.Text, pr.HTML, true, pr.Error, pre
				p.prepare(&m)
			}
			out[i] = prepared{parsed: pr, prepared: pre}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	parsed := make(map[int64]prepared, len(ws))
	unread := map[int64]error{}
	for i, w := range ws {
		switch {
		case !todo[i]:
		case errs[i] != nil:
			unread[w.ID] = errs[i]
		default:
			pr := out[i].parsed
			stats.RawBytes += msgs[w.MessageRowID].Size
			stats.TextBytes += int64(len(pr.Text) + len(pr.HTML))
			stats.Attachments += len(pr.Attachments)
			parsed[w.MessageRowID] = out[i]
		}
	}
	return parsed, unread, nil
}

// splitBusy divides a batch into the items to process and those whose
// tickets are busy (another batch holds their customers).
func splitBusy(ws []storage.Work, msgs map[int64]storage.Message, busy []int64) (todo, later []storage.Work) {
	if len(busy) == 0 {
		return ws, nil
	}
	held := make(map[int64]bool, len(busy))
	for _, t := range busy {
		held[t] = true
	}
	for _, w := range ws {
		if m, ok := msgs[w.MessageRowID]; ok && m.TicketID != nil && held[*m.TicketID] {
			later = append(later, w)
		} else {
			todo = append(todo, w)
		}
	}
	return todo, later
}

// one is runBatch's work on item w inside savepoint sp: its after-work,
// or, when that fails, the savepoint rolled back and the failure noted in
// failed for a retry, or the message given up after its last attempt. An
// error ends the batch's transaction.
func (p *Processor) one(ctx context.Context, tx *storage.Tx, sp string, w storage.Work, msgs map[int64]storage.Message, parsed map[int64]prepared, unread, failed map[int64]error) error {
	err, bad := unread[w.ID]
	if !bad {
		err = p.process(ctx, tx, w, msgs, parsed)
	}
	if err == nil {
		return nil
	}
	if rerr := tx.RollbackTo(sp); rerr != nil {
		return rerr
	}
	if w.Attempts+1 < p.maxAttempts {
		failed[w.ID] = err
		return nil
	}
	return p.giveUp(ctx, tx, sp, w, msgs[w.MessageRowID], parsed, err)
}

// BatchStats describe one committed batch of the processor: what its
// transaction wrote and how long it held the database.
type BatchStats struct {
	Items       int
	RawBytes    int64 // bytes of the messages parsed for the batch (read outside the transaction)
	TextBytes   int64 // text and HTML written inside the transaction
	Attachments int   // attachment rows written inside the transaction
	Duration    time.Duration
}

// cutBatch keeps the claimed items whose messages fit in budget bytes
// (always the first, however big: it must be processed some time) and
// returns the IDs of the others, to be released for the next batch.
func cutBatch(ws []storage.Work, msgs map[int64]storage.Message, budget int64) (take, rest []storage.Work) {
	var total int64
	for _, w := range ws {
		size := msgs[w.MessageRowID].Size
		if len(take) > 0 && total+size > budget {
			rest = append(rest, w)
			continue
		}
		take = append(take, w)
		total += size
	}
	return take, rest
}

// workIDs are the IDs of ws.
func workIDs(ws []storage.Work) []int64 {
	ids := make([]int64, len(ws))
	for i, w := range ws {
		ids[i] = w.ID
	}
	return ids
}

// shownHTML drops the HTML body of a mail that has a text part of its
// own: the ticket page, the agents' commands and quoting read the text
// then, never the HTML (see web's ShowHTML), so keeping it only doubled
// the mail's text in the database (issue 10: disk at most 1.5× the mail;
// most clients send both). The raw message keeps both parts. The HTML
// stays when the text was made from it or there is none.
func shownHTML(p storage.Parsed) storage.Parsed {
	if p.Text != "" && !strings.Contains(p.Error, enmime.ErrorPlainTextFromHTML) {
		p.HTML = ""
	}
	return p
}

// capParsed bounds what the database keeps of a body: beyond max bytes the
// text is cut (at a character boundary) and says where the whole message
// is; an HTML body beyond max is dropped, as cut HTML is broken HTML. The
// raw message, kept whole, is what everything derived can be rebuilt from.
func capParsed(p storage.Parsed, max int, m storage.Message) storage.Parsed {
	if max <= 0 {
		return p
	}
	where := "the whole message is kept as received"
	if m.TicketID != nil {
		where += fmt.Sprintf(": /tickets/%d/messages/%d/raw", *m.TicketID, m.ID)
	}
	if len(p.HTML) > max {
		p.Error = strings.TrimPrefix(p.Error+"; ", "; ") + fmt.Sprintf("HTML body of %d bytes not stored (over %d)", len(p.HTML), max)
		if p.Text == "" {
			p.Text = fmt.Sprintf("[an HTML body of %d bytes is not shown here; %s]", len(p.HTML), where)
		}
		p.HTML = ""
	}
	if len(p.Text) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(p.Text[cut]) {
			cut--
		}
		p.Text = fmt.Sprintf("%s\n\n[%d more bytes not stored here; %s]", p.Text[:cut], len(p.Text)-cut, where)
	}
	return p
}

// backoff doubles from the configured base with each attempt, capped at
// an hour (and at 2^20 times the base), without jitter.
func (p *Processor) backoff(attempts int) time.Duration {
	return worker.Backoff(min(attempts, 20), p.retryBase, time.Hour, nil)
}

// giveUp ends the work of a message whose after-work failed maxAttempts
// times, inside the batch's transaction, so that it never sticks and never
// holds up the queue: the parse error is saved with the message, the
// GiveUp hook (the executor: a timeline entry, the acknowledgement from
// the header block, the agents told) runs in its own savepoint, and the
// work is completed even if that hook fails too.
func (p *Processor) giveUp(ctx context.Context, tx *storage.Tx, sp string, w storage.Work, msg storage.Message, parsed map[int64]prepared, cause error) error {
	p.log.Error("work failed for the last time: message could not be processed", "work", w.ID, "message", w.MessageRowID, "attempts", w.Attempts+1, "err", cause)
	if msg.ID == 0 {
		return tx.CompleteWork(ctx, w.ID)
	}
	// Keep what the parse found if it can be saved (the rules may be
	// what failed); else only the text, else nothing but the error.
	pr := parsed[msg.ID].parsed
	pr.Error = strings.TrimPrefix(pr.Error+"; ", "; ") + "could not be processed: " + header.Text(cause.Error())
	if err := tx.Savepoint(sp + "p"); err != nil {
		return err
	}
	if err := tx.SaveParsed(ctx, msg.ID, pr); err != nil {
		if rerr := tx.RollbackTo(sp + "p"); rerr != nil {
			return rerr
		}
		if err := tx.SaveParsed(ctx, msg.ID, storage.Parsed{Text: pr.Text, Error: pr.Error}); err != nil {
			return err
		}
	}
	msg.Text, msg.HTML, msg.Parsed, msg.ParseError = pr.Text, pr.HTML, true, pr.Error
	if p.giveUpHook != nil {
		if err := tx.Savepoint(sp + "g"); err != nil {
			return err
		}
		if err := p.giveUpHook(ctx, tx, msg, cause); err != nil {
			p.log.Error("could not report an unprocessable message", "message", msg.ID, "err", err)
			if rerr := tx.RollbackTo(sp + "g"); rerr != nil {
				return rerr
			}
		}
	}
	return tx.CompleteWork(ctx, w.ID)
}

func (p *Processor) process(ctx context.Context, tx *storage.Tx, w storage.Work, msgs map[int64]storage.Message, parsed map[int64]prepared) error {
	msg, ok := msgs[w.MessageRowID]
	if !ok {
		return tx.CompleteWork(ctx, w.ID) // the message is gone (split and deleted): nothing to do
	}
	if pp, ok := parsed[msg.ID]; ok {
		pr := pp.parsed
		if err := tx.SaveParsed(ctx, msg.ID, pr); err != nil {
			return err
		}
		msg.Text, msg.HTML, msg.Parsed, msg.ParseError, msg.Prepared = pr.Text, pr.HTML, true, pr.Error, pp.prepared
	}
	if p.after != nil {
		if err := p.after(ctx, tx, msg); err != nil {
			return fmt.Errorf("after parse: %w", err)
		}
	}
	return tx.CompleteWork(ctx, w.ID)
}

// Parse runs the full MIME parse of raw (header.ParseMIME). It never
// fails: broken MIME yields whatever enmime could recover, and as a last
// resort the raw body as text, with the parser's complaints in Error.
func Parse(raw []byte) storage.Parsed {
	out, _, _ := parse(raw, 0)
	return out
}

// parse is Parse, and also returns the attachments with their bytes when
// they add up to at most keep bytes (kept reports it; see
// ProcessorOptions.KeepAttachments).
func parse(raw []byte, keep int64) (out storage.Parsed, atts []storage.PreparedAttachment, kept bool) {
	defer func() {
		// enmime is robust, but a message must never be lost to a parser
		// bug: fall back to the raw text.
		if r := recover(); r != nil {
			out, atts, kept = storage.Parsed{Text: fallbackText(raw), Error: header.Text(fmt.Sprintf("parser panic: %v", r))}, nil, false
		}
	}()
	env, err := header.ParseMIME(raw)
	if err != nil {
		return storage.Parsed{Text: fallbackText(raw), Error: header.Text(err.Error())}, nil, false
	}
	if keep > 0 {
		var total int64
		for _, a := range env.Attachments {
			total += int64(len(a.Content))
		}
		if kept = total <= keep; kept {
			for _, a := range env.Attachments {
				atts = append(atts, storage.PreparedAttachment{Filename: a.FileName, ContentType: a.ContentType, Data: a.Content})
			}
		}
	}
	out.Text = header.Text(env.Text)
	out.HTML = header.Text(env.HTML)
	var errs []string
	for _, e := range env.Errors {
		errs = append(errs, e.Error())
	}
	out.Error = header.Text(strings.Join(errs, "; "))
	for i, a := range header.Parts(env) {
		sum := sha256.Sum256(a.Content)
		out.Attachments = append(out.Attachments, storage.ParsedAttachment{
			Part: i, Filename: header.Text(a.FileName), ContentType: header.Text(a.ContentType),
			Size: int64(len(a.Content)), Hash: hex.EncodeToString(sum[:]), Inline: a.Inline,
		})
	}
	return out, atts, kept
}

// fallbackText is the body after the header block, as valid UTF-8.
func fallbackText(raw []byte) string {
	_, off := header.Read(raw)
	body := raw[off:]
	if len(body) == 0 {
		body = raw
	}
	return header.Text(string(body))
}
