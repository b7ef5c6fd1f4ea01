package raftgroup

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"

	"github.com/quorumdb/quorumdb/kv"
)

// ChangeReplicas changes the members of range rangeID: every node in add
// gets a new replica (a fresh replica ID from NextReplicaID; the ReplicaID
// and Type fields of add are ignored), every node in remove loses its
// replica. It must run on the range's leader. The steps, each one raft
// command applied with the descriptor update in the same batch:
//
//  1. each new replica is added as a learner and caught up (by snapshot);
//  2. one joint configuration promotes the learners and removes the
//     replicas in remove (ConfChangeTransitionJointExplicit);
//  3. an empty ConfChangeV2 leaves the joint configuration.
//
// Before step 1 it settles what an abandoned change left: it leaves a joint
// configuration, keeps a learner on a node in add (and finishes adding it)
// and removes any other learner. Each step's descriptor is derived at apply
// from the descriptor then in force (deriveChangedDescriptor), so a split
// committed in between is kept. Removed replicas delete their data and leave
// a tombstone. Only one change runs at a time per range: a split, change or
// repair of the range already running on this node makes it fail with
// *InvalidChangeError, and raft refuses a second pending one (reported as
// *kv.ProposalDroppedError). It returns the final descriptor.
func (s *Store) ChangeReplicas(ctx context.Context, rangeID uint64, add, remove []kv.ReplicaDescriptor) (*kv.RangeDescriptor, error) {
	if !s.enter() {
		return nil, ErrStoreStopped
	}
	defer s.exit()
	r := s.replica(rangeID)
	if r == nil {
		return nil, &kv.RangeNotFoundError{RangeID: rangeID}
	}
	if _, ok := ctx.Deadline(); !ok {
		// Catching up a learner can take a snapshot: give the whole change
		// a few request timeouts.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 6*s.cfg.RequestTimeout)
		defer cancel()
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
	if r.Descriptor() == nil {
		return nil, &InvalidChangeError{RangeID: rangeID, Reason: "membership change of an uninitialized replica"}
	}
	// What an earlier change left behind: a joint configuration is left,
	// a learner on a node this change adds is adopted, any other learner is
	// removed.
	desc, adopted, err := s.settleAbandonedChange(ctx, r, add)
	if err != nil {
		return nil, err
	}
	if err := validateChange(desc, add, remove, adopted); err != nil {
		return nil, err
	}
	// 1. Learners.
	var added []uint64
	for _, a := range add {
		if id, ok := adopted[a.NodeID]; ok {
			added = append(added, id)
			if err := r.waitCaughtUp(ctx, id); err != nil {
				return nil, err
			}
			continue
		}
		id := desc.NextReplicaID
		learner := kv.ReplicaDescriptor{NodeID: a.NodeID, ReplicaID: id, Type: kv.Learner}
		cc := &raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeAddLearnerNode.Enum(), NodeId: new(id)}}}
		if err := r.proposeConfChange(ctx, cc, desc, []kv.ReplicaDescriptor{learner}); err != nil {
			return nil, fmt.Errorf("raftgroup: r%d: add learner on n%d: %w", rangeID, a.NodeID, err)
		}
		desc = r.Descriptor()
		added = append(added, id)
		if err := r.waitCaughtUp(ctx, id); err != nil {
			return nil, err
		}
	}
	if len(added) == 0 && len(remove) == 0 {
		return desc, nil
	}
	// 2. Enter the joint configuration.
	cc := &raftpb.ConfChangeV2{Transition: raftpb.ConfChangeTransitionJointExplicit.Enum()}
	for _, id := range added {
		cc.Changes = append(cc.Changes, &raftpb.ConfChangeSingle{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: new(id)})
	}
	var removedIDs []uint64
	for _, rd := range desc.Replicas {
		if containsNode(remove, rd.NodeID) {
			removedIDs = append(removedIDs, rd.ReplicaID)
			cc.Changes = append(cc.Changes, &raftpb.ConfChangeSingle{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: new(rd.ReplicaID)})
		}
	}
	if err := r.proposeConfChange(ctx, cc, desc, nil); err != nil {
		return nil, fmt.Errorf("raftgroup: r%d: enter joint configuration: %w", rangeID, err)
	}
	nd := r.Descriptor()
	// 3. Leave it.
	if err := r.proposeConfChange(ctx, &raftpb.ConfChangeV2{}, nd, nil); err != nil {
		return nil, fmt.Errorf("raftgroup: r%d: leave joint configuration: %w", rangeID, err)
	}
	final := r.Descriptor()
	// Tell the removed replicas (best effort: they also learn it when they
	// next speak to a member).
	for _, id := range removedIDs {
		for _, rd := range desc.Replicas {
			if rd.ReplicaID == id && rd.NodeID != s.cfg.NodeID {
				s.cfg.Transport.Send(&RaftMessage{RangeID: rangeID, FromNode: s.cfg.NodeID, ToNode: rd.NodeID, Message: &raftpb.Message{
					Type: raftpb.MsgUnreachable.Enum(), From: new(r.replicaID), To: new(id), Index: new(final.NextReplicaID), Context: removalNoticeContext,
				}})
			}
		}
	}
	return final, nil
}

func containsNode(rs []kv.ReplicaDescriptor, nodeID uint64) bool {
	for _, r := range rs {
		if r.NodeID == nodeID {
			return true
		}
	}
	return false
}

// validateChange checks a change of desc; adopted maps the nodes in add
// whose learner an abandoned change left in desc to its replica ID.
func validateChange(desc *kv.RangeDescriptor, add, remove []kv.ReplicaDescriptor, adopted map[uint64]uint64) error {
	if desc == nil {
		return &InvalidChangeError{Reason: "membership change of an uninitialized replica"}
	}
	for _, rd := range desc.Replicas {
		if _, ok := adopted[rd.NodeID]; rd.Type == kv.Learner && !ok {
			return &InvalidChangeError{RangeID: desc.RangeID, Reason: "a membership change is already in progress (learner present)"}
		}
	}
	seen := map[uint64]bool{}
	for _, a := range add {
		if a.NodeID == 0 || seen[a.NodeID] {
			return &InvalidChangeError{RangeID: desc.RangeID, Reason: fmt.Sprintf("bad or duplicate node %d to add", a.NodeID)}
		}
		seen[a.NodeID] = true
		if _, ok := adopted[a.NodeID]; ok {
			continue
		}
		if _, ok := desc.Replica(a.NodeID); ok {
			return &InvalidChangeError{RangeID: desc.RangeID, Reason: fmt.Sprintf("n%d already holds a replica", a.NodeID)}
		}
	}
	voters := len(desc.Replicas) + len(add) - len(adopted)
	for _, rm := range remove {
		if seen[rm.NodeID] {
			return &InvalidChangeError{RangeID: desc.RangeID, Reason: fmt.Sprintf("n%d both added and removed", rm.NodeID)}
		}
		seen[rm.NodeID] = true
		if _, ok := desc.Replica(rm.NodeID); !ok {
			return &InvalidChangeError{RangeID: desc.RangeID, Reason: fmt.Sprintf("n%d holds no replica", rm.NodeID)}
		}
		voters--
	}
	if voters < 1 {
		return &InvalidChangeError{RangeID: desc.RangeID, Reason: "a range needs at least one voter"}
	}
	return nil
}

// proposeConfChange proposes cc, computed from base (the descriptor the
// caller read), and waits for its apply. added names the node of every
// replica ID cc adds. What the apply installs is derived from the
// descriptor in force at apply (deriveChangedDescriptor), so a split that
// commits between the caller's read and this change is kept.
func (r *Replica) proposeConfChange(ctx context.Context, cc *raftpb.ConfChangeV2, base *kv.RangeDescriptor, added []kv.ReplicaDescriptor) error {
	p := newProposal(r.store.nextProposalID())
	cc.Context = encodeChangeReplicas(p.id, changeReplicasCommand{
		BaseGeneration: base.Generation, StartKey: base.StartKey, EndKey: base.EndKey, Added: added,
	})
	p.cc = cc
	_, err := r.propose(ctx, p)
	return err
}

// deriveChangedDescriptor is the descriptor in force once cc applies on
// top of cur: cur's span and replicas with cc's own changes (the same list
// raft's ApplyConfChange applies, so the descriptor and raft's
// configuration never disagree), one generation later. It never takes
// anything from the proposer's view of the descriptor but the nodes of the
// added replica IDs: a change computed before a split and committed after
// it must not bring back the pre-split span. Deterministic.
func deriveChangedDescriptor(cur *kv.RangeDescriptor, cc *raftpb.ConfChangeV2, cmd changeReplicasCommand) *kv.RangeDescriptor {
	nd := cur.Clone()
	nd.Generation++
	nodeOf := func(id uint64) uint64 {
		for _, rd := range cmd.Added {
			if rd.ReplicaID == id {
				return rd.NodeID
			}
		}
		return 0
	}
	find := func(id uint64) int {
		for i, rd := range nd.Replicas {
			if rd.ReplicaID == id {
				return i
			}
		}
		return -1
	}
	for _, ch := range cc.GetChanges() {
		id := ch.GetNodeId()
		switch ch.GetType() {
		case raftpb.ConfChangeAddLearnerNode, raftpb.ConfChangeAddNode:
			typ := kv.Voter
			if ch.GetType() == raftpb.ConfChangeAddLearnerNode {
				typ = kv.Learner
			}
			if i := find(id); i >= 0 {
				nd.Replicas[i].Type = typ
			} else {
				nd.Replicas = append(nd.Replicas, kv.ReplicaDescriptor{NodeID: nodeOf(id), ReplicaID: id, Type: typ})
			}
			nd.NextReplicaID = max(nd.NextReplicaID, id+1)
		case raftpb.ConfChangeRemoveNode:
			if i := find(id); i >= 0 {
				nd.Replicas = append(nd.Replicas[:i], nd.Replicas[i+1:]...)
			}
		}
	}
	return nd
}

// waitCaughtUp waits until the learner replicaID has the leader's log up to
// the commit index (it got its snapshot and the entries after it).
func (r *Replica) waitCaughtUp(ctx context.Context, replicaID uint64) error {
	t := time.NewTicker(r.store.cfg.TickInterval)
	defer t.Stop()
	for {
		type progress struct {
			match, commit uint64
			leader        bool
		}
		ch := make(chan progress, 1)
		if err := r.runOnOwner(func(r *Replica) {
			st := r.raw.BasicStatus()
			var match uint64
			r.raw.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
				if id == replicaID {
					match = pr.Match
				}
			})
			ch <- progress{match: match, commit: st.GetCommit(), leader: st.RaftState == raft.StateLeader}
		}); err != nil {
			return err
		}
		select {
		case p := <-ch:
			if !p.leader {
				r.mu.Lock()
				err := r.notLeaderErrorLocked()
				r.mu.Unlock()
				return err
			}
			if p.match >= p.commit && p.match > 0 {
				return nil
			}
		case <-ctx.Done():
			return r.unavailable(ctx, fmt.Sprintf("waiting for learner %d to catch up", replicaID))
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return r.unavailable(ctx, fmt.Sprintf("waiting for learner %d to catch up", replicaID))
		}
	}
}

// TransferLeadership asks the leader of rangeID (this store's replica) to
// hand leadership to the replica on targetNode, and waits until this
// replica is no longer the leader.
func (s *Store) TransferLeadership(ctx context.Context, rangeID, targetNode uint64) error {
	if !s.enter() {
		return ErrStoreStopped
	}
	defer s.exit()
	r := s.replica(rangeID)
	if r == nil {
		return &kv.RangeNotFoundError{RangeID: rangeID}
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if err := r.waitLeadership(ctx); err != nil {
		return err
	}
	desc := r.Descriptor()
	target, ok := desc.Replica(targetNode)
	if !ok || target.Type != kv.Voter {
		return &InvalidChangeError{RangeID: rangeID, Reason: fmt.Sprintf("n%d holds no voter", targetNode)}
	}
	for {
		r.mu.Lock()
		leader, ch := r.isLeader, r.leaderCh
		leaderNode := r.nodeOfReplicaLocked(r.leaderID)
		r.mu.Unlock()
		if (!leader && leaderNode == targetNode) || (leader && targetNode == s.cfg.NodeID) {
			return nil
		}
		if !leader && leaderNode != 0 {
			return &kv.NotLeaderError{RangeID: rangeID, LeaderNodeID: leaderNode}
		}
		if leader {
			if err := r.runOnOwner(func(r *Replica) { r.raw.TransferLeader(target.ReplicaID) }); err != nil {
				return err
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return r.unavailable(ctx, fmt.Sprintf("transferring leadership to n%d", targetNode))
		}
	}
}
