package qsql

import (
	"fmt"
	"testing"
)

// TestFailedDDLKeepsData: DDL that fails half way (duplicate values for a
// new primary or unique key, a bad conversion) leaves the table as it was.
func TestFailedDDLKeepsData(t *testing.T) {
	c := newTestCluster(t)
	db := connect(t, c.srv, "")
	mustExec(t, db, "CREATE DATABASE dd", "USE dd", "CREATE TABLE t (a INT, b VARCHAR(10))",
		"INSERT INTO t VALUES (1, 'x'), (2, 'y'), (2, 'z'), (3, '12345')")
	for _, stmt := range []string{
		"ALTER TABLE t ADD PRIMARY KEY (a)",
		"ALTER TABLE t ADD UNIQUE INDEX a_uq (a)",
		"ALTER TABLE t MODIFY COLUMN b INT",
	} {
		if _, err := db.Exec(stmt); err == nil {
			t.Fatalf("%s: expected an error", stmt)
		}
		if got := fmt.Sprint(queryStrings(t, db, "SELECT a, b FROM t ORDER BY a, b")); got != "[[1 x] [2 y] [2 z] [3 12345]]" {
			t.Fatalf("after failed %q: %s", stmt, got)
		}
	}
	if got := fmt.Sprint(queryStrings(t, db, "SHOW INDEXES FROM t")); got != "[]" {
		t.Fatalf("indexes after failed DDL: %s", got)
	}
}

// TestAddColumnDefaultsExistingRows: ADD COLUMN fills existing rows with
// the default evaluated over their values, wherever the column is placed,
// also for a keyless table whose rows must stay findable afterwards.
func TestAddColumnDefaultsExistingRows(t *testing.T) {
	c := newTestCluster(t)
	db := connect(t, c.srv, "")
	mustExec(t, db, "CREATE DATABASE ac", "USE ac",
		"CREATE TABLE k (a INT, b INT)", "INSERT INTO k VALUES (1, 10), (2, 20), (2, 20)",
		"ALTER TABLE k ADD COLUMN c INT DEFAULT (b + 1) FIRST",
		"CREATE TABLE p (id INT PRIMARY KEY, v INT)", "INSERT INTO p VALUES (1, 5)",
		"ALTER TABLE p ADD COLUMN w INT NOT NULL AFTER id")
	if got := fmt.Sprint(queryStrings(t, db, "SELECT c, a, b FROM k ORDER BY a")); got != "[[11 1 10] [21 2 20] [21 2 20]]" {
		t.Fatalf("keyless fill: %s", got)
	}
	mustExec(t, db, "DELETE FROM k WHERE a = 2 LIMIT 1", "UPDATE k SET b = 11 WHERE a = 1")
	if got := fmt.Sprint(queryStrings(t, db, "SELECT c, a, b FROM k ORDER BY a")); got != "[[11 1 11] [21 2 20]]" {
		t.Fatalf("keyless rows after fill: %s", got)
	}
	if got := fmt.Sprint(queryStrings(t, db, "SELECT id, w, v FROM p")); got != "[[1 0 5]]" {
		t.Fatalf("NOT NULL fill: %s", got)
	}
}
