package txn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumdb/quorumdb/kv"
)

// Defaults of DBConfig.
const (
	DefaultLockWaitTimeout    = 10 * time.Second
	DefaultMaxTxnBytes        = 64 << 20
	DefaultLockTTL            = 3 * time.Second
	DefaultValidationWait     = 100 * time.Millisecond
	DefaultMaxRetries         = 10
	DefaultResolveConcurrency = 8
	// DefaultFollowerReadStaleness is how far in the past
	// FollowerReadTimestamp reads: above the stores' default closing lag
	// (1 s) plus their close interval (500 ms) and replication delay.
	DefaultFollowerReadStaleness = 2 * time.Second
	// DefaultFollowerReadMaxStaleness: see DBConfig.FollowerReadMaxStaleness.
	DefaultFollowerReadMaxStaleness = 30 * time.Second
)

// DBConfig configures a DB.
type DBConfig struct {
	// Sender routes requests to ranges (a *Router, or a *LocalStoreSender).
	Sender RangeSender
	// Clock hands out timestamps (cluster's TSO client, or a *LocalClock).
	Clock TimestampSource
	// Logger (nil: slog.Default()).
	Logger *slog.Logger
	// LockWaitTimeout bounds how long a read or an older writer waits for
	// another transaction's lock (0: DefaultLockWaitTimeout); past it the
	// operation fails with *LockWaitTimeoutError (MySQL 1205).
	LockWaitTimeout time.Duration
	// MaxTxnBytes limits the buffered writes of one transaction (0:
	// DefaultMaxTxnBytes); past it writes fail with *TxnTooLargeError.
	MaxTxnBytes int64
	// LockTTL is how long a lock outlives a silent coordinator (0:
	// DefaultLockTTL). Coordinators heartbeat every LockTTL/3.
	LockTTL time.Duration
	// ValidationWait bounds how long an older transaction waits, during read
	// validation, for a younger one's pending lock before it aborts (0:
	// DefaultValidationWait).
	ValidationWait time.Duration
	// MaxRetries bounds Run's attempts after retryable errors (0:
	// DefaultMaxRetries).
	MaxRetries int
	// ResolveConcurrency bounds the goroutines that commit secondaries after
	// the commit point (0: DefaultResolveConcurrency).
	ResolveConcurrency int
	// SafePoints, when set, is consulted by Begin for AS OF transactions:
	// a snapshot at or below the GC safepoint fails with
	// *SnapshotTooOldError instead of reading collected versions.
	SafePoints SafepointSource
	// GCLifetime, when set, is the cluster's GC lifetime: the safepoint is
	// never above the oracle's time minus it, so an AS OF snapshot newer
	// than this node's clock minus half of it skips the SafePoints lookup
	// (an etcd read per AS OF transaction; follower reads are such
	// transactions).
	GCLifetime time.Duration
	// FollowerReadStaleness is how far behind the oracle
	// FollowerReadTimestamp is (0: DefaultFollowerReadStaleness).
	FollowerReadStaleness time.Duration
	// ClosedFloor, when set, is the lowest closed timestamp of the local
	// replicas serving stale reads (raftgroup.Store.FollowerReadFloor; 0:
	// none). FollowerReadTimestamp goes back to it, by at most
	// FollowerReadMaxStaleness, when it is older than the usual snapshot: a
	// range that lost its quorum keeps serving follower reads from here.
	ClosedFloor func() kv.Timestamp
	// FollowerReadMaxStaleness bounds how far FollowerReadTimestamp goes
	// back to the closed floor (0: DefaultFollowerReadMaxStaleness).
	FollowerReadMaxStaleness time.Duration
	// Knobs are testing hooks (nil in production).
	Knobs *TestingKnobs
}

// TestingKnobs are hooks for tests; every field is optional.
type TestingKnobs struct {
	// Disable1PC forces two-phase commit even for single-range transactions.
	Disable1PC bool
	// AfterPrewrite runs once every prewrite succeeded, before commit_ts is
	// taken. An error makes the coordinator stop right there as if it had
	// crashed: no rollback, no heartbeat, locks stay until their TTL.
	AfterPrewrite func(t *Txn) error
	// AfterPrimaryCommit runs after the commit point. An error makes the
	// coordinator stop as if it had crashed: secondaries stay locked for
	// readers to roll forward. Commit still returns nil (it did commit).
	AfterPrimaryCommit func(t *Txn) error
	// FilterSecondaries, when set, chooses which secondaries the coordinator
	// commits after the commit point; returning a subset simulates a crash
	// in the middle of secondary commit.
	FilterSecondaries func(t *Txn, secondaries [][]byte) [][]byte
	// BeforeValidation runs after commit_ts is taken, before validation.
	BeforeValidation func(t *Txn)
	// OnRetry is called by Run before each retry with the error that caused it.
	OnRetry func(attempt int, err error)
}

// errCoordinatorStopped is what a knob returns to simulate a crash; any
// error works, this one is for tests' convenience.
var errCoordinatorStopped = errors.New("txn: coordinator stopped by testing knob")

// ErrCoordinatorStopped returns the sentinel error tests use to simulate a
// coordinator crash from a knob.
func ErrCoordinatorStopped() error { return errCoordinatorStopped }

// TxnOptions configure a transaction.
type TxnOptions struct {
	// ReadOnly transactions read a snapshot and write nothing; they need no
	// validation and never abort.
	ReadOnly bool
	// AsOf, when set, reads a snapshot at this past timestamp (a stale read);
	// the transaction is read-only.
	AsOf kv.Timestamp
}

// DB begins transactions over a cluster (or one local store). It is safe
// for concurrent use; Close stops its background work.
type DB struct {
	stats txnCounters

	cfg    DBConfig
	sender RangeSender
	// sendLeader and sendNearest are sender's two ways to send a read,
	// bound once (readSender).
	sendLeader, sendNearest sendFunc
	clock                   TimestampSource
	logger                  *slog.Logger
	knobs                   TestingKnobs

	// bg is cancelled by Close; background work (secondary resolution,
	// heartbeats) runs under it.
	bg       context.Context
	cancelBg context.CancelFunc
	bgWG     sync.WaitGroup
	resolveq chan struct{} // semaphore of async resolvers

	mu     sync.Mutex
	active map[*Txn]kv.Timestamp // open transactions with a start_ts
	rng    *rand.Rand
	closed bool

	// The last oracle timestamp FollowerReadTimestamp fetched and when
	// (followerMu): within followerClockReuse it extrapolates instead of
	// asking again.
	followerMu   sync.Mutex
	followerTS   kv.Timestamp
	followerTSAt time.Time
}

// followerClockReuse is how long FollowerReadTimestamp extrapolates from one
// oracle timestamp with the local clock instead of asking the oracle.
const followerClockReuse = 250 * time.Millisecond

// NewDB returns a DB.
func NewDB(cfg DBConfig) *DB {
	if cfg.LockWaitTimeout <= 0 {
		cfg.LockWaitTimeout = DefaultLockWaitTimeout
	}
	if cfg.MaxTxnBytes <= 0 {
		cfg.MaxTxnBytes = DefaultMaxTxnBytes
	}
	if cfg.LockTTL <= 0 {
		cfg.LockTTL = DefaultLockTTL
	}
	if cfg.ValidationWait <= 0 {
		cfg.ValidationWait = DefaultValidationWait
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = DefaultMaxRetries
	}
	if cfg.ResolveConcurrency <= 0 {
		cfg.ResolveConcurrency = DefaultResolveConcurrency
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.FollowerReadStaleness <= 0 {
		cfg.FollowerReadStaleness = DefaultFollowerReadStaleness
	}
	if cfg.FollowerReadMaxStaleness <= 0 {
		cfg.FollowerReadMaxStaleness = DefaultFollowerReadMaxStaleness
	}
	db := &DB{
		cfg:      cfg,
		sender:   cfg.Sender,
		clock:    cfg.Clock,
		logger:   cfg.Logger.With("component", "txn"),
		resolveq: make(chan struct{}, cfg.ResolveConcurrency),
		active:   make(map[*Txn]kv.Timestamp),
		rng:      rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1)),
	}
	db.sendLeader, db.sendNearest = cfg.Sender.SendToRange, cfg.Sender.SendToRange
	if ns, ok := cfg.Sender.(NearestSender); ok {
		db.sendNearest = ns.SendToNearest
	}
	if cfg.Knobs != nil {
		db.knobs = *cfg.Knobs
	}
	db.bg, db.cancelBg = context.WithCancel(context.Background())
	return db
}

// Close cancels background work (secondary resolution, heartbeats) and
// waits for it. Transactions still open fail on their next call. Locks left
// behind are resolved by later readers through their primary.
func (db *DB) Close() {
	db.mu.Lock()
	db.closed = true
	db.mu.Unlock()
	db.cancelBg()
	db.bgWG.Wait()
}

// Sender returns the DB's range sender (GC and tools route through it).
func (db *DB) Sender() RangeSender { return db.sender }

// Clock returns the DB's timestamp source (tests build a second DB with
// other knobs over the same sender and clock).
func (db *DB) Clock() TimestampSource { return db.clock }

// FollowerReadTimestamp returns a timestamp FollowerReadStaleness behind
// the oracle: an AS OF snapshot there is normally served by the nearest
// replica of every range (once follower reads are flowing: the first reads
// of a range go to its leader and start the closing of timestamps). When the
// oracle does not answer within a second (it may be out of reach exactly
// when follower reads matter), this node's wall clock stands in for it: any
// timestamp is a consistent snapshot, and one that a replica has not closed
// is served by the leader, which covers it.
func (db *DB) FollowerReadTimestamp(ctx context.Context) (kv.Timestamp, error) {
	lag := kv.MakeTimestamp(uint64(db.cfg.FollowerReadStaleness.Milliseconds()), 0)
	now, err := db.followerClock(ctx)
	if err != nil {
		return 0, err
	}
	if now <= lag {
		return 0, fmt.Errorf("txn: follower read timestamp: clock %d is younger than the staleness", now)
	}
	ts := now - lag
	if db.cfg.ClosedFloor != nil {
		// Bounded staleness: when a local replica serving stale reads has
		// closed less than usual (its range lost its quorum, or is slow),
		// read where it can still serve, at most FollowerReadMaxStaleness
		// back. Any timestamp is a consistent snapshot.
		if floor := db.cfg.ClosedFloor(); floor != 0 && floor < ts {
			oldest := kv.Timestamp(0)
			if maxLag := kv.MakeTimestamp(uint64(db.cfg.FollowerReadMaxStaleness.Milliseconds()), 0); now > maxLag {
				oldest = now - maxLag
			}
			ts = max(floor, oldest)
		}
	}
	return ts, nil
}

// followerClock is the oracle's time for FollowerReadTimestamp: an oracle
// timestamp fetched less than followerClockReuse ago plus the local time
// elapsed since (an oracle call per stale statement would cost as much as
// the follower read saves; the staleness dwarfs any drift over 250 ms, and
// the oracle only runs ahead of its own wall clock, never behind), else a
// fresh one.
func (db *DB) followerClock(ctx context.Context) (kv.Timestamp, error) {
	asked := time.Now()
	db.followerMu.Lock()
	cached, at := db.followerTS, db.followerTSAt
	db.followerMu.Unlock()
	if cached != 0 && asked.Sub(at) >= 0 && asked.Sub(at) < followerClockReuse {
		return kv.MakeTimestamp(kv.PhysicalMillis(cached)+uint64(asked.Sub(at).Milliseconds()), 0), nil
	}
	octx, cancel := context.WithTimeout(ctx, time.Second)
	now, err := db.clock.GetTimestamp(octx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("txn: follower read timestamp: %w", ctx.Err())
		}
		db.logger.Warn("timestamp oracle unavailable; follower read timestamp from the local clock", "err", err)
		// The time of the call, not of the timeout: the wait must not make
		// the snapshot younger than what replicas closed before.
		return kv.MakeTimestamp(uint64(asked.UnixMilli()), 0), nil
	}
	// Paired with the time the answer arrived (the oracle handed it out
	// before that), so extrapolating never runs ahead of the oracle.
	db.followerMu.Lock()
	if now > db.followerTS {
		db.followerTS, db.followerTSAt = now, time.Now()
	}
	db.followerMu.Unlock()
	return now, nil
}

// youngerThanGCLifetime reports whether ts is recent enough that no
// safepoint can be at or above it (see DBConfig.GCLifetime).
func (db *DB) youngerThanGCLifetime(ts kv.Timestamp) bool {
	if db.cfg.GCLifetime <= 0 {
		return false
	}
	return int64(kv.PhysicalMillis(ts)) > time.Now().Add(-db.cfg.GCLifetime/2).UnixMilli()
}

// checkNotFuture refuses an AS OF snapshot above the oracle's time: a read
// there would raise the ranges' max_read_ts into the future and make every
// later write wait for the clock to catch up. Only timestamps within a
// second of this node's wall clock (or past it) cost an oracle call.
func (db *DB) checkNotFuture(ctx context.Context, asOf kv.Timestamp) error {
	if asOf == 0 || int64(kv.PhysicalMillis(asOf)) < time.Now().Add(-time.Second).UnixMilli() {
		return nil
	}
	now, err := db.clock.GetTimestamp(ctx)
	if err != nil {
		return fmt.Errorf("txn: check AS OF timestamp: %w", err)
	}
	if asOf > now {
		return &InvalidArgumentError{Reason: fmt.Sprintf("AS OF timestamp %d is in the future (the oracle is at %d)", asOf, now)}
	}
	return nil
}

// Begin starts a transaction. It costs nothing until the first read or the
// commit: the start timestamp is taken lazily. Every transaction must end
// with Commit or Rollback (an open one holds back MinActiveStartTS).
func (db *DB) Begin(ctx context.Context, opts TxnOptions) (*Txn, error) {
	db.mu.Lock()
	closed := db.closed
	db.mu.Unlock()
	if closed {
		return nil, errors.New("txn: DB is closed")
	}
	if opts.AsOf != 0 && db.cfg.SafePoints != nil && !db.youngerThanGCLifetime(opts.AsOf) {
		sp, err := db.cfg.SafePoints.GCSafePoint(ctx)
		if err != nil {
			return nil, fmt.Errorf("txn: read GC safepoint for an AS OF snapshot: %w", err)
		}
		if opts.AsOf <= sp {
			return nil, &SnapshotTooOldError{AsOf: opts.AsOf, SafePoint: sp}
		}
	}
	if err := db.checkNotFuture(ctx, opts.AsOf); err != nil {
		return nil, err
	}
	t := &Txn{db: db, opts: opts, readOnly: opts.ReadOnly || opts.AsOf != 0}
	if opts.AsOf != 0 {
		t.startTS = opts.AsOf
		t.startWall = time.Now()
		db.register(t, opts.AsOf)
	}
	return t, nil
}

// Run runs fn in a transaction and commits it, running it again with a fresh
// transaction after a retryable error (serialization failure), at most
// MaxRetries times, with randomized exponential backoff. fn must be
// idempotent apart from its effects through t. An error fn returns that is
// not retryable rolls back and is returned as is.
func (db *DB) Run(ctx context.Context, opts TxnOptions, fn func(ctx context.Context, t *Txn) error) error {
	backoff := 2 * time.Millisecond
	var err error
	for attempt := 0; ; attempt++ {
		err = db.runOnce(ctx, opts, fn)
		if err == nil || !IsRetryable(err) || attempt+1 >= db.cfg.MaxRetries {
			return err
		}
		if db.knobs.OnRetry != nil {
			db.knobs.OnRetry(attempt, err)
		}
		if serr := sleepCtx(ctx, db.jitter(backoff)); serr != nil {
			return fmt.Errorf("txn: retry after %w: %w", err, serr)
		}
		backoff = min(backoff*2, 200*time.Millisecond)
	}
}

func (db *DB) runOnce(ctx context.Context, opts TxnOptions, fn func(ctx context.Context, t *Txn) error) error {
	t, err := db.Begin(ctx, opts)
	if err != nil {
		return err
	}
	if err := fn(ctx, t); err != nil {
		if rerr := t.Rollback(ctx); rerr != nil {
			db.logger.Debug("rollback after error failed", "err", rerr)
		}
		return err
	}
	return t.Commit(ctx)
}

// jitter returns a random duration in [0, d].
func (db *DB) jitter(d time.Duration) time.Duration {
	db.mu.Lock()
	defer db.mu.Unlock()
	return time.Duration(db.rng.Int64N(int64(d) + 1))
}

// MinActiveStartTS returns the smallest start_ts among this DB's open
// transactions (0 when none): what the node publishes so the GC safepoint
// stays below every live snapshot.
func (db *DB) MinActiveStartTS() kv.Timestamp {
	db.mu.Lock()
	defer db.mu.Unlock()
	var m kv.Timestamp
	for _, ts := range db.active {
		if m == 0 || ts < m {
			m = ts
		}
	}
	return m
}

func (db *DB) register(t *Txn, ts kv.Timestamp) {
	db.mu.Lock()
	db.active[t] = ts
	db.mu.Unlock()
}

func (db *DB) unregister(t *Txn) {
	db.mu.Lock()
	delete(db.active, t)
	db.mu.Unlock()
}

// now takes a timestamp from the clock.
func (db *DB) now(ctx context.Context) (kv.Timestamp, error) {
	ts, err := db.clock.GetTimestamp(ctx)
	if err != nil {
		return 0, fmt.Errorf("txn: get timestamp: %w", err)
	}
	return ts, nil
}

// goBackground runs fn under the DB's background context, at most
// ResolveConcurrency at a time; when the DB is closed it drops the work
// (later readers resolve what it would have done).
func (db *DB) goBackground(fn func(ctx context.Context)) {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return
	}
	db.bgWG.Add(1)
	db.mu.Unlock()
	go func() {
		defer db.bgWG.Done()
		select {
		case db.resolveq <- struct{}{}:
		case <-db.bg.Done():
			return
		}
		defer func() { <-db.resolveq }()
		fn(db.bg)
	}()
}

// txnCounters count transaction outcomes for Stats.
type txnCounters struct {
	commits, readOnlyCommits, aborts, failures, rollbacks atomic.Uint64
}

// Stats counts the outcomes of this DB's transactions since it was created.
type Stats struct {
	// Commits of transactions that wrote, and of read-only ones.
	Commits, ReadOnlyCommits uint64
	// Aborts are commits that failed with a retryable conflict (1213);
	// Failures any other failed commit; Rollbacks explicit rollbacks.
	Aborts, Failures, Rollbacks uint64
}

// Stats returns the transaction counters.
func (db *DB) Stats() Stats {
	return Stats{
		Commits:         db.stats.commits.Load(),
		ReadOnlyCommits: db.stats.readOnlyCommits.Load(),
		Aborts:          db.stats.aborts.Load(),
		Failures:        db.stats.failures.Load(),
		Rollbacks:       db.stats.rollbacks.Load(),
	}
}
