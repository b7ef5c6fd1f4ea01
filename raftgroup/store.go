package raftgroup

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/quorumdb/quorumdb/kv"
)

// Config configures a Store. Zero values take the defaults named per field.
type Config struct {
	// NodeID is this node's ID (required, non-zero).
	NodeID uint64
	// Engine is the node's single pebble DB (required).
	Engine *kv.Engine
	// Transport sends messages to other stores (required).
	Transport Transport
	// Clock returns a fresh timestamp; a new leader starts its max_read_ts
	// from it (TXN.md "The 1PC hazard"). The TSO client plugs in here; tests
	// pass a monotonic local clock. Required.
	Clock func() uint64

	// TickInterval is the duration of one raft tick (default 100ms).
	TickInterval time.Duration
	// ElectionTicks and HeartbeatTicks (defaults 15 and 3: a heartbeat
	// every 300 ms, elections after 1.5–3 s). Heartbeats are the steady cost
	// of an active range (one message and one answer per follower each), so
	// they are sparser than etcd's defaults; idle ranges quiesce instead.
	ElectionTicks  int
	HeartbeatTicks int
	// Workers drain the scheduler (default 4: rounds are mostly waiting on
	// fsync, and pebble merges the syncs of concurrent rounds); each round
	// of a worker persists the Ready of up to MaxRangesPerRound ranges with
	// one fsync.
	Workers           int
	MaxRangesPerRound int
	// RequestTimeout bounds Execute and the administrative calls when the
	// caller's context has no deadline (default 5s).
	RequestTimeout time.Duration

	// raft flow control (defaults 256 KiB, 256, 16 MiB, 4 MiB).
	MaxSizePerMsg             uint64
	MaxInflightMsgs           int
	MaxUncommittedEntriesSize uint64
	MaxCommittedSizePerReady  uint64

	// EntryCacheBytes bounds the entry cache of one replica (default 256 KiB)
	// and EntryCacheBudget all of them together (default 64 MiB): past the
	// budget an appending replica keeps only its newest entry. Quiesced
	// replicas drop their cache.
	EntryCacheBytes  int
	EntryCacheBudget int64
	// LogKeepEntries is how many applied entries a replica keeps behind its
	// applied index when it truncates (default 512); truncation starts once
	// the log holds LogTruncateThreshold entries (default 2048). A leader
	// does not truncate below a follower's match index unless that follower
	// lags by more than the threshold (it will get a snapshot).
	LogKeepEntries       uint64
	LogTruncateThreshold uint64

	// QuiesceAfterTicks is how many idle ticks a leader waits before it
	// quiesces its group (default 2 × ElectionTicks; negative disables).
	QuiesceAfterTicks int

	// Closed timestamps (replica_closedts.go): while follower reads are
	// wanted (a read at least ClosedTimestampLag old came to a replica in
	// the last FollowerReadWindow), the leader closes the oracle's time
	// minus ClosedTimestampLag every CloseInterval. Defaults 1s, 500ms,
	// 30s; a negative CloseInterval disables closing (reads are then
	// served by leaders only).
	ClosedTimestampLag time.Duration
	CloseInterval      time.Duration
	FollowerReadWindow time.Duration

	// MaxConcurrentSnapshotApplies bounds incoming snapshot applies
	// (default 2); SnapshotChunkBytes is the chunk size sent (default 256 KiB).
	MaxConcurrentSnapshotApplies int
	SnapshotChunkBytes           int

	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Knobs are testing hooks; the zero value does nothing.
	Knobs TestingKnobs
}

// TestingKnobs are optional hooks for tests.
type TestingKnobs struct {
	// DisableCampaignOnBootstrap leaves the first election to the timers.
	DisableCampaignOnBootstrap bool
	// BeforeSplitRangeCreated runs on the left range's worker after a split
	// applied and before the right range's replica is created here.
	BeforeSplitRangeCreated func(leftRangeID, rightRangeID uint64)
}

func (c *Config) setDefaults() error {
	if c.NodeID == 0 {
		return fmt.Errorf("raftgroup: config: NodeID is required")
	}
	if c.Engine == nil || c.Transport == nil || c.Clock == nil {
		return fmt.Errorf("raftgroup: config: Engine, Transport and Clock are required")
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def64 := func(v *uint64, d uint64) {
		if *v == 0 {
			*v = d
		}
	}
	if c.TickInterval <= 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	def(&c.ElectionTicks, 15)
	def(&c.HeartbeatTicks, 3)
	def(&c.Workers, 4)
	def(&c.MaxRangesPerRound, 256)
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 5 * time.Second
	}
	def64(&c.MaxSizePerMsg, 256<<10)
	def(&c.MaxInflightMsgs, 256)
	def64(&c.MaxUncommittedEntriesSize, 16<<20)
	def64(&c.MaxCommittedSizePerReady, 4<<20)
	def(&c.EntryCacheBytes, 256<<10)
	if c.EntryCacheBudget <= 0 {
		c.EntryCacheBudget = 64 << 20
	}
	if c.ElectionTicks <= c.HeartbeatTicks {
		return fmt.Errorf("raftgroup: config: ElectionTicks (%d) must exceed HeartbeatTicks (%d)", c.ElectionTicks, c.HeartbeatTicks)
	}
	def64(&c.LogKeepEntries, 512)
	def64(&c.LogTruncateThreshold, 2048)
	if c.QuiesceAfterTicks == 0 {
		c.QuiesceAfterTicks = 2 * c.ElectionTicks
	}
	if c.ClosedTimestampLag <= 0 {
		c.ClosedTimestampLag = time.Second
	}
	if c.CloseInterval == 0 {
		c.CloseInterval = 500 * time.Millisecond
	}
	if c.FollowerReadWindow <= 0 {
		c.FollowerReadWindow = 30 * time.Second
	}
	def(&c.MaxConcurrentSnapshotApplies, 2)
	def(&c.SnapshotChunkBytes, 256<<10)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Store hosts this node's replicas: one raft group per range, driven by a
// scheduler and a small worker pool, on the node's single pebble DB.
type Store struct {
	cfg    Config
	engine *kv.Engine
	log    *slog.Logger
	sched  *scheduler

	mu       sync.RWMutex
	replicas map[uint64]*Replica

	metrics storeMetrics

	// FollowerReadFloor's last answer (floorMu).
	floorMu  sync.Mutex
	floorAt  time.Time
	floorVal kv.Timestamp

	proposalSeq     atomic.Uint64
	entryCacheTotal atomic.Int64  // bytes in every replica's entry cache
	snapApplies     chan struct{} // semaphore of incoming snapshot applies

	started, stopped atomic.Bool
	ctx              context.Context // cancelled by Stop
	cancel           context.CancelFunc
	wg               sync.WaitGroup
	// inflight counts calls from outside (Execute, the MessageHandler
	// methods, the admin calls) so Stop returns only once none can touch
	// the engine any more.
	inflightMu sync.RWMutex
	inflight   sync.WaitGroup
}

// NewStore loads every replica persisted in cfg.Engine. Call Start to run it.
func NewStore(cfg Config) (*Store, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{
		cfg:         cfg,
		engine:      cfg.Engine,
		log:         cfg.Logger.With("component", "raftgroup", "node", cfg.NodeID),
		sched:       newScheduler(),
		replicas:    make(map[uint64]*Replica),
		snapApplies: make(chan struct{}, cfg.MaxConcurrentSnapshotApplies),
		ctx:         ctx,
		cancel:      cancel,
	}
	var seed [8]byte
	if _, err := rand.Read(seed[:]); err != nil {
		cancel()
		return nil, fmt.Errorf("raftgroup: seed proposal ids: %w", err)
	}
	// Proposal IDs only need to be unique among this node's entries that can
	// still be applied; a random start keeps a restarted node from matching
	// an entry proposed before the restart.
	s.proposalSeq.Store(binary.BigEndian.Uint64(seed[:]) >> 1)
	if err := s.loadReplicas(); err != nil {
		cancel()
		return nil, err
	}
	return s, nil
}

// NodeID is the node this store runs on.
func (s *Store) NodeID() uint64 { return s.cfg.NodeID }

// loadReplicas finds every range with persisted state and rebuilds its
// replica. Raft re-delivers the entries between the applied index and the
// commit index as committed entries in the first Ready, so they are
// re-applied.
func (s *Store) loadReplicas() error {
	lo, _ := kv.RangeLocalSpan(0)
	hi := kv.PrefixEnd(lo[:2])
	it, err := s.engine.DB().NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("raftgroup: scan range-local state: %w", err)
	}
	defer it.Close()
	for valid := it.First(); valid; {
		key := it.Key()
		if len(key) < 10 {
			valid = it.Next()
			continue
		}
		rangeID := binary.BigEndian.Uint64(key[2:10])
		ps, err := loadPersistedState(s.engine.DB(), rangeID)
		if err != nil {
			return err
		}
		if ps.ReplicaID != 0 && ps.ReplicaID >= ps.Tombstone {
			r, err := newReplica(s, rangeID, ps)
			if err != nil {
				return err
			}
			s.replicas[rangeID] = r
		}
		valid = it.SeekGE(kv.RangeLocalPrefix(rangeID + 1))
	}
	return it.Error()
}

// Start runs the workers and the ticker. Replicas loaded from disk are
// scheduled at once so they re-apply what they had committed.
func (s *Store) Start() {
	if !s.started.CompareAndSwap(false, true) {
		return
	}
	for i := 0; i < s.cfg.Workers; i++ {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.runWorker()
		}()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.runTicker()
	}()
	if s.cfg.CloseInterval > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.runCloser()
		}()
	}
	s.mu.RLock()
	for id := range s.replicas {
		s.sched.enqueue(id)
	}
	s.mu.RUnlock()
}

// Stop halts the workers and fails every waiting request. It does not close
// the engine. Safe to call more than once.
func (s *Store) Stop() {
	s.inflightMu.Lock()
	first := s.stopped.CompareAndSwap(false, true)
	s.inflightMu.Unlock()
	if !first {
		return
	}
	s.cancel()
	s.inflight.Wait()
	s.sched.stop()
	s.wg.Wait()
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, r := range s.replicas {
		r.failPending(ErrStoreStopped)
		// The workers are gone: release what they held for the engine's
		// sake (pinned snapshots, staged SST files).
		for idx, ref := range r.snapStash {
			ref.release()
			delete(r.snapStash, idx)
		}
		for _, st := range r.stagedSnaps {
			if !st.used {
				st.cleanup()
				st.done <- ErrStoreStopped
			}
		}
		r.stagedSnaps = nil
	}
}

// enter registers a call from outside; it fails once Stop began. A true
// result must be paired with exit.
func (s *Store) enter() bool {
	s.inflightMu.RLock()
	defer s.inflightMu.RUnlock()
	if s.stopped.Load() {
		return false
	}
	s.inflight.Add(1)
	return true
}

func (s *Store) exit() { s.inflight.Done() }

func (s *Store) runTicker() {
	t := time.NewTicker(s.cfg.TickInterval)
	defer t.Stop()
	var rs []*Replica
	var ids []uint64
	for n := 1; ; n++ {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		rs = s.replicaList(rs[:0])
		ids = ids[:0]
		for _, r := range rs {
			if r.tick() {
				ids = append(ids, r.rangeID)
			}
		}
		s.sched.enqueueMany(ids)
		if n%s.cfg.ElectionTicks == 0 {
			s.probeQuiescedLeaders(rs)
		}
	}
}

// probeQuiescedLeaders sends, once per election timeout, one small message
// to each node that leads a quiesced range here. A quiesced follower sends
// nothing of its own, so without this a dead leader's node would go
// unnoticed: a failed send (or the transport's OnUnreachable) reports the
// node unreachable, which wakes its ranges here and lets them elect a new
// leader. The probe is a heartbeat response, which a leader takes as a sign
// of life and nothing else.
func (s *Store) probeQuiescedLeaders(rs []*Replica) {
	probes := map[uint64]*RaftMessage{}
	for _, r := range rs {
		if !r.quiescedFlag.Load() {
			continue
		}
		r.mu.Lock()
		if !r.isLeader && r.leaderID != 0 {
			node := r.nodeOfReplicaLocked(r.leaderID)
			if _, done := probes[node]; node != 0 && node != s.cfg.NodeID && !done {
				probes[node] = &RaftMessage{RangeID: r.rangeID, FromNode: s.cfg.NodeID, ToNode: node, Message: &raftpb.Message{
					Type: raftpb.MsgHeartbeatResp.Enum(), From: new(r.replicaID), To: new(r.leaderID), Term: new(r.term),
				}}
			}
		}
		r.mu.Unlock()
	}
	for node, m := range probes {
		if !s.cfg.Transport.Send(m) {
			s.ReportUnreachable(node)
		}
	}
}

func (s *Store) replicaList(into []*Replica) []*Replica {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, r := range s.replicas {
		into = append(into, r)
	}
	return into
}

func (s *Store) replica(rangeID uint64) *Replica {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.replicas[rangeID]
}

func (s *Store) nextProposalID() uint64 { return s.proposalSeq.Add(1) }

// withTimeout bounds ctx by the store's request timeout when it has no
// deadline of its own.
func (s *Store) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	var cancel context.CancelFunc
	if _, ok := ctx.Deadline(); ok {
		ctx, cancel = context.WithCancel(ctx)
	} else {
		ctx, cancel = context.WithTimeout(ctx, s.cfg.RequestTimeout)
	}
	// Stop ends every wait at once.
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// fatal reports a storage failure the store cannot recover from: continuing
// could apply a command twice or lose one. It panics like etcd and
// CockroachDB do on a failed log write.
func (s *Store) fatal(err error) {
	s.log.Error("raftgroup: unrecoverable storage failure", "err", err)
	panic(fmt.Sprintf("raftgroup: node %d: %v", s.cfg.NodeID, err))
}
