package node

import (
	"context"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/node/workload"
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
