package raftgroup

import (
	"context"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/quorumdb/quorumdb/kv"
)

// This file holds what the placement driver needs from the Store that its
// exported API does not offer. It belongs to the placement code, not to
// the Store; the Store's owner may fold it into ChangeReplicas and delete
// it.

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
//   - learners are removed: ChangeReplicas refuses any change while a
//     learner is present. Removing a learner does not touch the voters: it
//     is one simple change committed by the current quorum.
//
// It must run on the range's leader and returns the resulting descriptor.
// The caller makes sure no ChangeReplicas of the range still runs.
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
	joint, err := s.inJointConfig(ctx, rangeID)
	if err != nil {
		return nil, err
	}
	desc := r.Descriptor()
	if joint {
		if err := r.proposeConfChange(ctx, &raftpb.ConfChangeV2{}, desc, nil); err != nil {
			return nil, fmt.Errorf("raftgroup: r%d: leave the joint configuration: %w", rangeID, err)
		}
		desc = r.Descriptor()
	}
	for {
		var learner *kv.ReplicaDescriptor
		for i := range desc.Replicas {
			if desc.Replicas[i].Type == kv.Learner {
				learner = &desc.Replicas[i]
				break
			}
		}
		if learner == nil {
			return desc, nil
		}
		cc := &raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: new(learner.ReplicaID)}}}
		if err := r.proposeConfChange(ctx, cc, desc, nil); err != nil {
			return nil, fmt.Errorf("raftgroup: r%d: remove learner on n%d: %w", rangeID, learner.NodeID, err)
		}
		// Tell the removed learner (best effort, as ChangeReplicas does) so
		// it deletes its data and leaves a tombstone.
		if learner.NodeID != s.cfg.NodeID {
			s.cfg.Transport.Send(&RaftMessage{RangeID: rangeID, FromNode: s.cfg.NodeID, ToNode: learner.NodeID, Message: &raftpb.Message{
				Type: raftpb.MsgUnreachable.Enum(), From: new(r.replicaID), To: new(learner.ReplicaID), Index: new(desc.NextReplicaID), Context: removalNoticeContext,
			}})
		}
		desc = r.Descriptor()
	}
}
