package qsql

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/txn"
)

// twoNodes starts two SQL servers, each with its own transaction
// coordinator, over one store and one clock: two nodes of a cluster.
func twoNodes(t *testing.T) (*Server, *Server) {
	t.Helper()
	st := newMemStore(t, "t")
	clock := txn.NewLocalClock(0)
	a := startServer(t, newDBOn(t, st, clock), func(c *Config) { c.NodeID = 1 })
	b := startServer(t, newDBOn(t, st, clock), func(c *Config) { c.NodeID = 2 })
	return a, b
}

// TestConcurrentWithdrawals: two 10 EUR withdrawals from a 15 EUR account
// through two nodes must never both succeed.
func TestConcurrentWithdrawals(t *testing.T) {
	a, b := twoNodes(t)
	setup := connect(t, a, "")
	mustExec(t, setup, "CREATE DATABASE bank", "USE bank", "CREATE TABLE acct (id INT PRIMARY KEY, bal INT NOT NULL)")
	da, db := connect(t, a, "bank"), connect(t, b, "bank")
	for round := 0; round < 20; round++ {
		mustExec(t, setup, "REPLACE INTO acct VALUES (1, 15)")
		var wg sync.WaitGroup
		var mu sync.Mutex
		succeeded := 0
		for _, d := range []*sql.DB{da, db} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := d.ExecContext(context.Background(), "UPDATE acct SET bal = bal - 10 WHERE id = 1 AND bal >= 10")
				if err != nil {
					t.Errorf("round %d: %v", round, err)
					return
				}
				n, _ := res.RowsAffected()
				mu.Lock()
				succeeded += int(n)
				mu.Unlock()
			}()
		}
		wg.Wait()
		got := queryStrings(t, setup, "SELECT bal FROM acct WHERE id = 1")
		if succeeded != 1 || fmt.Sprint(got) != "[[5]]" {
			t.Fatalf("round %d: %d withdrawals succeeded, balance %v", round, succeeded, got)
		}
	}
}

// TestExplicitTxnConflictGets1213: read-modify-write in explicit
// transactions on two nodes: one commits, the other gets 1213.
func TestExplicitTxnConflictGets1213(t *testing.T) {
	a, b := twoNodes(t)
	setup := connect(t, a, "")
	mustExec(t, setup, "CREATE DATABASE bank", "USE bank", "CREATE TABLE acct (id INT PRIMARY KEY, bal INT NOT NULL)", "INSERT INTO acct VALUES (1, 15)")
	ctx := context.Background()
	ca, err := connect(t, a, "bank").Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	cb, err := connect(t, b, "bank").Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	xa, xb := conn2exec{ctx, ca}, conn2exec{ctx, cb}
	mustExec(t, xa, "BEGIN")
	mustExec(t, xb, "BEGIN")
	if got := fmt.Sprint(queryStrings(t, xa, "SELECT bal FROM acct WHERE id = 1")); got != "[[15]]" {
		t.Fatal(got)
	}
	if got := fmt.Sprint(queryStrings(t, xb, "SELECT bal FROM acct WHERE id = 1")); got != "[[15]]" {
		t.Fatal(got)
	}
	mustExec(t, xa, "UPDATE acct SET bal = 5 WHERE id = 1")
	mustExec(t, xb, "UPDATE acct SET bal = 5 WHERE id = 1")
	errA := execErr(xa, "COMMIT")
	errB := execErr(xb, "COMMIT")
	codes := []uint16{mysqlCode(errA), mysqlCode(errB)}
	if !((codes[0] == 0 && codes[1] == 1213) || (codes[0] == 1213 && codes[1] == 0)) {
		t.Fatalf("commit results %v / %v: want exactly one 1213", errA, errB)
	}
	// The failed session is usable again.
	mustExec(t, xa, "SELECT 1")
	mustExec(t, xb, "SELECT 1")
}

func execErr(e conn2exec, q string) error {
	_, err := e.Exec(q)
	return err
}

// TestForeignKeyRace: a delete of a parent on one node and an insert of a
// child on another never both commit.
func TestForeignKeyRace(t *testing.T) {
	a, b := twoNodes(t)
	setup := connect(t, a, "")
	mustExec(t, setup, "CREATE DATABASE f", "USE f",
		"CREATE TABLE customers (id INT PRIMARY KEY)",
		"CREATE TABLE orders (id INT PRIMARY KEY, cid INT NOT NULL, FOREIGN KEY (cid) REFERENCES customers(id))")
	da, db := connect(t, a, "f"), connect(t, b, "f")
	for round := 0; round < 25; round++ {
		mustExec(t, setup, fmt.Sprintf("INSERT INTO customers VALUES (%d)", round))
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, _ = da.Exec(fmt.Sprintf("DELETE FROM customers WHERE id = %d", round))
		}()
		go func() {
			defer wg.Done()
			_, _ = db.Exec(fmt.Sprintf("INSERT INTO orders VALUES (%d, %d)", round, round))
		}()
		wg.Wait()
	}
	orphans := queryStrings(t, setup, "SELECT o.id FROM orders o LEFT JOIN customers c ON o.cid = c.id WHERE c.id IS NULL")
	if len(orphans) != 0 {
		t.Fatalf("orphan orders: %v", orphans)
	}
}

// TestAutocommitRetry: an autocommit statement whose commit fails because
// another transaction wrote what it read is re-run by the server, and the
// client only sees success.
func TestAutocommitRetry(t *testing.T) {
	var armed atomic.Bool
	var other *sql.DB
	var srv *Server
	srv = startServer(t, newDBOn(t, newMemStore(t, "t"), nil), func(c *Config) {
		c.Knobs.BeforeCommit = func(uint32) {
			if !armed.CompareAndSwap(true, false) {
				return
			}
			// A concurrent writer commits to the row the statement read.
			if _, err := other.Exec("UPDATE acct SET bal = bal + 100 WHERE id = 1"); err != nil {
				t.Errorf("concurrent update: %v", err)
			}
		}
	})
	setup := connect(t, srv, "")
	mustExec(t, setup, "CREATE DATABASE bank", "USE bank", "CREATE TABLE acct (id INT PRIMARY KEY, bal INT NOT NULL)", "INSERT INTO acct VALUES (1, 15)")
	other = connect(t, srv, "bank")
	mustExec(t, other, "SELECT 1")
	c := connect(t, srv, "bank")
	mustExec(t, c, "SELECT 1")
	armed.Store(true)
	res, err := c.Exec("UPDATE acct SET bal = bal - 10 WHERE id = 1")
	if err != nil {
		t.Fatalf("autocommit update: %v", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("rows affected %d", n)
	}
	if got := fmt.Sprint(queryStrings(t, setup, "SELECT bal FROM acct")); got != "[[105]]" {
		t.Fatalf("balance %s, want 105 (15 + 100 - 10)", got)
	}
	if srv.StatementRetries() != 1 {
		t.Fatalf("statement retries %d, want 1", srv.StatementRetries())
	}
}

// TestUsersPersistedAcrossNodes: a user created on one node can log in on
// another; a wrong password is refused.
func TestUsersPersistedAcrossNodes(t *testing.T) {
	a, b := twoNodes(t)
	mustExec(t, connect(t, a, ""),
		"CREATE USER 'app'@'%' IDENTIFIED BY 'pw'",
		"GRANT ALL ON *.* TO 'app'@'%'",
		"CREATE DATABASE appdb")
	good := connectAs(t, b, "app", "pw", "appdb")
	mustExec(t, good, "CREATE TABLE t (id INT PRIMARY KEY)", "INSERT INTO t VALUES (1)")
	bad := connectAs(t, b, "app", "wrong", "appdb")
	if err := bad.Ping(); mysqlCode(err) != 1045 {
		t.Fatalf("wrong password: want 1045, got %v", err)
	}
}

// TestLockWaitTimeout1205: a row locked by a coordinator that stopped after
// prewrite (its lock outlives the reader's wait) gives MySQL 1205.
func TestLockWaitTimeout1205(t *testing.T) {
	st := newMemStore(t, "t")
	clock := txn.NewLocalClock(0)
	srv := startServer(t, newDBOn(t, st, clock, func(c *txn.DBConfig) { c.LockWaitTimeout = 300 * time.Millisecond }))
	db := connect(t, srv, "")
	mustExec(t, db, "CREATE DATABASE w", "USE w", "CREATE TABLE t (id INT PRIMARY KEY, v INT)", "INSERT INTO t VALUES (1, 1)")
	var key []byte
	rows := queryStrings(t, db, "SELECT id FROM t")
	if len(rows) != 1 {
		t.Fatal(rows)
	}
	// Find the row's key through the store: the only key of the data range.
	crashing := newDBOn(t, st, clock, func(c *txn.DBConfig) {
		c.LockTTL = time.Minute
		c.Knobs = &txn.TestingKnobs{Disable1PC: true, AfterPrewrite: func(*txn.Txn) error { return txn.ErrCoordinatorStopped() }}
	})
	ctx := context.Background()
	tx, err := crashing.Begin(ctx, txn.TxnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kvs, err := tx.Scan(ctx, []byte("t"), []byte("u"), 1, false)
	if err != nil || len(kvs) != 1 {
		t.Fatalf("scan data range: %v %v", kvs, err)
	}
	key = kvs[0].Key
	if err := tx.Put(ctx, key, kvs[0].Value); err != nil {
		t.Fatal(err)
	}
	_ = tx.Commit(ctx) // stops after prewrite: the lock stays
	_, err = db.Exec("UPDATE t SET v = 2 WHERE id = 1")
	if mysqlCode(err) != 1205 {
		t.Fatalf("want 1205, got %v", err)
	}
}

// TestAutoIncrementAcrossNodes: concurrent automatic inserts through two
// nodes never collide.
func TestAutoIncrementAcrossNodes(t *testing.T) {
	a, b := twoNodes(t)
	mustExec(t, connect(t, a, ""), "CREATE DATABASE ai", "USE ai", "CREATE TABLE t (id BIGINT AUTO_INCREMENT PRIMARY KEY, node INT NOT NULL)")
	var wg sync.WaitGroup
	for n, srv := range []*Server{a, b} {
		db := connect(t, srv, "ai")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				if _, err := db.Exec("INSERT INTO t (node) VALUES (?)", n); err != nil {
					t.Errorf("node %d insert %d: %v", n, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	check := connect(t, a, "ai")
	if got := fmt.Sprint(queryStrings(t, check, "SELECT COUNT(*), COUNT(DISTINCT id) FROM t")); got != "[[80 80]]" {
		t.Fatalf("rows/distinct ids: %s", got)
	}
	for n := 0; n < 2; n++ {
		ids := queryStrings(t, check, "SELECT id FROM t WHERE node = ? ORDER BY id", n)
		if len(ids) != 40 {
			t.Fatalf("node %d: %d rows", n, len(ids))
		}
	}
}

// TestFailedAutocommitStatementDoesNotPinSnapshot: after an autocommit
// statement fails while executing (its transaction had begun), the next
// statement reads a fresh snapshot (the leftover transaction is dropped and
// rolled back, by the engine or by Session.ValidateSession).
func TestFailedAutocommitStatementDoesNotPinSnapshot(t *testing.T) {
	c := newTestCluster(t)
	setup := connect(t, c.srv, "")
	mustExec(t, setup, "CREATE DATABASE v", "USE v", "CREATE TABLE t (id INT PRIMARY KEY, doc VARCHAR(20))", "INSERT INTO t VALUES (1, 'not json')")
	a := connect(t, c.srv, "v")
	if _, err := a.Exec("SELECT id, JSON_EXTRACT(doc, '$.x') FROM t"); err == nil {
		t.Fatal("expected the JSON_EXTRACT of a non-JSON string to fail")
	}
	mustExec(t, setup, "INSERT INTO t VALUES (2, '{}')")
	if got := fmt.Sprint(queryStrings(t, a, "SELECT id FROM t ORDER BY id")); got != "[[1] [2]]" {
		t.Fatalf("after a failed statement: got %s, want both rows", got)
	}
}
