package tests

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/kv"
	"github.com/quorumdb/quorumdb/node"
	"github.com/quorumdb/quorumdb/raftgroup"
	"github.com/quorumdb/quorumdb/txn"
)

var txnChaos = flag.Duration("txn.chaos", 0, "run TestTxnChaos for this long (0 skips it; make chaos sets it)")

// TestTxnChaos runs random transactions through every node of a 3-node
// cluster while nodes are isolated and killed and restarted, one fault at a
// time, then checks the committed history for dependency cycles. A
// transaction whose commit failed without a definite answer (node gone,
// range unavailable) is looked up afterwards at its primary: it counts iff
// it committed.
func TestTxnChaos(t *testing.T) {
	if *txnChaos <= 0 {
		t.Skip("long test: run with -txn.chaos=30s (make chaos)")
	}
	faults := raftgroup.NewFaultInjector(*txnSeed)
	lc := startTxnCluster(t, node.Knobs{Faults: faults})
	ctx, cancel := context.WithTimeout(context.Background(), *txnChaos+3*time.Minute)
	defer cancel()
	deadline := time.Now().Add(*txnChaos)
	key := func(i int) string { return fmt.Sprintf("chaos/k%02d", i) }

	var (
		mu        sync.Mutex
		history   []TxnRecord
		uncertain []randomTxnOutcome
		counts    = map[string]int{}
	)
	// AS OF snapshots through every node while the faults happen: follower
	// reads at closed timestamps must agree with the committed history.
	auditor := startSnapshotAuditor(ctx, func(i int) *txn.DB {
		if n := lc.Node(1 + i%3); n != nil {
			return n.DB()
		}
		return nil
	}, "chaos/", *txnSeed)
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(*txnSeed, uint64(1000+w)))
			for n := 0; time.Now().Before(deadline); n++ {
				nd := lc.Node(1 + (w+n)%3)
				if nd == nil {
					continue // stopped right now
				}
				tctx, tcancel := context.WithTimeout(ctx, 20*time.Second)
				out := randomTxn(tctx, nd.DB(), rng, fmt.Sprintf("w%d-t%d", w, n), key, 12, 5)
				tcancel()
				mu.Lock()
				switch {
				case out.err == nil:
					counts["committed"]++
					history = append(history, out.rec)
				case txn.IsRetryable(out.err):
					counts["aborted"]++
				case out.committing && len(out.rec.Writes) > 0 && out.startTS != 0:
					counts["uncertain"]++
					uncertain = append(uncertain, out)
				default:
					counts["failed before commit"]++
				}
				mu.Unlock()
			}
		}()
	}

	// One fault at a time: isolate a node for a while, or kill it and
	// bring it back on the same data directory.
	frng := rand.New(rand.NewPCG(*txnSeed, 7))
	faultsDone := 0
	for time.Now().Before(deadline) {
		i := 1 + frng.IntN(3)
		nd := lc.Node(i)
		if nd == nil {
			continue
		}
		id := nd.ID()
		if frng.IntN(2) == 0 {
			t.Logf("isolating node %d", id)
			faults.Isolate(id)
			time.Sleep(time.Duration(500+frng.IntN(1500)) * time.Millisecond) // the fault lasts this long
			faults.Rejoin(id)
		} else {
			t.Logf("killing node %d", id)
			lc.KillNode(i)
			time.Sleep(time.Duration(500+frng.IntN(1500)) * time.Millisecond) // down this long
			if err := lc.StartNode(ctx, i); err != nil {
				t.Fatalf("restart node %d: %v", i, err)
			}
		}
		faultsDone++
		time.Sleep(time.Duration(500+frng.IntN(1000)) * time.Millisecond) // healthy this long
	}
	wg.Wait()
	snaps, snapFailed := auditor.stop()
	faults.Heal()
	var nearest txn.RouterStats
	for _, n := range lc.Nodes() {
		st := n.DB().Sender().(*txn.Router).Stats()
		nearest.NearestServed += st.NearestServed
		nearest.NearestForwarded += st.NearestForwarded
	}
	t.Logf("AS OF reads since the nodes' last start: %d served by the local replica, %d forwarded to the leader", nearest.NearestServed, nearest.NearestForwarded)

	// Learn the fate of every uncertain commit at its primary (the first key
	// in key order); a pending one is rolled back once its TTL runs out.
	sender := lc.Node(1).DB().Sender()
	clock := lc.Node(1).DB().Clock()
	for _, u := range uncertain {
		keys := make([]string, 0, len(u.rec.Writes))
		for k := range u.rec.Writes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		st := txnStatusAt(ctx, t, sender, clock, []byte(keys[0]), u.startTS)
		if st.Status == kv.TxnCommitted {
			u.rec.CommitTS = st.CommitTS
			history = append(history, u.rec)
			counts["uncertain, committed"]++
		}
	}
	t.Logf("seed %d, %v, %d faults: %v; %d AS OF snapshots audited, %d reads failed during faults", *txnSeed, *txnChaos, faultsDone, counts, len(snaps), snapFailed)
	if counts["committed"] == 0 {
		t.Fatal("nothing committed")
	}
	if err := CheckSerializable(history); err != nil {
		t.Fatal(err)
	}
	if err := CheckSnapshots(history, snaps); err != nil {
		t.Fatal(err)
	}
}

// txnStatusAt asks the primary for the decided status of transaction
// startTS, retrying while it is pending (its TTL has not run out) or the
// range is briefly unavailable.
func txnStatusAt(ctx context.Context, t *testing.T, sender txn.RangeSender, clock txn.TimestampSource, primary []byte, startTS kv.Timestamp) *kv.CheckTxnStatusResponse {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		now, err := clock.GetTimestamp(ctx)
		if err == nil {
			var d *kv.RangeDescriptor
			if d, err = sender.RangeForKey(ctx, primary); err == nil {
				var resp *kv.Response
				resp, err = sender.SendToRange(ctx, d, &kv.Request{CheckTxnStatus: &kv.CheckTxnStatusRequest{
					PrimaryKey: primary, StartTS: startTS, CurrentTS: now, RollbackIfExpired: true,
				}})
				if err == nil && resp.CheckTxnStatus.Status != kv.TxnPending {
					return resp.CheckTxnStatus
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("status of txn %d at %q undecided: %v", startTS, primary, err)
		}
		time.Sleep(50 * time.Millisecond) // wait for the lock's TTL to run out
	}
}
