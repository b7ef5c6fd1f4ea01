package tests

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/kv"
	"github.com/quorumdb/quorumdb/node"
	"github.com/quorumdb/quorumdb/txn"
)

// TestFollowerReadsSurviveQuorumLoss: AS OF reads are served by the node's
// own replica once their timestamp is closed there, without the leader, and
// keep working on the last node standing after the other two are killed
// (no quorum, no leader), while current reads fail after a bounded wait.
func TestFollowerReadsSurviveQuorumLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("in-process cluster")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	lc := startClusterWith(t, 3, node.Config{RequestTimeout: 2 * time.Second, Placement: node.PlacementConfig{Disabled: true}})
	n1, n3 := lc.Node(1), lc.Node(3)
	replicateFirstRange(ctx, t, lc)
	// Node 3 must not lead: its reads are follower reads.
	if err := n1.Store().TransferLeadership(ctx, 1, n1.ID()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "n1 leads r1", 10*time.Second, func() bool {
		for _, ri := range n1.Store().RangeInfo() {
			if ri.RangeID == 1 {
				return ri.IsLeader
			}
		}
		return false
	})

	// The same through SQL: a table, and a timestamp after its rows.
	db1, db3 := sqlTo(t, lc, 1, ""), sqlTo(t, lc, 3, "")
	// followerReadsSum sums the balances on node 3 in a READ ONLY
	// transaction with quorumdb_follower_reads: its whole snapshot, catalog
	// included, is at the follower-read timestamp.
	followerReadsSum := func() (int, error) {
		conn, err := db3.Conn(ctx)
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		for _, q := range []string{"SET quorumdb_follower_reads = ON", "START TRANSACTION READ ONLY"} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				return 0, fmt.Errorf("%s: %w", q, err)
			}
		}
		var sum int
		if err := conn.QueryRowContext(ctx, "SELECT SUM(balance) FROM fr.acct").Scan(&sum); err != nil {
			return 0, err
		}
		_, err = conn.ExecContext(ctx, "COMMIT")
		return sum, err
	}
	for _, q := range []string{
		"CREATE DATABASE fr",
		"CREATE TABLE fr.acct (id INT PRIMARY KEY, balance INT NOT NULL)",
		"INSERT INTO fr.acct VALUES (1, 15), (2, 30)",
	} {
		if _, err := db1.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	const rows = 20
	key := func(i int) []byte { return []byte(fmt.Sprintf("fr/k%02d", i)) }
	if err := n1.DB().Run(ctx, txn.TxnOptions{}, func(ctx context.Context, tx *txn.Txn) error {
		for i := 0; i < rows; i++ {
			if err := tx.Put(ctx, key(i), []byte(fmt.Sprintf("v%d", i))); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	asOf, err := n3.DB().Clock().GetTimestamp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Later writes must stay invisible at asOf.
	if _, err := db1.ExecContext(ctx, "UPDATE fr.acct SET balance = 5 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if err := n1.DB().Run(ctx, txn.TxnOptions{}, func(ctx context.Context, tx *txn.Txn) error {
		return tx.Put(ctx, key(0), []byte("changed"))
	}); err != nil {
		t.Fatal(err)
	}

	readAll := func(db *txn.DB) ([]kv.KeyValue, error) {
		tx, err := db.Begin(ctx, txn.TxnOptions{AsOf: asOf})
		if err != nil {
			return nil, err
		}
		defer func() { _ = tx.Rollback(ctx) }()
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return tx.Scan(rctx, []byte("fr/"), []byte("fr0"), 0, false)
	}
	check := func(got []kv.KeyValue, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("AS OF read: %v", err)
		}
		if len(got) != rows || string(got[0].Value) != "v0" || string(got[rows-1].Value) != fmt.Sprintf("v%d", rows-1) {
			t.Fatalf("AS OF read returned %d rows (first %q), want %d rows of the snapshot", len(got), got[0].Value, rows)
		}
	}

	// The first AS OF read goes to the leader (nothing closed yet) and
	// starts the closing; once node 3's replica has closed asOf, node 3
	// serves the read itself.
	check(readAll(n3.DB()))
	if err := n3.Store().WaitClosed(ctx, 1, asOf); err != nil {
		t.Fatal(err)
	}
	served := n3.Store().Metrics().ClosedReads
	check(readAll(n3.DB()))
	if got := n3.Store().Metrics().ClosedReads; got <= served {
		t.Fatalf("node 3 served no read at the closed timestamp (closed reads %d -> %d)", served, got)
	}
	if st := n3.DB().Sender().(*txn.Router).Stats(); st.NearestServed == 0 {
		t.Fatalf("router stats %+v: no read served by the local replica", st)
	}

	// Through SQL on node 3, AS OF the same timestamp: the old balances,
	// read by node 3's own replica.
	served = n3.Store().Metrics().ClosedReads
	var sum int
	if err := db3.QueryRowContext(ctx, fmt.Sprintf("SELECT SUM(balance) FROM fr.acct AS OF %d", asOf)).Scan(&sum); err != nil || sum != 45 {
		t.Fatalf("SQL AS OF read on node 3: sum %d, %v; want 45", sum, err)
	}
	if got := n3.Store().Metrics().ClosedReads; got <= served {
		t.Fatalf("the SQL AS OF read was not served at a closed timestamp on node 3 (closed reads %d -> %d)", served, got)
	}

	// Wait until the follower-read timestamp is past the update, and node 3
	// has closed it: SQL follower reads after the kill must see the update.
	updated, err := n1.DB().Clock().GetTimestamp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var frt kv.Timestamp
	waitUntil(t, "the follower-read timestamp passes the update", 10*time.Second, func() bool {
		frt, err = n3.DB().FollowerReadTimestamp(ctx)
		return err == nil && frt > updated
	})
	if err := n3.Store().WaitClosed(ctx, 1, frt); err != nil {
		t.Fatal(err)
	}

	// Through SQL with quorumdb_follower_reads: a READ ONLY transaction
	// reads its whole snapshot, catalog included, at the follower-read
	// timestamp (after the update), from node 3's own replicas.
	served = n3.Store().Metrics().ClosedReads
	if sum, err := followerReadsSum(); err != nil || sum != 35 {
		t.Fatalf("SQL follower-reads transaction on node 3: sum %d, %v; want 35", sum, err)
	}
	if got := n3.Store().Metrics().ClosedReads; got <= served {
		t.Fatalf("the follower-reads transaction was not served at a closed timestamp on node 3 (closed reads %d -> %d)", served, got)
	}

	// Kill the two other nodes: the range has no quorum and no leader.
	lc.KillNode(1)
	lc.KillNode(2)
	start := time.Now()
	check(readAll(n3.DB()))
	t.Logf("AS OF read on the last node standing: %v", time.Since(start))

	// The follower-reads transaction also keeps working: with the range's
	// closed timestamp frozen, its snapshot goes back to it (bounded
	// staleness) instead of asking the absent leader.
	start = time.Now()
	if sum, err := followerReadsSum(); err != nil || sum != 35 {
		t.Fatalf("SQL follower-reads transaction on the last node standing: sum %d, %v; want 35", sum, err)
	}
	t.Logf("SQL READ ONLY follower-reads transaction on the last node standing: %v", time.Since(start).Round(time.Millisecond))

	// A current read cannot be served: it fails after a bounded wait.
	start = time.Now()
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	tx, err := n3.DB().Begin(rctx, txn.TxnOptions{ReadOnly: true})
	if err == nil {
		_, _, err = tx.Get(rctx, key(1))
		_ = tx.Rollback(rctx)
	}
	if err == nil {
		t.Fatal("a current read succeeded without a quorum")
	}
	if rctx.Err() != nil {
		t.Fatalf("current read without quorum did not fail by itself within 20 s: %v", err)
	}
	t.Logf("current read without quorum failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
}
