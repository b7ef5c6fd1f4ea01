package tests

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/cluster"
	"github.com/quorumdb/quorumdb/kv"
	"github.com/quorumdb/quorumdb/node"
	"github.com/quorumdb/quorumdb/node/workload"
	"github.com/quorumdb/quorumdb/raftgroup"
)

// startReplicatedCluster starts n nodes whose placement driver replicates
// every range 3 ways and replaces a dead node's replicas after grace, and
// waits until every range has 3 voters.
func startReplicatedCluster(t *testing.T, n int, grace time.Duration) *node.LocalCluster {
	t.Helper()
	lc := startClusterWith(t, n, node.Config{
		LivenessTTL:    time.Second,
		RequestTimeout: 5 * time.Second,
		Placement: node.PlacementConfig{
			DeadNodeGrace: grace,
			Interval:      100 * time.Millisecond,
		},
	})
	waitRanges(t, lc, "every range has 3 voters", func(ranges []node.RangeStatus, live map[uint64]bool) bool {
		return allRangesOn(ranges, live, 3)
	})
	return lc
}

// allRangesOn reports whether every range has exactly want voters, all on
// live nodes, and no learner.
func allRangesOn(ranges []node.RangeStatus, live map[uint64]bool, want int) bool {
	if len(ranges) == 0 {
		return false
	}
	for _, r := range ranges {
		voters := 0
		for _, rep := range r.Replicas {
			if rep.Type != kv.Voter || !live[rep.NodeID] {
				return false
			}
			voters++
		}
		if voters != want {
			return false
		}
	}
	return true
}

// waitRanges polls the range directory (through any live node) until cond
// holds, failing after a deadline.
func waitRanges(t *testing.T, lc *node.LocalCluster, what string, cond func([]node.RangeStatus, map[uint64]bool) bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last []node.RangeStatus
	for time.Now().Before(deadline) {
		nodes := lc.Nodes()
		live := map[uint64]bool{}
		for _, n := range nodes {
			live[n.ID()] = true
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		ranges, err := nodes[0].ClusterRanges(ctx)
		cancel()
		if err == nil {
			last = ranges
			if cond(ranges, live) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting until %s; last directory: %+v", what, last)
}

// TestFailoverKillNodeAndRepair kills the node leading the data's range in a
// 3-node cluster while a writer commits through another node: commits resume,
// no acknowledged row is lost, and once the dead node's grace period passes
// the placement driver rebuilds the third replica on a fourth node.
func TestFailoverKillNodeAndRepair(t *testing.T) {
	lc := startReplicatedCluster(t, 3, 2*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// The victim is the leader of range 1 (it holds every key so far).
	victim := 0
	for i := 1; i <= 3; i++ {
		for _, info := range lc.Node(i).Store().RangeInfo() {
			if info.RangeID == 1 && info.IsLeader {
				victim = i
			}
		}
	}
	if victim == 0 {
		t.Fatal("range 1 has no leader")
	}
	writerNode := victim%3 + 1
	db := sqlTo(t, lc, writerNode, "")
	mustExec(t, db, "CREATE DATABASE ha")
	mustExec(t, db, "CREATE TABLE ha.events (id INT PRIMARY KEY, note VARCHAR(32))")

	var mu sync.Mutex
	var acked []int
	var lastOK time.Time
	var gaps []time.Duration
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for id := 1; ; id++ {
			select {
			case <-stop:
				return
			default:
			}
			wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := db.ExecContext(wctx, "INSERT INTO ha.events VALUES (?, ?)", id, fmt.Sprintf("event %d", id))
			wcancel()
			mu.Lock()
			if err == nil {
				now := time.Now()
				if !lastOK.IsZero() {
					gaps = append(gaps, now.Sub(lastOK))
				}
				lastOK = now
				acked = append(acked, id)
			}
			mu.Unlock()
		}
	}()
	ackedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	waitUntil(t, "first writes acknowledged", 30*time.Second, func() bool { return ackedCount() >= 20 })

	killedAt := time.Now()
	lc.KillNode(victim)
	before := ackedCount()
	waitUntil(t, "writes to resume after the kill", 60*time.Second, func() bool { return ackedCount() >= before+20 })
	mu.Lock()
	var worst time.Duration
	for _, g := range gaps {
		worst = max(worst, g)
	}
	mu.Unlock()
	t.Logf("killed node %d (range 1 leader); longest gap between acknowledged commits: %v; writes resumed %v after the kill",
		victim, worst, time.Since(killedAt))

	// A fourth node joins; after the grace period the dead node's replicas
	// are rebuilt there.
	if _, err := lc.AddNode(ctx); err != nil {
		t.Fatal(err)
	}
	waitRanges(t, lc, "every range back to 3 live voters", func(ranges []node.RangeStatus, live map[uint64]bool) bool {
		return allRangesOn(ranges, live, 3)
	})
	close(stop)
	<-done

	// Every acknowledged row is readable through every live node.
	mu.Lock()
	want := append([]int(nil), acked...)
	mu.Unlock()
	for _, n := range lc.Nodes() {
		rdb, err := workload.Open(n.SQLAddr(), "")
		if err != nil {
			t.Fatal(err)
		}
		got := map[int]bool{}
		rows, err := rdb.QueryContext(ctx, "SELECT id FROM ha.events")
		if err != nil {
			t.Fatalf("read through node %d: %v", n.ID(), err)
		}
		for rows.Next() {
			var id int
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			got[id] = true
		}
		rows.Close()
		rdb.Close()
		for _, id := range want {
			if !got[id] {
				t.Fatalf("acknowledged row %d missing when read through node %d", id, n.ID())
			}
		}
	}
	t.Logf("%d acknowledged rows all present on every live node", len(want))
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestIsolatedTSOLeaderHandsOver cuts the timestamp oracle's leader off
// from the other nodes (not from etcd, so it keeps its lease): the node
// notices through Raft that it is alone and hands the oracle on, so the
// majority side commits again (a chaos suite finding).
func TestIsolatedTSOLeaderHandsOver(t *testing.T) {
	faults := raftgroup.NewFaultInjector(1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	lc := startClusterWith(t, 3, node.Config{
		RequestTimeout: 5 * time.Second,
		Placement:      node.PlacementConfig{Interval: 100 * time.Millisecond},
		Knobs:          node.Knobs{Faults: faults},
	})
	waitRanges(t, lc, "every range has 3 voters", func(ranges []node.RangeStatus, live map[uint64]bool) bool {
		return allRangesOn(ranges, live, 3)
	})
	addr, err := lc.Node(1).Cluster().Leader(ctx, cluster.ElectionTSO)
	if err != nil {
		t.Fatal(err)
	}
	victim := 0
	for i := 1; i <= 3; i++ {
		if lc.Node(i).RPCAddr() == addr {
			victim = i
		}
	}
	if victim == 0 {
		t.Fatalf("TSO leader %q is no node's RPC address", addr)
	}
	other := victim%3 + 1
	db := sqlTo(t, lc, other, "")
	mustExec(t, db, "CREATE DATABASE tso")
	mustExec(t, db, "CREATE TABLE tso.t (id INT PRIMARY KEY)")

	faults.Isolate(lc.Node(victim).ID())
	cut := time.Now()
	id := 0
	waitUntil(t, "a commit through the majority after isolating the TSO leader", 60*time.Second, func() bool {
		id++
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
		defer wcancel()
		_, err := db.ExecContext(wctx, "INSERT INTO tso.t VALUES (?)", id)
		return err == nil
	})
	t.Logf("first commit through node %d %v after isolating node %d (TSO leader)", other, time.Since(cut), victim)
	faults.Heal()
}
