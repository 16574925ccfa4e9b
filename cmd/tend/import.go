package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/sync/semaphore"

	"github.com/tendhq/tend/cmd/tend/config"
	"github.com/tendhq/tend/mail/ingest"
	"github.com/tendhq/tend/storage"
)

// cmdImport is `tend import mbox|maildir PATH…`: old mail stored and
// threaded through the same ingest path as live mail, marked imported so
// that no rule answers it, and resumable: the position after the last
// committed message of each source is kept in the database, and a re-run
// after a kill starts there (what was committed past it is recognised as
// a duplicate).
func cmdImport(ctx context.Context, args, env []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file (the one tend serve runs with)")
	inbox := fs.String("inbox", "", "inbox the mail is filed under (default: the first configured inbox)")
	workers := fs.Int("workers", 64, "messages handed to the group committer at once")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if len(args) == 0 {
		return fmt.Errorf("%w: import mbox|maildir PATH…", errUsage)
	}
	kind := args[0]
	if kind != "mbox" && kind != "maildir" {
		return fmt.Errorf("%w: import mbox|maildir PATH…, not %q", errUsage, kind)
	}
	paths, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return fmt.Errorf("%w: import %s needs at least one PATH", errUsage, kind)
	}
	if *workers < 1 {
		return fmt.Errorf("%w: --workers must be at least 1", errUsage)
	}
	cfg, err := loadConfig(*cfgPath, env)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	unlock, err := lockForImport(cfg)
	if err != nil {
		return err
	}
	defer unlock()
	opts := storeOptions(cfg)
	opts.Existing, opts.Logger = true, log
	st, err := storage.Open(ctx, opts)
	if errors.Is(err, storage.ErrNoDatabase) {
		return fmt.Errorf("%w: start tend serve first, or give import the --config file the server runs with", err)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	imp, err := newImporter(ctx, cfg, st, log, *inbox)
	if err != nil {
		return err
	}
	imp.workers, imp.stderr, imp.quiet = *workers, stderr, *quiet
	stop := imp.start(ctx)
	defer stop()
	for _, p := range paths {
		src, err := openImportSource(ctx, st, kind, p, int64(cfg.SMTP.MaxMessageBytes), log)
		if err != nil {
			return err
		}
		res, err := imp.run(ctx, src)
		_ = src.close()
		if err != nil {
			return fmt.Errorf("import %s: %w", p, err)
		}
		fmt.Fprintln(stdout, res)
	}
	// A big import changes the tables faster than autovacuum (or the
	// server's hourly PRAGMA optimize) notices: refresh the planner's
	// statistics now, so that the queue's plans fit the new sizes.
	if err := st.Optimize(ctx); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	return nil
}

// importer feeds sources into the ingest pipeline.
type importer struct {
	st      *storage.Store
	pipe    *ingest.Pipeline
	commit  *storage.Committer
	inbox   string
	workers int
	quiet   bool
	stderr  io.Writer
	log     *slog.Logger
	// every is how often the position is saved while importing.
	every time.Duration
}

// newImporter builds the ingest path as serve does, without the doors,
// the sender authentication (history cannot be verified against today's
// DNS) and the after-work: the full parse and the rules run in tend serve,
// from the durable work rows the import leaves, as for mail that arrived
// while it was stopped.
func newImporter(ctx context.Context, cfg config.Config, st *storage.Store, log *slog.Logger, inbox string) (*importer, error) {
	if err := syncDirectory(ctx, st, cfg); err != nil {
		return nil, err
	}
	accepted := append(append([]string{}, inboxAddresses(cfg)...), postmasters(cfg)...)
	signer, err := loadSigner(ctx, st, cfg.SecretFile)
	if err != nil {
		return nil, err
	}
	tc := threadingConfig(cfg, accepted)
	tc.Signer = signer
	commit := st.NewCommitter(256, nil)
	// One line per message would bury the progress bar: the pipeline
	// logs only warnings, the import a summary per source.
	quietLog := slog.New(minLevel{log.Handler(), slog.LevelWarn})
	pipe, err := ingest.New(ingest.Options{Committer: commit, Threader: ingest.DecisionThreader{Config: tc}, Inboxes: accepted,
		Own: ownConfig(cfg, accepted), Logger: quietLog})
	if err != nil {
		return nil, err
	}
	if inbox == "" {
		inbox = cfg.Inboxes[0].Address
	}
	inbox = strings.ToLower(inbox)
	if !pipe.IsInbox(inbox) {
		return nil, fmt.Errorf("%w: --inbox %s is not a configured inbox", errUsage, inbox)
	}
	return &importer{st: st, pipe: pipe, commit: commit, inbox: inbox, workers: 64, log: log, every: 500 * time.Millisecond, stderr: io.Discard}, nil
}

// minLevel drops records below a level.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

// importItem is one message read from a source.
type importItem struct {
	raw []byte
	// pos is the source's position once this message and every one
	// before it are committed.
	pos string
	// where names the message in errors and warnings.
	where string
	// tooBig: larger than smtp.max_message_bytes, skipped as the SMTP
	// door would refuse it.
	tooBig bool
	// units is how far the progress bar moves for it.
	units int64
}

// importSource is an mbox file or a maildir.
type importSource struct {
	label string // the absolute path
	key   string // the setting that keeps the position
	total int64  // progress bar units still to go
	bytes bool   // units are bytes (mbox), else messages
	// resumed says where a re-run started, "" for a first run.
	resumed string
	next    func() (importItem, error) // io.EOF after the last
	close   func() error
}

// importResult is the summary of one source.
type importResult struct {
	label                                      string
	messages, newTickets, duplicates, tooLarge int64
	took                                       time.Duration
	resumed                                    string
}

func (r importResult) String() string {
	rate := 0.0
	if r.took > 0 {
		rate = float64(r.messages) / r.took.Seconds()
	}
	s := fmt.Sprintf("imported %s: %d messages (%d new tickets, %d already stored, %d larger than smtp.max_message_bytes skipped) in %s, %.0f msgs/s",
		r.label, r.messages, r.newTickets, r.duplicates, r.tooLarge, r.took.Round(time.Millisecond), rate)
	if r.resumed != "" {
		s += "; resumed at " + r.resumed
	}
	return s
}

// importJob is a message on its way through the pipeline.
type importJob struct {
	seq  int64
	sp   *ingest.Spool
	item importItem
	done chan struct{} // closed once committed (threading of its replies waits on it)
	// parents are the messages it answers that were still on their way
	// when it was read: it is delivered after them, so that it is
	// threaded onto their ticket as it would have been live. They were
	// read earlier, so the waits cannot form a cycle.
	parents []*importJob
}

// importMemory bounds the bytes of the messages on their way at once,
// whatever --workers says: 64 workers of 25 MiB messages would be 1.6 GB.
const importMemory = 128 << 20

// weight is what j holds of importMemory.
func (j *importJob) weight() int64 { return min(int64(len(j.item.raw))+1, importMemory) }

// waitParents waits until j's parents are committed; false if ctx ended.
func (j *importJob) waitParents(ctx context.Context) bool {
	for _, p := range j.parents {
		select {
		case <-p.done:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// start runs the group committer until the returned stop is called. It
// does not stop with ctx: what was handed to it is committed (or failed)
// before stop returns.
func (imp *importer) start(ctx context.Context) (stop func()) {
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = imp.commit.Run(cctx) // returns nil when cancelled
	}()
	return func() {
		cancel()
		<-done
	}
}

// run imports one source. Messages are handed to the group committer by
// a bounded pool of workers, in file order, so that many commit in one
// transaction; a reply whose parent is still on its way waits for it (in
// its worker, while the others go on), so that it is threaded as it would
// have been live.
func (imp *importer) run(ctx context.Context, src *importSource) (importResult, error) {
	res := importResult{label: src.label, resumed: src.resumed}
	start := time.Now()
	bar := imp.bar(src)
	mem := semaphore.NewWeighted(importMemory)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu       sync.Mutex
		inflight = map[string]*importJob{} // by Message-ID
		pending  = map[int64]string{}      // seq → position, once committed
		nextSeq  int64                     // lowest seq not yet committed
		pos      string                    // position after nextSeq-1
		saved    string
		n        atomic.Int64
	)
	finish := func(j *importJob) {
		if j.sp != nil {
			mem.Release(j.weight())
		}
		mu.Lock()
		defer mu.Unlock()
		if j.sp != nil && inflight[j.sp.Headers.MessageID] == j {
			delete(inflight, j.sp.Headers.MessageID)
		}
		pending[j.seq] = j.item.pos
		for {
			p, ok := pending[nextSeq]
			if !ok {
				break
			}
			delete(pending, nextSeq)
			pos = p
			nextSeq++
		}
		close(j.done)
		_ = bar.Add64(j.item.units)
	}
	checkpoint := func(ctx context.Context) error {
		mu.Lock()
		p := pos
		mu.Unlock()
		if p == saved || p == "" {
			return nil
		}
		if err := imp.st.SaveSetting(ctx, src.key, p); err != nil {
			return err
		}
		saved = p
		imp.log.Debug("import checkpoint", "source", src.label, "position", p, "messages", n.Load())
		return nil
	}

	jobs := make(chan *importJob, imp.workers)
	var workers sync.WaitGroup
	var newTickets, dups atomic.Int64
	for range imp.workers {
		workers.Go(func() {
			for j := range jobs {
				if !j.waitParents(ctx) {
					mem.Release(j.weight())
					continue
				}
				d, err := imp.pipe.DeliverSpool(ctx, j.sp, ingest.Envelope{To: []string{imp.inbox}, Source: "import:" + src.label, Imported: true, Unknown: true})
				if err != nil {
					cancel(fmt.Errorf("%s: %w", j.item.where, err))
					mem.Release(j.weight())
					continue // not finished: the position stays before it
				}
				if d.Duplicate {
					dups.Add(1)
				}
				if d.NewTicket {
					newTickets.Add(1)
				}
				n.Add(1)
				finish(j)
			}
		})
	}
	tick := time.NewTicker(imp.every)
	defer tick.Stop()
	ticking := make(chan struct{})
	tickerDone := make(chan struct{})
	go func() {
		defer close(tickerDone)
		for {
			select {
			case <-ticking:
				return
			case <-tick.C:
				bar.Describe(fmt.Sprintf("%s: %d msgs", filepath.Base(src.label), n.Load()))
				if err := checkpoint(ctx); err != nil {
					cancel(err)
					return
				}
			}
		}
	}()

	readErr := imp.dispatch(ctx, src, jobs, mem, &mu, inflight, finish, &res)
	close(jobs)
	workers.Wait()
	close(ticking)
	<-tickerDone
	_ = bar.Finish()
	if !imp.quiet {
		fmt.Fprintln(imp.stderr)
	}
	// The last position is saved even when the import stopped early:
	// everything before it is committed.
	saveErr := checkpoint(context.WithoutCancel(ctx))
	res.messages, res.newTickets, res.duplicates, res.took = n.Load(), newTickets.Load(), dups.Load(), time.Since(start)
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return res, err
	}
	if ctx.Err() != nil && saveErr == nil {
		return res, fmt.Errorf("interrupted after %d messages; the same command resumes", res.messages)
	}
	return res, errors.Join(readErr, saveErr)
}

// dispatch reads src and hands its messages to the workers in order.
func (imp *importer) dispatch(ctx context.Context, src *importSource, jobs chan<- *importJob, mem *semaphore.Weighted, mu *sync.Mutex,
	inflight map[string]*importJob, finish func(*importJob), res *importResult) error {
	for seq := int64(0); ; seq++ {
		it, err := src.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		j := &importJob{seq: seq, item: it, done: make(chan struct{})}
		if it.tooBig {
			imp.log.Warn("import: message skipped: larger than smtp.max_message_bytes", "message", it.where)
			res.tooLarge++
			finish(j)
			continue
		}
		if err := mem.Acquire(ctx, j.weight()); err != nil {
			return err
		}
		j.sp = ingest.SpoolBytes(it.raw)
		h := j.sp.Headers
		mu.Lock()
		var parents []*importJob
		for _, id := range append([]string{h.Parent()}, h.References...) {
			if p := inflight[id]; p != nil && id != "" {
				parents = append(parents, p)
			}
		}
		j.parents = parents
		inflight[h.MessageID] = j
		mu.Unlock()
		select {
		case jobs <- j:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (imp *importer) bar(src *importSource) *progressbar.ProgressBar {
	if imp.quiet {
		return progressbar.DefaultSilent(src.total)
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(imp.stderr), progressbar.OptionSetDescription(filepath.Base(src.label)),
		progressbar.OptionThrottle(200 * time.Millisecond), progressbar.OptionShowCount(), progressbar.OptionSetWidth(30),
		progressbar.OptionSetPredictTime(true),
	}
	if src.bytes {
		opts = append(opts, progressbar.OptionShowBytes(true))
	} else {
		opts = append(opts, progressbar.OptionShowIts(), progressbar.OptionSetItsString("msg"))
	}
	return progressbar.NewOptions64(src.total, opts...)
}

// importKey is the setting that keeps a source's position.
func importKey(kind, abs string) string { return "import:" + kind + ":" + abs }

// openImportSource opens an mbox file or a maildir directory at the
// position an earlier import of it reached.
func openImportSource(ctx context.Context, st *storage.Store, kind, path string, max int64, log *slog.Logger) (*importSource, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	src := &importSource{label: abs, key: importKey(kind, abs)}
	saved, _, err := st.Setting(ctx, src.key)
	if err != nil {
		return nil, err
	}
	if kind == "mbox" {
		return openMbox(src, saved, max, log)
	}
	return openMaildir(src, saved, max)
}

func openMbox(src *importSource, saved string, max int64, log *slog.Logger) (*importSource, error) {
	f, err := os.Open(src.label)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	if fi.IsDir() {
		_ = f.Close()
		return nil, fmt.Errorf("%s is a directory: use import maildir", src.label)
	}
	off, _ := strconv.ParseInt(saved, 10, 64)
	if off > 0 && !startsMessage(f, off, fi.Size()) {
		// The file was replaced or rewritten since: start over, and let
		// deduplication recognise what is stored already.
		log.Warn("import: the saved position no longer starts a message; reading the whole file again", "source", src.label, "position", off)
		off = 0
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		_ = f.Close()
		return nil, err
	}
	if off > 0 {
		src.resumed = fmt.Sprintf("byte %d of %d", off, fi.Size())
	}
	src.bytes, src.total, src.close = true, fi.Size()-off, f.Close
	r := newMboxReader(f, off, max)
	src.next = func() (importItem, error) {
		m, err := r.Next()
		if err != nil {
			return importItem{}, err
		}
		return importItem{raw: m.Raw, tooBig: m.TooBig, pos: strconv.FormatInt(m.End, 10), units: m.End - m.Start,
			where: fmt.Sprintf("%s byte %d", src.label, m.Start)}, nil
	}
	return src, nil
}

// startsMessage says whether byte off of f is the end of the file or a
// "From " line that follows a newline.
func startsMessage(f *os.File, off, size int64) bool {
	if off == size {
		return true
	}
	if off > size {
		return false
	}
	b := make([]byte, 6)
	n, _ := f.ReadAt(b, off-1)
	return n == len(b) && b[0] == '\n' && isFromLine(b[1:])
}

// openMaildir lists a maildir's cur/ and new/ in the order of their unique
// names (which begin with the delivery time). The position is the last
// name committed: a re-run skips every name up to it.
func openMaildir(src *importSource, saved string, max int64) (*importSource, error) {
	type entry struct{ name, path string }
	var all []entry
	for _, sub := range []string{"cur", "new"} {
		des, err := os.ReadDir(filepath.Join(src.label, sub))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, de := range des {
			if !de.Type().IsRegular() || strings.HasPrefix(de.Name(), ".") {
				continue
			}
			name, _, _ := strings.Cut(de.Name(), ":") // without the flags, which change when a mail is read
			if saved != "" && name <= saved {
				continue
			}
			all = append(all, entry{name, filepath.Join(src.label, sub, de.Name())})
		}
	}
	if len(all) == 0 && saved == "" {
		if _, err := os.Stat(filepath.Join(src.label, "cur")); err != nil {
			return nil, fmt.Errorf("%s is not a maildir (no cur/ or new/ with mail): %w", src.label, err)
		}
	}
	slices.SortFunc(all, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	if saved != "" {
		src.resumed = "after " + saved
	}
	src.total, src.close = int64(len(all)), func() error { return nil }
	i := 0
	src.next = func() (importItem, error) {
		for i < len(all) {
			e := all[i]
			i++
			it := importItem{pos: e.name, units: 1, where: e.path}
			fi, err := os.Stat(e.path)
			if errors.Is(err, fs.ErrNotExist) {
				// Moved by a mail client since the listing (new/ to cur/,
				// or its flags changed): the same unique name in cur/.
				moved, _ := filepath.Glob(filepath.Join(src.label, "cur", globEscape(e.name)+":*"))
				if len(moved) == 0 {
					continue // deleted
				}
				e.path, it.where = moved[0], moved[0]
				fi, err = os.Stat(e.path)
			}
			if err != nil {
				return importItem{}, err
			}
			if fi.Size() > max {
				it.tooBig = true
				return it, nil
			}
			if it.raw, err = os.ReadFile(e.path); err != nil {
				return importItem{}, err
			}
			return it, nil
		}
		return importItem{}, io.EOF
	}
	return src, nil
}

// globEscape quotes the pattern characters of a file name.
func globEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`)
	return r.Replace(s)
}

// lockForImport makes sure, on SQLite, that no tend serve has the
// database: one process appends to the segment files that hold the raw
// mail, and a second writer would record wrong offsets. It takes the
// server's own lock (lockDirs). On PostgreSQL the bytes are in rows and
// import runs beside the servers.
func lockForImport(cfg config.Config) (unlock func(), err error) {
	if cfg.Database.Driver != "" && cfg.Database.Driver != storage.DriverSQLite {
		return func() {}, nil
	}
	unlock, err = lockDirs(cfg)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	return unlock, nil
}
