package qsql

import (
	"fmt"
	"testing"
)

// BenchmarkPointSelect: prepared SELECT by primary key over the wire.
func BenchmarkPointSelect(b *testing.B) {
	c := newTestCluster(b)
	db := connect(b, c.srv, "")
	mustExec(b, db, "CREATE DATABASE bench", "USE bench", "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))")
	for i := 0; i < 100; i++ {
		mustExec(b, db, fmt.Sprintf("INSERT INTO t VALUES (%d, 'v%d')", i, i))
	}
	stmt, err := db.Prepare("SELECT v FROM t WHERE id = ?")
	if err != nil {
		b.Fatal(err)
	}
	defer stmt.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var v string
		if err := stmt.QueryRow(i % 100).Scan(&v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInsert: autocommit single-row inserts over the wire.
func BenchmarkInsert(b *testing.B) {
	c := newTestCluster(b)
	db := connect(b, c.srv, "")
	mustExec(b, db, "CREATE DATABASE bench", "USE bench", "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), KEY v_idx (v))")
	stmt, err := db.Prepare("INSERT INTO t VALUES (?, ?)")
	if err != nil {
		b.Fatal(err)
	}
	defer stmt.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := stmt.Exec(i, fmt.Sprint("v", i)); err != nil {
			b.Fatal(err)
		}
	}
}
