package raftgroup

import (
	"fmt"
	"testing"

	"github.com/quorumdb/quorumdb/kv"
)

// pdPlanRange builds a range [start, end) with voters on nodes, led by the
// first.
func pdPlanRange(id uint64, start, end string, nodes ...uint64) *placementRange {
	d := &kv.RangeDescriptor{RangeID: id, StartKey: []byte(start), EndKey: []byte(end), Generation: 5, NextReplicaID: uint64(len(nodes) + 1)}
	if end == "" {
		d.EndKey = kv.KeyMax
	}
	for i, n := range nodes {
		d.Replicas = append(d.Replicas, kv.ReplicaDescriptor{NodeID: n, ReplicaID: uint64(i + 1)})
	}
	return &placementRange{Desc: d, Leader: nodes[0], ApplyRate: -1}
}

// pdPlanNodes: live and reachable nodes, plus dead and down-in-grace ones.
func pdPlanNodes(live []uint64, dead []uint64, down []uint64) map[uint64]*placementNode {
	m := map[uint64]*placementNode{}
	for _, id := range live {
		m[id] = &placementNode{ID: id, Live: true, Reachable: true}
	}
	for _, id := range dead {
		m[id] = &placementNode{ID: id, Dead: true}
	}
	for _, id := range down {
		m[id] = &placementNode{ID: id}
	}
	return m
}

var pdRules = placementRules{ReplicationFactor: 3, SplitThresholdBytes: 1000, MaxMovesPerRound: 2, MaxLeaderTransfersPerRound: 2}

func pdActionsString(as []placementAction) string {
	s := ""
	for _, a := range as {
		s += a.String() + "; "
	}
	return s
}

func TestPlanUpReplicatesCappedByLiveNodes(t *testing.T) {
	r := pdPlanRange(1, "", "", 1)
	acts, _ := planPlacement(placementInput{Nodes: pdPlanNodes([]uint64{1, 2, 3}, nil, nil), Ranges: []*placementRange{r}}, pdRules)
	if len(acts) != 1 || acts[0].Kind != actionAddReplica || acts[0].Add[0] != 2 || len(acts[0].Remove) != 0 {
		t.Fatalf("got %s", pdActionsString(acts))
	}
	// Two live nodes: the factor is capped at two.
	r2 := pdPlanRange(1, "", "", 1, 2)
	if acts, _ := planPlacement(placementInput{Nodes: pdPlanNodes([]uint64{1, 2}, nil, nil), Ranges: []*placementRange{r2}}, pdRules); len(acts) != 0 {
		t.Fatalf("got %s", pdActionsString(acts))
	}
	// An unreachable live node gets nothing.
	nodes := pdPlanNodes([]uint64{1, 2, 3}, nil, nil)
	nodes[2].Reachable, nodes[3].Reachable = false, false
	if acts, notes := planPlacement(placementInput{Nodes: nodes, Ranges: []*placementRange{r}}, pdRules); len(acts) != 0 || len(notes) != 1 {
		t.Fatalf("got %s %v", pdActionsString(acts), notes)
	}
}

func TestPlanReplacesDeadReplicaAddingFirst(t *testing.T) {
	r := pdPlanRange(1, "", "", 1, 2, 3)
	acts, _ := planPlacement(placementInput{Nodes: pdPlanNodes([]uint64{1, 2, 4}, []uint64{3}, nil), Ranges: []*placementRange{r}}, pdRules)
	// One ChangeReplicas both adds (learner, caught up, promoted) and
	// removes: the removal is in the same joint step as the promotion.
	if len(acts) != 1 || acts[0].Kind != actionReplaceReplica || fmt.Sprint(acts[0].Add, acts[0].Remove) != "[4] [3]" {
		t.Fatalf("got %s", pdActionsString(acts))
	}
	// Within the grace period nothing moves.
	if acts, _ := planPlacement(placementInput{Nodes: pdPlanNodes([]uint64{1, 2, 4}, nil, []uint64{3}), Ranges: []*placementRange{r}}, pdRules); len(acts) != 0 {
		t.Fatalf("within grace: %s", pdActionsString(acts))
	}
	// No replacement node: the dead replica stays (removing it would not
	// make the range safer).
	if acts, notes := planPlacement(placementInput{Nodes: pdPlanNodes([]uint64{1, 2}, []uint64{3}, nil), Ranges: []*placementRange{r}}, pdRules); len(acts) != 0 || len(notes) != 1 {
		t.Fatalf("no target: %s %v", pdActionsString(acts), notes)
	}
	// Two of three dead: no quorum, no change can commit.
	if acts, notes := planPlacement(placementInput{Nodes: pdPlanNodes([]uint64{1, 4, 5}, []uint64{2, 3}, nil), Ranges: []*placementRange{r}}, pdRules); len(acts) != 0 || len(notes) != 1 {
		t.Fatalf("no quorum: %s %v", pdActionsString(acts), notes)
	}
	// Over-replicated with a dead member: just drop it.
	r4 := pdPlanRange(1, "", "", 1, 2, 3, 4)
	if acts, _ := planPlacement(placementInput{Nodes: pdPlanNodes([]uint64{1, 2, 3}, []uint64{4}, nil), Ranges: []*placementRange{r4}}, pdRules); len(acts) != 1 || acts[0].Kind != actionRemoveReplica || acts[0].Remove[0] != 4 {
		t.Fatalf("over-replicated: %s", pdActionsString(acts))
	}
}

func TestPlanHalfDoneChangeWaitsUnlessAbandoned(t *testing.T) {
	r := pdPlanRange(1, "", "", 1, 2, 3)
	r.Desc.Replicas = append(r.Desc.Replicas, kv.ReplicaDescriptor{NodeID: 4, ReplicaID: 4, Type: kv.Learner})
	in := placementInput{Nodes: pdPlanNodes([]uint64{1, 2, 3, 4}, nil, nil), Ranges: []*placementRange{r}}
	if acts, notes := planPlacement(in, pdRules); len(acts) != 0 || len(notes) != 1 {
		t.Fatalf("fresh learner: %s %v", pdActionsString(acts), notes)
	}
	r.Abandoned = true
	if acts, _ := planPlacement(in, pdRules); len(acts) != 1 || acts[0].Kind != actionRepairChange {
		t.Fatalf("abandoned learner: %s", pdActionsString(acts))
	}
	// A joint configuration without learners likewise.
	j := pdPlanRange(1, "", "", 1, 2, 3)
	j.JointConfig = true
	in.Ranges = []*placementRange{j}
	if acts, notes := planPlacement(in, pdRules); len(acts) != 0 || len(notes) != 1 {
		t.Fatalf("fresh joint configuration: %s %v", pdActionsString(acts), notes)
	}
	j.Abandoned = true
	if acts, _ := planPlacement(in, pdRules); len(acts) != 1 || acts[0].Kind != actionRepairChange {
		t.Fatalf("abandoned joint configuration: %s", pdActionsString(acts))
	}
}

func TestPlanSplitsOnlyHealthyLargeRangesAtTheirKey(t *testing.T) {
	big := pdPlanRange(1, "", "m", 1, 2, 3)
	big.Bytes, big.SplitKey = 5000, []byte("f")
	small := pdPlanRange(2, "m", "", 1, 2, 3)
	small.Bytes, small.SplitKey = 10, []byte("q")
	acts, _ := planPlacement(placementInput{Nodes: pdPlanNodes([]uint64{1, 2, 3}, nil, nil), Ranges: []*placementRange{big, small}}, pdRules)
	if len(acts) != 1 || acts[0].Kind != actionSplit || acts[0].RangeID != 1 || string(acts[0].SplitKey) != "f" {
		t.Fatalf("got %s", pdActionsString(acts))
	}
	// A split key at the range start or outside it is refused.
	big.SplitKey = []byte("")
	if acts, _ := planPlacement(placementInput{Nodes: pdPlanNodes([]uint64{1, 2, 3}, nil, nil), Ranges: []*placementRange{big}}, pdRules); len(acts) != 0 {
		t.Fatalf("bad key: %s", pdActionsString(acts))
	}
	// Load-based split.
	small.ApplyRate = 900
	rules := pdRules
	rules.LoadSplitAppliesPerSecond = 500
	if acts, _ := planPlacement(placementInput{Nodes: pdPlanNodes([]uint64{1, 2, 3}, nil, nil), Ranges: []*placementRange{small}}, rules); len(acts) != 1 || acts[0].Kind != actionSplit {
		t.Fatalf("hot range: %s", pdActionsString(acts))
	}
}

func TestPlanRebalancesToNewNodeBoundedPerRound(t *testing.T) {
	var ranges []*placementRange
	for i := uint64(1); i <= 6; i++ {
		r := pdPlanRange(i, fmt.Sprintf("%c", 'a'+i), fmt.Sprintf("%c", 'b'+i), 1, 2, 3)
		r.Leader = 1 + i%3
		ranges = append(ranges, r)
	}
	in := placementInput{Nodes: pdPlanNodes([]uint64{1, 2, 3, 4}, nil, nil), Ranges: ranges}
	acts, _ := planPlacement(in, pdRules)
	moves := 0
	for _, a := range acts {
		switch a.Kind {
		case actionMoveReplica:
			moves++
			if a.Add[0] != 4 || a.Remove[0] == a.Leader {
				t.Fatalf("bad move %s", a)
			}
		case actionTransferLeader:
			// The leader must shed a replica: it hands leadership away
			// first, to a voter that is not itself.
			if a.Target == a.Leader {
				t.Fatalf("bad transfer %s", a)
			}
		default:
			t.Fatalf("unexpected %s", a)
		}
	}
	if moves == 0 || len(acts) > pdRules.MaxMovesPerRound {
		t.Fatalf("got %s", pdActionsString(acts))
	}
	// A node down within its grace period stops rebalancing.
	in.Nodes = pdPlanNodes([]uint64{1, 2, 3, 4}, nil, []uint64{5})
	in.Ranges = append(in.Ranges, pdPlanRange(9, "x", "y", 1, 2, 5))
	if acts, _ := planPlacement(in, pdRules); len(acts) != 0 {
		t.Fatalf("rebalanced while a node is down: %s", pdActionsString(acts))
	}
}

func TestPlanBalancesLeaders(t *testing.T) {
	var ranges []*placementRange
	for i := uint64(1); i <= 4; i++ {
		ranges = append(ranges, pdPlanRange(i, fmt.Sprintf("%c", 'a'+i), fmt.Sprintf("%c", 'b'+i), 1, 2, 3))
	}
	acts, _ := planPlacement(placementInput{Nodes: pdPlanNodes([]uint64{1, 2, 3}, nil, nil), Ranges: ranges}, pdRules)
	if len(acts) != 2 {
		t.Fatalf("got %s", pdActionsString(acts))
	}
	for _, a := range acts {
		if a.Kind != actionTransferLeader || a.Leader != 1 || a.Target == 1 {
			t.Fatalf("got %s", pdActionsString(acts))
		}
	}
	if acts[0].Target == acts[1].Target {
		t.Fatalf("both leaderships to one node: %s", pdActionsString(acts))
	}
}

// BenchmarkPlanPlacement plans a balanced round of 3000 ranges on 10 nodes
// (the common case: nothing to do but check every rule).
func BenchmarkPlanPlacement(b *testing.B) {
	nodes := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	var ranges []*placementRange
	for i := range uint64(3000) {
		r := pdPlanRange(i+1, fmt.Sprintf("k%05d", i), fmt.Sprintf("k%05d", i+1), nodes[i%10], nodes[(i+1)%10], nodes[(i+2)%10])
		r.Bytes = 100
		ranges = append(ranges, r)
	}
	in := placementInput{Nodes: pdPlanNodes(nodes, nil, nil), Ranges: ranges}
	b.ReportAllocs()
	for b.Loop() {
		planPlacement(in, pdRules)
	}
}
