package qsql

import (
	"fmt"
	"testing"
)

func TestAnalyzeAndRowCount(t *testing.T) {
	c := newTestCluster(t)
	db := connect(t, c.srv, "")
	mustExec(t, db, "CREATE DATABASE s", "USE s", "CREATE TABLE t (id INT PRIMARY KEY, v INT, KEY v_idx (v))")
	for i := 0; i < 30; i++ {
		mustExec(t, db, fmt.Sprintf("INSERT INTO t VALUES (%d, %d)", i, i%3))
	}
	got := queryStrings(t, db, "ANALYZE TABLE t")
	if len(got) != 1 || got[0][2] != "status" || got[0][3] != "OK" {
		t.Fatalf("analyze: %v", got)
	}
	if got := fmt.Sprint(queryStrings(t, db, "SELECT COUNT(*) FROM t")); got != "[[30]]" {
		t.Fatalf("count: %s", got)
	}
	if got := fmt.Sprint(queryStrings(t, db, "SELECT table_rows FROM information_schema.tables WHERE table_schema = 's' AND table_name = 't'")); got != "[[30]]" {
		t.Fatalf("table_rows: %s", got)
	}
}
