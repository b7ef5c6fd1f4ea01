package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/quorumdb/quorumdb/cluster"
)

// LocalClusterConfig describes several nodes in one process sharing one
// embedded etcd member (run by the cluster, not by a node, so any node can be
// killed and restarted). `quorumdb demo` and the in-process
// integration tests start clusters this way.
type LocalClusterConfig struct {
	// Nodes is the number of nodes (default 3).
	Nodes int
	// DataDir holds one subdirectory per node (n1, n2, …). Required.
	DataDir string
	// Host is the address the nodes listen on (default 127.0.0.1).
	Host string
	// SQLBasePort: node i serves SQL on SQLBasePort+i-1; 0 picks free ports.
	SQLBasePort int
	// HTTPBasePort likewise for HTTP; 0 picks free ports.
	HTTPBasePort int
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Progress, when set, is told each startup step as it begins.
	Progress func(step string)
	// Template is copied into every node's Config before the per-node
	// fields are set (timings, placement, knobs).
	Template Config
}

// LocalCluster is a set of in-process nodes sharing one embedded etcd.
type LocalCluster struct {
	cfg   LocalClusterConfig
	etcdM *cluster.EmbeddedEtcd
	etcd  []string
	mu    sync.Mutex
	nodes []*Node // nil where a node is stopped
}

// StartLocalCluster starts the nodes one after the other and returns once
// every node serves SQL.
func StartLocalCluster(ctx context.Context, cfg LocalClusterConfig) (*LocalCluster, error) {
	if cfg.Nodes <= 0 {
		cfg.Nodes = 3
	}
	if cfg.DataDir == "" {
		return nil, errors.New("node: local cluster needs a data directory")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Progress == nil {
		cfg.Progress = func(string) {}
	}
	lc := &LocalCluster{cfg: cfg, nodes: make([]*Node, cfg.Nodes)}
	cfg.Progress("starting embedded etcd")
	m, err := cluster.StartEmbeddedEtcd(ctx, cluster.EmbeddedEtcdConfig{
		Dir:       filepath.Join(cfg.DataDir, "etcd"),
		Name:      "etcd1",
		ClientURL: "http://" + cfg.Host + ":0",
		PeerURL:   "http://" + cfg.Host + ":0",
	})
	if err != nil {
		return nil, fmt.Errorf("node: local cluster etcd: %w", err)
	}
	lc.etcdM, lc.etcd = m, m.Endpoints()
	for i := 1; i <= cfg.Nodes; i++ {
		if err := lc.StartNode(ctx, i); err != nil {
			lc.Stop(context.Background())
			return nil, err
		}
	}
	return lc, nil
}

func (lc *LocalCluster) nodeConfig(i int) Config {
	c := lc.cfg.Template
	c.Name = fmt.Sprintf("n%d", i)
	c.DataDir = filepath.Join(lc.cfg.DataDir, c.Name)
	c.Logger = lc.cfg.Logger.With("name", c.Name)
	c.SQLAddr = fmt.Sprintf("%s:%d", lc.cfg.Host, portOrZero(lc.cfg.SQLBasePort, i))
	c.HTTPAddr = fmt.Sprintf("%s:%d", lc.cfg.Host, portOrZero(lc.cfg.HTTPBasePort, i))
	c.RPCAddr = lc.cfg.Host + ":0"
	c.EtcdEndpoints = lc.etcd
	return c
}

func portOrZero(base, i int) int {
	if base == 0 {
		return 0
	}
	return base + i - 1
}

// StartNode starts (or restarts, on the same data directory) node i (1-based).
func (lc *LocalCluster) StartNode(ctx context.Context, i int) error {
	if i < 1 || i > lc.Size() {
		return fmt.Errorf("node: local cluster has no node %d", i)
	}
	cfg := lc.nodeConfig(i)
	lc.cfg.Progress(fmt.Sprintf("starting node %d (SQL %s)", i, cfg.SQLAddr))
	n, err := Start(ctx, cfg)
	if err != nil {
		return fmt.Errorf("node %d: %w", i, err)
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	lc.nodes[i-1] = n
	return nil
}

// AddNode starts one more node (a new member joining the cluster) and
// returns its number.
func (lc *LocalCluster) AddNode(ctx context.Context) (int, error) {
	lc.mu.Lock()
	lc.nodes = append(lc.nodes, nil)
	i := len(lc.nodes)
	lc.mu.Unlock()
	return i, lc.StartNode(ctx, i)
}

// Node returns node i (1-based), nil if it is stopped.
func (lc *LocalCluster) Node(i int) *Node {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return lc.nodes[i-1]
}

// Nodes returns the running nodes.
func (lc *LocalCluster) Nodes() []*Node {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	var out []*Node
	for _, n := range lc.nodes {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// Size is the number of node slots.
func (lc *LocalCluster) Size() int {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return len(lc.nodes)
}

// EtcdEndpoints are the endpoints of the cluster's etcd.
func (lc *LocalCluster) EtcdEndpoints() []string { return lc.etcd }

// KillNode stops node i abruptly (see Node.Kill).
func (lc *LocalCluster) KillNode(i int) {
	lc.mu.Lock()
	n := lc.nodes[i-1]
	lc.nodes[i-1] = nil
	lc.mu.Unlock()
	if n != nil {
		n.Kill()
	}
}

// StopNode stops node i gracefully.
func (lc *LocalCluster) StopNode(ctx context.Context, i int) error {
	lc.mu.Lock()
	n := lc.nodes[i-1]
	lc.nodes[i-1] = nil
	lc.mu.Unlock()
	if n == nil {
		return nil
	}
	return n.Stop(ctx)
}

// Stop stops every node, then etcd.
func (lc *LocalCluster) Stop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var errs []error
	for i := lc.Size(); i >= 1; i-- {
		if err := lc.StopNode(ctx, i); err != nil {
			errs = append(errs, fmt.Errorf("node %d: %w", i, err))
		}
	}
	if lc.etcdM != nil {
		lc.etcdM.Close()
	}
	return errors.Join(errs...)
}
