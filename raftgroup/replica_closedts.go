package raftgroup

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/quorumdb/quorumdb/kv"
)

// Closed timestamps and follower reads (TXN.md: "followers serve only reads
// at a timestamp the leader has closed").
//
// A leader closes a timestamp T by proposing a close entry carrying T. The
// promise is that every write at or below T that will ever apply in the
// range comes before that entry in the log, or leaves a lock there first.
// Any replica that applied the entry can then serve reads at or below T
// from its own state, without a ReadIndex round and without a leader: the
// read sees every committed value at or below T, or the lock of a
// transaction that may still commit there (which the reader resolves
// through the primary as on the leader).
//
// Why the promise holds for each kind of write:
//   - 1PC: the leader picks its commit timestamp above max_read_ts, and
//     closing T raises max_read_ts to T in the same critical section that
//     queues the close entry; a 1PC's timestamp is fixed in the critical
//     section that queues its own entry, so the queue order (= log order)
//     puts every 1PC at or below T before the close. A new leader seeds
//     max_read_ts from a fresh oracle timestamp, which is above every T its
//     predecessors closed (each T is below a timestamp the oracle handed
//     out before the close was proposed).
//   - 2PC: a commit needs its lock, and the coordinator takes the commit
//     timestamp from the oracle after every prewrite was acknowledged. A
//     lock applied after the close therefore commits above T; a lock
//     applied before it is visible to the reader.
//
// Closing costs a log entry, so a leader closes only while there is demand:
// a read at a timestamp at least ClosedTimestampLag old (on the leader, or
// refused or served by a follower, which tells the leader) keeps it
// closing every CloseInterval for FollowerReadWindow. Without stale reads
// nothing is closed and nothing is spent.
//
// A closed read pins its engine snapshot under the replica's lock, with the
// descriptor and the closed timestamp it checked; batches that delete the
// replica's data (a removal, a split whose right half moved away) block
// closed reads before they commit, so no read is answered from deleted
// state.

// followerReadsMarker tags the notice a follower sends to the leader when
// stale reads come to it.
const followerReadsMarker = "quorumdb:follower-reads"

func isFollowerReadsNotice(m *raftpb.Message) bool {
	return m.GetType() == raftpb.MsgHeartbeatResp && string(m.GetContext()) == followerReadsMarker
}

func decodeCloseTimestamp(b []byte) (kv.Timestamp, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("raftgroup: close-timestamp command of %d bytes", len(b))
	}
	return decodeUint64(b)
}

// ClosedTimestamp returns the highest timestamp closed on this replica:
// reads at or below it are served here whatever the replica's role.
func (r *Replica) ClosedTimestamp() kv.Timestamp {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closedTS
}

// loadClosedTimestamp takes the persisted closed timestamp (written by the
// split that initialized this replica) into memory.
func (r *Replica) loadClosedTimestamp() {
	b, err := kv.GetRaw(r.store.engine.DB(), kv.RangeClosedTimestampKey(r.rangeID))
	if err == nil && b == nil {
		return
	}
	var ts kv.Timestamp
	if err == nil {
		ts, err = decodeUint64(b)
	}
	if err != nil {
		// Nothing closed here is the safe answer: reads go to the leader.
		r.log.Warn("cannot load the inherited closed timestamp", "err", err)
		return
	}
	r.mu.Lock()
	r.closedTS = max(r.closedTS, ts)
	r.mu.Unlock()
}

// isStaleRead reports whether a read at ts is old enough to be a follower
// read (its physical time at least the closing lag behind this node's wall
// clock). Only a hint for demand: the closed timestamp alone decides what
// may be served.
func (s *Store) isStaleRead(ts kv.Timestamp, now time.Time) bool {
	if ts == 0 || s.cfg.CloseInterval < 0 {
		return false
	}
	return int64(kv.PhysicalMillis(ts)) <= now.Add(-s.cfg.ClosedTimestampLag).UnixMilli()
}

// followerReadTimestamp is the timestamp of a request a replica may serve
// from its own state once it is closed: point and span reads only
// (validation must raise the leader's max_read_ts).
func followerReadTimestamp(req *kv.Request) (kv.Timestamp, bool) {
	switch {
	case req.Get != nil:
		return req.Get.ReadTS, req.Get.ReadTS != 0
	case req.Scan != nil:
		return req.Scan.ReadTS, req.Scan.ReadTS != 0
	}
	return 0, false
}

// serveClosedRead serves req from this replica's state when its timestamp
// is closed here; served is false when it is not (the caller goes on with
// a leader read). A stale read that comes here keeps the leader closing.
func (r *Replica) serveClosedRead(req *kv.Request, now time.Time) (resp *kv.Response, served bool, err error) {
	ts, ok := followerReadTimestamp(req)
	if !ok {
		return nil, false, nil
	}
	stale := r.store.isStaleRead(ts, now)
	r.mu.Lock()
	if stale {
		r.noteFollowerReadDemandLocked(now)
	}
	desc := r.desc
	if desc == nil || ts > r.closedTS || r.closedReadsBlocked || r.removing || r.destroyed != nil {
		r.mu.Unlock()
		return nil, false, nil
	}
	if key, outside := firstKeyOutside(desc, requestSpans(req)); outside {
		r.mu.Unlock() // routingError reads every replica's descriptor, this one's too
		return nil, true, r.store.routingError(desc, key)
	}
	// The engine snapshot is pinned under mu, with the descriptor and the
	// closed timestamp it is read against: closedTS and desc are published
	// only after their apply batch committed (so the snapshot holds every
	// entry up to the close), and a batch deleting this replica's data
	// blocks closed reads first.
	snap := r.store.engine.NewSnapshot()
	r.mu.Unlock()
	defer snap.Close()
	resp, err = kv.EvaluateReadOnly(snap, desc, req)
	if err != nil {
		return nil, true, err
	}
	r.store.metrics.closedReads.Add(1)
	return resp, true, nil
}

// blockClosedReads refuses closed reads until the next published apply.
func (r *Replica) blockClosedReads() {
	r.mu.Lock()
	r.closedReadsBlocked = true
	r.mu.Unlock()
}

// noteFollowerReadDemandLocked records that stale reads are coming: the
// leader keeps closing for FollowerReadWindow; a follower tells its leader,
// at most every quarter window (r.mu held).
func (r *Replica) noteFollowerReadDemandLocked(now time.Time) {
	window := r.store.cfg.FollowerReadWindow
	if r.isLeader {
		r.followerReadsUntil = now.Add(window)
		return
	}
	if r.leaderID == 0 || now.Add(window*3/4).Before(r.followerReadsUntil) {
		return
	}
	node := r.nodeOfReplicaLocked(r.leaderID)
	if node == 0 || node == r.store.cfg.NodeID {
		return
	}
	r.followerReadsUntil = now.Add(window)
	// Best effort: a lost notice only lets the leader's closing lapse, and
	// the next stale read here sends another once the window runs low.
	r.store.cfg.Transport.Send(&RaftMessage{RangeID: r.rangeID, FromNode: r.store.cfg.NodeID, ToNode: node, Message: &raftpb.Message{
		Type: raftpb.MsgHeartbeatResp.Enum(), From: new(r.replicaID), To: new(r.leaderID), Term: new(r.term),
		Context: []byte(followerReadsMarker),
	}})
}

// wantsClose reports whether this replica should propose a close now: it
// leads the range and follower reads were wanted recently.
func (r *Replica) wantsClose(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.isLeader && r.destroyed == nil && r.desc != nil && now.Before(r.followerReadsUntil)
}

// proposeClose queues a close entry for target unless something at least
// as high is closed or proposed this term. max_read_ts is raised in the
// same critical section as the entry is queued: a 1PC prepared after this
// commits above target, and one prepared before is queued before the close.
func (r *Replica) proposeClose(target kv.Timestamp) {
	r.mu.Lock()
	if !r.isLeader || r.destroyed != nil {
		r.mu.Unlock()
		return
	}
	if r.closeTerm != r.term {
		r.closeTerm, r.closeProposed = r.term, 0
	}
	if target <= r.closedTS || target <= r.closeProposed {
		r.mu.Unlock()
		return
	}
	r.maxReadTS = max(r.maxReadTS, target)
	r.closeProposed = target
	p := newProposal(r.store.nextProposalID())
	p.data = encodeEnvelope(kindCloseTimestamp, p.id, encodeUint64(target))
	r.queueProposalLocked(p)
	r.mu.Unlock()
	r.store.sched.enqueue(r.rangeID)
	r.store.metrics.closes.Add(1)
}

// runCloser proposes close entries for the ranges led here that have
// follower-read demand, every CloseInterval, at the oracle's time minus
// ClosedTimestampLag. The lag keeps closing out of the way of writes in
// flight: a 1PC below a closed timestamp is pushed above it (and waits
// for the oracle to pass it, which it already has).
func (s *Store) runCloser() {
	t := time.NewTicker(s.cfg.CloseInterval)
	defer t.Stop()
	lag := kv.MakeTimestamp(uint64(s.cfg.ClosedTimestampLag.Milliseconds()), 0)
	var rs, want []*Replica
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		want = want[:0]
		rs = s.replicaList(rs[:0])
		for _, r := range rs {
			if r.wantsClose(now) {
				want = append(want, r)
			}
		}
		if len(want) == 0 {
			continue
		}
		clock := s.cfg.Clock()
		if clock <= lag {
			continue // oracle unreachable (0): nothing new can be promised
		}
		for _, r := range want {
			r.proposeClose(clock - lag)
		}
	}
}

// FollowerReadFloor returns the lowest closed timestamp among this store's
// replicas that stale reads came to within the FollowerReadWindow (0: none):
// a snapshot at or below it is served by every such replica here. In
// normal operation it trails the oracle by the closing lag; when a range
// loses its quorum its closed timestamp freezes, and so does the floor.
//
// It visits every replica, so its answer is reused for followerFloorReuse.
func (s *Store) FollowerReadFloor(now time.Time) kv.Timestamp {
	s.floorMu.Lock()
	defer s.floorMu.Unlock()
	if d := now.Sub(s.floorAt); d >= 0 && d < followerFloorReuse && !s.floorAt.IsZero() {
		return s.floorVal
	}
	var floor kv.Timestamp
	for _, r := range s.replicaList(nil) {
		r.mu.Lock()
		closed, wanted := r.closedTS, now.Before(r.followerReadsUntil) && r.destroyed == nil
		r.mu.Unlock()
		if wanted && closed != 0 && (floor == 0 || closed < floor) {
			floor = closed
		}
	}
	s.floorAt, s.floorVal = now, floor
	return floor
}

// followerFloorReuse is how long FollowerReadFloor's answer is reused.
const followerFloorReuse = 100 * time.Millisecond

// WaitClosed waits until this node's replica of rangeID has closed ts (for
// tests and tools that want a follower read to succeed).
func (s *Store) WaitClosed(ctx context.Context, rangeID uint64, ts kv.Timestamp) error {
	r := s.replica(rangeID)
	if r == nil {
		return &kv.RangeNotFoundError{RangeID: rangeID}
	}
	for {
		r.mu.Lock()
		closed, ch := r.closedTS, r.appliedCh
		if ts > closed {
			r.noteFollowerReadDemandLocked(time.Now())
		}
		r.mu.Unlock()
		if closed >= ts {
			return nil
		}
		select {
		case <-ch:
		case <-time.After(s.cfg.CloseInterval):
		case <-ctx.Done():
			return fmt.Errorf("raftgroup: r%d: wait for closed timestamp %d (closed: %d): %w", rangeID, ts, closed, context.Cause(ctx))
		}
	}
}
