package qsql

import (
	"context"
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

// TestServerOnAddress: a server started on an address (no listener given)
// reports the port it bound and serves clients.
func TestServerOnAddress(t *testing.T) {
	db, _ := newTestDB(t)
	srv, err := NewServer(context.Background(), Config{Address: "127.0.0.1:0", DB: db, Logger: quietLogger(), RootPassword: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve()
	}()
	defer func() {
		_ = srv.Close()
		<-done
	}()
	if got := fmt.Sprint(queryStrings(t, connectAs(t, srv, "root", "secret", ""), "SELECT 1 + 1")); got != "[[2]]" {
		t.Fatalf("got %s", got)
	}
	if err := connectAs(t, srv, "root", "", "").Ping(); mysqlCode(err) != 1045 {
		t.Fatalf("root without the configured password: want 1045, got %v", err)
	}
}

// TestCloseDropsOpenConnections: Close ends open client connections, so a
// stopping node does not keep serving on a closed store.
func TestCloseDropsOpenConnections(t *testing.T) {
	db, _ := newTestDB(t)
	srv, err := NewServer(context.Background(), Config{Address: "127.0.0.1:0", DB: db, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve()
	}()
	client := connect(t, srv, "")
	mustExec(t, client, "SELECT 1")
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	<-done
	if _, err := client.Exec("SELECT 1"); err == nil {
		t.Fatal("query on a closed server succeeded")
	}
}
