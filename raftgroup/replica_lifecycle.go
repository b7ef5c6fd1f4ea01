package raftgroup

import (
	"bytes"
	"context"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/quorumdb/quorumdb/kv"
)

// BootstrapRange creates the initial state of a range on this node, which
// must be one of desc's replicas: call it on every initial replica's node
// (typically for the first range of a new cluster, before or after Start).
// The first voter's node campaigns at once so the range gets a leader
// without waiting for an election timeout.
func (s *Store) BootstrapRange(ctx context.Context, desc *kv.RangeDescriptor) error {
	return s.BootstrapRanges(ctx, []*kv.RangeDescriptor{desc})
}

// BootstrapRanges is BootstrapRange for many ranges at once, with one synced
// write for all of them. A range this replica already holds with the same
// replica ID and span (or a part of that span at a later generation: a
// peer bootstrapped first, caught this replica up by snapshot and may have
// split it since), counts as done, so the call is idempotent. Other
// descriptors must not overlap (not checked: they come from the cluster's
// own bootstrap). It stops at the first invalid
// descriptor; ranges before it are created.
func (s *Store) BootstrapRanges(ctx context.Context, descs []*kv.RangeDescriptor) error {
	if !s.enter() {
		return ErrStoreStopped
	}
	defer s.exit()
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.engine.NewWriteBatch()
	defer b.Close()
	var fresh []*kv.RangeDescriptor
	var firstErr error
	for _, desc := range descs {
		self, ok := desc.Replica(s.cfg.NodeID)
		if !ok {
			firstErr = &ReplicaNotInDescriptorError{RangeID: desc.RangeID, NodeID: s.cfg.NodeID}
			break
		}
		if desc.NextReplicaID <= maxReplicaID(desc) {
			firstErr = &InvalidChangeError{RangeID: desc.RangeID, Reason: "NextReplicaID must exceed every replica ID"}
			break
		}
		if existing := s.replicas[desc.RangeID]; existing != nil {
			if d := existing.Descriptor(); d != nil {
				if existing.replicaID == self.ReplicaID && sameBootstrappedRange(d, desc) {
					// A peer bootstrapped first, won the election and
					// caught this replica up by snapshot (or this is a
					// retry): done already.
					continue
				}
				firstErr = &RangeExistsError{RangeID: desc.RangeID}
				break
			}
			// An uninitialized replica created by an early message from a
			// peer that bootstrapped first: initialize it in place on its
			// worker.
			if err := s.initializeInPlace(existing, desc); err != nil {
				firstErr = err
				break
			}
			continue
		}
		ps, err := loadPersistedState(s.engine.DB(), desc.RangeID)
		if err != nil {
			firstErr = err
			break
		}
		if ps.Descriptor != nil {
			if ps.ReplicaID == self.ReplicaID && ps.ReplicaID >= ps.Tombstone && sameBootstrappedRange(ps.Descriptor, desc) {
				// Persisted but not loaded (written by a peer's snapshot or
				// a split whose replica is not registered yet): load it.
				r, err := newReplica(s, desc.RangeID, ps)
				if err != nil {
					firstErr = err
					break
				}
				s.replicas[desc.RangeID] = r
				s.sched.enqueue(r.rangeID)
				continue
			}
			firstErr = &RangeExistsError{RangeID: desc.RangeID}
			break
		}
		if ps.Tombstone > self.ReplicaID {
			firstErr = &ReplicaTombstonedError{RangeID: desc.RangeID, ReplicaID: self.ReplicaID, NextReplicaID: ps.Tombstone}
			break
		}
		if err := writeInitialState(b, desc, self.ReplicaID, ps.HardState); err != nil {
			firstErr = err
			break
		}
		fresh = append(fresh, desc)
	}
	if len(fresh) == 0 {
		return firstErr
	}
	if err := s.engine.Commit(b, true); err != nil {
		return fmt.Errorf("raftgroup: bootstrap %d ranges: %w", len(fresh), err)
	}
	for _, desc := range fresh {
		ps, err := loadPersistedState(s.engine.DB(), desc.RangeID)
		if err != nil {
			return err
		}
		r, err := newReplica(s, desc.RangeID, ps)
		if err != nil {
			return err
		}
		s.replicas[desc.RangeID] = r
		if !s.cfg.Knobs.DisableCampaignOnBootstrap && firstVoter(desc) == s.cfg.NodeID {
			_ = r.runOnOwner(func(r *Replica) { _ = r.raw.Campaign() })
		} else {
			s.sched.enqueue(r.rangeID)
		}
	}
	return firstErr
}

// initializeInPlace turns an uninitialized replica into an initialized one
// with desc's synthetic state, on the replica's own worker so its RawNode is
// never replaced under a round (called with s.mu held).
func (s *Store) initializeInPlace(r *Replica, desc *kv.RangeDescriptor) error {
	self, _ := desc.Replica(s.cfg.NodeID)
	if self.ReplicaID != r.replicaID {
		return &InvalidChangeError{RangeID: desc.RangeID, Reason: fmt.Sprintf("replica id %d here, %d in the descriptor", r.replicaID, self.ReplicaID)}
	}
	desc = desc.Clone()
	return r.runOnOwner(func(r *Replica) {
		if r.Descriptor() != nil {
			return // a snapshot initialized it meanwhile
		}
		if err := r.initialize(desc, true); err != nil {
			r.store.fatal(err)
		}
	})
}

// initialize writes desc's synthetic initial state for this replica (keeping
// its term and vote) and rebuilds its RawNode (worker).
func (r *Replica) initialize(desc *kv.RangeDescriptor, writeState bool) error {
	s := r.store
	if writeState {
		b := s.engine.NewWriteBatch()
		if err := writeInitialState(b, desc, r.replicaID, r.storage.currentHardState()); err != nil {
			_ = b.Close()
			return err
		}
		if err := s.engine.Commit(b, true); err != nil {
			_ = b.Close()
			return err
		}
		_ = b.Close()
	}
	ps, err := loadPersistedState(s.engine.DB(), r.rangeID)
	if err != nil {
		return err
	}
	storage, err := newLogStorage(s.engine, r.rangeID, ps, s.cfg.EntryCacheBytes, &s.entryCacheTotal, s.cfg.EntryCacheBudget)
	if err != nil {
		return err
	}
	r.storage.dropCache()
	storage.onSnapshot = r.onStorageSnapshot
	r.storage = storage
	if err := r.resetRawNode(); err != nil {
		return err
	}
	r.mu.Lock()
	r.desc = ps.Descriptor
	r.applied = ps.Applied.Index
	close(r.appliedCh)
	r.appliedCh = make(chan struct{})
	r.mu.Unlock()
	return nil
}

// sameBootstrappedRange reports whether have, a descriptor found here, is
// the range want bootstraps: the same range ID and start key, and want's
// span or a part of it at want's generation or later (a peer may have
// split the range before this node's bootstrap call arrived). Bootstrap
// descriptors come from the cluster itself, so a range ID is never
// bootstrapped with two different spans.
func sameBootstrappedRange(have, want *kv.RangeDescriptor) bool {
	if have.RangeID != want.RangeID || !bytes.Equal(have.StartKey, want.StartKey) || have.Generation < want.Generation {
		return false
	}
	if bytes.Equal(have.EndKey, want.EndKey) {
		return true
	}
	return have.Generation > want.Generation && bytes.Compare(have.EndKey, want.EndKey) < 0
}

func firstVoter(desc *kv.RangeDescriptor) uint64 {
	for _, r := range desc.Replicas {
		if r.Type == kv.Voter {
			return r.NodeID
		}
	}
	return 0
}

func maxReplicaID(desc *kv.RangeDescriptor) uint64 {
	var m uint64
	for _, r := range desc.Replicas {
		m = max(m, r.ReplicaID)
	}
	return m
}

// getOrCreateReplica returns the replica of rangeID, creating an
// uninitialized one with replicaID when the range is unknown here. A replica
// with an older ID (this node was removed and re-added) is replaced.
func (s *Store) getOrCreateReplica(rangeID, replicaID uint64) (*Replica, error) {
	if r := s.replica(rangeID); r != nil && r.replicaID >= replicaID {
		return r, nil
	}
	if replicaID == 0 {
		return nil, &InvalidChangeError{RangeID: rangeID, Reason: "message to replica 0"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.replicas[rangeID]; r != nil {
		if r.replicaID >= replicaID {
			return r, nil
		}
		// Our replica is older than the one addressed: it was removed from
		// the group and this node added back. Clear it first; the sender
		// retries once it is gone.
		_ = r.runOnOwner(func(r *Replica) { r.store.removeReplica(r, nil) })
		return nil, &ReplicaTombstonedError{RangeID: rangeID, ReplicaID: r.replicaID, NextReplicaID: replicaID}
	}
	ps, err := loadPersistedState(s.engine.DB(), rangeID)
	if err != nil {
		return nil, err
	}
	if ps.Tombstone > replicaID {
		return nil, &ReplicaTombstonedError{RangeID: rangeID, ReplicaID: replicaID, NextReplicaID: ps.Tombstone}
	}
	if ps.ReplicaID != 0 && ps.ReplicaID != replicaID {
		return nil, &ReplicaTombstonedError{RangeID: rangeID, ReplicaID: replicaID, NextReplicaID: ps.ReplicaID}
	}
	if ps.ReplicaID == 0 {
		b := s.engine.NewWriteBatch()
		defer b.Close()
		if err := b.Set(kv.RaftReplicaIDKey(rangeID), encodeUint64(replicaID), nil); err != nil {
			return nil, fmt.Errorf("raftgroup: r%d: write replica id: %w", rangeID, err)
		}
		if err := s.engine.Commit(b, false); err != nil {
			return nil, err
		}
		ps.ReplicaID = replicaID
	}
	r, err := newReplica(s, rangeID, ps)
	if err != nil {
		return nil, err
	}
	s.replicas[rangeID] = r
	return r, nil
}

func (r *Replica) isDestroyed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.destroyed != nil
}

// removeReplica destroys a replica removed from its group: its data and
// raft state are deleted and a tombstone keeps older replica IDs of the
// range from coming back here (worker, or with the replica's owner role).
func (s *Store) removeReplica(r *Replica, desc *kv.RangeDescriptor) {
	if r.isDestroyed() {
		return
	}
	next := r.replicaID + 1
	if desc != nil {
		next = max(next, desc.NextReplicaID)
	}
	data := r.Descriptor()
	if data != nil {
		// A replica that missed a split still claims the right half, which
		// another replica here may own now: leave shared keys alone.
		for _, o := range s.replicaList(nil) {
			if d := o.Descriptor(); o != r && d != nil &&
				bytes.Compare(d.StartKey, data.EndKey) < 0 && bytes.Compare(data.StartKey, d.EndKey) < 0 {
				r.log.Warn("removed replica overlaps another range; keeping its user data", "other", d.RangeID)
				data = nil
				break
			}
		}
	}
	// No closed read may pin an engine snapshot after this: the data is
	// about to go (reads served before pinned theirs under r.mu).
	r.mu.Lock()
	r.removing = true
	r.mu.Unlock()
	b := s.engine.NewWriteBatch()
	defer b.Close()
	start, end := kv.RangeLocalSpan(r.rangeID)
	err := b.DeleteRange(start, end, nil)
	if err == nil && data != nil {
		for _, sp := range kv.MVCCSpans(data.StartKey, data.EndKey) {
			if err = b.DeleteRange(sp[0], sp[1], nil); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = b.Set(kv.RangeTombstoneKey(r.rangeID), encodeUint64(next), nil)
	}
	if err == nil {
		err = s.engine.Commit(b, true)
	}
	if err != nil {
		s.fatal(fmt.Errorf("raftgroup: remove r%d: %w", r.rangeID, err))
	}
	s.mu.Lock()
	if s.replicas[r.rangeID] == r {
		delete(s.replicas, r.rangeID)
	}
	s.mu.Unlock()
	r.mu.Lock()
	wasLeader := r.isLeader
	r.destroyed = &kv.RangeNotFoundError{RangeID: r.rangeID}
	r.isLeader = false
	close(r.leaderCh)
	r.leaderCh = make(chan struct{})
	close(r.appliedCh)
	r.appliedCh = make(chan struct{})
	r.mu.Unlock()
	if wasLeader {
		s.metrics.leaderships.Add(-1)
	}
	r.failPending(&kv.RangeNotFoundError{RangeID: r.rangeID})
	r.storage.dropCache()
	for idx, ref := range r.snapStash {
		ref.release()
		delete(r.snapStash, idx)
	}
	r.log.Info("replica removed", "tombstone", next)
}

// Removal notices. A replica removed from its group may never learn the
// commit of its own removal (the leader stops talking to it). When it
// speaks up (it campaigns once it hears nothing), a member that knows the
// current descriptor answers with a notice: a raftpb.Message of a type raft
// never sends over the network (MsgUnreachable), marked by its context. The
// receiver destroys its replica only when the notice's next replica ID
// proves its ID is no longer in the group.
var removalNoticeContext = []byte("quorumdb:replica-removed")

func isRemovalNotice(m *raftpb.Message) bool {
	return m.GetType() == raftpb.MsgUnreachable && string(m.GetContext()) == string(removalNoticeContext)
}

// maybeSendRemovalNotice answers a message from a replica ID this range's
// descriptor no longer holds (older than NextReplicaID): it reports whether
// it did, in which case the message is not stepped.
func (s *Store) maybeSendRemovalNotice(r *Replica, msg *RaftMessage) bool {
	from := msg.Message.GetFrom()
	r.mu.Lock()
	desc := r.desc // descriptors are replaced, never mutated: safe to read after unlock
	r.mu.Unlock()
	if desc == nil || from == 0 || from >= desc.NextReplicaID {
		return false
	}
	for _, d := range desc.Replicas {
		if d.ReplicaID == from {
			return false
		}
	}
	// In a joint configuration the descriptor already lists the outgoing
	// replicas as gone while raft still counts them: only a replica absent
	// from the applied configuration is removed.
	if confStateHas(r.storage.appliedState().ConfState, from) {
		return false
	}
	notice := &raftpb.Message{
		Type:    raftpb.MsgUnreachable.Enum(),
		From:    new(r.replicaID),
		To:      new(from),
		Index:   new(desc.NextReplicaID),
		Context: removalNoticeContext,
	}
	s.cfg.Transport.Send(&RaftMessage{RangeID: r.rangeID, FromNode: s.cfg.NodeID, ToNode: msg.FromNode, Message: notice})
	return true
}

func (s *Store) handleRemovalNotice(msg *RaftMessage) error {
	r := s.replica(msg.RangeID)
	if r == nil || r.replicaID != msg.Message.GetTo() || msg.Message.GetIndex() <= r.replicaID {
		return nil
	}
	next := msg.Message.GetIndex()
	return r.runOnOwner(func(r *Replica) {
		d := r.Descriptor()
		if d != nil {
			d.NextReplicaID = max(d.NextReplicaID, next)
		}
		r.store.removeReplica(r, d)
	})
}
