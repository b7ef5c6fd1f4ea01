package proxy

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	sqle "github.com/dolthub/go-mysql-server"
	"github.com/dolthub/go-mysql-server/memory"
	"github.com/dolthub/go-mysql-server/server"
	gms "github.com/dolthub/go-mysql-server/sql"
	_ "github.com/go-sql-driver/mysql"
)

// mysqlBackend is a real MySQL-protocol server (go-mysql-server's in-memory
// engine) that owns one database named after it, so a client can tell which
// backend it reached; plus the HTTP /ready endpoint a QuorumDB node serves.
type mysqlBackend struct {
	name     string
	sqlAddr  string
	srv      *server.Server
	httpSrv  *http.Server
	httpAddr string
	ready    atomic.Bool
}

func startBackend(t *testing.T, name, sqlAddr string) *mysqlBackend {
	t.Helper()
	pro := memory.NewDBProvider(memory.NewDatabase(name))
	engine := sqle.NewDefault(pro)
	ln, err := net.Listen("tcp", sqlAddr)
	if err != nil {
		t.Fatalf("listen %s: %v", sqlAddr, err)
	}
	srv, err := server.NewServer(server.Config{Protocol: "tcp", Listener: ln}, engine, gms.NewContext, memory.NewSessionBuilder(pro), nil)
	if err != nil {
		t.Fatalf("mysql server: %v", err)
	}
	go func() { _ = srv.Start() }()
	b := &mysqlBackend{name: name, sqlAddr: ln.Addr().String(), srv: srv}
	b.ready.Store(true)
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen http: %v", err)
	}
	b.httpAddr = hln.Addr().String()
	b.httpSrv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ready" && b.ready.Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	})}
	go func() { _ = b.httpSrv.Serve(hln) }()
	t.Cleanup(b.stop)
	return b
}

func (b *mysqlBackend) stop() {
	_ = b.srv.Close()
	_ = b.httpSrv.Close()
}

// whichBackend opens a new connection through the proxy and returns the
// name of the backend that answered.
func whichBackend(ctx context.Context, addr string) (string, error) {
	db, err := sql.Open("mysql", fmt.Sprintf("root@tcp(%s)/?timeout=2s", addr))
	if err != nil {
		return "", err
	}
	defer db.Close()
	db.SetMaxIdleConns(0)
	rows, err := db.QueryContext(ctx, "SHOW DATABASES")
	if err != nil {
		return "", err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return "", err
		}
		if len(name) > 4 && name[:4] == "node" {
			return name, nil
		}
	}
	return "", fmt.Errorf("no node database in SHOW DATABASES: %v", rows.Err())
}

func waitFor(t *testing.T, what string, deadline time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > deadline {
			t.Fatalf("timed out after %v waiting for %s", deadline, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func startProxy(t *testing.T, policy Policy, interval time.Duration, backends ...*mysqlBackend) *Proxy {
	t.Helper()
	cfg := Config{ListenAddr: "127.0.0.1:0", Policy: policy, CheckInterval: interval,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, b := range backends {
		cfg.Backends = append(cfg.Backends, Backend{Name: b.name, SQLAddr: b.sqlAddr, HTTPAddr: b.httpAddr})
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	go func() { _ = p.Serve(context.Background()) }()
	t.Cleanup(func() { p.Close() })
	return p
}

func healthy(p *Proxy, name string) bool {
	for _, s := range p.Status() {
		if s.Name == name {
			return s.Healthy
		}
	}
	return false
}

func TestProxyRoundRobinFailoverAndRecovery(t *testing.T) {
	ctx := context.Background()
	const interval = 100 * time.Millisecond
	b1 := startBackend(t, "node1", "127.0.0.1:0")
	b2 := startBackend(t, "node2", "127.0.0.1:0")
	b3 := startBackend(t, "node3", "127.0.0.1:0")
	p := startProxy(t, RoundRobin, interval, b1, b2, b3)
	addr := p.Addr().String()
	waitFor(t, "all backends healthy", 10*time.Second, func() bool {
		return healthy(p, "node1") && healthy(p, "node2") && healthy(p, "node3")
	})

	seen := map[string]int{}
	for i := 0; i < 6; i++ {
		name, err := whichBackend(ctx, addr)
		if err != nil {
			t.Fatalf("query through proxy: %v", err)
		}
		seen[name]++
	}
	if len(seen) != 3 {
		t.Fatalf("round-robin over 3 healthy backends reached %v", seen)
	}

	// Kill node2: the checker must take it out, and no new connection may
	// reach it afterwards.
	b2.stop()
	gap := waitFor(t, "node2 marked down", 20*interval, func() bool { return !healthy(p, "node2") })
	t.Logf("dead backend taken out after %v (check interval %v)", gap, interval)
	for i := 0; i < 10; i++ {
		name, err := whichBackend(ctx, addr)
		if err != nil {
			t.Fatalf("query after node2 died: %v", err)
		}
		if name == "node2" {
			t.Fatal("connection routed to a backend known dead")
		}
	}

	// A node that answers MySQL but says it is not ready is taken out too.
	b3.ready.Store(false)
	waitFor(t, "node3 marked down on /ready 503", 20*interval, func() bool { return !healthy(p, "node3") })
	for i := 0; i < 4; i++ {
		name, err := whichBackend(ctx, addr)
		if err != nil || name != "node1" {
			t.Fatalf("with node2 dead and node3 not ready got %q, %v; want node1", name, err)
		}
	}
	b3.ready.Store(true)

	// node2 comes back on the same address: it returns to the rotation.
	b2again := startBackend(t, "node2", b2.sqlAddr)
	b2again.httpAddr = b2.httpAddr
	// The old HTTP listener is closed; restart the ready endpoint too.
	hln, err := net.Listen("tcp", b2.httpAddr)
	if err != nil {
		t.Fatalf("relisten http: %v", err)
	}
	b2again.httpSrv.Close()
	b2again.httpSrv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })}
	go func() { _ = b2again.httpSrv.Serve(hln) }()
	waitFor(t, "node2 and node3 back", 50*interval, func() bool { return healthy(p, "node2") && healthy(p, "node3") })
	seen = map[string]int{}
	for i := 0; i < 6; i++ {
		name, err := whichBackend(ctx, addr)
		if err != nil {
			t.Fatalf("query after recovery: %v", err)
		}
		seen[name]++
	}
	if len(seen) != 3 {
		t.Fatalf("after recovery round-robin reached %v, want all 3", seen)
	}
}

func TestProxyLeastConnections(t *testing.T) {
	ctx := context.Background()
	b1 := startBackend(t, "node1", "127.0.0.1:0")
	b2 := startBackend(t, "node2", "127.0.0.1:0")
	p := startProxy(t, LeastConnections, 100*time.Millisecond, b1, b2)
	waitFor(t, "backends healthy", 10*time.Second, func() bool { return healthy(p, "node1") && healthy(p, "node2") })

	// Hold one connection open; the next ones must go to the other backend.
	held, err := sql.Open("mysql", fmt.Sprintf("root@tcp(%s)/", p.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	conn, err := held.Conn(ctx)
	if err != nil {
		t.Fatalf("hold connection: %v", err)
	}
	defer conn.Close()
	var heldOn string
	for _, s := range p.Status() {
		if s.ActiveConns == 1 {
			heldOn = s.Name
		}
	}
	if heldOn == "" {
		t.Fatalf("no backend counts the held connection: %+v", p.Status())
	}
	onlyHeld := func() bool {
		var sum int64
		for _, s := range p.Status() {
			sum += s.ActiveConns
		}
		return sum == 1
	}
	for i := 0; i < 4; i++ {
		// The previous probe's connection is released asynchronously once
		// its sockets close: wait until only the held one counts.
		waitFor(t, "probe connections released", 5*time.Second, onlyHeld)
		name, err := whichBackend(ctx, p.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if name == heldOn {
			t.Fatalf("least-connections sent a new connection to %s, which holds one while the other holds none", name)
		}
	}
}

func TestProxyNoHealthyBackendClosesClient(t *testing.T) {
	b1 := startBackend(t, "node1", "127.0.0.1:0")
	p := startProxy(t, RoundRobin, 50*time.Millisecond, b1)
	waitFor(t, "backend healthy", 10*time.Second, func() bool { return healthy(p, "node1") })
	b1.stop()
	waitFor(t, "backend down", 2*time.Second, func() bool { return !healthy(p, "node1") })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := whichBackend(ctx, p.Addr().String()); err == nil {
		t.Fatal("query succeeded with every backend dead")
	}
}

func TestProxyRejectsBadConfig(t *testing.T) {
	if _, err := New(Config{ListenAddr: "127.0.0.1:0"}); err == nil {
		t.Fatal("no backends accepted")
	}
	if _, err := New(Config{ListenAddr: "127.0.0.1:0", Policy: "random", Backends: []Backend{{Name: "a", SQLAddr: "127.0.0.1:1"}}}); err == nil {
		t.Fatal("unknown policy accepted")
	}
}
