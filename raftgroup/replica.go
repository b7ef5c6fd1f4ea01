package raftgroup

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/quorumdb/quorumdb/kv"
)

// Replica is this node's member of one range's raft group.
//
// Ownership: raw, and everything marked "worker-owned", is touched only by
// the scheduler worker that currently holds the range (the scheduler never
// hands a range to two workers at once). Other goroutines talk to the group
// through the inbox under mu and then schedule the range.
type Replica struct {
	store     *Store
	rangeID   uint64
	replicaID uint64
	storage   *logStorage
	log       *slog.Logger

	// worker-owned
	raw         *raft.RawNode
	readBatches map[uint64][]*readRequest // ReadIndex context -> waiting reads
	readSeq     uint64
	snapStash   map[uint64]*snapRef // outgoing snapshot data by index
	round       uint64
	stagedSnaps []*stagedSnapshot // incoming, waiting for their Ready

	// adminMu is held by the split or membership change this node runs on
	// the range: one at a time, so neither is computed from a descriptor
	// the other is about to change (lockAdmin).
	adminMu sync.Mutex

	mu        sync.Mutex
	desc      *kv.RangeDescriptor // nil while uninitialized
	inbox     inbox
	destroyed error // set once the replica is removed from the store
	// raft status as of the worker's last round
	leaderID uint64 // replica ID of the leader (0: unknown)
	term     uint64
	isLeader bool
	leaderCh chan struct{} // closed and replaced when leadership changes
	// proposals by ID, from proposal until applied or known lost
	proposals map[uint64]*proposal
	applied   uint64
	appliedCh chan struct{} // closed and replaced when applied advances
	// TXN.md "The 1PC hazard": highest read timestamp served as leader, and
	// latches on the keys of 1PC commands between proposal and apply.
	maxReadTS     uint64
	maxReadTSTerm uint64 // term in which maxReadTS was seeded from the clock
	latches       map[string]int
	latchCh       chan struct{}
	// Closed timestamps (replica_closedts.go). closedTS is the highest one
	// applied here; closeProposed the highest this replica proposed as
	// leader in closeTerm; followerReadsUntil is when the demand for
	// follower reads that keeps the leader closing lapses.
	closedTS           kv.Timestamp
	closeProposed      kv.Timestamp
	closeTerm          uint64
	followerReadsUntil time.Time
	// closedReadsBlocked is set before a split's batch (which may delete the
	// right half's data here) and cleared once the matching descriptor is
	// published; removing is set for good before a removal deletes the
	// data. Closed reads pin their engine snapshot under mu and are refused
	// while either is set.
	closedReadsBlocked bool
	removing           bool
	peerNodes          map[uint64]uint64 // replica ID -> node ID learned from messages
	// quiescence
	idleTicks int
	quiesced  bool
	// quiescedFlag mirrors quiesced for the ticker, which visits every
	// replica each tick and should not take each one's lock to skip it.
	quiescedFlag atomic.Bool
}

func (r *Replica) setQuiescedLocked(q bool) {
	r.quiesced = q
	r.quiescedFlag.Store(q)
}

// inbox is what other goroutines hand to the owner worker.
type inbox struct {
	ticks     int
	msgs      []*raftpb.Message
	proposals []*proposal
	reads     []*readRequest
	funcs     []func(*Replica)
}

func (b *inbox) empty() bool {
	return b.ticks == 0 && len(b.msgs) == 0 && len(b.proposals) == 0 && len(b.reads) == 0 && len(b.funcs) == 0
}

// maxInboxMessages bounds queued raft messages per replica; beyond it
// messages are dropped and raft retransmits.
const maxInboxMessages = 4096

func newReplica(s *Store, rangeID uint64, ps persistedState) (*Replica, error) {
	storage, err := newLogStorage(s.engine, rangeID, ps, s.cfg.EntryCacheBytes, &s.entryCacheTotal, s.cfg.EntryCacheBudget)
	if err != nil {
		return nil, err
	}
	r := &Replica{
		store:       s,
		rangeID:     rangeID,
		replicaID:   ps.ReplicaID,
		storage:     storage,
		log:         s.log.With("range", rangeID, "replica", ps.ReplicaID),
		readBatches: make(map[uint64][]*readRequest),
		snapStash:   make(map[uint64]*snapRef),
		desc:        ps.Descriptor,
		leaderCh:    make(chan struct{}),
		proposals:   make(map[uint64]*proposal),
		applied:     ps.Applied.Index,
		appliedCh:   make(chan struct{}),
		latches:     make(map[string]int),
		latchCh:     make(chan struct{}),
		peerNodes:   make(map[uint64]uint64),
		closedTS:    ps.ClosedTS,
	}
	storage.onSnapshot = r.onStorageSnapshot
	if err := r.resetRawNode(); err != nil {
		return nil, err
	}
	return r, nil
}

// resetRawNode builds the RawNode from what storage holds.
func (r *Replica) resetRawNode() error {
	// A hard state written before the replica was initialized (a vote cast
	// while uninitialized) can have a commit index below the synthetic
	// truncated index; entries up to the truncated index are committed by
	// definition, and raft rejects a commit index outside its log.
	hs := r.storage.currentHardState()
	first, _ := r.storage.bounds()
	if hs.GetCommit() < first-1 && !raft.IsEmptyHardState(hs) {
		hs.Commit = new(first - 1)
		r.storage.setHardState(hs)
	}
	cfg := r.store.cfg
	raw, err := raft.NewRawNode(&raft.Config{
		ID:                        r.replicaID,
		ElectionTick:              cfg.ElectionTicks,
		HeartbeatTick:             cfg.HeartbeatTicks,
		Storage:                   r.storage,
		Applied:                   r.storage.appliedState().Index,
		MaxSizePerMsg:             cfg.MaxSizePerMsg,
		MaxCommittedSizePerReady:  cfg.MaxCommittedSizePerReady,
		MaxUncommittedEntriesSize: cfg.MaxUncommittedEntriesSize,
		MaxInflightMsgs:           cfg.MaxInflightMsgs,
		CheckQuorum:               true,
		PreVote:                   true,
		ReadOnlyOption:            raft.ReadOnlySafe,
		// Proposals are made on the leader only: a follower answers
		// NotLeader, so a forwarded proposal can never surprise a waiter.
		DisableProposalForwarding: true,
		StepDownOnRemoval:         true,
		Logger:                    raftLogger{r.log},
	})
	if err != nil {
		return fmt.Errorf("raftgroup: r%d: new raw node: %w", r.rangeID, err)
	}
	r.raw = raw
	return nil
}

// tick adds one tick to the inbox unless the group is quiesced; it reports
// whether the range needs scheduling.
func (r *Replica) tick() bool {
	if r.quiescedFlag.Load() {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.destroyed != nil || r.quiesced {
		return false
	}
	r.inbox.ticks++
	return true
}

// submit queues work for the owner worker and schedules the range. It
// wakes a quiesced group.
func (r *Replica) submit(fill func(*inbox)) error {
	r.mu.Lock()
	if r.destroyed != nil {
		err := r.destroyed
		r.mu.Unlock()
		return err
	}
	fill(&r.inbox)
	r.wakeForWorkLocked()
	r.mu.Unlock()
	r.store.sched.enqueue(r.rangeID)
	return nil
}

// queueProposalLocked adds p to the inbox (r.mu held; the caller schedules
// the range after unlocking). Proposals are proposed in queue order, so a
// critical section that fixes a timestamp and queues its entry orders that
// entry against every other such section (replica_closedts.go).
func (r *Replica) queueProposalLocked(p *proposal) {
	r.inbox.proposals = append(r.inbox.proposals, p)
	r.wakeForWorkLocked()
}

func (r *Replica) wakeForWorkLocked() {
	r.setQuiescedLocked(false)
	r.idleTicks = 0
}

// runOnOwner queues f to run on the worker that owns the replica.
func (r *Replica) runOnOwner(f func(*Replica)) error {
	return r.submit(func(b *inbox) { b.funcs = append(b.funcs, f) })
}

// Descriptor returns a copy of the current descriptor (nil: uninitialized).
func (r *Replica) Descriptor() *kv.RangeDescriptor {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.desc == nil {
		return nil
	}
	return r.desc.Clone()
}

// descriptor returns the current descriptor without copying it (nil:
// uninitialized). Descriptors are replaced on change, never mutated, so the
// result stays valid; callers must not modify it.
func (r *Replica) descriptor() *kv.RangeDescriptor {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.desc
}

// nodeOfReplicaLocked maps a replica ID of this group to its node.
func (r *Replica) nodeOfReplicaLocked(replicaID uint64) uint64 {
	if r.desc != nil {
		for _, d := range r.desc.Replicas {
			if d.ReplicaID == replicaID {
				return d.NodeID
			}
		}
	}
	return r.peerNodes[replicaID]
}

// notLeaderErrorLocked is the routing answer of a replica that is not the
// leader, with the leader's node as a hint when known.
func (r *Replica) notLeaderErrorLocked() error {
	var hint uint64
	if r.leaderID != 0 {
		hint = r.nodeOfReplicaLocked(r.leaderID)
	}
	return &kv.NotLeaderError{RangeID: r.rangeID, LeaderNodeID: hint}
}

// failPending fails every waiter (store stop, replica removal).
func (r *Replica) failPending(err error) {
	r.mu.Lock()
	props := r.proposals
	r.proposals = make(map[uint64]*proposal)
	reads := r.inbox.reads
	r.inbox.reads = nil
	queued := r.inbox.proposals
	r.inbox.proposals = nil
	r.mu.Unlock()
	for _, p := range props {
		p.finish(nil, err)
	}
	for _, p := range queued {
		p.finish(nil, err)
	}
	for _, rr := range reads {
		rr.finish(err)
	}
	// readBatches are worker-owned; Stop calls this after the workers exit.
	for _, batch := range r.readBatches {
		for _, rr := range batch {
			rr.finish(err)
		}
	}
	r.readBatches = make(map[uint64][]*readRequest)
	r.releaseAllLatches()
}

// snapRef is a pebble snapshot taken when raft asked for a snapshot's
// metadata, kept until the MsgSnap using it has been streamed.
type snapRef struct {
	snap  *pebble.Snapshot
	index uint64
	round uint64
	refs  int32 // guarded by the owner worker, then by mu of the senders
	mu    sync.Mutex
}

func (s *snapRef) release() {
	s.mu.Lock()
	s.refs--
	last := s.refs == 0
	s.mu.Unlock()
	if last {
		_ = s.snap.Close()
	}
}

func (s *snapRef) acquire() {
	s.mu.Lock()
	s.refs++
	s.mu.Unlock()
}

// cloneHardState copies a hard state.
func cloneHardState(hs *raftpb.HardState) *raftpb.HardState {
	if hs == nil {
		return &raftpb.HardState{}
	}
	return proto.Clone(hs).(*raftpb.HardState)
}

// raftLogger routes raft's logging to slog: its info chatter goes to debug.
type raftLogger struct{ l *slog.Logger }

func (l raftLogger) Debug(v ...any)                 { l.l.Debug(fmt.Sprint(v...)) }
func (l raftLogger) Debugf(format string, v ...any) { l.l.Debug(fmt.Sprintf(format, v...)) }
func (l raftLogger) Info(v ...any)                  { l.l.Debug(fmt.Sprint(v...)) }
func (l raftLogger) Infof(format string, v ...any)  { l.l.Debug(fmt.Sprintf(format, v...)) }
func (l raftLogger) Warning(v ...any)               { l.l.Warn(fmt.Sprint(v...)) }
func (l raftLogger) Warningf(format string, v ...any) {
	l.l.Warn(fmt.Sprintf(format, v...))
}
func (l raftLogger) Error(v ...any)                 { l.l.Error(fmt.Sprint(v...)) }
func (l raftLogger) Errorf(format string, v ...any) { l.l.Error(fmt.Sprintf(format, v...)) }
func (l raftLogger) Fatal(v ...any)                 { l.Panic(v...) }
func (l raftLogger) Fatalf(format string, v ...any) { l.Panicf(format, v...) }
func (l raftLogger) Panic(v ...any) {
	msg := fmt.Sprint(v...)
	l.l.Error(msg)
	panic(msg)
}
func (l raftLogger) Panicf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.l.Error(msg)
	panic(msg)
}

// lockAdmin reserves the range for one split or membership change run from
// this node; a second one is refused at once (the caller retries) rather
// than queued behind a change that may take several request timeouts.
func (r *Replica) lockAdmin() (unlock func(), err error) {
	if !r.adminMu.TryLock() {
		return nil, &InvalidChangeError{RangeID: r.rangeID, Reason: "another split or membership change of the range is in progress on this node"}
	}
	return r.adminMu.Unlock, nil
}
