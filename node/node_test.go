package node

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startSingleNode(t *testing.T, dir string) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Start(ctx, Config{
		DataDir:               dir,
		SQLAddr:               "127.0.0.1:0",
		EmbeddedEtcd:          true,
		EmbeddedEtcdClientURL: "http://127.0.0.1:0",
		EmbeddedEtcdPeerURL:   "http://127.0.0.1:0",
		LivenessTTL:           2 * time.Second,
		RaftTickInterval:      20 * time.Millisecond,
		Logger:                quietLogger(),
	})
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	return n
}

func TestSingleNodeServesSQLAndSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	n := startSingleNode(t, dir)
	db, err := sql.Open("mysql", fmt.Sprintf("root@tcp(%s)/?timeout=5s", n.SQLAddr()))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"CREATE DATABASE bank",
		"CREATE TABLE bank.accounts (id INT PRIMARY KEY, owner VARCHAR(20), balance INT NOT NULL)",
		"INSERT INTO bank.accounts VALUES (1, 'alice', 15), (2, 'bob', 0)",
		"UPDATE bank.accounts SET balance = balance - 10 WHERE id = 1",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var bal int
	if err := db.QueryRow("SELECT balance FROM bank.accounts WHERE id = 1").Scan(&bal); err != nil || bal != 5 {
		t.Fatalf("balance = %d, %v; want 5", bal, err)
	}

	resp, err := http.Get("http://" + n.HTTPAddr() + "/ready")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/ready: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Get("http://" + n.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "quorumdb_raft_proposals_total") {
		t.Fatalf("/metrics lacks raft proposals:\n%s", body)
	}
	db.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}

	n = startSingleNode(t, dir)
	defer n.Stop(context.Background())
	db, err = sql.Open("mysql", fmt.Sprintf("root@tcp(%s)/?timeout=5s", n.SQLAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow("SELECT balance FROM bank.accounts WHERE id = 1").Scan(&bal); err != nil || bal != 5 {
		t.Fatalf("after restart balance = %d, %v; want 5", bal, err)
	}
}
