package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/node"
)

// TestLoadPastSplitThresholdThroughSQL loads a table past a tiny split
// threshold through one node: the placement driver splits the range, the
// range count grows, and every row stays readable through every node's
// router (whose caches were filled before the splits and heal through the
// replicas' typed errors and the directory watch).
func TestLoadPastSplitThresholdThroughSQL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	lc := startClusterWith(t, 3, node.Config{Placement: node.PlacementConfig{
		Interval:       100 * time.Millisecond,
		SplitSizeBytes: 16 << 10,
	}})

	dbs := []*struct{ i int }{{1}, {2}, {3}}
	writer := sqlTo(t, lc, 1, "")
	mustExec(t, writer, "CREATE DATABASE big")
	mustExec(t, writer, "CREATE TABLE big.items (id INT PRIMARY KEY, body VARCHAR(255))")
	// Warm every node's range cache before the splits.
	for _, d := range dbs {
		var n int
		if err := sqlTo(t, lc, d.i, "").QueryRowContext(ctx, "SELECT COUNT(*) FROM big.items").Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	const rows = 600
	body := strings.Repeat("x", 200)
	for start := 1; start <= rows; start += 50 {
		var vals []string
		for id := start; id < start+50; id++ {
			vals = append(vals, fmt.Sprintf("(%d, '%s-%d')", id, body, id))
		}
		mustExec(t, writer, "INSERT INTO big.items VALUES "+strings.Join(vals, ","))
	}
	waitRanges(t, lc, "the table's range to split", func(ranges []node.RangeStatus, _ map[uint64]bool) bool {
		return len(ranges) >= 3
	})
	ranges, err := lc.Node(1).ClusterRanges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d ranges after loading %d rows of ~220 bytes with a 16 KiB split threshold", len(ranges), rows)

	for _, d := range dbs {
		db := sqlTo(t, lc, d.i, "")
		var n, sum int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*), SUM(id) FROM big.items").Scan(&n, &sum); err != nil {
			t.Fatalf("scan through node %d: %v", d.i, err)
		}
		if n != rows || sum != rows*(rows+1)/2 {
			t.Fatalf("through node %d: %d rows, sum %d; want %d, %d", d.i, n, sum, rows, rows*(rows+1)/2)
		}
		for _, id := range []int{1, rows / 3, rows / 2, rows} {
			var got string
			if err := db.QueryRowContext(ctx, "SELECT body FROM big.items WHERE id = ?", id).Scan(&got); err != nil || got != fmt.Sprintf("%s-%d", body, id) {
				t.Fatalf("point read of %d through node %d: %v", id, d.i, err)
			}
		}
	}
}
