package tests

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/quorumdb/quorumdb/kv"
	"github.com/quorumdb/quorumdb/node"
	"github.com/quorumdb/quorumdb/node/workload"
)

// startCluster starts an in-process cluster of real nodes (embedded etcd,
// gRPC on 127.0.0.1, pebble on disk) with fast timings, stopped at cleanup.
func startCluster(t *testing.T, nodes int) *node.LocalCluster {
	return startClusterWith(t, nodes, node.Config{})
}

// startClusterWith is startCluster with a node template; its zero timings
// take the tests' fast ones (liveness TTL 2 s, 20 ms Raft ticks).
func startClusterWith(t *testing.T, nodes int, tmpl node.Config) *node.LocalCluster {
	t.Helper()
	if tmpl.LivenessTTL == 0 {
		tmpl.LivenessTTL = 2 * time.Second
	}
	if tmpl.RaftTickInterval == 0 {
		tmpl.RaftTickInterval = 20 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	lc, err := node.StartLocalCluster(ctx, node.LocalClusterConfig{
		Nodes:    nodes,
		DataDir:  t.TempDir(),
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Template: tmpl,
	})
	if err != nil {
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(func() { _ = lc.Stop(context.Background()) })
	return lc
}

// replicateFirstRange puts replicas of range 1 (the whole key space) on
// every node of a cluster whose placement driver is off, and publishes it.
func replicateFirstRange(ctx context.Context, t *testing.T, lc *node.LocalCluster) {
	t.Helper()
	n1 := lc.Node(1)
	var add []kv.ReplicaDescriptor
	for _, n := range lc.Nodes()[1:] {
		add = append(add, kv.ReplicaDescriptor{NodeID: n.ID()})
	}
	desc, err := n1.Store().ChangeReplicas(ctx, 1, add, nil)
	if err != nil {
		t.Fatalf("up-replicate r1: %v", err)
	}
	if err := n1.Cluster().PublishRanges(ctx, desc); err != nil {
		t.Fatalf("publish r1: %v", err)
	}
}

// sqlTo opens a database handle to node i of lc.
func sqlTo(t *testing.T, lc *node.LocalCluster, i int, database string) *sql.DB {
	t.Helper()
	db, err := workload.Open(lc.Node(i).SQLAddr(), database)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestClusterSQLEndToEnd drives a 3-node cluster through SQL only: DDL on one
// node is visible on the others at once, rows written through one node are
// read through another, and the seed's two concurrent withdrawals through two
// nodes leave exactly one succeeding.
func TestClusterSQLEndToEnd(t *testing.T) {
	lc := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db1, db2, db3 := sqlTo(t, lc, 1, ""), sqlTo(t, lc, 2, ""), sqlTo(t, lc, 3, "")

	mustExec(t, db1, "CREATE DATABASE shop")
	mustExec(t, db2, "CREATE TABLE shop.customers (id INT PRIMARY KEY, email VARCHAR(64) NOT NULL UNIQUE)")
	mustExec(t, db3, "CREATE TABLE shop.orders (id INT PRIMARY KEY AUTO_INCREMENT, customer INT NOT NULL, total DECIMAL(10,2), FOREIGN KEY (customer) REFERENCES shop.customers(id))")
	mustExec(t, db1, "INSERT INTO shop.customers VALUES (1, 'ann@example.com'), (2, 'bob@example.com')")
	mustExec(t, db2, "INSERT INTO shop.orders (customer, total) VALUES (1, 9.50), (2, 20.00), (1, 1.25)")

	var n int
	var sum string
	if err := db3.QueryRowContext(ctx, "SELECT COUNT(*), SUM(total) FROM shop.orders WHERE customer = 1").Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	if n != 2 || sum != "10.75" {
		t.Fatalf("orders of customer 1 through node 3: count %d sum %s; want 2, 10.75", n, sum)
	}

	// Constraint errors carry MySQL's codes whichever node reports them.
	expectCode(t, db3, 1062, "INSERT INTO shop.customers VALUES (3, 'ann@example.com')")
	expectCode(t, db1, 1452, "INSERT INTO shop.orders (customer, total) VALUES (99, 1)")
	expectCode(t, db2, 1451, "DELETE FROM shop.customers WHERE id = 2")
	expectCode(t, db2, 1146, "SELECT * FROM shop.nope")
	expectCode(t, db2, 1064, "SELEKT 1")

	// Referential actions, each through a different node than the DDL.
	mustExec(t, db1, "CREATE TABLE shop.notes (id INT PRIMARY KEY, customer INT, FOREIGN KEY (customer) REFERENCES shop.customers(id) ON DELETE CASCADE)")
	mustExec(t, db1, "CREATE TABLE shop.tickets (id INT PRIMARY KEY, customer INT, FOREIGN KEY (customer) REFERENCES shop.customers(id) ON DELETE SET NULL)")
	mustExec(t, db2, "INSERT INTO shop.customers VALUES (7, 'gus@example.com')")
	mustExec(t, db3, "INSERT INTO shop.notes VALUES (1, 7), (2, 7)")
	mustExec(t, db3, "INSERT INTO shop.tickets VALUES (1, 7)")
	mustExec(t, db2, "DELETE FROM shop.customers WHERE id = 7")
	var notes, nullTickets int
	if err := db1.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM shop.notes), (SELECT COUNT(*) FROM shop.tickets WHERE customer IS NULL)").Scan(&notes, &nullTickets); err != nil {
		t.Fatal(err)
	}
	if notes != 0 || nullTickets != 1 {
		t.Fatalf("after deleting the parent: %d notes (want 0, CASCADE), %d tickets with NULL customer (want 1, SET NULL)", notes, nullTickets)
	}

	// A rolled-back transaction leaves nothing behind.
	tx, err := db2.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO shop.customers VALUES (8, 'ghost@example.com')"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO shop.orders (customer, total) VALUES (8, 5)"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	var ghosts int
	if err := db3.QueryRowContext(ctx, "SELECT COUNT(*) FROM shop.customers WHERE id = 8").Scan(&ghosts); err != nil || ghosts != 0 {
		t.Fatalf("rolled-back customer visible: %d, %v", ghosts, err)
	}

	// The stock client sees the same data through the third node.
	if bin, err := exec.LookPath("mysql"); err == nil {
		host, port, _ := strings.Cut(lc.Node(3).SQLAddr(), ":")
		out, err := exec.Command(bin, "-h", host, "-P", port, "-u", "root", "--batch", "--skip-column-names",
			"-e", "SELECT c.email, COUNT(*) FROM shop.customers c JOIN shop.orders o ON o.customer = c.id GROUP BY c.email ORDER BY c.email").CombinedOutput()
		if err != nil {
			t.Fatalf("mysql client: %v\n%s", err, out)
		}
		if got := strings.TrimSpace(string(out)); got != "ann@example.com\t2\nbob@example.com\t1" {
			t.Fatalf("mysql client join printed %q", got)
		}
	}

	res, err := workload.TwoWithdrawals(ctx, db1, db2)
	if err != nil {
		t.Fatal(err)
	}
	if res.Succeeded != 1 || res.FinalBalance != 5 {
		t.Fatalf("two 10 EUR withdrawals from 15 EUR through two nodes: %+v", res)
	}
}

// TestClusterBankInvariant runs concurrent transfers through all three nodes
// and checks, after every round, that the total is unchanged.
func TestClusterBankInvariant(t *testing.T) {
	lc := startCluster(t, 3)
	dbs := []*sql.DB{sqlTo(t, lc, 1, ""), sqlTo(t, lc, 2, ""), sqlTo(t, lc, 3, "")}
	bank := &workload.Bank{DBs: dbs, Accounts: 8, Initial: 100}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := bank.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 3; round++ {
		rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
		err := bank.Run(rctx, 6, uint64(round))
		rcancel()
		if err != nil {
			t.Fatalf("round %d: transfer failed: %v", round, err)
		}
		for i, db := range dbs {
			total, accounts, err := bank.Total(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			if total != 800 || accounts != 8 {
				t.Fatalf("round %d via node %d: total %d over %d accounts; want 800 over 8", round, i+1, total, accounts)
			}
		}
	}
	if bank.Transfers.Load() == 0 {
		t.Fatal("no transfer committed")
	}
	t.Logf("transfers committed %d, retried %d", bank.Transfers.Load(), bank.Retries.Load())
}

// TestMySQLCommandLineClient connects with the stock mysql client (CI
// installs mariadb-client) and runs a script.
func TestMySQLCommandLineClient(t *testing.T) {
	bin, err := exec.LookPath("mysql")
	if err != nil {
		t.Skip("mysql client not installed (CI installs mariadb-client)")
	}
	lc := startCluster(t, 1)
	host, port, _ := strings.Cut(lc.Node(1).SQLAddr(), ":")
	script := "CREATE DATABASE cli; CREATE TABLE cli.t (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO cli.t VALUES (1,'one'),(2,'two'); SELECT v FROM cli.t ORDER BY id DESC;"
	out, err := exec.Command(bin, "-h", host, "-P", port, "-u", "root", "--batch", "--skip-column-names", "-e", script).CombinedOutput()
	if err != nil {
		t.Fatalf("mysql: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "two\none" {
		t.Fatalf("mysql printed %q; want \"two\\none\"", got)
	}
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func expectCode(t *testing.T, db *sql.DB, code uint16, q string) {
	t.Helper()
	_, err := db.Exec(q)
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != code {
		t.Fatalf("%s: got %v; want MySQL error %d", q, err, code)
	}
}
