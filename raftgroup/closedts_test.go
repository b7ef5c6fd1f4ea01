package raftgroup

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/kv"
)

// closedTSTune closes fast: tests wait on closed timestamps, not seconds.
func closedTSTune(cfg *Config) {
	cfg.ClosedTimestampLag = 20 * time.Millisecond
	cfg.CloseInterval = 10 * time.Millisecond
}

func followerOf(c *testCluster, leader uint64) uint64 {
	for _, id := range c.liveIDs() {
		if id != leader {
			return id
		}
	}
	return 0
}

func TestFollowerReadAtClosedTimestamp(t *testing.T) {
	forEachTransport(t, func(t *testing.T, transport string) {
		c := newTestClusterOver(t, transport, 3, closedTSTune)
		c.bootstrap(testDescriptor(1, 1, 2, 3))
		leader := c.waitLeader(1, 5*time.Second)
		follower := followerOf(c, leader)
		ctx := testCtx(t, 20*time.Second)

		ts1, err := c.put(ctx, 1, []byte("k"), []byte("v1"))
		if err != nil {
			t.Fatal(err)
		}
		get := func(node uint64, ts kv.Timestamp) (*kv.Response, error) {
			actx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			return c.store(node).Execute(actx, 1, &kv.Request{Get: &kv.GetRequest{Key: []byte("k"), ReadTS: ts}})
		}
		// Not closed yet on the follower (nobody asked for follower reads):
		// it redirects to the leader like any follower.
		if _, err := get(follower, ts1); !errors.As(err, new(*kv.NotLeaderError)) {
			t.Fatalf("follower read above its closed timestamp: %v, want NotLeaderError", err)
		}
		before := c.store(follower).Metrics().ClosedReads
		if err := c.store(follower).WaitClosed(ctx, 1, ts1); err != nil {
			t.Fatal(err)
		}
		resp, err := get(follower, ts1)
		if err != nil || !resp.Get.Found || string(resp.Get.Value) != "v1" {
			t.Fatalf("follower read at the closed timestamp: %+v, %v", resp, err)
		}
		if got := c.store(follower).Metrics().ClosedReads; got != before+1 {
			t.Fatalf("ClosedReads %d -> %d, want one more", before, got)
		}
		if c.store(leader).Metrics().Closes == 0 {
			t.Fatal("the leader proposed no close entry")
		}

		// Cut the follower off from both others: it keeps serving what is
		// closed, and refuses current reads after a bounded wait.
		closed := c.store(follower).replica(1).ClosedTimestamp()
		others := []uint64{}
		for _, id := range c.liveIDs() {
			if id != follower {
				others = append(others, id)
			}
		}
		c.partition([]uint64{follower}, others)
		if _, err := c.put(ctx, 1, []byte("k"), []byte("v2"), others...); err != nil {
			t.Fatal(err)
		}
		resp, err = get(follower, closed)
		if err != nil || string(resp.Get.Value) != "v1" {
			t.Fatalf("partitioned follower read at its closed timestamp %d: %+v, %v", closed, resp, err)
		}
		if _, err := get(follower, c.now()); err == nil {
			t.Fatal("a partitioned follower served a current read")
		}
		// The follower's floor for follower reads stays at what it closed.
		if f := c.store(follower).FollowerReadFloor(time.Now().Add(time.Second)); f == 0 || f > closed {
			t.Fatalf("follower read floor %d, want the frozen closed timestamp %d", f, closed)
		}
		c.heal()
	})
}

func TestClosedTimestampPushesOnePhaseCommit(t *testing.T) {
	c := newTestCluster(t, 3, closedTSTune)
	c.bootstrap(testDescriptor(1, 1, 2, 3))
	leader := c.waitLeader(1, 5*time.Second)
	ctx := testCtx(t, 10*time.Second)
	// A transaction starts, then time passes beyond the closing lag.
	start := c.now()
	if _, err := c.put(ctx, 1, []byte("other"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	closeAt := c.now()
	if err := c.store(leader).WaitClosed(ctx, 1, closeAt); err != nil {
		t.Fatal(err)
	}
	closed := c.store(leader).replica(1).ClosedTimestamp()
	for _, id := range c.liveIDs() {
		if err := c.store(id).WaitClosed(ctx, 1, closed); err != nil {
			t.Fatal(err)
		}
	}
	// Its 1PC asks for a commit timestamp at or below the closed one: the
	// leader must push it above.
	resp, err := c.store(leader).Execute(ctx, 1, &kv.Request{OnePhaseCommit: &kv.OnePhaseCommitRequest{
		Mutations: []kv.Mutation{{Op: kv.OpPut, Key: []byte("late"), Value: []byte("1")}},
		StartTS:   start, CommitTS: start + 1,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.OnePhaseCommit.CommitTS <= closed {
		t.Fatalf("1PC committed at %d, at or below the closed timestamp %d", resp.OnePhaseCommit.CommitTS, closed)
	}
	for _, id := range c.liveIDs() {
		g, err := c.store(id).Execute(ctx, 1, &kv.Request{Get: &kv.GetRequest{Key: []byte("late"), ReadTS: closed}})
		if err != nil || g.Get.Found {
			t.Fatalf("n%d read at the closed timestamp sees the later write: %+v, %v", id, g, err)
		}
	}
}

// TestFollowerReadsMatchLeaderReads writes through 1PCs from several
// clients, moves the leadership around, and checks that every read a
// follower serves at its closed timestamp equals the leader's linearizable
// read at that timestamp: nothing at or below a closed timestamp may apply
// after the close.
func TestFollowerReadsMatchLeaderReads(t *testing.T) {
	c := newTestCluster(t, 3, closedTSTune)
	c.bootstrap(testDescriptor(1, 1, 2, 3))
	c.waitLeader(1, 5*time.Second)
	ctx := testCtx(t, 30*time.Second)
	keys := []string{"a", "b", "c", "d"}
	rng := rand.New(rand.NewPCG(7, 7))

	stop := make(chan struct{})
	var writes atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// Each write a fresh key: old timestamps conflict with nothing.
				key := fmt.Sprintf("%s/%05d", keys[w], i)
				// The writers are slow clients whose commit timestamps are
				// older than the closing lag: the leader must push them above
				// every timestamp it closed before their entry.
				ts := c.now() - kv.MakeTimestamp(50, 0)
				l := c.leader(1)
				if l == 0 {
					time.Sleep(testTick)
					continue
				}
				_, err := c.store(l).Execute(ctx, 1, &kv.Request{OnePhaseCommit: &kv.OnePhaseCommitRequest{
					Mutations: []kv.Mutation{{Op: kv.OpPut, Key: []byte(key), Value: []byte(fmt.Sprintf("w%d-%d", w, i))}},
					StartTS:   ts, CommitTS: ts + 1,
				}})
				if err == nil {
					writes.Add(1)
				} else if ctx.Err() == nil && !isRetryableRouting(err) {
					t.Errorf("put: %v", err)
					return
				}
			}
		}()
	}
	compared, transfers := 0, 0
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) || compared < 50 {
		if ctx.Err() != nil {
			t.Fatalf("only %d reads compared: %v", compared, ctx.Err())
		}
		if rng.IntN(40) == 0 {
			if l := c.leader(1); l != 0 {
				if c.store(l).TransferLeadership(ctx, 1, uint64(rng.IntN(3))+1) == nil {
					transfers++
				}
			}
		}
		node := uint64(rng.IntN(3)) + 1
		ts := c.store(node).replica(1).ClosedTimestamp()
		if ts == 0 {
			_ = c.store(node).WaitClosed(ctx, 1, c.now())
			continue
		}
		scan := &kv.Request{Scan: &kv.ScanRequest{Start: []byte("a"), End: []byte("z"), ReadTS: ts}}
		local, err := c.store(node).Execute(ctx, 1, scan)
		if err != nil {
			t.Fatalf("n%d read at its closed timestamp %d: %v", node, ts, err)
		}
		var lead *kv.Response
		for lead == nil {
			l := c.leader(1)
			if l == 0 {
				time.Sleep(testTick)
				continue
			}
			if lead, err = c.store(l).Execute(ctx, 1, scan); err != nil {
				lead = nil
				if ctx.Err() != nil {
					t.Fatal(err)
				}
			}
		}
		if only, missing := rowsDiff(rowsOf(local), rowsOf(lead)); len(only)+len(missing) > 0 {
			t.Fatalf("read at closed timestamp %d on n%d: rows the leader does not have %v, rows it missed %v", ts, node, only, missing)
		}
		compared++
	}
	close(stop)
	wg.Wait()
	t.Logf("%d writes, %d follower/leader read pairs compared, %d leadership transfers", writes.Load(), compared, transfers)
}

func isRetryableRouting(err error) bool {
	return errors.As(err, new(*kv.NotLeaderError)) || errors.As(err, new(*kv.ProposalDroppedError)) ||
		errors.As(err, new(*kv.RangeUnavailableError))
}

// rowsDiff returns the rows only in a and the rows only in b.
func rowsDiff(a, b []string) (onlyA, onlyB []string) {
	in := func(xs []string) map[string]bool {
		m := make(map[string]bool, len(xs))
		for _, x := range xs {
			m[x] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	for _, x := range a {
		if !mb[x] {
			onlyA = append(onlyA, x)
		}
	}
	for _, x := range b {
		if !ma[x] {
			onlyB = append(onlyB, x)
		}
	}
	return onlyA, onlyB
}

func rowsOf(resp *kv.Response) []string {
	var out []string
	for _, kvp := range resp.Scan.Rows {
		out = append(out, string(kvp.Key)+"="+string(kvp.Value))
	}
	return out
}

func TestClosedTimestampSurvivesRestart(t *testing.T) {
	c := newTestCluster(t, 3, closedTSTune)
	c.bootstrap(testDescriptor(1, 1, 2, 3))
	leader := c.waitLeader(1, 5*time.Second)
	follower := followerOf(c, leader)
	ctx := testCtx(t, 10*time.Second)
	if _, err := c.put(ctx, 1, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	ts := c.now()
	if err := c.store(follower).WaitClosed(ctx, 1, ts); err != nil {
		t.Fatal(err)
	}
	closed := c.store(follower).replica(1).ClosedTimestamp()
	// Stop everything, then bring back only the follower: no quorum, no
	// leader, and the reads at its closed timestamp still work.
	c.stopAll()
	s := c.startNode(follower)
	resp, err := s.Execute(ctx, 1, &kv.Request{Get: &kv.GetRequest{Key: []byte("k"), ReadTS: closed}})
	if err != nil || string(resp.Get.Value) != "v" {
		t.Fatalf("restarted follower alone, read at %d: %+v, %v", closed, resp, err)
	}
}

func TestReadFarInTheFutureRefused(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	c.bootstrap(testDescriptor(1, 1))
	c.waitLeader(1, 5*time.Second)
	ctx := testCtx(t, 5*time.Second)
	future := kv.MakeTimestamp(uint64(time.Now().Add(time.Hour).UnixMilli()), 0)
	_, err := c.store(1).Execute(ctx, 1, &kv.Request{Get: &kv.GetRequest{Key: []byte("k"), ReadTS: future}})
	if !errors.As(err, new(*kv.InvalidRequestError)) {
		t.Fatalf("read an hour ahead: %v, want InvalidRequestError", err)
	}
	// It did not push max_read_ts: a 1PC commits at its own timestamp.
	start := c.now()
	resp, err := c.store(1).Execute(ctx, 1, &kv.Request{OnePhaseCommit: &kv.OnePhaseCommitRequest{
		Mutations: []kv.Mutation{{Op: kv.OpPut, Key: []byte("k"), Value: []byte("v")}}, StartTS: start, CommitTS: c.now(),
	}})
	if err != nil || resp.OnePhaseCommit.CommitTS >= future {
		t.Fatalf("1PC after the refused read: %+v, %v", resp, err)
	}
}

func TestSplitInheritsClosedTimestamp(t *testing.T) {
	c := newTestCluster(t, 3, closedTSTune)
	c.bootstrap(testDescriptor(1, 1, 2, 3))
	leader := c.waitLeader(1, 5*time.Second)
	ctx := testCtx(t, 10*time.Second)
	if _, err := c.put(ctx, 1, []byte("m"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	ts := c.now()
	for _, id := range c.liveIDs() {
		if err := c.store(id).WaitClosed(ctx, 1, ts); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := c.store(leader).SplitRange(ctx, 1, []byte("k"), 2); err != nil {
		t.Fatal(err)
	}
	// Every replica of the right range starts with the left's closed
	// timestamp and serves the row at it without a leader round.
	for _, id := range c.liveIDs() {
		var r *Replica
		waitFor(t, 5*time.Second, "right replica", func() bool { r = c.store(id).replica(2); return r != nil && r.Descriptor() != nil })
		if got := r.ClosedTimestamp(); got < ts {
			t.Fatalf("n%d: right range closed at %d, want at least the left's %d", id, got, ts)
		}
		resp, err := c.store(id).Execute(ctx, 2, &kv.Request{Get: &kv.GetRequest{Key: []byte("m"), ReadTS: ts}})
		if err != nil || string(resp.Get.Value) != "v" {
			t.Fatalf("n%d: read of the right range at the inherited closed timestamp: %+v, %v", id, resp, err)
		}
	}
}

// TestClosedReadsDuringRemoval: a replica being removed deletes its data;
// closed reads racing with the removal are either served from the data as
// it was or refused, never answered from the deleted state.
func TestClosedReadsDuringRemoval(t *testing.T) {
	c := newTestCluster(t, 3, closedTSTune)
	c.bootstrap(testDescriptor(1, 1, 2, 3))
	leader := c.waitLeader(1, 5*time.Second)
	victim := followerOf(c, leader)
	ctx := testCtx(t, 20*time.Second)
	for i := 0; i < 20; i++ {
		if _, err := c.put(ctx, 1, []byte(fmt.Sprintf("k%02d", i)), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	ts := c.now()
	if err := c.store(victim).WaitClosed(ctx, 1, ts); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var served, wrong atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.store(victim).Execute(ctx, 1, &kv.Request{Scan: &kv.ScanRequest{Start: []byte("k"), End: []byte("l"), ReadTS: ts}})
				if err != nil {
					continue // refused: not served here any more
				}
				served.Add(1)
				if len(resp.Scan.Rows) != 20 {
					wrong.Add(1)
				}
			}
		}()
	}
	desc := c.store(leader).replica(1).Descriptor()
	rd, _ := desc.Replica(victim)
	if _, err := c.store(leader).ChangeReplicas(ctx, 1, nil, []kv.ReplicaDescriptor{rd}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the replica removed", func() bool { return c.store(victim).replica(1) == nil })
	close(stop)
	wg.Wait()
	if wrong.Load() > 0 {
		t.Fatalf("%d of %d closed reads served during the removal saw missing rows", wrong.Load(), served.Load())
	}
	t.Logf("%d closed reads served during the removal, all complete", served.Load())
}
