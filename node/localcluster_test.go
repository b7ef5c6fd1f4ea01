package node

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/node/workload"
	"github.com/quorumdb/quorumdb/raftgroup"
	"github.com/quorumdb/quorumdb/txn"
)

func startLocalCluster(t *testing.T, nodes int) *LocalCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lc, err := StartLocalCluster(ctx, LocalClusterConfig{
		Nodes:   nodes,
		DataDir: t.TempDir(),
		Logger:  quietLogger(),
		Template: Config{
			LivenessTTL:      2 * time.Second,
			RaftTickInterval: 20 * time.Millisecond,
		},
	})
	if err != nil {
		t.Fatalf("start local cluster: %v", err)
	}
	t.Cleanup(func() { _ = lc.Stop(context.Background()) })
	return lc
}

func TestLocalClusterTwoWithdrawalsThroughTwoNodes(t *testing.T) {
	lc := startLocalCluster(t, 3)
	a, err := workload.Open(lc.Node(1).SQLAddr(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := workload.Open(lc.Node(2).SQLAddr(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for round := 0; round < 5; round++ {
		res, err := workload.TwoWithdrawals(ctx, a, b)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if res.Succeeded != 1 || res.Refused != 1 || res.FinalBalance != 5 {
			t.Fatalf("round %d: %+v; want exactly one withdrawal and 5 EUR left", round, res)
		}
	}
}

func TestListNodesAndRanges(t *testing.T) {
	lc := startLocalCluster(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := lc.Node(1).Cluster()
	nodes, err := ListNodes(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || !nodes[0].Live || !nodes[1].Live || nodes[0].SQLAddr != lc.Node(1).SQLAddr() {
		t.Fatalf("nodes: %+v", nodes)
	}
	ranges, err := ListRanges(ctx, c, &http.Client{Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(ranges) == 0 || ranges[0].RangeID != raftgroup.FirstRangeID {
		t.Fatalf("ranges: %+v", ranges)
	}
	// The bootstrap range has a leader once it has served a request.
	if _, err := lc.Node(2).DB().Begin(ctx, txn.TxnOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for ranges[0].Leader == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no leader reported for range 1: %+v", ranges[0])
		}
		time.Sleep(20 * time.Millisecond)
		if ranges, err = ListRanges(ctx, c, &http.Client{Timeout: 3 * time.Second}); err != nil {
			t.Fatal(err)
		}
	}

	// The leader reports the range's size and apply rate.
	if err := lc.Node(1).DB().Run(ctx, txn.TxnOptions{}, func(ctx context.Context, tx *txn.Txn) error {
		return tx.Put(ctx, []byte("load/k"), []byte("some bytes"))
	}); err != nil {
		t.Fatal(err)
	}
	load, err := ListRangeLoad(ctx, c, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := load[raftgroup.FirstRangeID]; !ok || l.SizeBytes == 0 {
		t.Fatalf("load of range 1: %+v (reported %v)", l, ok)
	}

	// A clean stop revokes the liveness lease at once.
	if err := lc.StopNode(ctx, 2); err != nil {
		t.Fatal(err)
	}
	nodes, err = ListNodes(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || nodes[1].Live {
		t.Fatalf("after stopping node 2: %+v", nodes)
	}
}
