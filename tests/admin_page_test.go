package tests

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestAdminPageInHeadlessChromium renders a node's admin page in a real
// browser (Debian's chromium, driven over the DevTools protocol) and checks
// that it shows the three live nodes and the ranges with their replicas.
func TestAdminPageInHeadlessChromium(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed (CI installs Debian's chromium package)")
	}
	lc := startReplicatedCluster(t, 3, 30*time.Second)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	defer cancelTimeout()

	url := "http://" + lc.Node(2).HTTPAddr() + "/"
	if _, err := chromedp.Run(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigate to %s: %v", url, err)
	}
	if _, err := chromedp.Run(ctx, chromedp.WaitVisible(chromedp.ID("ranges"))); err != nil {
		t.Fatalf("wait for the ranges table: %v", err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	nodesTable, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("nodes")))
	if err != nil {
		t.Fatal(err)
	}
	rangesTable, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("ranges")))
	if err != nil {
		t.Fatal(err)
	}
	ratesTable, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("rates")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ratesTable, "SQL statements/s") || !strings.Contains(ratesTable, "Raft proposals/s") {
		t.Fatalf("live rates table: %q", ratesTable)
	}
	if !strings.Contains(title, "QuorumDB") {
		t.Fatalf("page title %q", title)
	}
	for i := 1; i <= 3; i++ {
		if !strings.Contains(nodesTable, lc.Node(i).SQLAddr()) {
			t.Fatalf("nodes table lacks node %d (%s):\n%s", i, lc.Node(i).SQLAddr(), nodesTable)
		}
	}
	if got := strings.Count(nodesTable, "yes"); got != 3 {
		t.Fatalf("nodes table shows %d live nodes, want 3:\n%s", got, nodesTable)
	}
	for i := 1; i <= 3; i++ {
		if !strings.Contains(rangesTable, fmt.Sprintf("n%d/", lc.Node(i).ID())) {
			t.Fatalf("ranges table lacks a replica on node %d:\n%s", lc.Node(i).ID(), rangesTable)
		}
	}
}

// TestMetricsEndpointSeries scrapes /metrics and checks the named series.
func TestMetricsEndpointSeries(t *testing.T) {
	lc := startCluster(t, 1)
	db := sqlTo(t, lc, 1, "")
	mustExec(t, db, "CREATE DATABASE m")
	mustExec(t, db, "CREATE TABLE m.t (id INT PRIMARY KEY)")
	mustExec(t, db, "INSERT INTO m.t VALUES (1), (2)")
	resp, err := http.Get("http://" + lc.Node(1).HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, series := range []string{
		"quorumdb_raft_proposals_total",
		"quorumdb_raft_entries_applied_total",
		"quorumdb_raft_log_fsync_seconds_bucket",
		"quorumdb_ranges_led",
		"quorumdb_replicas",
		"quorumdb_node_ready 1",
		`quorumdb_sql_statements_total{result="ok"}`,
		"quorumdb_sql_statement_seconds_bucket",
		"quorumdb_sql_connections",
		`quorumdb_txn_total{outcome="commit"}`,
		"quorumdb_raft_closed_timestamp_reads_total",
		`quorumdb_follower_reads_total{result="local"}`,
		`quorumdb_transport_events_total{event="probe_answered"}`,
		"go_goroutines",
	} {
		if !strings.Contains(string(body), series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
}

// TestSystemDatabase reads the cluster's own state through SQL.
func TestSystemDatabase(t *testing.T) {
	lc := startReplicatedCluster(t, 3, 30*time.Second)
	db := sqlTo(t, lc, 3, "")
	var live int
	if err := db.QueryRow("SELECT COUNT(*) FROM quorumdb.nodes WHERE live").Scan(&live); err != nil || live != 3 {
		t.Fatalf("live nodes in quorumdb.nodes: %d, %v; want 3", live, err)
	}
	var rangeID uint64
	var replicas string
	if err := db.QueryRow("SELECT range_id, replicas FROM quorumdb.ranges ORDER BY range_id LIMIT 1").Scan(&rangeID, &replicas); err != nil {
		t.Fatal(err)
	}
	if strings.Count(replicas, "n") != 3 {
		t.Fatalf("range %d replicas %q; want three", rangeID, replicas)
	}
	expectCode(t, db, 1007, "CREATE DATABASE quorumdb")
	var dbs []string
	rows, err := db.Query("SHOW DATABASES")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		dbs = append(dbs, name)
	}
	rows.Close()
	if !strings.Contains(strings.Join(dbs, ","), "quorumdb") {
		t.Fatalf("SHOW DATABASES lacks quorumdb: %v", dbs)
	}
}
