package raftgroup

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"

	"github.com/quorumdb/quorumdb/kv"
)

// The placement plan: one pure function from what the driver observed in a
// round (nodes, ranges with their leaders and sizes) to at most one action
// per range. Keeping it free of I/O makes every rule testable on its own.

// placementNode is what a round knows about one node.
type placementNode struct {
	ID uint64
	// Live: the node's liveness lease is held (it is in the live set).
	Live bool
	// Dead: not live for at least the grace period; its replicas are
	// replaced.
	Dead bool
	// Reachable: the node answered this round's stats call, so it can take
	// a new replica or the leadership of a range.
	Reachable bool
}

// placementRange is one range as its leader reported it.
type placementRange struct {
	Desc     *kv.RangeDescriptor
	Leader   uint64 // 0: no leader reported (counted, never acted on)
	Bytes    uint64
	SplitKey []byte
	// ApplyRate is the commands applied per second since the last round
	// (negative: unknown).
	ApplyRate float64
	// JointConfig: the raft configuration is joint (reported by the
	// leader).
	JointConfig bool
	// Abandoned: the learner or joint configuration the range has was left
	// by a replica change that is over (no running change can finish it).
	Abandoned bool
}

// placementInput is a round's observation.
type placementInput struct {
	Nodes  map[uint64]*placementNode
	Ranges []*placementRange
}

// placementRules are the knobs of the plan (from PlacementConfig).
type placementRules struct {
	ReplicationFactor          int
	SplitThresholdBytes        uint64
	LoadSplitAppliesPerSecond  float64
	MaxMovesPerRound           int
	MaxLeaderTransfersPerRound int
}

type placementActionKind uint8

const (
	actionAddReplica placementActionKind = iota + 1
	actionReplaceReplica
	actionRemoveReplica
	actionMoveReplica
	actionTransferLeader
	actionSplit
	actionRepairChange
)

func (k placementActionKind) String() string {
	switch k {
	case actionAddReplica:
		return "add-replica"
	case actionReplaceReplica:
		return "replace-replica"
	case actionRemoveReplica:
		return "remove-replica"
	case actionMoveReplica:
		return "move-replica"
	case actionTransferLeader:
		return "transfer-leader"
	case actionSplit:
		return "split"
	case actionRepairChange:
		return "repair-abandoned-change"
	}
	return "unknown"
}

// placementAction is one command for the leader of a range.
type placementAction struct {
	Kind     placementActionKind
	RangeID  uint64
	Leader   uint64   // the node commanded
	Add      []uint64 // nodes that get a replica
	Remove   []uint64 // nodes that lose theirs
	Target   uint64   // transfer-leader: the new leader
	SplitKey []byte
	Reason   string
}

func (a placementAction) String() string {
	switch a.Kind {
	case actionTransferLeader:
		return fmt.Sprintf("%s r%d n%d→n%d (%s)", a.Kind, a.RangeID, a.Leader, a.Target, a.Reason)
	case actionSplit:
		return fmt.Sprintf("%s r%d at %q (%s)", a.Kind, a.RangeID, a.SplitKey, a.Reason)
	}
	return fmt.Sprintf("%s r%d add=%v remove=%v (%s)", a.Kind, a.RangeID, a.Add, a.Remove, a.Reason)
}

// placementNote is a decision not to act, worth logging.
type placementNote struct {
	RangeID uint64
	Msg     string
}

// planPlacement decides this round's actions, at most one per range:
//
//  1. repair: a learner or joint configuration left by a failed change is
//     cleaned up; a range with a voter on a dead node gets a replacement on a
//     reachable live node, added and caught up before the dead replica is
//     removed (one ChangeReplicas: learner, catch-up, then one joint
//     configuration); a range under the replication factor (capped by the
//     live nodes) gets one more replica; an over-replicated range loses
//     one;
//  2. split a range over the size threshold (or the load threshold) at its
//     middle user key;
//  3. only when no range needs repair: move replicas from the most to the
//     least loaded node, then balance leaders, each bounded per round.
//
// It never removes a live replica of a range that has a replica on a node
// that is not live, never acts on a range whose live voters are not a
// quorum, and never acts on a range with a membership change in progress.
func planPlacement(in placementInput, rules placementRules) ([]placementAction, []placementNote) {
	var (
		actions []placementAction
		notes   []placementNote
	)
	liveNodes := 0
	for _, n := range in.Nodes {
		if n.Live {
			liveNodes++
		}
	}
	// rf is the factor to reach (capped by the live nodes); a range only
	// loses a replica for being above the configured factor, so a dead
	// node's replica stays counted until a node can take its place.
	configured := max(rules.ReplicationFactor, 1)
	rf := min(configured, max(liveNodes, 1))

	replicas := map[uint64]int{}
	leaders := map[uint64]int{}
	for _, r := range in.Ranges {
		for _, rd := range r.Desc.Replicas {
			replicas[rd.NodeID]++
		}
		if r.Leader != 0 {
			leaders[r.Leader]++
		}
	}
	nodeOK := func(id uint64) bool {
		n := in.Nodes[id]
		return n != nil && n.Live && n.Reachable
	}
	isLive := func(id uint64) bool { n := in.Nodes[id]; return n != nil && n.Live }
	isDead := func(id uint64) bool { n := in.Nodes[id]; return n != nil && n.Dead }
	// target picks the reachable live node without a replica of desc that
	// holds the fewest replicas (ties: lowest ID).
	target := func(desc *kv.RangeDescriptor) uint64 {
		var best uint64
		for id := range in.Nodes {
			if !nodeOK(id) {
				continue
			}
			if _, has := desc.Replica(id); has {
				continue
			}
			if best == 0 || replicas[id] < replicas[best] || (replicas[id] == replicas[best] && id < best) {
				best = id
			}
		}
		return best
	}

	ranges := slices.Clone(in.Ranges)
	slices.SortFunc(ranges, func(a, b *placementRange) int { return cmp.Compare(a.Desc.RangeID, b.Desc.RangeID) })
	acted := map[uint64]bool{}
	healthy := true
	add := func(a placementAction) {
		actions = append(actions, a)
		acted[a.RangeID] = true
	}
	for _, r := range ranges {
		d := r.Desc
		if r.Leader == 0 {
			healthy = false
			notes = append(notes, placementNote{d.RangeID, "no leader reported by a reachable node"})
			continue
		}
		var live, dead, absent []uint64
		learner := false
		for _, rd := range d.Replicas {
			if rd.Type == kv.Learner {
				learner = true
			}
			switch {
			case isLive(rd.NodeID):
				live = append(live, rd.NodeID)
			case isDead(rd.NodeID):
				dead = append(dead, rd.NodeID)
			default:
				absent = append(absent, rd.NodeID)
			}
		}
		if learner || r.JointConfig {
			healthy = false
			if r.Abandoned {
				add(placementAction{Kind: actionRepairChange, RangeID: d.RangeID, Leader: r.Leader,
					Reason: "a replica change stopped half way (learner or joint configuration left) and blocks every later change"})
				continue
			}
			notes = append(notes, placementNote{d.RangeID, "a membership change is in progress (learner or joint configuration); waiting"})
			continue
		}
		quorum := len(d.Replicas)/2 + 1
		if len(dead) > 0 || len(absent) > 0 {
			healthy = false
		}
		if len(live) < quorum {
			notes = append(notes, placementNote{d.RangeID, fmt.Sprintf("only %d of %d voters live, below quorum; cannot change it", len(live), len(d.Replicas))})
			continue
		}
		switch {
		case len(dead) > 0 && len(d.Replicas) > configured:
			// Over-replicated with a dead member: dropping it keeps at
			// least rf voters, and the live ones stay a quorum.
			rest := len(d.Replicas) - 1
			if len(live) >= rest/2+1 {
				add(placementAction{Kind: actionRemoveReplica, RangeID: d.RangeID, Leader: r.Leader, Remove: []uint64{dead[0]},
					Reason: fmt.Sprintf("n%d dead past the grace period and the range has %d voters for a factor of %d", dead[0], len(d.Replicas), configured)})
				replicas[dead[0]]--
			}
			continue
		case len(dead) > 0:
			t := target(d)
			if t == 0 {
				notes = append(notes, placementNote{d.RangeID, fmt.Sprintf("n%d is dead but no reachable live node can take its replica", dead[0])})
				continue
			}
			add(placementAction{Kind: actionReplaceReplica, RangeID: d.RangeID, Leader: r.Leader, Add: []uint64{t}, Remove: []uint64{dead[0]},
				Reason: fmt.Sprintf("n%d dead past the grace period; n%d takes its replica, caught up before the removal", dead[0], t)})
			replicas[t]++
			replicas[dead[0]]--
			continue
		case len(d.Replicas) < rf:
			t := target(d)
			if t == 0 {
				notes = append(notes, placementNote{d.RangeID, fmt.Sprintf("%d voters for a factor of %d but no reachable live node can take a replica", len(d.Replicas), rf)})
				continue
			}
			add(placementAction{Kind: actionAddReplica, RangeID: d.RangeID, Leader: r.Leader, Add: []uint64{t},
				Reason: fmt.Sprintf("%d voters for a replication factor of %d", len(d.Replicas), rf)})
			replicas[t]++
			continue
		case len(absent) > 0:
			// A member is not live but still within its grace period:
			// leave the range alone until it returns or is declared dead.
			continue
		case len(d.Replicas) > configured:
			if victim := mostLoadedNonLeader(d, r.Leader, replicas); victim != 0 {
				add(placementAction{Kind: actionRemoveReplica, RangeID: d.RangeID, Leader: r.Leader, Remove: []uint64{victim},
					Reason: fmt.Sprintf("%d voters for a replication factor of %d", len(d.Replicas), configured)})
				replicas[victim]--
			}
			continue
		}
		if key := r.SplitKey; len(key) > 0 && d.ContainsKey(key) && !bytes.Equal(key, d.StartKey) {
			if rules.SplitThresholdBytes > 0 && r.Bytes >= rules.SplitThresholdBytes {
				add(placementAction{Kind: actionSplit, RangeID: d.RangeID, Leader: r.Leader, SplitKey: key,
					Reason: fmt.Sprintf("%d bytes, threshold %d", r.Bytes, rules.SplitThresholdBytes)})
				continue
			}
			if rules.LoadSplitAppliesPerSecond > 0 && r.ApplyRate >= rules.LoadSplitAppliesPerSecond {
				add(placementAction{Kind: actionSplit, RangeID: d.RangeID, Leader: r.Leader, SplitKey: key,
					Reason: fmt.Sprintf("%.0f applied commands/s, threshold %.0f", r.ApplyRate, rules.LoadSplitAppliesPerSecond)})
				continue
			}
		}
	}
	if !healthy || len(actions) > 0 {
		return actions, notes
	}

	// 3a. Replica moves, most loaded → least loaded reachable node.
	eligible := func(r *placementRange) bool {
		if acted[r.Desc.RangeID] || r.Leader == 0 {
			return false
		}
		for _, rd := range r.Desc.Replicas {
			if !nodeOK(rd.NodeID) {
				return false
			}
		}
		return true
	}
	var okNodes []uint64
	for id := range in.Nodes {
		if nodeOK(id) {
			okNodes = append(okNodes, id)
		}
	}
	slices.Sort(okNodes)
	for moves := 0; moves < rules.MaxMovesPerRound && len(okNodes) > 1; {
		src, dst := okNodes[0], okNodes[0]
		for _, id := range okNodes {
			if replicas[id] > replicas[src] {
				src = id
			}
			if replicas[id] < replicas[dst] {
				dst = id
			}
		}
		if replicas[src]-replicas[dst] <= 1 {
			break
		}
		var pick *placementRange
		for _, r := range ranges {
			if !eligible(r) {
				continue
			}
			_, onSrc := r.Desc.Replica(src)
			_, onDst := r.Desc.Replica(dst)
			if !onSrc || onDst {
				continue
			}
			if pick == nil || (pick.Leader == src && r.Leader != src) {
				pick = r
			}
		}
		if pick == nil {
			break
		}
		moves++
		if pick.Leader == src {
			// A leader does not remove itself: hand the leadership to the
			// voter with the fewest leaderships first; the move follows in
			// a later round.
			to := leastLeaderVoter(pick.Desc, src, leaders, nodeOK)
			if to == 0 {
				acted[pick.Desc.RangeID] = true
				continue
			}
			add(placementAction{Kind: actionTransferLeader, RangeID: pick.Desc.RangeID, Leader: src, Target: to,
				Reason: fmt.Sprintf("n%d must shed a replica of this range (%d replicas vs %d on n%d)", src, replicas[src], replicas[dst], dst)})
			leaders[src]--
			leaders[to]++
			continue
		}
		add(placementAction{Kind: actionMoveReplica, RangeID: pick.Desc.RangeID, Leader: pick.Leader, Add: []uint64{dst}, Remove: []uint64{src},
			Reason: fmt.Sprintf("rebalance: n%d holds %d replicas, n%d holds %d", src, replicas[src], dst, replicas[dst])})
		replicas[src]--
		replicas[dst]++
	}

	// 3b. Leader balance: hand a leadership to a voter leading at least two
	// fewer ranges.
	transfers := 0
	for _, r := range ranges {
		if transfers >= rules.MaxLeaderTransfersPerRound {
			break
		}
		if !eligible(r) {
			continue
		}
		to := leastLeaderVoter(r.Desc, r.Leader, leaders, nodeOK)
		if to == 0 || leaders[to]+1 >= leaders[r.Leader] {
			continue
		}
		add(placementAction{Kind: actionTransferLeader, RangeID: r.Desc.RangeID, Leader: r.Leader, Target: to,
			Reason: fmt.Sprintf("leader balance: n%d leads %d ranges, n%d leads %d", r.Leader, leaders[r.Leader], to, leaders[to])})
		leaders[r.Leader]--
		leaders[to]++
		transfers++
	}
	return actions, notes
}

// leastLeaderVoter returns the voter of desc other than not, on a usable
// node, leading the fewest ranges (ties: lowest ID); 0 if none.
func leastLeaderVoter(desc *kv.RangeDescriptor, not uint64, leaders map[uint64]int, ok func(uint64) bool) uint64 {
	var best uint64
	for _, rd := range desc.Replicas {
		id := rd.NodeID
		if id == not || rd.Type != kv.Voter || !ok(id) {
			continue
		}
		if best == 0 || leaders[id] < leaders[best] || (leaders[id] == leaders[best] && id < best) {
			best = id
		}
	}
	return best
}

// mostLoadedNonLeader returns the replica node of desc, other than the
// leader, holding the most replicas (ties: highest ID).
func mostLoadedNonLeader(desc *kv.RangeDescriptor, leader uint64, replicas map[uint64]int) uint64 {
	var worst uint64
	for _, rd := range desc.Replicas {
		id := rd.NodeID
		if id == leader {
			continue
		}
		if worst == 0 || replicas[id] > replicas[worst] || (replicas[id] == replicas[worst] && id > worst) {
			worst = id
		}
	}
	return worst
}
