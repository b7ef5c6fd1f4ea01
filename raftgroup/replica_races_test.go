package raftgroup

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/quorumdb/quorumdb/kv"
)

// A membership change computed from the descriptor before a split and
// committed after it must not bring back the pre-split span: the change
// applies to the descriptor in force at apply.
func TestStaleChangeReplicasAfterSplitKeepsSplitSpan(t *testing.T) {
	c := newTestCluster(t, 4, nil)
	c.bootstrap(testDescriptor(1, 1, 2, 3))
	leader := c.waitLeader(1, 2*time.Second)
	ctx := testCtx(t, 30*time.Second)
	r := c.store(leader).replica(1)
	stale := r.Descriptor() // what a racing ChangeReplicas computed from
	if _, _, err := c.store(leader).SplitRange(ctx, 1, []byte("m"), 2); err != nil {
		t.Fatal(err)
	}
	id := stale.NextReplicaID
	cc := &raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeAddLearnerNode.Enum(), NodeId: new(id)}}}
	if err := proposeStaleAddLearner(ctx, r, cc, stale, kv.ReplicaDescriptor{NodeID: 4, ReplicaID: id, Type: kv.Learner}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []uint64{1, 2, 3} {
		waitFor(t, 5*time.Second, "the learner in every left descriptor", func() bool {
			d := c.store(n).replica(1).Descriptor()
			_, ok := d.Replica(4)
			return ok
		})
		d := c.store(n).replica(1).Descriptor()
		if !bytes.Equal(d.EndKey, []byte("m")) || d.Generation != 3 {
			t.Fatalf("n%d: left descriptor after a stale change: %v", n, d)
		}
		if rd, _ := d.Replica(4); rd.ReplicaID != id || rd.Type != kv.Learner {
			t.Fatalf("n%d: learner %v", n, rd)
		}
		// A right replica created early by a message is initialized by the
		// split asynchronously, on its own worker.
		waitFor(t, 5*time.Second, "the right replica initialized", func() bool {
			rr := c.store(n).replica(2)
			return rr != nil && rr.Descriptor() != nil
		})
		if rd := c.store(n).replica(2).Descriptor(); rd == nil || !bytes.Equal(rd.StartKey, []byte("m")) {
			t.Fatalf("n%d: right descriptor %v", n, rd)
		}
	}
}

func proposeStaleAddLearner(ctx context.Context, r *Replica, cc *raftpb.ConfChangeV2, stale *kv.RangeDescriptor, learner kv.ReplicaDescriptor) error {
	return r.proposeConfChange(ctx, cc, stale, []kv.ReplicaDescriptor{learner})
}

// A split that commits while the range is in a joint configuration is
// refused on every replica: its right range would start from a
// configuration the left one has not reached.
func TestSplitRefusedInJointConfiguration(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.bootstrap(testDescriptor(1, 1, 2, 3))
	leader := c.waitLeader(1, 2*time.Second)
	ctx := testCtx(t, 30*time.Second)
	s := c.store(leader)
	r := s.replica(1)
	desc := r.Descriptor()
	other := leader%3 + 1
	od, _ := desc.Replica(other)
	cc := &raftpb.ConfChangeV2{Transition: raftpb.ConfChangeTransitionJointExplicit.Enum(),
		Changes: []*raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: new(od.ReplicaID)}}}
	if err := r.proposeConfChange(ctx, cc, desc, nil); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.SplitRange(ctx, 1, []byte("m"), 2)
	var ic *InvalidChangeError
	if !errors.As(err, &ic) || !strings.Contains(ic.Reason, "joint") {
		t.Fatalf("split in a joint configuration: %v", err)
	}
	if s.replica(2) != nil {
		t.Fatal("r2 created by a refused split")
	}
	d, err := s.repairAbandonedChange(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Replica(other); ok || len(d.Replicas) != 2 {
		t.Fatalf("after leaving the joint configuration: %v", d)
	}
	if _, right, err := s.SplitRange(ctx, 1, []byte("m"), 2); err != nil || len(right.Replicas) != 2 {
		t.Fatalf("split after the change: %v %v", right, err)
	}
}

// SplitRange answers only once the right-hand replica exists here: the
// hook holds the left range's worker between the split's apply and the
// creation of the right replica; a premature answer shows up as a
// SplitRange that returns while the hook still holds.
func TestSplitRangeReturnsOnceRightReplicaExists(t *testing.T) {
	splitReturned := make(chan struct{})
	var hooked atomic.Bool
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.Knobs.BeforeSplitRangeCreated = func(_, _ uint64) {
			if !hooked.CompareAndSwap(false, true) {
				return
			}
			// A premature answer arrives well within this bound; a
			// correct SplitRange cannot return before the hook does.
			select {
			case <-splitReturned:
			case <-time.After(300 * time.Millisecond):
			}
		}
	})
	c.bootstrap(testDescriptor(1, 1, 2, 3))
	leader := c.waitLeader(1, 2*time.Second)
	ctx := testCtx(t, 30*time.Second)
	left, right, err := c.store(leader).SplitRange(ctx, 1, []byte("m"), 2)
	close(splitReturned)
	if err != nil {
		t.Fatalf("split: %v", err)
	}
	if right == nil || right.RangeID != 2 || !bytes.Equal(right.StartKey, []byte("m")) || !bytes.Equal(left.EndKey, []byte("m")) {
		t.Fatalf("split descriptors: %v %v", left, right)
	}
	if !hooked.Load() {
		t.Fatal("the split never reached the hook")
	}
}

// BootstrapRange is idempotent: a replica that a peer's snapshot already
// initialized (before this node's bootstrap call) counts as done, also
// after the range split; a descriptor that is not the same range (another
// span at the same generation, another replica ID) is refused.
func TestBootstrapRangeIsIdempotent(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	desc := testDescriptor(1, 1, 2, 3)
	ctx := testCtx(t, 30*time.Second)
	for _, n := range []uint64{1, 2} {
		if err := c.store(n).BootstrapRange(ctx, desc); err != nil {
			t.Fatal(err)
		}
	}
	c.waitLeader(1, 5*time.Second)
	if _, err := c.put(ctx, 1, []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "n3 initialized by snapshot", func() bool {
		r := c.store(3).replica(1)
		return r != nil && r.Descriptor() != nil
	})
	before := c.store(3).replica(1)
	if err := c.store(3).BootstrapRange(ctx, desc); err != nil {
		t.Fatalf("bootstrap after a snapshot: %v", err)
	}
	if c.store(3).replica(1) != before {
		t.Fatal("bootstrap replaced the replica")
	}
	for _, n := range []uint64{1, 2, 3} {
		if err := c.store(n).BootstrapRange(ctx, desc); err != nil {
			t.Fatalf("n%d: repeated bootstrap: %v", n, err)
		}
	}
	leader := c.waitLeader(1, 5*time.Second)
	if _, _, err := c.store(leader).SplitRange(ctx, 1, []byte("m"), 2); err != nil {
		t.Fatal(err)
	}
	if err := c.store(leader).BootstrapRange(ctx, desc); err != nil {
		t.Fatalf("bootstrap after a split: %v", err)
	}
	other := desc.Clone()
	other.EndKey = []byte("q")
	other.Generation = 2
	var exists *RangeExistsError
	if err := c.store(leader).BootstrapRange(ctx, other); !errors.As(err, &exists) {
		t.Fatalf("bootstrap with another span at the same generation: %v", err)
	}
	moved := desc.Clone()
	moved.Replicas[0].ReplicaID, moved.Replicas[1].ReplicaID, moved.Replicas[2].ReplicaID = 7, 8, 9
	moved.NextReplicaID = 10
	if err := c.store(3).BootstrapRange(ctx, moved); !errors.As(err, &exists) {
		t.Fatalf("bootstrap with other replica IDs: %v", err)
	}
	c.waitConverged(1, []uint64{1, 2, 3}, 10*time.Second)
}

// A ChangeReplicas that stopped between adding its learner and promoting
// it does not block the range: the same change run again adopts the
// learner (same replica ID) and finishes; a different change removes the
// abandoned learner first.
func TestChangeReplicasResumesOrRollsBackAbandonedLearner(t *testing.T) {
	c := newTestCluster(t, 5, nil)
	c.bootstrap(testDescriptor(1, 1, 2, 3))
	leader := c.waitLeader(1, 2*time.Second)
	ctx := testCtx(t, 60*time.Second)
	s := c.store(leader)
	if _, err := c.put(ctx, 1, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	abandon := func(node uint64) *kv.RangeDescriptor {
		t.Helper()
		c.net.block(1, node, true)
		defer c.net.block(1, node, false)
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if _, err := s.ChangeReplicas(short, 1, []kv.ReplicaDescriptor{{NodeID: node}}, nil); err == nil {
			t.Fatalf("adding n%d while it is unreachable succeeded", node)
		}
		d := s.replica(1).Descriptor()
		if rd, ok := d.Replica(node); !ok || rd.Type != kv.Learner {
			t.Fatalf("no abandoned learner on n%d: %v", node, d)
		}
		return d
	}

	// Resume: the same change again.
	d := abandon(4)
	learner, _ := d.Replica(4)
	got, err := s.ChangeReplicas(ctx, 1, []kv.ReplicaDescriptor{{NodeID: 4}}, nil)
	if err != nil {
		t.Fatalf("retrying the change: %v", err)
	}
	if rd, ok := got.Replica(4); !ok || rd.Type != kv.Voter || rd.ReplicaID != learner.ReplicaID || len(got.Replicas) != 4 {
		t.Fatalf("after resuming: %v (learner was %v)", got, learner)
	}

	// Roll back: another change while a learner is left behind.
	d = abandon(5)
	got, err = s.ChangeReplicas(ctx, 1, nil, []kv.ReplicaDescriptor{{NodeID: 4}})
	if err != nil {
		t.Fatalf("another change after an abandoned learner: %v", err)
	}
	if _, ok := got.Replica(5); ok || len(got.Replicas) != 3 || got.NextReplicaID != d.NextReplicaID {
		t.Fatalf("after rolling back: %v", got)
	}
	if _, ok := got.Replica(4); ok {
		t.Fatalf("n4 not removed: %v", got)
	}
	c.waitConverged(1, []uint64{1, 2, 3}, 10*time.Second)
}

// deriveChangedDescriptor follows the ConfChangeV2's own changes on the
// current descriptor, for both command encodings, and a command decodes
// back as encoded (truncations are errors, not panics).
func TestDeriveChangedDescriptor(t *testing.T) {
	cur := &kv.RangeDescriptor{RangeID: 1, StartKey: []byte("a"), EndKey: []byte("m"), Generation: 5, NextReplicaID: 4,
		Replicas: []kv.ReplicaDescriptor{{NodeID: 1, ReplicaID: 1}, {NodeID: 2, ReplicaID: 2}, {NodeID: 3, ReplicaID: 3}}}
	// Computed before a split: the stale span must not come back.
	cmd := changeReplicasCommand{BaseGeneration: 4, StartKey: []byte("a"), EndKey: []byte("z"),
		Added: []kv.ReplicaDescriptor{{NodeID: 9, ReplicaID: 4, Type: kv.Learner}}}
	add := &raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeAddLearnerNode.Enum(), NodeId: new(uint64(4))}}}
	d := deriveChangedDescriptor(cur, add, cmd)
	if !bytes.Equal(d.EndKey, []byte("m")) || d.Generation != 6 || d.NextReplicaID != 5 || len(d.Replicas) != 4 {
		t.Fatalf("add learner: %v", d)
	}
	if rd, ok := d.Replica(9); !ok || rd.ReplicaID != 4 || rd.Type != kv.Learner {
		t.Fatalf("learner: %v", d)
	}
	joint := &raftpb.ConfChangeV2{Transition: raftpb.ConfChangeTransitionJointExplicit.Enum(), Changes: []*raftpb.ConfChangeSingle{
		{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: new(uint64(4))},
		{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: new(uint64(2))},
	}}
	d = deriveChangedDescriptor(d, joint, changeReplicasCommand{})
	if _, ok := d.Replica(2); ok || len(d.Replicas) != 3 || d.Generation != 7 {
		t.Fatalf("joint: %v", d)
	}
	if rd, _ := d.Replica(9); rd.Type != kv.Voter {
		t.Fatalf("promotion: %v", d)
	}
	if cur.Generation != 5 || len(cur.Replicas) != 3 {
		t.Fatalf("the current descriptor was mutated: %v", cur)
	}

	got, err := decodeChangeReplicasCommand(cmd.encode())
	if err != nil || got.BaseGeneration != 4 || !bytes.Equal(got.EndKey, []byte("z")) || len(got.Added) != 1 || got.Added[0] != cmd.Added[0] {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	enc := cmd.encode()
	for i := 0; i < len(enc); i++ {
		if _, err := decodeChangeReplicasCommand(enc[:i]); err == nil {
			t.Fatalf("truncated command of %d bytes decoded", i)
		}
	}
	// The older encoding (the proposer's expected descriptor) names the
	// added replicas' nodes the same way.
	old := cur.Clone()
	old.EndKey, old.Generation = []byte("z"), 5
	old.Replicas = append(old.Replicas, kv.ReplicaDescriptor{NodeID: 9, ReplicaID: 4, Type: kv.Learner})
	v1, err := decodeChangeReplicasPayload(kindChangeReplicas, old.Marshal())
	if err != nil || v1.BaseGeneration != 4 {
		t.Fatalf("old encoding: %+v %v", v1, err)
	}
	if d := deriveChangedDescriptor(cur, add, v1); !bytes.Equal(d.EndKey, []byte("m")) || len(d.Replicas) != 4 {
		t.Fatalf("old encoding applied: %v", d)
	}
}
