package tests

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/cluster"
	"github.com/quorumdb/quorumdb/node"
	"github.com/quorumdb/quorumdb/txn"
)

// The transaction acceptance tests on a 3-node in-process cluster (embedded
// etcd, TSO over gRPC, real KV service on 127.0.0.1): every node's
// coordinator takes part, requests cross nodes through the router and the KV
// client. One cluster serves every subtest, each on its own key prefix.

// txnClusterSplits cut the key space so that every subtest spans ranges.
var txnClusterSplits = []string{
	"bank/acct/03", "bank/acct/06", "bank/ledger/",
	"bank2/acct/03", "bank2/acct/06", "bank2/ledger/",
	"rand/k03", "rand/k06", "rand/k09",
	"wd/0/withdrawal/", "wd/1/withdrawal/", "wd/2/withdrawal/",
	"stale/k02",
	"crash/a/c/m", "crash/a/c/x", "crash/b/c/m", "crash/b/c/x",
	"chaos/k03", "chaos/k06", "chaos/k09",
}

func startTxnCluster(t *testing.T, knobs node.Knobs) *node.LocalCluster {
	t.Helper()
	// These tests place replicas and splits themselves.
	lc := startClusterWith(t, 3, node.Config{Placement: node.PlacementConfig{Disabled: true}, Knobs: knobs})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Replicate the first range on all three nodes; splits keep replicas.
	replicateFirstRange(ctx, t, lc)
	for _, k := range txnClusterSplits {
		if err := splitClusterRange(ctx, lc, []byte(k)); err != nil {
			t.Fatalf("split at %q: %v", k, err)
		}
	}
	return lc
}

// splitClusterRange splits the range holding key on its leader's node and
// publishes both halves to the range directory.
func splitClusterRange(ctx context.Context, lc *node.LocalCluster, key []byte) error {
	alloc, err := cluster.NewIDAllocator(lc.Node(1).Cluster(), "range", 1)
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, n := range lc.Nodes() {
			for _, info := range n.Store().RangeInfo() {
				d := info.Descriptor
				if d == nil || !info.IsLeader || !d.ContainsKey(key) {
					continue
				}
				if bytes.Equal(d.StartKey, key) {
					return nil // already a boundary
				}
				id, err := alloc.Allocate(ctx)
				if err != nil {
					return err
				}
				left, right, err := n.Store().SplitRange(ctx, d.RangeID, key, id)
				if err != nil {
					return fmt.Errorf("split r%d on n%d: %w", d.RangeID, n.ID(), err)
				}
				if right == nil {
					return fmt.Errorf("split r%d: no right descriptor", d.RangeID)
				}
				return n.Cluster().PublishRanges(ctx, left, right)
			}
		}
	}
	return fmt.Errorf("no leader found for the range of %q", key)
}

// clusterDBs returns one coordinator per node: the node's own DB, or, with
// cfg, a DB with cfg's knobs over the node's router and TSO client.
func clusterDBs(t *testing.T, lc *node.LocalCluster, cfg *txn.DBConfig) []*txn.DB {
	t.Helper()
	var out []*txn.DB
	for _, n := range lc.Nodes() {
		if cfg == nil {
			out = append(out, n.DB())
			continue
		}
		c := *cfg
		c.Sender, c.Clock = n.DB().Sender(), n.DB().Clock()
		db := txn.NewDB(c)
		t.Cleanup(db.Close)
		out = append(out, db)
	}
	return out
}

func TestTxnCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("in-process cluster")
	}
	lc := startTxnCluster(t, node.Knobs{})

	t.Run("TwoWithdrawalsThroughTwoNodes", func(t *testing.T) {
		dbs := clusterDBs(t, lc, &anomalyCfg)
		for round := 0; round < 3; round++ {
			requireDistinctRanges(t, dbs[0], fmt.Sprintf("wd/%d/acct/alice", round), fmt.Sprintf("wd/%d/withdrawal/0", round))
			runTwoWithdrawals(t, []*txn.DB{dbs[0], dbs[1]}, fmt.Sprintf("wd/%d/", round))
		}
	})

	t.Run("RandomHistoryIsSerializable", func(t *testing.T) {
		runRandomHistory(t, clusterDBs(t, lc, &txn.DBConfig{ValidationWait: 50 * time.Millisecond}), "rand/")
	})

	t.Run("BankTransfers", func(t *testing.T) {
		var retries atomic.Int64
		dbs := clusterDBs(t, lc, &txn.DBConfig{ValidationWait: 50 * time.Millisecond, MaxRetries: 100,
			Knobs: &txn.TestingKnobs{OnRetry: func(int, error) { retries.Add(1) }}})
		runBank(t, dbs, "bank/", &retries, nil)
	})

	t.Run("ReadAfter1PCOnAnotherNode", func(t *testing.T) {
		dbs := clusterDBs(t, lc, nil)
		for i := 0; i < 30; i++ {
			key := fmt.Sprintf("stale/k%02d", i%5)
			val := fmt.Sprint(i)
			putAll(t, dbs[i%3], key, val) // single key: one 1PC command
			if v, _ := getCommitted(t, dbs[(i+1)%3], key); v != val {
				t.Fatalf("round %d: node %d read %q after node %d committed %q", i, (i+1)%3+1, v, i%3+1, val)
			}
		}
	})

	t.Run("CoordinatorCrashAfterPrewrite", func(t *testing.T) {
		crashing := clusterDBs(t, lc, &txn.DBConfig{LockTTL: crashTTL,
			Knobs: &txn.TestingKnobs{AfterPrewrite: func(*txn.Txn) error { return txn.ErrCoordinatorStopped() }}})[1]
		reader := clusterDBs(t, lc, nil)[2]
		clusterCrash(t, crashing, reader, "crash/a/", "before")
	})

	t.Run("CoordinatorCrashAfterPrimaryCommit", func(t *testing.T) {
		crashing := clusterDBs(t, lc, &txn.DBConfig{
			Knobs: &txn.TestingKnobs{AfterPrimaryCommit: func(*txn.Txn) error { return txn.ErrCoordinatorStopped() }}})[0]
		reader := clusterDBs(t, lc, nil)[1]
		clusterCrash(t, crashing, reader, "crash/b/", "after")
	})

	// Last: it kills a node. Transfers keep going through the other two
	// nodes' coordinators while the ranges elect new leaders.
	t.Run("BankWhileANodeDies", func(t *testing.T) {
		var retries atomic.Int64
		dbs := clusterDBs(t, lc, &txn.DBConfig{ValidationWait: 50 * time.Millisecond, MaxRetries: 100,
			Knobs: &txn.TestingKnobs{OnRetry: func(int, error) { retries.Add(1) }}})
		victim := leaderNodeOf(lc, []byte("bank2/acct/00"))
		var survivors []*txn.DB
		for i, n := range lc.Nodes() {
			if n.ID() != victim {
				survivors = append(survivors, dbs[i])
			}
		}
		var once sync.Once
		kill := func(done int64) {
			if done < 40 {
				return
			}
			once.Do(func() {
				for i, n := range lc.Nodes() {
					if n.ID() == victim {
						t.Logf("killing node %d (leader of the first account's range) after %d transfers", victim, done)
						go lc.KillNode(i + 1)
					}
				}
			})
		}
		runBank(t, survivors, "bank2/", &retries, kill)
	})
}

// leaderNodeOf returns the ID of the node leading the range of key.
func leaderNodeOf(lc *node.LocalCluster, key []byte) uint64 {
	for _, n := range lc.Nodes() {
		for _, info := range n.Store().RangeInfo() {
			if info.IsLeader && info.Descriptor != nil && info.Descriptor.ContainsKey(key) {
				return n.ID()
			}
		}
	}
	return lc.Node(1).ID()
}

// clusterCrash writes three keys in three ranges through crashing (whose
// knobs stop it somewhere in 2PC) and requires reader, on another node, to
// see all of them at want or none.
func clusterCrash(t *testing.T, crashing, reader *txn.DB, prefix, want string) {
	t.Helper()
	ctx := context.Background()
	keys := []string{prefix + "c/a", prefix + "c/m", prefix + "c/x"}
	requireDistinctRanges(t, reader, keys...)
	var setup []string
	for _, k := range keys {
		setup = append(setup, k, "before")
	}
	putAll(t, reader, setup...)
	tx, _ := crashing.Begin(ctx, txn.TxnOptions{})
	for _, k := range keys {
		if err := tx.Put(ctx, []byte(k), []byte("after")); err != nil {
			t.Fatal(err)
		}
	}
	_ = tx.Commit(ctx)
	rtx, _ := reader.Begin(ctx, txn.TxnOptions{ReadOnly: true})
	seen := map[string]int{}
	for i := len(keys) - 1; i >= 0; i-- {
		v, _, err := rtx.Get(ctx, []byte(keys[i]))
		if err != nil {
			t.Fatalf("read %s: %v", keys[i], err)
		}
		seen[string(v)]++
	}
	if len(seen) != 1 || seen[want] != len(keys) {
		t.Fatalf("reader on another node saw %v, want all %q", seen, want)
	}
}

// requireDistinctRanges fails unless keys lie in pairwise different ranges.
func requireDistinctRanges(t *testing.T, db *txn.DB, keys ...string) {
	t.Helper()
	seen := map[uint64]string{}
	for _, k := range keys {
		d, err := db.Sender().RangeForKey(context.Background(), []byte(k))
		if err != nil {
			t.Fatal(err)
		}
		if other, dup := seen[d.RangeID]; dup {
			t.Fatalf("setup: %q and %q share r%d", other, k, d.RangeID)
		}
		seen[d.RangeID] = k
	}
}
