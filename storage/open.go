package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libtnb/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	moderncsqlite "modernc.org/sqlite"
)

// Drivers tend can store into.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Options says where the database is.
type Options struct {
	Driver  string // sqlite or postgres
	DSN     string // sqlite: a file path ("" = DataDir/tend.db); postgres: a URL or key=value DSN
	DataDir string
	Clock   Clock
	Logger  *slog.Logger
	// WALSizeLimit is what SQLite truncates its write-ahead log to once a
	// checkpoint has copied it into the database (journal_size_limit);
	// 0 means DefaultWALSizeLimit.
	WALSizeLimit int64
	// Existing opens only a database that is already there (SQLite: the
	// file exists) and fails with ErrNoDatabase otherwise. The commands
	// that act on a running installation set it, so that one run without
	// the server's --config does not quietly create a second, empty
	// database beside the real one.
	Existing bool
	// Exclusive (SQLite) fails with ErrInUse unless no other process has
	// the data directory open: tend forget rewrites the segment files,
	// which a running server appends to.
	Exclusive bool
	// DatabaseClock makes leases (work items, outbox, timers, mailbox
	// leases) start and run out by the database server's clock instead of
	// Clock, so that replicas whose clocks disagree still agree on who
	// holds what. It acts on PostgreSQL only: SQLite serves one process,
	// whose clock is the database's. serve sets it; tests driving a fake
	// Clock leave it unset.
	DatabaseClock bool
}

// ErrNoDatabase is Open's error when Options.Existing is set and there is
// no database yet.
var ErrNoDatabase = errors.New("no database")

// DefaultWALSizeLimit bounds the SQLite write-ahead log at rest: without a
// limit it keeps the size of its largest burst for ever.
const DefaultWALSizeLimit = 4 << 20

// Store is tend's database. It is safe for concurrent use.
type Store struct {
	db     *gorm.DB
	driver string
	clock  Clock
	log    *slog.Logger
	// dbClock: leases are judged by the database's clock (see
	// Options.DatabaseClock and leaseNow).
	dbClock bool
	// dsn is the PostgreSQL DSN, for the change feed's LISTEN connection
	// (see WatchChanges); "" on SQLite.
	dsn string

	segs *segments // raw bytes beside SQLite; nil on PostgreSQL
	lock *os.File  // the raw directory's lock (lockRaw); nil on PostgreSQL

	chunkSem chan struct{} // bounds the writers of raw chunks (PostgreSQL; see writeChunks)
	// composers bounds the outgoing mails composed at once (Tx.startBody).
	composers chan struct{}
	// inserts are insertRows' plans, by model type.
	inserts sync.Map
	// selects are selectRows' plans, by model type and omitted columns.
	selects  sync.Map
	pack     *packer      // compresses raw messages (packing.go)
	gate     writeGate    // SQLite's one writer, taken in turn (see write)
	chunking atomic.Int64 // messages writing raw chunks right now
	// committing is when the running group commit began (Unix ns; 0:
	// none), for IngestWaiting on PostgreSQL.
	committing atomic.Int64
	// analyzedAt is how many tickets there were when this process last
	// ran ANALYZE (SQLite; see refreshStats).
	analyzedAt atomic.Int64
	// dropped counts the outbox bytes dropped since the outbox table was
	// last vacuumed, messagesDropped since messages was (PostgreSQL; see
	// vacuumDropped).
	dropped, messagesDropped atomic.Int64

	// search chooses search plans (see searchPlan); tests force one.
	search searchTuning

	walPath  string // SQLite's write-ahead log
	walLimit int64  // journal_size_limit

	inboxMu    sync.RWMutex
	inboxCache map[string]int64 // inbox address → id

	dummyOnce sync.Once
	dummyHash []byte

	// faults, set only by tests (export_test.go), injects an error at a
	// phase of the group commit.
	faults func(phase string) error
	// afterSnapshot, set only by tests, runs in Backup between the
	// database copy and the copy of the raw files.
	afterSnapshot func()
}

// ErrUnavailable wraps errors that mean the database could not take a
// write right now; the SMTP door answers 451 to them.
var ErrUnavailable = errors.New("database unavailable")

// Open connects to the database and brings its schema up to date.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	var dial gorm.Dialector
	var rawDir, walPath string
	switch opts.Driver {
	case DriverSQLite, "":
		opts.Driver = DriverSQLite
		path := opts.DSN
		if path == "" {
			if opts.DataDir == "" {
				return nil, errors.New("open sqlite: neither dsn nor data_dir is set")
			}
			path = filepath.Join(opts.DataDir, "tend.db")
		}
		if opts.Existing {
			if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("open sqlite %s: %w", path, ErrNoDatabase)
			}
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("open sqlite: %w", err)
		}
		if err := createIncremental(path); err != nil {
			return nil, fmt.Errorf("open sqlite: %w", err)
		}
		rawDir = filepath.Join(filepath.Dir(path), "raw")
		if opts.WALSizeLimit <= 0 {
			opts.WALSizeLimit = DefaultWALSizeLimit
		}
		dial = sqlite.New(sqlite.Config{Conn: sql.OpenDB(cachingConnector{drv: &moderncsqlite.Driver{}, dsn: sqliteDSN(path, opts.WALSizeLimit)})})
		walPath = path + "-wal"
	case DriverPostgres:
		if opts.DSN == "" {
			return nil, errors.New("open postgres: dsn is empty")
		}
		dial = postgres.New(postgres.Config{DSN: opts.DSN})
	default:
		return nil, fmt.Errorf("open: unknown database driver %q", opts.Driver)
	}
	clock := opts.Clock
	db, err := gorm.Open(dial, &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		// No: its statements, prepared inside a transaction, are prepared
		// again in the next one. SQLite's connections keep theirs
		// (cachingConnector); pgx caches statements per connection itself.
		PrepareStmt:    false,
		NowFunc:        func() time.Time { return clock.Now().UTC() },
		TranslateError: true,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", opts.Driver, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", opts.Driver, err)
	}
	if opts.Driver == DriverSQLite {
		// WAL lets readers run beside the one writer; a handful of
		// connections is all SQLite can use.
		sqlDB.SetMaxOpenConns(8)
		sqlDB.SetMaxIdleConns(8)
	} else {
		sqlDB.SetMaxOpenConns(20)
		sqlDB.SetMaxIdleConns(10)
	}
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	if err := sqlDB.PingContext(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("open %s: %w", opts.Driver, err)
	}
	s := &Store{db: db, driver: opts.Driver, clock: opts.Clock, log: opts.Logger, inboxCache: map[string]int64{}, search: searchTuning{seedHits: searchSeedHits, walkTickets: searchWalkTickets}, walPath: walPath, walLimit: opts.WALSizeLimit,
		chunkSem: make(chan struct{}, chunkWriters), composers: make(chan struct{}, runtime.GOMAXPROCS(0))}
	s.dbClock = opts.DatabaseClock && opts.Driver == DriverPostgres
	if opts.Driver == DriverPostgres {
		s.dsn = opts.DSN
	}
	if s.pack, err = newPacker(); err != nil {
		_ = sqlDB.Close()
		return nil, err
	}
	if rawDir != "" {
		if s.segs, err = openSegments(rawDir); err != nil {
			s.pack.close()
			_ = sqlDB.Close()
			return nil, err
		}
	}
	if rawDir != "" {
		// Taken once the segment directory exists (see lockRaw).
		if s.lock, err = lockRaw(rawDir, opts.Exclusive); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	if err := s.migrate(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// createIncremental creates a new SQLite database file that frees pages
// incrementally (Reclaim): after a burst the outbox's dropped bodies left
// the file at the size of the backlog, its free pages reused but never
// returned (issue 10: disk at most 1.5× the mail). The mode must be set
// before anything writes the file's header (WAL mode does), and only
// once: on every connection's DSN it would take a write lock as each
// connection opens. An existing file is left as it is (only VACUUM could
// change its mode).
func createIncremental(path string) error {
	if strings.HasPrefix(path, "file:") || strings.Contains(path, "?") {
		return nil // a DSN of the operator's own: opened as written
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, stmt := range []string{"PRAGMA auto_vacuum = INCREMENTAL", "PRAGMA journal_mode = WAL"} {
		if _, err := db.Exec(stmt); err != nil {
			return fmt.Errorf("create %s: %s: %w", path, stmt, err)
		}
	}
	return nil
}

// sqliteBusyTimeout is how long a statement waits for SQLite's locks.
const sqliteBusyTimeout = 15 * time.Second

// sqliteDSN turns a path into a DSN with the pragmas tend relies on: WAL so
// readers never block the writer, synchronous=FULL so a commit is durable
// before we answer 250 (NORMAL in WAL mode can lose the last commits on
// power loss), a busy timeout instead of instant SQLITE_BUSY, and
// immediate write transactions so two writers queue instead of
// deadlocking on lock upgrade, and a bounded write-ahead log.
func sqliteDSN(path string, walLimit int64) string {
	v := url.Values{}
	v.Add("_pragma", "journal_mode(WAL)")
	v.Add("_pragma", "synchronous(FULL)")
	v.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()))
	v.Add("_pragma", "foreign_keys(1)")
	// Savepoints (one per message of a batch) journal every page they
	// touch, for as long as they are open; each is released once its
	// message is done (Tx.Release), so the journal holds one message's
	// pages. In memory: as a file (temp_store FILE) it spilled beyond
	// 64 KiB and its page writes were 7% of the pipeline's CPU.
	v.Add("_pragma", "temp_store(MEMORY)")
	// Each of the (up to 8) connections has its own page cache: 1 MiB
	// each instead of SQLite's 2 MiB. The operating system's cache holds
	// the file all the same; what a smaller cache costs is a read call.
	v.Add("_pragma", "cache_size(-1024)")
	// Checkpoints run in RunMaintenance, off the commit path; the
	// automatic one stays as a backstop for a WAL that grows anyway.
	v.Add("_pragma", "wal_autocheckpoint(20000)")
	// Once a checkpoint has copied the whole log, the next writer starts
	// it over and truncates the file to this size, so one burst of large
	// mail does not leave a log of its size behind.
	v.Add("_pragma", fmt.Sprintf("journal_size_limit(%d)", walLimit))
	v.Add("_txlock", "immediate")
	// What the gorm dialect adds to a DSN it opens itself (it is handed
	// an open pool, see cachingConnector): times written as SQLite's
	// date functions read them, and read back from DATETIME columns.
	v.Add("_time_format", "sqlite")
	v.Add("_texttotime", "1")
	v.Add("_inttotime", "1")
	return "file:" + path + "?" + v.Encode()
}

// Driver returns the database driver name.
func (s *Store) Driver() string { return s.driver }

// Close closes the database.
func (s *Store) Close() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	err = sqlDB.Close()
	if s.pack != nil {
		s.pack.close()
	}
	if s.segs != nil {
		err = errors.Join(err, s.segs.close())
	}
	if s.lock != nil {
		err = errors.Join(err, s.lock.Close())
	}
	return err
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// now returns the store's time, truncated to microseconds so that values
// read back from PostgreSQL compare equal to those written.
func (s *Store) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }

// RunMaintenance does the database's background chores until ctx ends:
// on SQLite it checkpoints the WAL every second, so that the copy of
// committed pages into the database file happens here instead of inside
// a group commit that SMTP sessions are waiting for, and it keeps the
// planner's statistics current (Optimize at start and every hour, and a
// database that outgrew its statistics analyzed within a minute).
// PostgreSQL's autovacuum does the latter there.
func (s *Store) RunMaintenance(ctx context.Context) error {
	period := time.Second
	if s.driver != DriverSQLite {
		period = 10 * time.Second
	}
	if err := s.Optimize(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("optimize", "err", err)
	}
	lastOptimize, lastGrowth := s.now(), s.now()
	return every(ctx, period, func() {
		if err := s.Checkpoint(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("database maintenance", "err", err)
		}
		if err := s.Reclaim(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("reclaiming free pages", "err", err)
		}
		if s.now().Sub(lastGrowth) >= growthEvery {
			lastGrowth = s.now()
			if _, err := s.analyzeIfGrown(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("optimize", "err", err)
			}
		}
		if s.now().Sub(lastOptimize) >= optimizeEvery {
			lastOptimize = s.now()
			if err := s.Optimize(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("optimize", "err", err)
			}
		}
	})
}

// Checkpoint is one round of the database's maintenance.
//
// On SQLite it copies the write-ahead log into the database file. PASSIVE
// never blocks writers; what it cannot copy now it copies next time. When
// it has copied the whole log and the log file is still larger than
// Options.WALSizeLimit (after a burst), a TRUNCATE checkpoint, which then
// only has to reset the log, gives the space back. (SQLite reuses the
// pages of dropped bodies by itself.)
//
// On PostgreSQL it vacuums the tables where dropped outgoing bodies
// left dead rows, so that the next bodies reuse their space
// (vacuumDropped).
func (s *Store) Checkpoint(ctx context.Context) error {
	if s.driver != DriverSQLite {
		return s.vacuumDropped(ctx)
	}
	var busy, logFrames, copied int64
	if err := s.db.WithContext(ctx).Raw("PRAGMA wal_checkpoint(PASSIVE)").Row().Scan(&busy, &logFrames, &copied); err != nil {
		return fmt.Errorf("wal checkpoint: %w", err)
	}
	if busy != 0 || logFrames != copied {
		return nil
	}
	fi, err := os.Stat(s.walPath)
	if err != nil || fi.Size() <= s.walLimit {
		return nil
	}
	return s.truncateWAL(ctx)
}

// truncateWAL resets the write-ahead log to an empty file if it can do so
// at once. A TRUNCATE checkpoint takes the writer's lock and then waits
// for every reader to leave the log; with the connection's busy timeout
// it waited up to 80 ms at a time in tend bench while the door's commits
// queued behind it (12 times in a 25 s run). Without a busy timeout it
// gives up instead of waiting: while mail flows, the next writer starts
// the fully copied log over and SQLite truncates it to journal_size_limit
// itself; once the server is quiet, nothing is in the way.
func (s *Store) truncateWAL(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return fmt.Errorf("wal checkpoint: %w", err)
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return fmt.Errorf("wal checkpoint: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		return fmt.Errorf("wal checkpoint: %w", err)
	}
	var busy, logFrames, copied int64
	cerr := conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &copied)
	// The connection goes back to the pool: it must wait for the lock
	// again like every other.
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", sqliteBusyTimeout.Milliseconds())); err != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		return fmt.Errorf("wal checkpoint: %w", err)
	}
	if cerr != nil && !Retryable(cerr) {
		return fmt.Errorf("wal checkpoint: %w", cerr)
	}
	return nil
}
