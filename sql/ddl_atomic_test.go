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
