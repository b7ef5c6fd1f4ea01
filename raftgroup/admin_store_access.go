package raftgroup

import (
	"context"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/quorumdb/quorumdb/kv"
)

// This file holds what the placement driver needs from the Store that its
// exported API does not offer, and the clean-up of an abandoned membership
// change that ChangeReplicas shares with it.

// inJointConfig reports whether the raft configuration of rangeID is joint
// (C_old ∧ C_new), read on the replica's worker. Read-only.
func (s *Store) inJointConfig(ctx context.Context, rangeID uint64) (bool, error) {
	r := s.replica(rangeID)
	if r == nil {
		return false, &kv.RangeNotFoundError{RangeID: rangeID}
	}
	ch := make(chan bool, 1)
	if err := r.runOnOwner(func(r *Replica) { ch <- len(r.raw.Status().Config.Voters[1]) > 0 }); err != nil {
		return false, err
	}
	select {
	case joint := <-ch:
		return joint, nil
	case <-ctx.Done():
		return false, fmt.Errorf("raftgroup: r%d: read configuration: %w", rangeID, ctx.Err())
	}
}

// repairAbandonedChange finishes what a ChangeReplicas that stopped half
// way (its leader lost the leadership, its deadline passed) left behind:
//
//   - a joint configuration is left (an empty ConfChangeV2), with the
//     descriptor the joint step installed: raft refuses every other
//     membership change while joint, and a new leader does not leave it
//     on its own (the transition is explicit);
//   - learners are removed. Removing a learner does not touch the voters:
//     it is one simple change committed by the current quorum.
//
// ChangeReplicas does the same itself before a change (settleAbandonedChange,
// keeping the learners of the nodes it adds); this entry point remains for
// the placement driver, which repairs a range it does not otherwise change.
// It must run on the range's leader and returns the resulting descriptor;
// a ChangeReplicas or split of the range running on this node makes it
// refuse (InvalidChangeError).
func (s *Store) repairAbandonedChange(ctx context.Context, rangeID uint64) (*kv.RangeDescriptor, error) {
	if s.stopped.Load() {
		return nil, ErrStoreStopped
	}
	r := s.replica(rangeID)
	if r == nil {
		return nil, &kv.RangeNotFoundError{RangeID: rangeID}
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if err := r.waitLeadership(ctx); err != nil {
		return nil, err
	}
	unlock, err := r.lockAdmin()
	if err != nil {
		return nil, err
	}
	defer unlock()
	desc, _, err := s.settleAbandonedChange(ctx, r, nil)
	return desc, err
}

// settleAbandonedChange clears what a membership change that stopped half
// way left on r (its caller holds r's admin lock and r leads): a joint
// configuration is left (an empty ConfChangeV2: raft refuses every other
// change while joint, and a new leader does not leave it on its own, the
// transition being explicit); a learner on a node in resume is kept and
// returned in adopted (node → replica ID) so the caller can finish adding
// it; every other learner is removed (one simple change committed by the
// current voters, which it does not touch). It returns the descriptor
// after all that.
func (s *Store) settleAbandonedChange(ctx context.Context, r *Replica, resume []kv.ReplicaDescriptor) (*kv.RangeDescriptor, map[uint64]uint64, error) {
	rangeID := r.rangeID
	joint, err := s.inJointConfig(ctx, rangeID)
	if err != nil {
		return nil, nil, err
	}
	desc := r.Descriptor()
	if desc == nil {
		return nil, nil, &InvalidChangeError{RangeID: rangeID, Reason: "membership change of an uninitialized replica"}
	}
	if joint {
		if err := r.proposeConfChange(ctx, &raftpb.ConfChangeV2{}, desc, nil); err != nil {
			return nil, nil, fmt.Errorf("raftgroup: r%d: leave the joint configuration: %w", rangeID, err)
		}
		desc = r.Descriptor()
	}
	adopted := map[uint64]uint64{}
	for {
		var learner *kv.ReplicaDescriptor
		for i := range desc.Replicas {
			rd := desc.Replicas[i]
			if rd.Type != kv.Learner {
				continue
			}
			if containsNode(resume, rd.NodeID) {
				adopted[rd.NodeID] = rd.ReplicaID
				continue
			}
			learner = &rd
			break
		}
		if learner == nil {
			return desc, adopted, nil
		}
		cc := &raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: new(learner.ReplicaID)}}}
		if err := r.proposeConfChange(ctx, cc, desc, nil); err != nil {
			return nil, nil, fmt.Errorf("raftgroup: r%d: remove learner on n%d: %w", rangeID, learner.NodeID, err)
		}
		desc = r.Descriptor()
		// Tell the removed learner (best effort, as ChangeReplicas does) so
		// it deletes its data and leaves a tombstone.
		if learner.NodeID != s.cfg.NodeID {
			s.cfg.Transport.Send(&RaftMessage{RangeID: rangeID, FromNode: s.cfg.NodeID, ToNode: learner.NodeID, Message: &raftpb.Message{
				Type: raftpb.MsgUnreachable.Enum(), From: new(r.replicaID), To: new(learner.ReplicaID), Index: new(desc.NextReplicaID), Context: removalNoticeContext,
			}})
		}
	}
}
