package qsql

import (
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/txn"
)

// TestFollowerReadsSessionVariable: with quorumdb_follower_reads on, a READ
// ONLY transaction and an autocommit SELECT read a snapshot
// FollowerReadStaleness old (here 1.5 s, so the checks right after an
// insert hold on a loaded machine): a row committed just before is not
// there yet, and appears once the staleness has passed. Read-write
// transactions are unchanged; a write in a READ ONLY one is refused.
func TestFollowerReadsSessionVariable(t *testing.T) {
	st := newMemStore(t, "t")
	db := newDBOn(t, st, nil, func(c *txn.DBConfig) { c.FollowerReadStaleness = 1500 * time.Millisecond })
	srv := startServer(t, db)
	c := connect(t, srv, "")
	c.SetMaxOpenConns(1)
	mustExec(t, c, "CREATE DATABASE fr", "USE fr", "CREATE TABLE t (id INT PRIMARY KEY)", "INSERT INTO t VALUES (1)")
	expectRows(t, c, "SELECT @@quorumdb_follower_reads", "[[0]]")
	mustExec(t, c, "SET quorumdb_follower_reads = ON")
	expectRows(t, c, "SELECT @@quorumdb_follower_reads", "[[1]]")

	readOnlyCount := func() (n int, err error) {
		tx, err := c.Begin()
		if err != nil {
			return 0, err
		}
		defer func() { _ = tx.Rollback() }()
		if _, err := tx.Exec("START TRANSACTION READ ONLY"); err != nil {
			return 0, err
		}
		err = tx.QueryRow("SELECT COUNT(*) FROM t").Scan(&n)
		if _, cerr := tx.Exec("COMMIT"); err == nil {
			err = cerr
		}
		return n, err
	}
	waitCount := func(want int) time.Duration {
		t.Helper()
		start := time.Now()
		deadline := start.Add(10 * time.Second)
		for {
			n, err := readOnlyCount()
			if err == nil && n == want {
				return time.Since(start)
			}
			if time.Now().After(deadline) {
				t.Fatalf("READ ONLY follower-reads transaction: count %d, err %v; want %d within 10 s", n, err, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitCount(1) // the table and its first row are old enough

	mustExec(t, c, "INSERT INTO t VALUES (2)")
	if n, err := readOnlyCount(); err != nil || n != 1 {
		t.Fatalf("follower-reads snapshot right after the insert: count %d, %v; want the older 1", n, err)
	}
	// An autocommit SELECT reads the follower-read snapshot too; a
	// read-write transaction reads the present.
	expectRows(t, c, "SELECT COUNT(*) FROM t", "[[1]]")
	mustExec(t, c, "BEGIN")
	expectRows(t, c, "SELECT COUNT(*) FROM t", "[[2]]")
	mustExec(t, c, "COMMIT")
	took := waitCount(2)
	t.Logf("the insert became visible to follower-reads transactions after %v", took)

	// A write in a READ ONLY transaction is refused with a clear error.
	tx, err := c.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("START TRANSACTION READ ONLY"); err != nil {
		t.Fatal(err)
	}
	_, werr := tx.Exec("INSERT INTO t VALUES (99)")
	_ = tx.Rollback()
	if mysqlCode(werr) != 1792 {
		t.Fatalf("write in a READ ONLY transaction: %v, want error 1792 (and the connection kept)", werr)
	}

	// Off again: READ ONLY transactions read the present.
	mustExec(t, c, "SET quorumdb_follower_reads = OFF", "INSERT INTO t VALUES (3)")
	if n, err := readOnlyCount(); err != nil || n != 3 {
		t.Fatalf("READ ONLY with follower reads off: count %d, %v; want 3", n, err)
	}
}

func TestIsPlainSelect(t *testing.T) {
	for q, want := range map[string]bool{
		"SELECT c FROM t WHERE id = ?":              true,
		"  select 1":                                true,
		"(SELECT a FROM t) UNION (SELECT b FROM u)": true,
		"/* hint */ SELECT * FROM t":                true,
		"-- note\nSELECT * FROM t":                  true,
		"SELECT * FROM t FOR UPDATE":                false,
		"select * from t for share":                 false,
		"SELECT * FROM t LOCK IN SHARE MODE":        false,
		"SELECT a INTO @x FROM t":                   false,
		"INSERT INTO t SELECT * FROM u":             false,
		"UPDATE t SET a = 1":                        false,
		"SELECTED":                                  false,
		"WITH x AS (SELECT 1) DELETE FROM t":        false,
		"/* unterminated SELECT":                    false,
	} {
		if got := isPlainSelect(q); got != want {
			t.Errorf("isPlainSelect(%q) = %v, want %v", q, got, want)
		}
	}
}
