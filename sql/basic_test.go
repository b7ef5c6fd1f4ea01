package qsql

import (
	"fmt"
	"testing"
)

func TestCreateInsertSelect(t *testing.T) {
	c := newTestCluster(t)
	db := connect(t, c.srv, "")
	mustExec(t, db,
		"CREATE DATABASE shop",
		"USE shop",
		"CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL, email VARCHAR(100), UNIQUE KEY email_uq (email))",
		"INSERT INTO customers VALUES (1, 'ann', 'ann@x'), (2, 'bob', NULL), (3, 'cy', 'cy@x')",
	)
	got := queryStrings(t, db, "SELECT id, name, email FROM customers ORDER BY id")
	want := [][]string{{"1", "ann", "ann@x"}, {"2", "bob", "NULL"}, {"3", "cy", "cy@x"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	got = queryStrings(t, db, "SELECT name FROM customers WHERE email = 'cy@x'")
	if fmt.Sprint(got) != "[[cy]]" {
		t.Fatalf("index lookup: got %v", got)
	}
}
