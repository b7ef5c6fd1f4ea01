package raftgroup

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/kv"
)

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestSingleNodeWriteThenRead(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	c.bootstrap(testDescriptor(1, 1))
	c.waitLeader(1, 2*time.Second)
	ctx := testCtx(t, 5*time.Second)
	for i := 0; i < 20; i++ {
		if _, err := c.put(ctx, 1, []byte(fmt.Sprintf("k%02d", i)), []byte(fmt.Sprintf("v%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 20; i++ {
		v, found, err := c.get(ctx, 1, []byte(fmt.Sprintf("k%02d", i)))
		if err != nil || !found || string(v) != fmt.Sprintf("v%d", i) {
			t.Fatalf("k%02d: got %q found=%v err=%v", i, v, found, err)
		}
	}
	m := c.store(1).Metrics()
	if m.Proposals < 20 || m.Applies < 20 || m.Fsyncs == 0 || m.Leaders != 1 {
		t.Fatalf("metrics: %+v", m)
	}
}

func TestThreeNodesReplicateAndConverge(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.bootstrap(testDescriptor(1, 1, 2, 3))
	c.waitLeader(1, 2*time.Second)
	ctx := testCtx(t, 10*time.Second)
	for i := 0; i < 50; i++ {
		if _, err := c.put(ctx, 1, []byte(fmt.Sprintf("k%02d", i)), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	c.waitConverged(1, []uint64{1, 2, 3}, 5*time.Second)
	sums := c.checksums(1)
	if len(sums) != 3 || sums[1] == 0 {
		t.Fatalf("checksums: %v", sums)
	}
}

func TestFollowerAnswersNotLeaderWithHint(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.bootstrap(testDescriptor(1, 1, 2, 3))
	leader := c.waitLeader(1, 2*time.Second)
	follower := leader%3 + 1
	// The follower learns the leader from its first heartbeat or append.
	waitFor(t, 2*time.Second, "follower knows the leader", func() bool {
		r := c.store(follower).replica(1)
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.leaderID != 0
	})
	_, err := c.store(follower).Execute(context.Background(), 1, &kv.Request{Get: &kv.GetRequest{Key: []byte("a"), ReadTS: c.now()}})
	var nl *kv.NotLeaderError
	if !errors.As(err, &nl) || nl.LeaderNodeID != leader || nl.RangeID != 1 {
		t.Fatalf("want NotLeader with hint n%d, got %v", leader, err)
	}
	_, err = c.store(1).Execute(context.Background(), 99, &kv.Request{Get: &kv.GetRequest{Key: []byte("a"), ReadTS: 1}})
	var nf *kv.RangeNotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("want RangeNotFound, got %v", err)
	}
}

func TestRestartedNodeRejoinsAndCatchesUp(t *testing.T) {
	forEachTransport(t, testRestartedNodeRejoinsAndCatchesUp)
}

func testRestartedNodeRejoinsAndCatchesUp(t *testing.T, transport string) {
	c := newTestClusterOver(t, transport, 3, nil)
	c.bootstrap(testDescriptor(1, 1, 2, 3))
	c.waitLeader(1, 2*time.Second)
	ctx := testCtx(t, 20*time.Second)
	for i := 0; i < 20; i++ {
		if _, err := c.put(ctx, 1, []byte(fmt.Sprintf("a%02d", i)), []byte("1")); err != nil {
			t.Fatal(err)
		}
	}
	victim := c.waitLeader(1, 2*time.Second)%3 + 1 // a follower
	c.stopNode(victim)
	for i := 0; i < 20; i++ {
		if _, err := c.put(ctx, 1, []byte(fmt.Sprintf("b%02d", i)), []byte("2")); err != nil {
			t.Fatal(err)
		}
	}
	c.startNode(victim)
	c.waitConverged(1, []uint64{1, 2, 3}, 10*time.Second)

	// A whole-cluster restart keeps every acknowledged write.
	for _, id := range []uint64{1, 2, 3} {
		c.stopNode(id)
	}
	for _, id := range []uint64{1, 2, 3} {
		c.startNode(id)
	}
	c.waitLeader(1, 5*time.Second)
	for _, k := range []string{"a00", "a19", "b00", "b19"} {
		v, found, err := c.get(ctx, 1, []byte(k))
		if err != nil || !found {
			t.Fatalf("%s after restart: %q %v %v", k, v, found, err)
		}
	}
	c.waitConverged(1, []uint64{1, 2, 3}, 10*time.Second)
}

func testLeaderKill(t *testing.T, transport string, n int) {
	nodes := make([]uint64, n)
	for i := range nodes {
		nodes[i] = uint64(i + 1)
	}
	c := newTestClusterOver(t, transport, n, nil)
	c.bootstrap(testDescriptor(1, nodes...))
	old := c.waitLeader(1, 2*time.Second)
	ctx := testCtx(t, 20*time.Second)
	if _, err := c.put(ctx, 1, []byte("before"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	c.stopNode(old)
	var survivors []uint64
	for _, id := range nodes {
		if id != old {
			survivors = append(survivors, id)
		}
	}
	// A new leader is elected and commits: Raft needs at most ~3 election
	// timeouts (randomized timeouts are in [1, 2) × ElectionTick) of ticks.
	// Ticks are wall-clock driven and a loaded CI machine delays them, so
	// the test waits a generous bound and logs the measured gap in
	// election timeouts rather than asserting a timing.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.put(wctx, 1, []byte("after"), []byte("2"), survivors...); err != nil {
		t.Fatalf("no commit %v after killing leader n%d: %v", time.Since(killed), old, err)
	}
	gap := time.Since(killed)
	t.Logf("first commit %v (%.1f election timeouts) after killing leader n%d", gap, float64(gap)/float64(testElectionTimeout), old)
	if nl := c.leader(1, survivors...); nl == 0 || nl == old {
		t.Fatalf("leader after kill: n%d", nl)
	}
	c.startNode(old)
	c.waitConverged(1, nodes, 10*time.Second)
}

func TestLeaderKillThreeNodes(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) { testLeaderKill(t, tr, 3) })
}

func TestLeaderKillFiveNodes(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr string) { testLeaderKill(t, tr, 5) })
}

func TestMinorityPartitionCannotCommit(t *testing.T) {
	forEachTransport(t, testMinorityPartitionCannotCommit)
}

func testMinorityPartitionCannotCommit(t *testing.T, transport string) {
	c := newTestClusterOver(t, transport, 5, nil)
	c.bootstrap(testDescriptor(1, 1, 2, 3, 4, 5))
	old := c.waitLeader(1, 2*time.Second)
	ctx := testCtx(t, 30*time.Second)
	if _, err := c.put(ctx, 1, []byte("k0"), []byte("0")); err != nil {
		t.Fatal(err)
	}
	// The old leader and one follower on the minority side.
	other := old%5 + 1
	minority := []uint64{old, other}
	var majority []uint64
	for id := uint64(1); id <= 5; id++ {
		if id != old && id != other {
			majority = append(majority, id)
		}
	}
	c.partition(minority, majority)

	// The minority side fails within a bounded wait, with a typed error.
	start := time.Now()
	_, err := c.store(old).Execute(testCtx(t, 500*time.Millisecond), 1, &kv.Request{OnePhaseCommit: &kv.OnePhaseCommitRequest{
		Mutations: []kv.Mutation{{Op: kv.OpPut, Key: []byte("lost"), Value: []byte("x")}}, StartTS: c.now(), CommitTS: c.now(),
	}})
	var unavailable *kv.RangeUnavailableError
	var nl *kv.NotLeaderError
	if !errors.As(err, &unavailable) && !errors.As(err, &nl) {
		t.Fatalf("minority write: want RangeUnavailable or NotLeader, got %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("minority write took %v", time.Since(start))
	}
	// The majority keeps committing.
	for i := 1; i <= 10; i++ {
		if _, err := c.put(ctx, 1, []byte(fmt.Sprintf("k%d", i)), []byte("m"), majority...); err != nil {
			t.Fatalf("majority write %d: %v", i, err)
		}
	}
	// The old leader steps down (CheckQuorum) and answers NotLeader or
	// unavailable, never success.
	_, err = c.store(old).Execute(testCtx(t, 300*time.Millisecond), 1, &kv.Request{Get: &kv.GetRequest{Key: []byte("k1"), ReadTS: c.now()}})
	if err == nil {
		t.Fatal("minority served a read while partitioned")
	}
	c.heal()
	c.waitConverged(1, []uint64{1, 2, 3, 4, 5}, 10*time.Second)
	v, found, err := c.get(ctx, 1, []byte("k10"))
	if err != nil || !found || string(v) != "m" {
		t.Fatalf("k10 after heal: %q %v %v", v, found, err)
	}
	if _, found, _ := c.get(ctx, 1, []byte("lost")); found {
		// The minority's write had no quorum: it must not have committed.
		t.Fatal("the minority's unacknowledged write appeared after healing")
	}
}

func TestOnePhaseCommitLandsAboveServedReads(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	c.bootstrap(testDescriptor(1, 1, 2, 3))
	leader := c.waitLeader(1, 2*time.Second)
	s := c.store(leader)
	ctx := testCtx(t, 10*time.Second)
	start := c.now()
	readTS := c.now() + 1000 // a reader far ahead of the writer's timestamps
	resp, err := s.Execute(ctx, 1, &kv.Request{Get: &kv.GetRequest{Key: []byte("x"), ReadTS: readTS}})
	if err != nil || resp.Get.Found {
		t.Fatalf("first read: %+v %v", resp, err)
	}
	// A 1PC asking for a commit timestamp below that read must not land
	// below it: the read already told someone "x is absent at readTS".
	w, err := s.Execute(ctx, 1, &kv.Request{OnePhaseCommit: &kv.OnePhaseCommitRequest{
		Mutations: []kv.Mutation{{Op: kv.OpPut, Key: []byte("x"), Value: []byte("1")}},
		StartTS:   start,
		CommitTS:  start + 1,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if w.OnePhaseCommit.CommitTS <= readTS {
		t.Fatalf("1PC committed at %d, at or below a served read at %d", w.OnePhaseCommit.CommitTS, readTS)
	}
	resp, err = s.Execute(ctx, 1, &kv.Request{Get: &kv.GetRequest{Key: []byte("x"), ReadTS: readTS}})
	if err != nil || resp.Get.Found {
		t.Fatalf("repeated read at %d changed: %+v %v", readTS, resp, err)
	}
	resp, err = s.Execute(ctx, 1, &kv.Request{Get: &kv.GetRequest{Key: []byte("x"), ReadTS: w.OnePhaseCommit.CommitTS}})
	if err != nil || !resp.Get.Found {
		t.Fatalf("read at the commit timestamp: %+v %v", resp, err)
	}

	// A new leader seeds max_read_ts from the clock: a 1PC there lands
	// above every timestamp handed out before it took over.
	target := leader%3 + 1
	if err := s.TransferLeadership(ctx, 1, target); err != nil {
		t.Fatal(err)
	}
	c.waitLeader(1, 2*time.Second)
	before := c.now()
	w, err = c.store(target).Execute(ctx, 1, &kv.Request{OnePhaseCommit: &kv.OnePhaseCommitRequest{
		Mutations: []kv.Mutation{{Op: kv.OpPut, Key: []byte("y"), Value: []byte("1")}},
		StartTS:   start,
		CommitTS:  start + 1,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if w.OnePhaseCommit.CommitTS <= before {
		t.Fatalf("new leader's 1PC at %d, not above the clock %d", w.OnePhaseCommit.CommitTS, before)
	}
}

func TestReadWaitsForLatchedOnePhaseCommit(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	c.bootstrap(testDescriptor(1, 1))
	c.waitLeader(1, 2*time.Second)
	r := c.store(1).replica(1)
	// Latch "x" as an in-flight 1PC would, then check a read of x waits
	// and a read of another key does not.
	p := newProposal(1)
	r.mu.Lock()
	r.latchOnePhaseCommitLocked(&kv.OnePhaseCommitRequest{
		Mutations: []kv.Mutation{{Op: kv.OpPut, Key: []byte("x"), Value: []byte("1")}}, StartTS: 1, CommitTS: 2,
	}, p)
	r.mu.Unlock()
	if _, err := c.store(1).Execute(testCtx(t, 2*time.Second), 1, &kv.Request{Get: &kv.GetRequest{Key: []byte("y"), ReadTS: c.now()}}); err != nil {
		t.Fatalf("unlatched read: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.store(1).Execute(context.Background(), 1, &kv.Request{Scan: &kv.ScanRequest{Start: []byte("a"), End: []byte("z"), ReadTS: c.now()}})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("scan over a latched key returned early: %v", err)
	case <-time.After(5 * testTick):
	}
	r.releaseLatches(p)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("scan still blocked after the latch was released")
	}
}

func TestManyRangesShareFsyncs(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	const ranges = 50
	for i := uint64(1); i <= ranges; i++ {
		d := testDescriptor(i, 1, 2, 3)
		d.StartKey, d.EndKey = []byte(fmt.Sprintf("r%03d", i)), []byte(fmt.Sprintf("r%03d", i+1))
		c.bootstrap(d)
	}
	for i := uint64(1); i <= ranges; i++ {
		c.waitLeader(i, 5*time.Second)
	}
	ctx := testCtx(t, 20*time.Second)
	before := c.store(1).Metrics()
	errs := make(chan error, ranges)
	for i := uint64(1); i <= ranges; i++ {
		go func() {
			for j := 0; j < 5; j++ {
				if _, err := c.put(ctx, i, []byte(fmt.Sprintf("r%03d-%d", i, j)), []byte("v")); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for i := 0; i < ranges; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	after := c.store(1).Metrics()
	commits, fsyncs := after.Commits-before.Commits, after.Fsyncs-before.Fsyncs
	t.Logf("n1: %d commits, %d fsyncs", commits, fsyncs)
	if commits < ranges*5 || fsyncs >= commits {
		t.Fatalf("n1: %d commits with %d fsyncs: rounds do not batch", commits, fsyncs)
	}
	infos := c.store(1).RangeInfo()
	if len(infos) != ranges || infos[0].RangeID != 1 || infos[0].Descriptor == nil || infos[0].LeaderNodeID == 0 {
		t.Fatalf("range info: %d %+v", len(infos), infos[0])
	}
}

func TestIdleRangesQuiesceAndWake(t *testing.T) { forEachTransport(t, testIdleRangesQuiesceAndWake) }

func testIdleRangesQuiesceAndWake(t *testing.T, transport string) {
	c := newTestClusterOver(t, transport, 3, func(cfg *Config) { cfg.QuiesceAfterTicks = 5 })
	const ranges = 10
	for i := uint64(1); i <= ranges; i++ {
		d := testDescriptor(i, 1, 2, 3)
		d.StartKey, d.EndKey = []byte(fmt.Sprintf("r%03d", i)), []byte(fmt.Sprintf("r%03d", i+1))
		c.bootstrap(d)
	}
	ctx := testCtx(t, 20*time.Second)
	for i := uint64(1); i <= ranges; i++ {
		if _, err := c.put(ctx, i, []byte(fmt.Sprintf("r%03d", i)), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	allQuiesced := func() bool {
		for _, id := range c.liveIDs() {
			if m := c.store(id).Metrics(); m.Quiesced != m.Replicas {
				return false
			}
		}
		return true
	}
	waitFor(t, 5*time.Second, "every replica to quiesce", allQuiesced)
	// A write wakes its range and commits; the range quiesces again.
	if _, err := c.put(ctx, 3, []byte("r003-x"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "quiescing again", allQuiesced)
	// Killing the leader's node of quiesced ranges: the followers' periodic
	// probe of their leaders' nodes fails, which wakes the ranges, and they
	// elect new leaders by themselves (no client traffic, no liveness hook).
	old := c.leader(5)
	c.stopNode(old)
	survivors := c.liveIDs()
	waitFor(t, 10*time.Second, "new leaders of the quiesced ranges", func() bool {
		for i := uint64(1); i <= ranges; i++ {
			if c.leader(i, survivors...) == 0 {
				return false
			}
		}
		return true
	})
	if _, err := c.put(ctx, 5, []byte("r005-y"), []byte("v"), survivors...); err != nil {
		t.Fatal(err)
	}
}

func TestExecuteRefusesMalformedRequests(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	c.bootstrap(testDescriptor(1, 1))
	c.waitLeader(1, 2*time.Second)
	s := c.store(1)
	ctx := testCtx(t, 5*time.Second)
	for _, req := range []*kv.Request{nil, {}, {Get: &kv.GetRequest{Key: []byte("a")}, Scan: &kv.ScanRequest{}}} {
		var invalid *kv.InvalidRequestError
		if _, err := s.Execute(ctx, 1, req); !errors.As(err, &invalid) {
			t.Fatalf("%+v: want InvalidRequestError, got %v", req, err)
		}
	}
	// A write kv refuses on apply comes back as kv's typed error.
	_, err := s.Execute(ctx, 1, &kv.Request{Commit: &kv.CommitRequest{Keys: [][]byte{[]byte("k")}, StartTS: 10, CommitTS: 5}})
	if !kv.IsRequestError(err) {
		t.Fatalf("commit before start: want a kv request error, got %v", err)
	}
	if m := s.Metrics(); m.Commits == 0 {
		t.Fatalf("metrics: %+v", m)
	}
	// Calls after Stop fail fast.
	s.Stop()
	if _, err := s.Execute(ctx, 1, &kv.Request{Get: &kv.GetRequest{Key: []byte("a"), ReadTS: 1}}); !errors.Is(err, ErrStoreStopped) {
		t.Fatalf("after stop: %v", err)
	}
}

// TestOnePhaseCommitsCannotWriteSkew runs two 1PC transactions of one range
// whose read and write sets cross (T1 reads a and writes b, T2 reads b and
// writes a), T2 asking for a commit timestamp below T1's. T1's validation
// read a up to its commit timestamp, so T2 must not commit a write to a
// below it: T2 lands above T1 and then sees T1's write to b, or aborts.
// Committing both is write skew.
func TestOnePhaseCommitsCannotWriteSkew(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	c.bootstrap(testDescriptor(1, 1))
	c.waitLeader(1, 2*time.Second)
	s := c.store(1)
	ctx := testCtx(t, 10*time.Second)
	start := c.now()
	a, b := []byte("skew/a"), []byte("skew/b")
	t1, err1 := s.Execute(ctx, 1, &kv.Request{OnePhaseCommit: &kv.OnePhaseCommitRequest{
		Mutations: []kv.Mutation{{Op: kv.OpPut, Key: b, Value: []byte("t1")}},
		ReadSpans: []kv.Span{{Key: a}},
		StartTS:   start,
		CommitTS:  start + 1000,
	}})
	if err1 != nil {
		t.Fatalf("T1: %v", err1)
	}
	_, err2 := s.Execute(ctx, 1, &kv.Request{OnePhaseCommit: &kv.OnePhaseCommitRequest{
		Mutations: []kv.Mutation{{Op: kv.OpPut, Key: a, Value: []byte("t2")}},
		ReadSpans: []kv.Span{{Key: b}},
		StartTS:   start + 1,
		CommitTS:  start + 500,
	}})
	var ser *kv.SerializationError
	if !errors.As(err2, &ser) {
		t.Fatalf("T2 (reads b, which T1 wrote at %d) = %v; want a serialization failure, not a commit below T1's validated read of a",
			t1.OnePhaseCommit.CommitTS, err2)
	}
}
