package tests

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/quorumdb/quorumdb/node"
	"github.com/quorumdb/quorumdb/node/proxy"
	"github.com/quorumdb/quorumdb/node/workload"
)

// scriptCluster drives scripts/cluster.sh: real node processes, each with
// its own data directory, plus a `quorumdb etcd` process.
type scriptCluster struct {
	t        *testing.T
	root     string
	env      []string
	sqlBase  int
	httpBase int
}

// freePortBlock returns a base port p such that p..p+n-1 were free a moment
// ago (the kernel hands out distinct ephemeral ports, and the block is
// checked by binding each).
func freePortBlock(t *testing.T, n int) int {
	t.Helper()
	for attempt := 0; attempt < 50; attempt++ {
		base := 20000 + rand.IntN(20000)
		ok := true
		for i := 0; i < n && ok; i++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port block")
	return 0
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "quorumdb")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/quorumdb")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build quorumdb: %v\n%s", err, out)
	}
	return bin
}

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller")
	}
	return filepath.Dir(filepath.Dir(file))
}

func newScriptCluster(t *testing.T, nodeFlags string) *scriptCluster {
	t.Helper()
	base := freePortBlock(t, 12)
	c := &scriptCluster{t: t, root: repoRoot(t), sqlBase: base + 2, httpBase: base + 8}
	c.env = append(os.Environ(),
		"QDB_DIR="+t.TempDir(),
		"QDB_BIN="+buildBinary(t),
		fmt.Sprintf("QDB_ETCD_PORT=%d", base),
		fmt.Sprintf("QDB_SQL_PORT=%d", base+2),
		fmt.Sprintf("QDB_RPC_PORT=%d", base+5),
		fmt.Sprintf("QDB_HTTP_PORT=%d", base+8),
		"QDB_NODE_FLAGS="+nodeFlags,
	)
	t.Cleanup(func() { _, _ = c.run("stop") })
	return c
}

func (c *scriptCluster) run(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(c.root, "scripts", "cluster.sh"), args...)
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *scriptCluster) must(args ...string) string {
	c.t.Helper()
	out, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (c *scriptCluster) sqlAddr(i int) string  { return fmt.Sprintf("127.0.0.1:%d", c.sqlBase+i-1) }
func (c *scriptCluster) httpAddr(i int) string { return fmt.Sprintf("127.0.0.1:%d", c.httpBase+i-1) }

// localRanges returns node i's view of the ranges it hosts.
func (c *scriptCluster) localRanges(i int) (map[uint64]node.RangeStatus, error) {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + c.httpAddr(i) + "/api/ranges")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var rs []node.RangeStatus
	if err := json.NewDecoder(resp.Body).Decode(&rs); err != nil {
		return nil, err
	}
	out := map[uint64]node.RangeStatus{}
	for _, r := range rs {
		if r.LocalReplica {
			out[r.RangeID] = r
		}
	}
	return out, nil
}

// isConnectionError reports an error of the connection (the node behind
// the proxy died): the statement's outcome is unknown only for a commit,
// and the client reconnects.
func isConnectionError(err error) bool {
	return errors.Is(err, mysql.ErrInvalidConn) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, sql.ErrConnDone) || strings.Contains(err.Error(), "connection refused") ||
		strings.Contains(err.Error(), "broken pipe") || strings.Contains(err.Error(), "connection reset")
}

// TestScriptClusterThroughProxyWithKill is the product's end-to-end test:
// scripts/cluster.sh starts 3 node processes, an application talks to them
// only through `quorumdb proxy`'s load balancer, one node is killed with
// SIGKILL: the application keeps committing (it sees only retryable errors),
// and the killed node, restarted on its data directory, catches up.
func TestScriptClusterThroughProxyWithKill(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash not available")
	}
	c := newScriptCluster(t, "--liveness-ttl 2s")
	t.Log(c.must("start", "3"))

	var backends []proxy.Backend
	for i := 1; i <= 3; i++ {
		backends = append(backends, proxy.Backend{Name: fmt.Sprintf("n%d", i), SQLAddr: c.sqlAddr(i), HTTPAddr: c.httpAddr(i)})
	}
	p, err := proxy.New(proxy.Config{ListenAddr: "127.0.0.1:0", Backends: backends, CheckInterval: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	go func() { _ = p.Serve(ctx) }()
	defer p.Close()

	db, err := workload.Open(p.Addr().String(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(4)
	bank := &workload.Bank{DBs: []*sql.DB{db}, Accounts: 6, Initial: 100}
	waitUntil(t, "bank setup through the proxy", 60*time.Second, func() bool { return bank.Setup(ctx) == nil })

	// Transfers through the proxy; connection errors are retried by the
	// application, as a real one would.
	var transfers, connErrors, otherErrors atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		rng := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-stop:
				return
			default:
			}
			err := bank.Transfer(ctx, db, rng)
			switch {
			case err == nil:
				transfers.Add(1)
			case isConnectionError(err) || workload.IsRetryable(err):
				connErrors.Add(1)
			default:
				otherErrors.Add(1)
				lastErr.Store(err.Error())
			}
		}
	}()
	waitUntil(t, "transfers before the kill", 60*time.Second, func() bool { return transfers.Load() >= 20 })
	// Kill only once every range has three voters: with two, losing one
	// would (correctly) stop the range.
	waitUntil(t, "every range replicated on 3 nodes", 60*time.Second, func() bool {
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + c.httpAddr(1) + "/api/ranges")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var rs []node.RangeStatus
		if json.NewDecoder(resp.Body).Decode(&rs) != nil || len(rs) == 0 {
			return false
		}
		for _, r := range rs {
			if len(r.Replicas) != 3 {
				return false
			}
			for _, rep := range r.Replicas {
				if rep.Type != 0 {
					return false
				}
			}
		}
		return true
	})

	c.must("kill", "2")
	killedAt := transfers.Load()
	waitUntil(t, "transfers to continue after killing node 2", 60*time.Second, func() bool {
		if transfers.Load() >= killedAt+20 {
			return true
		}
		if otherErrors.Load() > 0 {
			t.Fatalf("transfer failed after the kill: %v", lastErr.Load())
		}
		return false
	})
	waitUntil(t, "the proxy to take node 2 out", 10*time.Second, func() bool {
		for _, s := range p.Status() {
			if s.Name == "n2" {
				return !s.Healthy
			}
		}
		return false
	})

	c.must("restart", "2")
	restartedAt := transfers.Load()
	waitUntil(t, "transfers after the restart", 60*time.Second, func() bool { return transfers.Load() >= restartedAt+20 })
	close(stop)
	<-done
	if n := otherErrors.Load(); n > 0 {
		t.Fatalf("%d transfers failed with non-retryable errors, e.g. %v", n, lastErr.Load())
	}

	// The restarted node catches up: its replicas reach the applied index
	// of the other replicas once writes have stopped.
	waitUntil(t, "node 2 to catch up", 30*time.Second, func() bool {
		views := make([]map[uint64]node.RangeStatus, 3)
		for i := 1; i <= 3; i++ {
			v, err := c.localRanges(i)
			if err != nil {
				return false
			}
			views[i-1] = v
		}
		for id, r := range views[0] {
			for _, v := range views[1:] {
				if o, ok := v[id]; !ok || o.Applied != r.Applied {
					return false
				}
			}
		}
		return len(views[1]) > 0
	})
	total, accounts, err := bank.Total(ctx, db)
	if err != nil || total != 600 || accounts != 6 {
		t.Fatalf("after the kill and restart: total %d over %d accounts (%v); want 600 over 6", total, accounts, err)
	}
	t.Logf("transfers committed %d, retried after errors %d; node 2 caught up", transfers.Load(), connErrors.Load())
}
