package raftgroup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/kv"
)

func TestCutOffReplicaCatchesUpBySnapshot(t *testing.T) {
	forEachTransport(t, testCutOffReplicaCatchesUpBySnapshot)
}

func testCutOffReplicaCatchesUpBySnapshot(t *testing.T, transport string) {
	c := newTestClusterOver(t, transport, 3, func(cfg *Config) {
		cfg.LogKeepEntries = 5
		cfg.LogTruncateThreshold = 10
		cfg.SnapshotChunkBytes = 512 // several chunks
	})
	c.bootstrap(testDescriptor(1, 1, 2, 3))
	leader := c.waitLeader(1, 2*time.Second)
	ctx := testCtx(t, 30*time.Second)
	cut := leader%3 + 1
	var rest []uint64
	for _, id := range []uint64{1, 2, 3} {
		if id != cut {
			rest = append(rest, id)
		}
	}
	c.partition([]uint64{cut}, rest)
	for i := 0; i < 60; i++ {
		if _, err := c.put(ctx, 1, []byte(fmt.Sprintf("k%03d", i)), bytes.Repeat([]byte("v"), 100), rest...); err != nil {
			t.Fatal(err)
		}
	}
	// The leader's log no longer reaches back to what the cut-off replica has.
	lr := c.store(c.waitLeader(1, 2*time.Second, rest...)).replica(1)
	if first, _ := lr.storage.bounds(); first <= initialLogIndex+1 {
		t.Fatalf("leader log not truncated: first index %d", first)
	}
	c.heal()
	c.waitConverged(1, []uint64{1, 2, 3}, 10*time.Second)
	if m := c.store(cut).Metrics(); m.SnapshotsApplied == 0 {
		t.Fatalf("n%d caught up without a snapshot: %+v", cut, m)
	}
	// The snapshot-initialized replica keeps working: writes still converge.
	if _, err := c.put(ctx, 1, []byte("after"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(1, []uint64{1, 2, 3}, 10*time.Second)
}

// writer writes distinct keys in a loop and records the acknowledged ones.
type testWriter struct {
	c      *testCluster
	route  func(key []byte) uint64
	mu     sync.Mutex
	acked  [][]byte
	errs   int
	stop   chan struct{}
	done   chan struct{}
	prefix string
}

func startWriter(c *testCluster, prefix string, route func([]byte) uint64) *testWriter {
	w := &testWriter{c: c, route: route, stop: make(chan struct{}), done: make(chan struct{}), prefix: prefix}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			key := []byte(fmt.Sprintf("%s%05d", prefix, i))
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := c.put(ctx, w.route(key), key, key)
			cancel()
			w.mu.Lock()
			if err == nil {
				w.acked = append(w.acked, key)
			} else {
				w.errs++
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *testWriter) finish() [][]byte {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acked
}

func (w *testWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// changeReplicas runs ChangeReplicas on whichever node leads, retrying
// while leadership moves.
func (c *testCluster) changeReplicas(ctx context.Context, rangeID uint64, add, remove []uint64) *kv.RangeDescriptor {
	c.t.Helper()
	var a, r []kv.ReplicaDescriptor
	for _, n := range add {
		a = append(a, kv.ReplicaDescriptor{NodeID: n})
	}
	for _, n := range remove {
		r = append(r, kv.ReplicaDescriptor{NodeID: n})
	}
	for {
		l := c.waitLeader(rangeID, 5*time.Second)
		d, err := c.store(l).ChangeReplicas(ctx, rangeID, a, r)
		if err == nil {
			return d
		}
		var nl *kv.NotLeaderError
		if !errors.As(err, &nl) || ctx.Err() != nil {
			c.t.Fatalf("change replicas of r%d (+%v -%v): %v", rangeID, add, remove, err)
		}
	}
}

func TestMembershipThreeToFiveToThreeUnderWrites(t *testing.T) {
	forEachTransport(t, testMembershipThreeToFiveToThreeUnderWrites)
}

func testMembershipThreeToFiveToThreeUnderWrites(t *testing.T, transport string) {
	c := newTestClusterOver(t, transport, 5, func(cfg *Config) {
		cfg.LogKeepEntries = 20
		cfg.LogTruncateThreshold = 40
	})
	c.bootstrap(testDescriptor(1, 1, 2, 3))
	c.waitLeader(1, 2*time.Second)
	ctx := testCtx(t, 60*time.Second)
	w := startWriter(c, "m", func([]byte) uint64 { return 1 })
	waitFor(t, 5*time.Second, "some writes", func() bool { return w.count() >= 20 })

	d := c.changeReplicas(ctx, 1, []uint64{4, 5}, nil)
	if len(d.Replicas) != 5 || d.NextReplicaID != 6 {
		t.Fatalf("after adding: %v", d)
	}
	for _, rd := range d.Replicas {
		if rd.Type != kv.Voter {
			t.Fatalf("after adding: %v", d)
		}
	}
	n := w.count()
	waitFor(t, 5*time.Second, "writes with five replicas", func() bool { return w.count() >= n+20 })

	// Remove two of the original replicas, the leader's included if it is one.
	d = c.changeReplicas(ctx, 1, nil, []uint64{1, 2})
	if len(d.Replicas) != 3 {
		t.Fatalf("after removing: %v", d)
	}
	n = w.count()
	waitFor(t, 10*time.Second, "writes after removal", func() bool { return w.count() >= n+20 })
	acked := w.finish()

	c.waitConverged(1, []uint64{3, 4, 5}, 10*time.Second)
	waitFor(t, 10*time.Second, "removed replicas to be destroyed", func() bool {
		return c.store(1).replica(1) == nil && c.store(2).replica(1) == nil
	})
	for _, id := range []uint64{1, 2} {
		ps, err := loadPersistedState(c.store(id).engine.DB(), 1)
		if err != nil || ps.Tombstone == 0 || ps.Descriptor != nil {
			t.Fatalf("n%d after removal: %+v %v", id, ps, err)
		}
	}
	for _, k := range acked {
		v, found, err := c.get(ctx, 1, k, 3, 4, 5)
		if err != nil || !found || !bytes.Equal(v, k) {
			t.Fatalf("acknowledged write %q lost: %q %v %v", k, v, found, err)
		}
	}
	t.Logf("%d acknowledged writes survived 3→5→3", len(acked))
}

func TestSplitUnderConcurrentWrites(t *testing.T) {
	forEachTransport(t, testSplitUnderConcurrentWrites)
}

func testSplitUnderConcurrentWrites(t *testing.T, transport string) {
	c := newTestClusterOver(t, transport, 3, nil)
	c.bootstrap(testDescriptor(1, 1, 2, 3))
	c.waitLeader(1, 2*time.Second)
	ctx := testCtx(t, 60*time.Second)
	var split sync.Mutex
	splitDone := false
	route := func(key []byte) uint64 {
		split.Lock()
		defer split.Unlock()
		if splitDone && bytes.Compare(key, []byte("m")) >= 0 {
			return 2
		}
		return 1
	}
	wa := startWriter(c, "a", route)
	wz := startWriter(c, "z", route)
	waitFor(t, 5*time.Second, "writes before the split", func() bool { return wa.count() >= 20 && wz.count() >= 20 })

	var left, right *kv.RangeDescriptor
	for {
		l := c.waitLeader(1, 5*time.Second)
		var err error
		left, right, err = c.store(l).SplitRange(ctx, 1, []byte("m"), 2)
		if err == nil {
			break
		}
		var nl *kv.NotLeaderError
		if !errors.As(err, &nl) {
			t.Fatalf("split: %v", err)
		}
	}
	split.Lock()
	splitDone = true
	split.Unlock()
	if !bytes.Equal(left.EndKey, []byte("m")) || !bytes.Equal(right.StartKey, []byte("m")) || right.RangeID != 2 ||
		left.Generation != right.Generation || left.Generation != 2 {
		t.Fatalf("split descriptors: %v %v", left, right)
	}
	// Requests for the right half sent to the left range are refused with
	// the current descriptors.
	_, err := c.store(c.waitLeader(1, 5*time.Second)).Execute(ctx, 1, &kv.Request{Get: &kv.GetRequest{Key: []byte("z"), ReadTS: c.now()}})
	var em *kv.EpochMismatchError
	if !errors.As(err, &em) || len(em.Descriptors) != 2 {
		t.Fatalf("want EpochMismatch with two descriptors, got %v", err)
	}
	na, nz := wa.count(), wz.count()
	waitFor(t, 10*time.Second, "writes to both halves after the split", func() bool {
		return wa.count() >= na+20 && wz.count() >= nz+20
	})
	acked := append(wa.finish(), wz.finish()...)
	c.waitConverged(1, []uint64{1, 2, 3}, 10*time.Second)
	c.waitConverged(2, []uint64{1, 2, 3}, 10*time.Second)
	for _, k := range acked {
		v, found, err := c.get(ctx, route(k), k)
		if err != nil || !found || !bytes.Equal(v, k) {
			t.Fatalf("acknowledged write %q lost: %q %v %v", k, v, found, err)
		}
	}
	t.Logf("%d acknowledged writes across the split", len(acked))
}

func TestLeadershipTransfer(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.bootstrap(testDescriptor(1, 1, 2, 3))
	old := c.waitLeader(1, 2*time.Second)
	ctx := testCtx(t, 10*time.Second)
	if _, err := c.put(ctx, 1, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	target := old%3 + 1
	if err := c.store(old).TransferLeadership(ctx, 1, target); err != nil {
		t.Fatal(err)
	}
	if got := c.waitLeader(1, 2*time.Second); got != target {
		t.Fatalf("leader n%d, want n%d", got, target)
	}
	if _, err := c.put(ctx, 1, []byte("k2"), []byte("v")); err != nil {
		t.Fatal(err)
	}
}

// A node whose left replica lags behind a split gets messages for the right
// range first: it holds an uninitialized right replica (which may vote),
// refuses a snapshot that overlaps its left replica, and initializes the
// right replica in place when its left replica applies the split.
func TestRightRangeMessagesBeforeSplitApplies(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.bootstrap(testDescriptor(1, 1, 2, 3))
	leader := c.waitLeader(1, 2*time.Second)
	ctx := testCtx(t, 30*time.Second)
	for _, k := range []string{"a", "n", "z"} {
		if _, err := c.put(ctx, 1, []byte(k), []byte("before")); err != nil {
			t.Fatal(err)
		}
	}
	lagger := leader%3 + 1
	c.net.block(1, lagger, true)
	left, right, err := c.store(leader).SplitRange(ctx, 1, []byte("m"), 2)
	if err != nil {
		t.Fatal(err)
	}
	if left.Generation != 2 || right.RangeID != 2 {
		t.Fatalf("%v %v", left, right)
	}
	if _, err := c.put(ctx, 2, []byte("q"), []byte("right")); err != nil {
		t.Fatal(err)
	}
	// The lagging node knows r2 only from its messages: uninitialized.
	waitFor(t, 5*time.Second, "an uninitialized r2 on the lagging node", func() bool {
		r := c.store(lagger).replica(2)
		return r != nil && r.Descriptor() == nil
	})
	if d := c.store(lagger).replica(1).Descriptor(); !bytes.Equal(d.EndKey, kv.KeyMax) {
		t.Fatalf("lagging left replica already split: %v", d)
	}
	c.net.block(1, lagger, false)
	c.waitConverged(1, []uint64{1, 2, 3}, 10*time.Second)
	c.waitConverged(2, []uint64{1, 2, 3}, 10*time.Second)
	// Converged: the lagging node holds the same r2 data as the others.
	v, found, err := c.get(ctx, 2, []byte("q"))
	if err != nil || !found || string(v) != "right" {
		t.Fatalf("q on r2: %q %v %v", v, found, err)
	}
	if d := c.store(lagger).replica(2).Descriptor(); d == nil || !bytes.Equal(d.StartKey, []byte("m")) {
		t.Fatalf("r2 on the lagging node: %v", d)
	}
}

// A replica removed while its node was down learns of its removal when it
// comes back and speaks to the group (removal notice), deletes its data and
// leaves a tombstone.
func TestReplicaRemovedWhileDownIsCollectedOnRestart(t *testing.T) {
	c := newTestCluster(t, 4, nil)
	c.bootstrap(testDescriptor(1, 1, 2, 3, 4))
	leader := c.waitLeader(1, 2*time.Second)
	ctx := testCtx(t, 30*time.Second)
	if _, err := c.put(ctx, 1, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	victim := leader%4 + 1
	c.stopNode(victim)
	d := c.changeReplicas(ctx, 1, nil, []uint64{victim})
	if _, ok := d.Replica(victim); ok || len(d.Replicas) != 3 {
		t.Fatalf("after removal: %v", d)
	}
	c.startNode(victim)
	waitFor(t, 10*time.Second, "the removed replica to be collected", func() bool {
		return c.store(victim).replica(1) == nil
	})
	ps, err := loadPersistedState(c.store(victim).engine.DB(), 1)
	if err != nil || ps.Tombstone <= 4 || ps.Descriptor != nil {
		t.Fatalf("after collection: %+v %v", ps, err)
	}
	if sums := c.checksums(1); len(sums) != 3 {
		t.Fatalf("replicas left: %v", sums)
	}
}
