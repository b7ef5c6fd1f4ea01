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

// removeLearners removes every learner of rangeID (a replica added by a
// ChangeReplicas that failed before promoting it: the leader changed or the
// learner did not catch up in time). ChangeReplicas refuses any change
// while a learner is present, so without this a failed change would leave
// the range unchangeable. Removing a learner does not touch the voters: it
// is one simple configuration change, committed by the current quorum. It
// must run on the range's leader and returns the new descriptor (the
// current one when there is no learner).
func (s *Store) removeLearners(ctx context.Context, rangeID uint64) (*kv.RangeDescriptor, error) {
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
	desc := r.Descriptor()
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
		nd := desc.Clone()
		nd.Generation++
		kept := nd.Replicas[:0]
		for _, rd := range nd.Replicas {
			if rd.ReplicaID != learner.ReplicaID {
				kept = append(kept, rd)
			}
		}
		nd.Replicas = kept
		cc := &raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: new(learner.ReplicaID)}}}
		if err := r.proposeConfChange(ctx, cc, nd); err != nil {
			return nil, fmt.Errorf("raftgroup: r%d: remove learner on n%d: %w", rangeID, learner.NodeID, err)
		}
		// Tell the removed learner (best effort, as ChangeReplicas does) so
		// it deletes its data and leaves a tombstone.
		if learner.NodeID != s.cfg.NodeID {
			s.cfg.Transport.Send(&RaftMessage{RangeID: rangeID, FromNode: s.cfg.NodeID, ToNode: learner.NodeID, Message: &raftpb.Message{
				Type: raftpb.MsgUnreachable.Enum(), From: new(r.replicaID), To: new(learner.ReplicaID), Index: new(nd.NextReplicaID), Context: removalNoticeContext,
			}})
		}
		desc = nd
	}
}
