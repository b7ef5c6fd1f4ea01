package raftgroup

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/quorumdb/quorumdb/kv"
)

// SplitRange splits range rangeID at splitKey: the left range keeps
// [start, splitKey), a new range newRangeID takes [splitKey, end) on the
// same replicas. It must be called on the left range's leader (otherwise
// *kv.NotLeaderError). It returns the left and right descriptors once the
// split applied here and the right replica exists and is initialized here;
// the right range then campaigns from this node. A split is refused
// (*InvalidChangeError) while a membership change of the range is in
// progress: a learner present or a joint configuration at apply, or a
// change running on this node at propose time.
func (s *Store) SplitRange(ctx context.Context, rangeID uint64, splitKey []byte, newRangeID uint64) (left, right *kv.RangeDescriptor, err error) {
	if !s.enter() {
		return nil, nil, ErrStoreStopped
	}
	defer s.exit()
	r := s.replica(rangeID)
	if r == nil {
		return nil, nil, &kv.RangeNotFoundError{RangeID: rangeID}
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if err := r.waitLeadership(ctx); err != nil {
		return nil, nil, err
	}
	unlock, err := r.lockAdmin()
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	desc := r.Descriptor()
	if err := validateSplit(desc, splitKey); err != nil {
		return nil, nil, err
	}
	if newRangeID == 0 || s.replica(newRangeID) != nil {
		return nil, nil, &RangeExistsError{RangeID: newRangeID}
	}
	p := newProposal(s.nextProposalID())
	p.data = encodeEnvelope(kindSplit, p.id, splitCommand{SplitKey: splitKey, NewRangeID: newRangeID}.encode())
	if _, err := r.propose(ctx, p); err != nil {
		return nil, nil, err
	}
	left = r.Descriptor()
	// The answer comes after the right replica was created here (afterApply);
	// one that existed uninitialized is initialized on its own worker, so
	// wait for that too.
	right, err = s.waitInitialized(ctx, newRangeID)
	if err != nil {
		return left, nil, fmt.Errorf("raftgroup: r%d split applied but r%d is not initialized here: %w", rangeID, newRangeID, err)
	}
	return left, right, nil
}

// waitInitialized waits until this store's replica of rangeID has a
// descriptor and returns it.
func (s *Store) waitInitialized(ctx context.Context, rangeID uint64) (*kv.RangeDescriptor, error) {
	for {
		rr := s.replica(rangeID)
		if rr == nil {
			return nil, &kv.RangeNotFoundError{RangeID: rangeID}
		}
		rr.mu.Lock()
		desc, destroyed, ch := rr.desc, rr.destroyed, rr.appliedCh
		rr.mu.Unlock()
		if desc != nil {
			return desc.Clone(), nil
		}
		if destroyed != nil {
			return nil, destroyed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, rr.unavailable(ctx, "waiting for the right-hand range to initialize")
		}
	}
}

func validateSplit(desc *kv.RangeDescriptor, splitKey []byte) error {
	if desc == nil {
		return &InvalidChangeError{Reason: "split of an uninitialized replica"}
	}
	if bytes.Compare(splitKey, desc.StartKey) <= 0 || bytes.Compare(splitKey, desc.EndKey) >= 0 {
		return &InvalidChangeError{RangeID: desc.RangeID, Reason: fmt.Sprintf("split key %q not strictly inside [%q, %q)", splitKey, desc.StartKey, desc.EndKey)}
	}
	for _, rd := range desc.Replicas {
		if rd.Type != kv.Voter {
			return &InvalidChangeError{RangeID: desc.RangeID, Reason: "split during a membership change"}
		}
	}
	return nil
}

// isChangeAnswer: a split or membership command refused deterministically.
func isChangeAnswer(err error) bool {
	var ic *InvalidChangeError
	return errors.As(err, &ic)
}

// applySplit applies a split command into b (worker). Every replica writes
// the shrunk left descriptor and the right range's synthetic state in the
// same batch; no user data moves. The right range inherits closed, the
// left's closed timestamp at the split: that promise covered its keys, and
// the right range's writes commit above it (its leader seeds max_read_ts
// from a fresh oracle timestamp; 2PC commit timestamps come from the oracle
// after the prewrites, which follow the split).
func (r *Replica) applySplit(b *pebble.Batch, desc *kv.RangeDescriptor, cs *raftpb.ConfState, payload []byte, closed kv.Timestamp) (left, right *kv.RangeDescriptor, err error) {
	cmd, err := decodeSplitCommand(payload)
	if err != nil {
		return nil, nil, &InvalidChangeError{RangeID: r.rangeID, Reason: err.Error()}
	}
	if err := validateSplit(desc, cmd.SplitKey); err != nil {
		return nil, nil, err
	}
	// In a joint configuration the descriptor lists the incoming voters
	// only; the right range would start with a configuration the left one
	// has not reached. Refused the same way on every replica (the conf
	// state at this index is part of the replicated state).
	if len(cs.GetVotersOutgoing()) > 0 {
		return nil, nil, &InvalidChangeError{RangeID: desc.RangeID, Reason: "split during a joint configuration"}
	}
	left = desc.Clone()
	left.EndKey = append([]byte(nil), cmd.SplitKey...)
	left.Generation++
	right = &kv.RangeDescriptor{
		RangeID:       cmd.NewRangeID,
		StartKey:      append([]byte(nil), cmd.SplitKey...),
		EndKey:        append([]byte(nil), desc.EndKey...),
		Replicas:      append([]kv.ReplicaDescriptor(nil), desc.Replicas...),
		Generation:    desc.Generation + 1,
		NextReplicaID: desc.NextReplicaID,
	}
	// The right range's state on this node. What exists locally may differ
	// between nodes (an uninitialized right replica created by an early
	// message, a tombstone), but the user-visible outcome is the same.
	s := r.store
	self, ok := right.Replica(s.cfg.NodeID)
	if !ok {
		return left, right, nil
	}
	ps, err := loadPersistedState(s.engine.DB(), right.RangeID)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case ps.Tombstone > self.ReplicaID:
		// The right range already moved away from this node: its data here
		// is garbage.
		for _, sp := range kv.MVCCSpans(right.StartKey, right.EndKey) {
			if err := b.DeleteRange(sp[0], sp[1], nil); err != nil {
				return nil, nil, fmt.Errorf("raftgroup: split r%d: %w", r.rangeID, err)
			}
		}
	case ps.Descriptor != nil:
		// Already initialized (by a snapshot of the right range): keep it.
	default:
		hs := ps.HardState
		if s.replica(right.RangeID) != nil {
			// A live uninitialized replica owns its hard state; afterSplit
			// re-initializes it on its own worker.
			if err := writeInitialStateNoHardState(b, right, self.ReplicaID); err != nil {
				return nil, nil, err
			}
		} else if err := writeInitialState(b, right, self.ReplicaID, hs); err != nil {
			return nil, nil, err
		}
		if closed != 0 {
			if err := b.Set(kv.RangeClosedTimestampKey(right.RangeID), encodeUint64(closed), nil); err != nil {
				return nil, nil, fmt.Errorf("raftgroup: split r%d: write closed timestamp: %w", r.rangeID, err)
			}
		}
	}
	return left, right, nil
}

func writeInitialStateNoHardState(w kv.Writer, desc *kv.RangeDescriptor, replicaID uint64) error {
	id := desc.RangeID
	sets := []struct{ k, v []byte }{
		{kv.RangeDescriptorKey(id), desc.Marshal()},
		{kv.RaftReplicaIDKey(id), encodeUint64(replicaID)},
		{kv.RaftAppliedStateKey(id), encodeAppliedState(appliedState{Index: initialLogIndex, Term: initialLogTerm, ConfState: confStateFromDescriptor(desc)})},
		{kv.RaftTruncatedStateKey(id), encodeTruncatedState(truncatedState{Index: initialLogIndex, Term: initialLogTerm})},
	}
	for _, s := range sets {
		if err := w.Set(s.k, s.v, nil); err != nil {
			return fmt.Errorf("raftgroup: write initial state of r%d: %w", id, err)
		}
	}
	return nil
}

// afterSplit brings the right range to life once the split's batch is
// committed (worker of the left range).
func (s *Store) afterSplit(left *Replica, right *kv.RangeDescriptor) {
	if _, ok := right.Replica(s.cfg.NodeID); !ok {
		return
	}
	campaign := left.isLeaderNow()
	s.mu.Lock()
	existing := s.replicas[right.RangeID]
	if existing == nil {
		ps, err := loadPersistedState(s.engine.DB(), right.RangeID)
		if err != nil {
			s.mu.Unlock()
			s.fatal(err)
			return
		}
		if ps.Descriptor == nil || ps.ReplicaID < ps.Tombstone {
			s.mu.Unlock()
			return
		}
		rr, err := newReplica(s, right.RangeID, ps)
		if err != nil {
			s.mu.Unlock()
			s.fatal(err)
			return
		}
		s.replicas[right.RangeID] = rr
		existing = rr
	} else if existing.Descriptor() == nil {
		_ = existing.runOnOwner(func(r *Replica) {
			if r.Descriptor() != nil {
				return
			}
			if err := r.initialize(nil, false); err != nil {
				r.store.fatal(err)
			}
			r.loadClosedTimestamp()
		})
	}
	s.mu.Unlock()
	if campaign {
		_ = existing.runOnOwner(func(r *Replica) { _ = r.raw.Campaign() })
	} else {
		s.sched.enqueue(existing.rangeID)
	}
}
