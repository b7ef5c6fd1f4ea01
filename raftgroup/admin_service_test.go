package raftgroup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/quorumdb/quorumdb/kv"
)

// adminSplit calls the admin SplitRange and tolerates the store answering
// before it created the right range (see pdSplit).
func adminSplit(t *testing.T, ctx context.Context, c *pdCluster, admin *AdminClient, node, rangeID uint64, key []byte, newID uint64) (*kv.RangeDescriptor, *kv.RangeDescriptor) {
	t.Helper()
	left, right, err := admin.SplitRange(ctx, node, rangeID, key, newID)
	if err == nil {
		return left, right
	}
	if !strings.Contains(err.Error(), "not initialized here") {
		t.Fatalf("split r%d at %q: %v", rangeID, key, err)
	}
	pdWaitFor(t, 5*time.Second, "the split's right range", func() (bool, string) {
		for _, ri := range c.node(node).store.RangeInfo() {
			if ri.RangeID == rangeID && ri.Descriptor != nil && bytes.Equal(ri.Descriptor.EndKey, key) {
				left = ri.Descriptor
			}
			if ri.RangeID == newID && ri.Descriptor != nil {
				right = ri.Descriptor
			}
		}
		return left != nil && right != nil, err.Error()
	})
	return left, right
}

func pdStatOf(stats []RangeStats, rangeID uint64) RangeStats {
	for _, st := range stats {
		if st.RangeID == rangeID {
			return st
		}
	}
	return RangeStats{}
}

// TestAdminServiceCommandsLeaders drives stores through the admin service
// over gRPC: stats with sizes and a user-key split key, replica changes,
// leadership transfer, split, typed errors, and the removal of a learner
// and the joint configuration left by changes that could not finish.
func TestAdminServiceCommandsLeaders(t *testing.T) {
	c := newPDCluster(t, pdOptions{noDriver: true})
	for id := uint64(1); id <= 4; id++ {
		c.startNode(id)
	}
	c.bootstrap(pdDescriptor(1, 1))
	ctx := pdCtx(t, 60*time.Second)
	admin := c.node(2).admin

	// Keys with zero bytes exercise the MVCC key unescaping.
	var keys [][]byte
	for i := range 40 {
		k := fmt.Appendf(nil, "k\x00%02d", i)
		keys = append(keys, k)
		if err := c.put(ctx, k, bytes.Repeat([]byte{'v'}, 50)); err != nil {
			t.Fatal(err)
		}
	}
	stats, err := admin.RangeStats(ctx, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 1 || !stats[0].IsLeader || stats[0].Bytes < 40*50 || stats[0].Descriptor == nil {
		t.Fatalf("stats: %+v", stats)
	}
	mid := stats[0].SplitKey
	if !bytes.Equal(mid, keys[20]) && !bytes.Equal(mid, keys[19]) && !bytes.Equal(mid, keys[21]) {
		t.Fatalf("split key %q is not a middle written key", mid)
	}
	if st, err := admin.RangeStats(ctx, 1, 1<<30); err != nil || st[0].SplitKey != nil || st[0].Bytes != stats[0].Bytes {
		t.Fatalf("stats under the threshold: %+v %v", st, err)
	}

	desc, err := admin.ChangeReplicas(ctx, 1, 1, []uint64{2, 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(desc.Replicas) != 3 || desc.Replicas[1].Type != kv.Voter || desc.Replicas[2].Type != kv.Voter {
		t.Fatalf("after adding: %s", desc)
	}
	var invalid *InvalidChangeError
	if _, err := admin.ChangeReplicas(ctx, 1, 1, []uint64{2}, nil); !errors.As(err, &invalid) || invalid.RangeID != 1 {
		t.Fatalf("adding a present node: %v", err)
	}
	var notLeader *kv.NotLeaderError
	if _, err := admin.ChangeReplicas(ctx, 2, 1, []uint64{4}, nil); !errors.As(err, &notLeader) || notLeader.LeaderNodeID != 1 {
		t.Fatalf("change on a follower: %v", err)
	}
	var notFound *kv.RangeNotFoundError
	if err := admin.TransferLeadership(ctx, 1, 99, 2); !errors.As(err, &notFound) {
		t.Fatalf("transfer of an unknown range: %v", err)
	}

	if err := admin.TransferLeadership(ctx, 1, 1, 2); err != nil {
		t.Fatal(err)
	}
	pdWaitFor(t, 5*time.Second, "n2 leading r1", func() (bool, string) {
		v := c.leaderView()[1]
		return v.leader == 2, fmt.Sprint(v.leader)
	})

	left, right := adminSplit(t, ctx, c, admin, 2, 1, mid, 7)
	if !bytes.Equal(left.EndKey, mid) || !bytes.Equal(right.StartKey, mid) || right.RangeID != 7 {
		t.Fatalf("split: %s | %s", left, right)
	}
	var exists *RangeExistsError
	if _, _, err := admin.SplitRange(ctx, 2, 1, keys[5], 7); !errors.As(err, &exists) || exists.RangeID != 7 {
		t.Fatalf("split into an existing range ID: %v", err)
	}

	// A learner on a node that is gone cannot catch up: the change fails
	// within its deadline and leaves the learner, which RepairAbandonedChange
	// takes out.
	c.kill(4)
	short, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	_, err = admin.ChangeReplicas(short, 2, 1, []uint64{4}, nil)
	cancel()
	if err == nil {
		t.Fatal("adding a replica on a dead node succeeded")
	}
	var withLearner *kv.RangeDescriptor
	pdWaitFor(t, 5*time.Second, "the leftover learner", func() (bool, string) {
		v := c.leaderView()[1]
		if v.desc == nil {
			return false, "no leader"
		}
		withLearner = v.desc
		r, ok := v.desc.Replica(4)
		return ok && r.Type == kv.Learner, v.desc.String()
	})
	// The failed call may still be winding down on the leader, holding the
	// range's admin lock (InvalidChangeError): retry the repair until it
	// runs. (A ChangeReplicas would settle the learner itself, see
	// TestChangeReplicasResumesOrRollsBackAbandonedLearner.)
	pdWaitFor(t, 5*time.Second, "the repair", func() (bool, string) {
		desc, err = admin.RepairAbandonedChange(ctx, 2, 1)
		return err == nil || !errors.As(err, &invalid), fmt.Sprint(err)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := desc.Replica(4); ok || len(desc.Replicas) != 3 || desc.Generation <= withLearner.Generation {
		t.Fatalf("after removing the learner: %s (was %s)", desc, withLearner)
	}

	// A change that entered its joint configuration and stopped there (its
	// leader lost the leadership before leaving it): stats report it, and
	// the repair leaves it with the descriptor the joint step installed.
	r := c.node(2).store.replica(1)
	joint := desc.Clone()
	joint.Generation++
	n3, _ := joint.Replica(3)
	joint.Replicas = slices.DeleteFunc(joint.Replicas, func(rd kv.ReplicaDescriptor) bool { return rd.NodeID == 3 })
	cc := &raftpb.ConfChangeV2{Transition: raftpb.ConfChangeTransitionJointExplicit.Enum(),
		Changes: []*raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: new(n3.ReplicaID)}}}
	if err := r.proposeConfChange(ctx, cc, desc, nil); err != nil {
		t.Fatal(err)
	}
	if st, err := admin.RangeStats(ctx, 2, 0); err != nil || !pdStatOf(st, 1).JointConfig {
		t.Fatalf("stats in a joint configuration: %+v %v", st, err)
	}
	desc, err = admin.RepairAbandonedChange(ctx, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(desc.Replicas) != 2 || desc.Generation != joint.Generation+1 {
		t.Fatalf("after leaving the joint configuration: %s", desc)
	}
	if st, err := admin.RangeStats(ctx, 2, 0); err != nil || pdStatOf(st, 1).JointConfig {
		t.Fatalf("stats after the repair: %+v %v", st, err)
	}
	if desc, err = admin.ChangeReplicas(ctx, 2, 1, nil, []uint64{1}); err != nil || len(desc.Replicas) != 1 {
		t.Fatalf("change after the repairs: %v %v", desc, err)
	}
	for _, k := range keys {
		if v, found, err := c.get(ctx, k); err != nil || !found || len(v) != 50 {
			t.Fatalf("%q: found=%v err=%v", k, found, err)
		}
	}
}

func TestAdminDecodeRejectsGarbage(t *testing.T) {
	for _, b := range [][]byte{nil, {5}, {1, 1}, {1, 9, 200}, {0x80}} {
		if _, err := adminDecodeStats(b); err == nil {
			t.Fatalf("stats %x decoded", b)
		}
		if err := adminDecodeError(1, b); err == nil {
			t.Fatalf("error %x decoded to nil", b)
		} else if _, ok := err.(*InvalidChangeError); ok && len(b) < 3 {
			t.Fatalf("error %x decoded to %v", b, err)
		}
	}
	frame := adminErrorFrame(&InvalidChangeError{RangeID: 3, Reason: "why"})
	var invalid *InvalidChangeError
	if err := adminDecodeError(1, frame[1:]); !errors.As(err, &invalid) || invalid.RangeID != 3 || invalid.Reason != "why" {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := mvccUserKey([]byte{0x11, 'a', 0x00}); err == nil {
		t.Fatal("unterminated key decoded")
	}
	if k, err := mvccUserKey([]byte{0x11, 'a', 0x00, 0xff, 'b', 0x00, 0x01, 1, 2, 3, 4, 5, 6, 7, 8}); err != nil || string(k) != "a\x00b" {
		t.Fatalf("decoded %q %v", k, err)
	}
}

// BenchmarkMeasureRange measures a range of 10,000 rows of 100 bytes and
// finds its middle key: the cost the admin service pays for a range that
// applied something since its last stats call.
func BenchmarkMeasureRange(b *testing.B) {
	eng, err := kv.Open("", kv.EngineOptions{InMemory: true, CacheSize: 8 << 20, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	desc := pdDescriptor(1, 1)
	value := bytes.Repeat([]byte{'v'}, 100)
	ts := kv.MakeTimestamp(1_000_000, 0)
	for i := range 10_000 {
		batch := eng.NewBatch()
		_, err := kv.Evaluate(batch, desc, &kv.Request{OnePhaseCommit: &kv.OnePhaseCommitRequest{
			Mutations: []kv.Mutation{{Op: kv.OpPut, Key: fmt.Appendf(nil, "row%06d", i), Value: value}},
			StartTS:   ts, CommitTS: ts + 1,
		}})
		if err == nil {
			err = eng.Commit(batch, false)
		}
		batch.Close()
		if err != nil {
			b.Fatal(err)
		}
		ts += 2
	}
	var size uint64
	b.ReportAllocs()
	for b.Loop() {
		var key []byte
		size, key, err = measureRange(eng, desc, 1)
		if err != nil || key == nil {
			b.Fatal(key, err)
		}
	}
	b.ReportMetric(float64(size), "bytes/range")
}
