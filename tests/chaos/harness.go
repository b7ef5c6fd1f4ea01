package chaos

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// ClusterConfig describes a cluster of real quorumdb processes.
type ClusterConfig struct {
	// Bin is the quorumdb binary.
	Bin string
	// Dir holds the data directories and logs (the run's results dir).
	Dir string
	// Nodes is the number of node processes (3 or 5).
	Nodes int
	// Name is the cluster name (default "chaos").
	Name string
	// LivenessTTL is each node's --liveness-ttl (default 3s).
	LivenessTTL time.Duration
	// NoNetns forces the loopback network even when namespaces work.
	NoNetns bool
	Logger  *slog.Logger
}

// Cluster is etcd plus Nodes quorumdb processes.
type Cluster struct {
	cfg ClusterConfig
	net network
	// etcdURL is etcd's client URL.
	etcdURL string
	etcd    *proc
	Nodes   []*NodeProc
	http    *http.Client
	log     *slog.Logger
}

// proc is one child process, restartable with the same arguments.
type proc struct {
	name    string
	index   int
	args    []string
	logPath string

	mu     sync.Mutex
	cmd    *incarnation
	paused bool
}

// incarnation is one run of a process.
type incarnation struct {
	pid  int
	done chan struct{} // closed when it exited
	err  error
}

// NodeProc is one quorumdb node process.
type NodeProc struct {
	proc
	Host     string
	SQLAddr  string
	RPCAddr  string
	HTTPAddr string
	DataDir  string
	// ID is the node's cluster ID, known once it was ready.
	ID uint64
}

// Name is the node's name (n1, n2, …).
func (n *NodeProc) Name() string { return n.name }

// StartCluster starts etcd and the nodes and waits until every node is
// ready. Cleanup is Close.
func StartCluster(ctx context.Context, cfg ClusterConfig) (_ *Cluster, err error) {
	if cfg.Name == "" {
		cfg.Name = "chaos"
	}
	if cfg.LivenessTTL == 0 {
		cfg.LivenessTTL = 3 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{
		cfg:  cfg,
		http: &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}},
		log:  cfg.Logger,
	}
	if !cfg.NoNetns && netnsAvailable() {
		nn, nerr := newNetnsNetwork(cfg.Nodes)
		if nerr != nil {
			c.log.Warn("network namespaces unavailable, using loopback addresses", "err", nerr)
			c.net = loopbackNetwork{}
		} else {
			c.net = nn
		}
	} else {
		c.net = loopbackNetwork{}
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	port := func(host string, fixed int) (string, error) {
		if c.net.FixedPorts() {
			return net.JoinHostPort(host, strconv.Itoa(fixed)), nil
		}
		return freePort(host)
	}
	eh := c.net.Host(etcdIndex)
	clientAddr, err := port(eh, 2379)
	if err != nil {
		return nil, err
	}
	peerAddr, err := port(eh, 2380)
	if err != nil {
		return nil, err
	}
	c.etcdURL = "http://" + clientAddr
	c.etcd = &proc{name: "etcd", index: etcdIndex, logPath: filepath.Join(cfg.Dir, "etcd.log"), args: []string{
		"etcd", "--name", "e1", "--data-dir", filepath.Join(cfg.Dir, "etcd"),
		"--client-url", "http://" + clientAddr, "--peer-url", "http://" + peerAddr, "--log-level", "warn",
	}}
	if err := c.startProc(ctx, c.etcd); err != nil {
		return nil, err
	}
	if err := c.waitEtcd(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	for i := 0; i < cfg.Nodes; i++ {
		h := c.net.Host(i)
		n := &NodeProc{Host: h, DataDir: filepath.Join(cfg.Dir, fmt.Sprintf("n%d", i+1))}
		if n.SQLAddr, err = port(c.net.SQLHost(i), 3306); err != nil {
			return nil, err
		}
		if n.RPCAddr, err = port(h, 5000); err != nil {
			return nil, err
		}
		if n.HTTPAddr, err = port(h, 8080); err != nil {
			return nil, err
		}
		n.proc = proc{name: fmt.Sprintf("n%d", i+1), index: i, logPath: filepath.Join(cfg.Dir, fmt.Sprintf("n%d.log", i+1)), args: []string{
			"start", "--data-dir", n.DataDir, "--node-name", fmt.Sprintf("n%d", i+1), "--cluster", cfg.Name,
			"--sql-addr", n.SQLAddr, "--rpc-addr", n.RPCAddr, "--http-addr", n.HTTPAddr,
			"--etcd", "http://" + clientAddr, "--liveness-ttl", cfg.LivenessTTL.String(), "--log-level", "info",
		}}
		c.Nodes = append(c.Nodes, n)
	}
	// The first node bootstraps the cluster; the others join after it.
	for _, n := range c.Nodes {
		if err := c.startProc(ctx, &n.proc); err != nil {
			return nil, err
		}
		if err := c.WaitReady(ctx, n, 60*time.Second); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Mechanism says how partitions are made.
func (c *Cluster) Mechanism() string { return c.net.Mechanism() }

// CanPartition reports whether partition nemeses can run.
func (c *Cluster) CanPartition() bool { _, ok := c.net.(*netnsNetwork); return ok }

// EtcdEndpoint is etcd's client URL.
func (c *Cluster) EtcdEndpoint() string { return c.etcdURL }

func freePort(host string) (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("chaos: free port on %s: %w", host, err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func (c *Cluster) startProc(ctx context.Context, p *proc) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.cmd.done:
		default:
			return nil // running
		}
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("chaos: log of %s: %w", p.name, err)
	}
	fmt.Fprintf(logf, "=== %s start %s\n", time.Now().Format(time.RFC3339Nano), p.name)
	// The process outlives ctx's caller only until Close; it is not bound
	// to ctx so a cancelled workload does not kill the cluster.
	cmd := c.net.Command(context.Background(), p.index, c.cfg.Bin, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("chaos: start %s: %w", p.name, err)
	}
	e := &incarnation{pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		e.err = cmd.Wait()
		fmt.Fprintf(logf, "=== %s exit %s: %v\n", time.Now().Format(time.RFC3339Nano), p.name, e.err)
		logf.Close()
		close(e.done)
	}()
	p.cmd, p.paused = e, false
	return nil
}

// signal sends sig to the process (no-op when it is not running).
func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	select {
	case <-p.cmd.done:
		return nil
	default:
	}
	if err := syscall.Kill(p.cmd.pid, sig); err != nil {
		return fmt.Errorf("chaos: signal %v to %s: %w", sig, p.name, err)
	}
	switch sig {
	case syscall.SIGSTOP:
		p.paused = true
	case syscall.SIGCONT:
		p.paused = false
	}
	return nil
}

// stop sends sig (after SIGCONT, so a paused process can act on it) and
// waits for the exit; SIGKILL after grace.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	e := p.cmd
	p.mu.Unlock()
	if e == nil {
		return
	}
	_ = p.signal(syscall.SIGCONT)
	_ = p.signal(sig)
	select {
	case <-e.done:
		return
	case <-time.After(grace):
	}
	_ = syscall.Kill(e.pid, syscall.SIGKILL)
	<-e.done
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.cmd.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL to node n and waits for it to exit.
func (c *Cluster) Kill(n *NodeProc) { n.stop(syscall.SIGKILL, 0) }

// Restart starts a stopped node again on its data directory and waits
// until it is ready.
func (c *Cluster) Restart(ctx context.Context, n *NodeProc) error {
	if err := c.startProc(ctx, &n.proc); err != nil {
		return err
	}
	return c.WaitReady(ctx, n, 60*time.Second)
}

// KillEtcd / StartEtcd stop and restart the etcd process.
func (c *Cluster) KillEtcd() { c.etcd.stop(syscall.SIGKILL, 0) }

// StartEtcd restarts etcd on its data directory.
func (c *Cluster) StartEtcd(ctx context.Context) error {
	if err := c.startProc(ctx, c.etcd); err != nil {
		return err
	}
	return c.waitEtcd(ctx, 30*time.Second)
}

func (c *Cluster) waitEtcd(ctx context.Context, d time.Duration) error {
	cli, err := c.etcdClient()
	if err != nil {
		return err
	}
	defer cli.Close()
	return waitFor(ctx, d, func(ctx context.Context) error {
		if !c.etcd.running() {
			return fmt.Errorf("etcd exited (see %s)", c.etcd.logPath)
		}
		_, err := cli.Get(ctx, "/quorumdb/", clientv3.WithCountOnly())
		return err
	})
}

func (c *Cluster) etcdClient() (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.EtcdEndpoint()}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("chaos: etcd client: %w", err)
	}
	return cli, nil
}

// WaitReady polls node n's /ready until it answers 200.
func (c *Cluster) WaitReady(ctx context.Context, n *NodeProc, d time.Duration) error {
	err := waitFor(ctx, d, func(ctx context.Context) error {
		if !n.running() {
			return fmt.Errorf("%s exited (see %s)", n.name, n.logPath)
		}
		return c.get(ctx, n, "/ready", nil)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", n.name, err)
	}
	if n.ID == 0 {
		var nodes []struct {
			ID   uint64 `json:"id"`
			Name string `json:"name"`
		}
		if err := c.get(ctx, n, "/api/nodes", &nodes); err == nil {
			for _, x := range nodes {
				if x.Name == n.name {
					n.ID = x.ID
				}
			}
		}
	}
	return nil
}

// get fetches path from node n's HTTP server into out (JSON) or just
// checks for a 200.
func (c *Cluster) get(ctx context.Context, n *NodeProc, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.HTTPAddr+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s%s: %s: %s", n.HTTPAddr, path, resp.Status, body)
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

// waitFor retries check until it succeeds or d passes.
func waitFor(ctx context.Context, d time.Duration, check func(context.Context) error) error {
	deadline := time.Now().Add(d)
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		last = check(cctx)
		cancel()
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%w after %s: %w", ErrNotReady, d, last)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close stops every process (SIGTERM, then SIGKILL) and removes the
// network namespaces and partitions.
func (c *Cluster) Close() {
	if c.net != nil {
		_ = c.net.HealAll()
	}
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.stop(syscall.SIGTERM, 10*time.Second)
		}()
	}
	wg.Wait()
	if c.etcd != nil {
		c.etcd.stop(syscall.SIGTERM, 5*time.Second)
	}
	if c.net != nil {
		_ = c.net.Close()
	}
}

// DB opens a SQL handle to node n.
func (c *Cluster) DB(n *NodeProc, database string) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.DBName = "root", "tcp", n.SQLAddr, database
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 2*time.Second, 6*time.Second, 6*time.Second
	cfg.DialFunc = func(ctx context.Context, _, addr string) (net.Conn, error) {
		return c.net.DialSQL(ctx, n.index, addr)
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("chaos: open %s: %w", n.SQLAddr, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxIdleConns(4)
	db.SetConnMaxLifetime(time.Minute)
	return db, nil
}
