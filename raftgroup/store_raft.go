package raftgroup

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/quorumdb/quorumdb/kv"
)

// The Ready loop. A worker takes a set of ranges from the scheduler and runs
// one round over them:
//
//  1. hand each range's inbox (ticks, messages, proposals, reads) to its
//     RawNode and collect the Readys;
//  2. apply incoming snapshots (ingest), then persist the log entries and
//     hard states of all of them in ONE pebble batch with ONE sync;
//  3. only then send their messages (raft's contract: a message may promise
//     what is durable only);
//  4. apply the committed entries of all of them in one batch that also
//     holds each range's applied index, commit it (no sync: the log is
//     durable, a restart re-applies), answer the waiters;
//  5. Advance each RawNode.

func (s *Store) runWorker() {
	var ids []uint64
	for {
		ids = s.sched.next(s.cfg.MaxRangesPerRound, ids)
		if ids == nil {
			return
		}
		s.processRound(ids)
		s.sched.done(ids)
	}
}

type readyItem struct {
	r        *Replica
	rd       raft.Ready
	proposed []*proposal
}

func (s *Store) processRound(ids []uint64) {
	items := make([]readyItem, 0, len(ids))
	for _, id := range ids {
		r := s.replica(id)
		if r == nil {
			continue
		}
		proposed := r.handleInbox()
		r.round++
		if r.isDestroyed() {
			continue
		}
		if r.raw.HasReady() {
			items = append(items, readyItem{r: r, rd: r.raw.Ready(), proposed: proposed})
		} else {
			r.resolveStagedSnapshots()
			r.maybeQuiesce()
		}
		r.releaseOldSnapshots()
	}
	if len(items) == 0 {
		return
	}

	// 2. Snapshots first (they replace the log), then one batch, one sync.
	for i := range items {
		it := &items[i]
		if !raft.IsEmptySnap(it.rd.Snapshot) {
			if err := it.r.applySnapshot(it.rd.Snapshot, it.rd.HardState); err != nil {
				s.fatal(err)
			}
		}
	}
	b := s.engine.NewWriteBatch()
	mustSync := false
	for i := range items {
		it := &items[i]
		if err := it.r.storage.writeAppend(b, it.rd.Entries); err != nil {
			s.fatal(err)
		}
		if it.rd.HardState != nil {
			if err := b.Set(kv.RaftHardStateKey(it.r.rangeID), marshalHardState(it.rd.HardState), nil); err != nil {
				s.fatal(err)
			}
		}
		mustSync = mustSync || it.rd.MustSync
	}
	if !b.Empty() {
		start := time.Now()
		if err := s.engine.Commit(b, mustSync); err != nil {
			s.fatal(err)
		}
		if mustSync {
			s.metrics.observeFsync(time.Since(start))
		}
	}
	_ = b.Close()
	for i := range items {
		it := &items[i]
		it.r.storage.appended(it.rd.Entries)
		if it.rd.HardState != nil {
			it.r.storage.setHardState(it.rd.HardState)
		}
	}

	for i := range items {
		it := &items[i]
		it.r.resolveStagedSnapshots()
		if len(it.rd.Entries) > 0 || len(it.rd.CommittedEntries) > 0 {
			it.r.noteActivity()
		}
	}

	// 3. Leadership changes, proposal indexes, messages, read states.
	for i := range items {
		it := &items[i]
		it.r.handleSoftState(it.rd.SoftState)
		it.r.recordProposalIndexes(it.rd.Entries, it.proposed)
		it.r.sendMessages(it.rd.Messages)
		for _, rs := range it.rd.ReadStates {
			it.r.finishReads(rs.RequestCtx, rs.Index)
		}
	}

	// 4. Apply.
	ab := s.engine.NewBatch()
	outcomes := make([]*applyOutcome, 0, len(items))
	for i := range items {
		it := &items[i]
		if len(it.rd.CommittedEntries) == 0 {
			continue
		}
		o, err := it.r.applyEntries(ab, it.rd.CommittedEntries)
		if err != nil {
			s.fatal(err)
		}
		outcomes = append(outcomes, o)
	}
	if !ab.Empty() {
		if err := s.engine.Commit(ab, false); err != nil {
			s.fatal(err)
		}
	}
	_ = ab.Close()
	for _, o := range outcomes {
		o.r.finishApply(o)
	}

	// 5. Advance, truncate, and come back if raft has more.
	for i := range items {
		it := &items[i]
		if it.r.isDestroyed() {
			continue
		}
		it.r.raw.Advance(it.rd)
		it.r.maybeTruncateLog()
		if it.r.raw.HasReady() {
			s.sched.enqueue(it.r.rangeID)
		}
	}
	for _, o := range outcomes {
		o.r.afterApply(o)
	}
}

// handleInbox steps everything queued for the replica into its RawNode and
// returns the proposals made (worker).
func (r *Replica) handleInbox() []*proposal {
	r.mu.Lock()
	in := r.inbox
	r.inbox = inbox{}
	r.mu.Unlock()
	if r.isDestroyed() {
		for _, p := range in.proposals {
			r.releaseLatches(p)
			p.finish(nil, errReplicaGone(r.rangeID))
		}
		for _, rr := range in.reads {
			rr.finish(errReplicaGone(r.rangeID))
		}
		return nil
	}
	for _, f := range in.funcs {
		f(r)
		if r.isDestroyed() {
			return nil
		}
	}
	for i := 0; i < in.ticks; i++ {
		r.raw.Tick()
	}
	if in.ticks > 0 {
		r.noteIdleTick(in.ticks)
	}
	for _, m := range in.msgs {
		if isQuiesceHeartbeat(m) {
			r.stepQuiesceHeartbeat(m)
			continue
		}
		if err := r.raw.Step(m); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) && !errors.Is(err, raft.ErrStepLocalMsg) {
			r.log.Debug("step", "type", m.GetType().String(), "err", err)
		}
	}
	var proposed []*proposal
	for _, p := range in.proposals {
		st := r.raw.BasicStatus()
		if st.RaftState != raft.StateLeader {
			r.mu.Lock()
			err := r.notLeaderErrorLocked()
			r.releaseLatchesLocked(p)
			r.mu.Unlock()
			p.finish(nil, err)
			continue
		}
		var err error
		if p.cc != nil {
			err = r.raw.ProposeConfChange(p.cc)
		} else {
			err = r.raw.Propose(p.data)
		}
		if err != nil {
			r.releaseLatches(p)
			p.finish(nil, errDropped(r.rangeID))
			continue
		}
		p.term = st.GetTerm()
		r.mu.Lock()
		r.proposals[p.id] = p
		r.mu.Unlock()
		proposed = append(proposed, p)
	}
	r.startReads(in.reads)
	return proposed
}

// handleSoftState publishes leadership changes (worker).
func (r *Replica) handleSoftState(ss *raft.SoftState) {
	if ss == nil {
		return
	}
	st := r.raw.BasicStatus()
	r.mu.Lock()
	wasLeader := r.isLeader
	r.leaderID = ss.Lead
	r.term = st.GetTerm()
	r.isLeader = ss.RaftState == raft.StateLeader
	close(r.leaderCh)
	r.leaderCh = make(chan struct{})
	lost := wasLeader && !r.isLeader
	var notLeader error
	if lost {
		notLeader = r.notLeaderErrorLocked()
		// Latches only guard reads this replica serves as leader; in a new
		// term a read waits for every entry of the log before it anyway.
		for _, p := range r.proposals {
			r.releaseLatchesLocked(p)
		}
	}
	r.mu.Unlock()
	if lost {
		r.failReads(notLeader)
	}
	switch {
	case r.isLeaderNow() && !wasLeader:
		r.store.metrics.leaderships.Add(1)
	case lost:
		r.store.metrics.leaderships.Add(-1)
	}
}

func (r *Replica) isLeaderNow() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.isLeader
}

// recordProposalIndexes notes at which index each proposal of this round
// was appended; a proposal raft replaced (a second conf change while one is
// pending becomes an empty entry) is reported dropped (worker).
func (r *Replica) recordProposalIndexes(ents []*raftpb.Entry, proposed []*proposal) {
	if len(proposed) == 0 {
		return
	}
	byID := make(map[uint64]*proposal, len(proposed))
	for _, p := range proposed {
		byID[p.id] = p
	}
	for _, e := range ents {
		id, ok := entryProposalID(e)
		if !ok {
			continue
		}
		if p := byID[id]; p != nil {
			p.index, p.term = e.GetIndex(), e.GetTerm()
			delete(byID, id)
		}
	}
	for _, p := range byID {
		r.mu.Lock()
		delete(r.proposals, p.id)
		r.releaseLatchesLocked(p)
		r.mu.Unlock()
		p.finish(nil, errDropped(r.rangeID))
	}
}

// entryProposalID extracts the proposal ID of an entry this layer made.
func entryProposalID(e *raftpb.Entry) (uint64, bool) {
	switch e.GetType() {
	case raftpb.EntryNormal:
		if len(e.GetData()) == 0 {
			return 0, false
		}
		_, id, _, err := decodeEnvelope(e.GetData())
		return id, err == nil
	case raftpb.EntryConfChangeV2:
		cc := &raftpb.ConfChangeV2{}
		if err := proto.Unmarshal(e.GetData(), cc); err != nil || len(cc.GetContext()) == 0 {
			return 0, false
		}
		_, id, _, err := decodeEnvelope(cc.GetContext())
		return id, err == nil
	}
	return 0, false
}

// sendMessages hands rd.Messages to the transport (worker).
func (r *Replica) sendMessages(msgs []*raftpb.Message) {
	self := r.store.cfg.NodeID
	for _, m := range msgs {
		r.mu.Lock()
		to := r.nodeOfReplicaLocked(m.GetTo())
		r.mu.Unlock()
		if to == 0 {
			r.raw.ReportUnreachable(m.GetTo())
			continue
		}
		if m.GetType() == raftpb.MsgSnap {
			r.sendSnapshot(m, to)
			continue
		}
		if !r.store.cfg.Transport.Send(&RaftMessage{RangeID: r.rangeID, FromNode: self, ToNode: to, Message: m}) {
			r.raw.ReportUnreachable(m.GetTo())
		}
	}
}

// HandleRaftMessage implements MessageHandler: it queues msg for its
// replica, creating an uninitialized replica for a range this store does not
// know yet. It never blocks on raft I/O.
func (s *Store) HandleRaftMessage(ctx context.Context, msg *RaftMessage) error {
	if !s.enter() {
		return ErrStoreStopped
	}
	defer s.exit()
	if msg == nil || msg.Message == nil {
		return &InvalidChangeError{Reason: "empty raft message"}
	}
	if msg.ToNode != s.cfg.NodeID {
		return &InvalidChangeError{RangeID: msg.RangeID, Reason: "message addressed to another node"}
	}
	if isRemovalNotice(msg.Message) {
		return s.handleRemovalNotice(msg)
	}
	if msg.Message.GetType() == raftpb.MsgSnap {
		// A snapshot's data comes through HandleSnapshot only.
		return &InvalidChangeError{RangeID: msg.RangeID, Reason: "MsgSnap outside a snapshot stream"}
	}
	r, err := s.getOrCreateReplica(msg.RangeID, msg.Message.GetTo())
	if err != nil {
		var tomb *ReplicaTombstonedError
		if errors.As(err, &tomb) {
			// A removed replica's peers still talk to it, or it talks to
			// them: tell the sender it is gone if it is the stale one.
			return nil
		}
		return err
	}
	if r.replicaID != msg.Message.GetTo() {
		// Addressed to an older replica ID of this range on this node: stale.
		return nil
	}
	if s.maybeSendRemovalNotice(r, msg) {
		return nil
	}
	r.mu.Lock()
	if r.destroyed != nil {
		r.mu.Unlock()
		return nil
	}
	if isFollowerReadsNotice(msg.Message) {
		// Not raft's: a follower asks this leader to keep closing.
		if r.isLeader {
			r.followerReadsUntil = time.Now().Add(s.cfg.FollowerReadWindow)
		}
		r.mu.Unlock()
		return nil
	}
	if len(r.inbox.msgs) >= maxInboxMessages {
		r.mu.Unlock()
		s.metrics.droppedMessages.Add(1)
		return nil
	}
	r.peerNodes[msg.Message.GetFrom()] = msg.FromNode
	r.inbox.msgs = append(r.inbox.msgs, msg.Message)
	r.wakeLocked(msg.Message)
	r.mu.Unlock()
	s.sched.enqueue(r.rangeID)
	return nil
}

// ReportUnreachable tells every replica whose group has a member on nodeID
// that it could not be reached (the gRPC transport's OnUnreachable hook).
func (s *Store) ReportUnreachable(nodeID uint64) {
	for _, r := range s.replicaList(nil) {
		d := r.descriptor()
		if d == nil {
			continue
		}
		if rd, ok := d.Replica(nodeID); ok {
			id := rd.ReplicaID
			_ = r.runOnOwner(func(r *Replica) { r.raw.ReportUnreachable(id) })
		}
	}
}
