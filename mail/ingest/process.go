package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jhillyerd/enmime/v2"
	"github.com/jhillyerd/enmime/v2/mediatype"

	"github.com/tendhq/tend/mail/classify"
	"github.com/tendhq/tend/storage"
)

// WorkStore is what the Processor needs from storage.
type WorkStore interface {
	ClaimWork(ctx context.Context, owner string, limit int, lease time.Duration) ([]storage.Work, error)
	RetryWork(ctx context.Context, id int64, cause error, retryAt time.Time) error
	MessagesByID(ctx context.Context, ids []int64) (map[int64]storage.Message, error)
	Raw(ctx context.Context, hash string) ([]byte, error)
	InTx(ctx context.Context, fn func(tx *storage.Tx) error) error
}

// AfterParse runs once a received message is parsed, inside the batch's
// transaction: the rules. It must be idempotent, as a crash may run it
// twice for one message.
type AfterParse func(ctx context.Context, tx *storage.Tx, msg storage.Message) error

// Processor runs the work that follows a commit: the full MIME parse, then
// AfterParse. It is here, after the 250, because the parse is the most
// expensive step of ingest (enmime with charset detection costs several
// times the rest of the path) and nothing the sender waits for needs it.
type Processor struct {
	store    WorkStore
	after    AfterParse
	commit   func()
	busy     func() bool
	deferMax time.Duration
	owner    string
	clock    storage.Clock
	log      *slog.Logger
	wake     chan struct{}
	batch    int
	lease    time.Duration
	period   time.Duration
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
	Clock    storage.Clock
	Logger   *slog.Logger
	Period   time.Duration // how often to look for work without a wake-up
}

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
	if opts.MaxDefer <= 0 {
		opts.MaxDefer = 5 * time.Second
	}
	return &Processor{
		store: store, after: opts.AfterParse, commit: opts.AfterCommit, busy: opts.Busy, deferMax: opts.MaxDefer, owner: opts.Owner, clock: opts.Clock, log: opts.Logger,
		wake: make(chan struct{}, 1), batch: 32, lease: 5 * time.Minute, period: opts.Period,
	}
}

// Wake tells the processor that work may be waiting. It never blocks.
func (p *Processor) Wake() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run processes work until ctx ends. The wake-up channel only shortens the
// wait: the work itself is in the database, so nothing is lost if a wake-up
// is.
func (p *Processor) Run(ctx context.Context) error {
	return Loop(ctx, LoopOptions{Name: "processing work", Log: p.log, Wake: p.wake, Period: p.period, Linger: linger, Before: p.yield}, p.RunOnce)
}

// linger is how long a woken processor waits for more work to batch, so
// that mail arriving together is processed in one transaction (one fsync).
const linger = 20 * time.Millisecond

// LoopOptions configure Loop.
type LoopOptions struct {
	Name   string
	Log    *slog.Logger
	Wake   <-chan struct{}
	Period time.Duration
	Linger time.Duration         // wait after a wake-up, to batch
	Before func(context.Context) // called before each batch (to yield)
}

// Loop is the life of a database-driven worker: run once until it finds
// nothing to do, then wait for a wake-up, the period, or the end of ctx.
// An error is logged and retried at the next period; it never spins.
func Loop(ctx context.Context, o LoopOptions, once func(context.Context) (int, error)) error {
	t := time.NewTicker(o.Period)
	defer t.Stop()
	for {
		for {
			if o.Before != nil {
				o.Before(ctx)
			}
			n, err := once(ctx)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				o.Log.Error(o.Name, "err", err)
				break
			}
			if n == 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-o.Wake:
			if o.Linger > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(o.Linger):
				}
			}
		case <-t.C:
		}
	}
}

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
// items it handled. The parses run first, outside any transaction; then
// one transaction saves every parse, runs the rules and completes the
// work, so a batch costs one durable commit, not several per message (the
// ingest path's group commit waits for every commit that holds the
// write lock).
func (p *Processor) RunOnce(ctx context.Context) (int, error) {
	ws, err := p.store.ClaimWork(ctx, p.owner, p.batch, p.lease)
	if err != nil || len(ws) == 0 {
		return 0, err
	}
	ids := make([]int64, len(ws))
	for i, w := range ws {
		ids[i] = w.MessageRowID
	}
	msgs, err := p.store.MessagesByID(ctx, ids)
	if err != nil {
		return 0, err
	}
	parsed := make(map[int64]storage.Parsed, len(ws))
	for _, w := range ws {
		m, ok := msgs[w.MessageRowID]
		if !ok || m.Parsed {
			continue
		}
		raw, err := p.store.Raw(ctx, m.RawHash)
		if err != nil {
			return 0, err
		}
		parsed[m.ID] = Parse(raw)
	}
	failed := map[int64]error{}
	err = p.store.InTx(ctx, func(tx *storage.Tx) error {
		for i, w := range ws {
			sp := "w" + strconv.Itoa(i)
			if err := tx.Savepoint(sp); err != nil {
				return err
			}
			if err := p.process(ctx, tx, w, msgs, parsed); err != nil {
				if rerr := tx.RollbackTo(sp); rerr != nil {
					return rerr
				}
				failed[w.ID] = err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if p.commit != nil {
		p.commit()
	}
	for _, w := range ws {
		if cause, ok := failed[w.ID]; ok {
			p.log.Warn("work failed, will retry", "work", w.ID, "message", w.MessageRowID, "attempt", w.Attempts+1, "err", cause)
			if err := p.store.RetryWork(ctx, w.ID, cause, p.clock.Now().Add(backoff(w.Attempts))); err != nil {
				return 0, err
			}
		}
	}
	return len(ws), nil
}

// backoff grows with the attempts, capped at an hour.
func backoff(attempts int) time.Duration {
	d := 5 * time.Second << min(attempts, 10)
	return min(d, time.Hour)
}

func (p *Processor) process(ctx context.Context, tx *storage.Tx, w storage.Work, msgs map[int64]storage.Message, parsed map[int64]storage.Parsed) error {
	msg, ok := msgs[w.MessageRowID]
	if !ok {
		return tx.CompleteWork(ctx, w.ID) // the message is gone (split and deleted): nothing to do
	}
	if pr, ok := parsed[msg.ID]; ok {
		if err := tx.SaveParsed(ctx, msg.ID, pr); err != nil {
			return err
		}
		msg.Text, msg.HTML, msg.Parsed, msg.ParseError = pr.Text, pr.HTML, true, pr.Error
	}
	if p.after != nil {
		if err := p.after(ctx, tx, msg); err != nil {
			return fmt.Errorf("after parse: %w", err)
		}
	}
	return tx.CompleteWork(ctx, w.ID)
}

// Parse runs the full MIME parse of raw. It never fails: broken MIME yields
// whatever enmime could recover, and as a last resort the raw body as text,
// with the parser's complaints in Error.
func Parse(raw []byte) (out storage.Parsed) {
	defer func() {
		// enmime is robust, but a message must never be lost to a parser
		// bug: fall back to the raw text.
		if r := recover(); r != nil {
			out = storage.Parsed{Text: fallbackText(raw), Error: clean(fmt.Sprintf("parser panic: %v", r))}
		}
	}()
	src := normalizeNewlines(raw)
	// Charset detection is the slowest part of the parse and guesses
	// wrong on raw UTF-8 (scripts and old clients send it with no MIME
	// header at all): a part's declared charset is used, a text part that
	// declares none is read as UTF-8, and only when the result is not
	// valid UTF-8 (a declared charset proved wrong, an undeclared one was
	// not UTF-8) is the message parsed again with detection.
	env, err := enmime.NewParser(enmime.DisableCharacterDetection(true), enmime.SetCustomParseMediaType(utf8ByDefault)).ReadEnvelope(bytes.NewReader(src))
	if err == nil && !(utf8.ValidString(env.Text) && utf8.ValidString(env.HTML)) {
		env, err = enmime.NewParser().ReadEnvelope(bytes.NewReader(src))
	}
	if err != nil {
		return storage.Parsed{Text: fallbackText(raw), Error: clean(err.Error())}
	}
	out.Text = clean(env.Text)
	out.HTML = clean(env.HTML)
	var errs []string
	for _, e := range env.Errors {
		errs = append(errs, e.Error())
	}
	out.Error = clean(strings.Join(errs, "; "))
	part := 0
	add := func(ps []*enmime.Part, inline bool) {
		for _, a := range ps {
			sum := sha256.Sum256(a.Content)
			out.Attachments = append(out.Attachments, storage.ParsedAttachment{
				Part: part, Filename: clean(a.FileName), ContentType: clean(a.ContentType),
				Size: int64(len(a.Content)), Hash: hex.EncodeToString(sum[:]), Inline: inline,
			})
			part++
		}
	}
	add(env.Attachments, false)
	add(env.Inlines, true)
	add(env.OtherParts, true)
	return out
}

// utf8ByDefault parses a Content-Type as enmime does, and gives a text
// part without a charset parameter charset=utf-8, so that enmime reads it
// as UTF-8 instead of guessing (enmime runs detection on every part that
// declares no charset, even with detection disabled). US-ASCII counts as
// undeclared: it is what enmime assumes for a message with no
// Content-Type (RFC 2045 section 5.2), UTF-8 reads ASCII unchanged, and
// 8-bit bytes under it prove the label wrong.
func utf8ByDefault(ctype string) (string, map[string]string, []string, error) {
	mtype, params, invalid, err := mediatype.Parse(ctype)
	if cs := strings.ToLower(params["charset"]); err == nil && strings.HasPrefix(mtype, "text/") && (cs == "" || cs == "us-ascii") {
		if params == nil {
			params = map[string]string{}
		}
		params["charset"] = "utf-8"
	}
	return mtype, params, invalid, err
}

// fallbackText is the body after the header block, as valid UTF-8.
func fallbackText(raw []byte) string {
	_, off := classify.ReadHeader(raw)
	body := raw[off:]
	if len(body) == 0 {
		body = raw
	}
	return clean(string(body))
}
