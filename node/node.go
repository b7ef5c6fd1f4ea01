package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/quorumdb/quorumdb/cluster"
	"github.com/quorumdb/quorumdb/kv"
	"github.com/quorumdb/quorumdb/raftgroup"
	qsql "github.com/quorumdb/quorumdb/sql"
	"github.com/quorumdb/quorumdb/txn"
)

// Config configures one node process.
type Config struct {
	// Name is the node's human name (default "node-<id>").
	Name string
	// Cluster names the cluster; every node of a cluster uses the same name
	// (default "quorumdb").
	Cluster string
	// DataDir holds the node's identity, pebble store and, with
	// EmbeddedEtcd, the etcd member's data. Required.
	DataDir string

	// SQLAddr, RPCAddr and HTTPAddr are the listen addresses (host:port;
	// port 0 picks a free one). SQL defaults to 127.0.0.1:4000, RPC to
	// 127.0.0.1:0, HTTP to 127.0.0.1:0.
	SQLAddr  string
	RPCAddr  string
	HTTPAddr string

	// EtcdEndpoints are the etcd client URLs. With EmbeddedEtcd the node
	// starts its own single-member etcd instead and uses it.
	EtcdEndpoints []string
	EmbeddedEtcd  bool
	// EmbeddedEtcdClientURL / PeerURL are the embedded member's URLs
	// (default http://127.0.0.1:2379 and :2380; port 0 allowed).
	EmbeddedEtcdClientURL string
	EmbeddedEtcdPeerURL   string

	// RootPassword, when set, is required of root from every host; when
	// empty, root logs in without a password from loopback only.
	RootPassword string

	// CacheSize is pebble's block cache in bytes (default 64 MiB).
	CacheSize int64
	// Logger (default slog.Default()).
	Logger *slog.Logger

	// LivenessTTL is the etcd lease TTL whose keep-alive is this node's
	// liveness (default 5 s).
	LivenessTTL time.Duration
	// RaftTickInterval is one Raft tick (default 100 ms; elections after 10).
	RaftTickInterval time.Duration
	// RequestTimeout bounds one KV request's retries before a range is
	// reported unavailable (default 10 s).
	RequestTimeout time.Duration
	// Placement configures the placement driver (replication factor, the
	// grace period before a dead node's replicas are replaced, split size).
	Placement PlacementConfig
	// GC configures MVCC garbage collection.
	GC GCConfig

	// Knobs are testing hooks.
	Knobs Knobs
}

// Knobs are testing hooks for in-process clusters.
type Knobs struct {
	// Faults, when set, is consulted by the Raft transport and the KV client
	// so tests can partition this node from others.
	Faults *raftgroup.FaultInjector
}

func (c *Config) setDefaults() {
	if c.Cluster == "" {
		c.Cluster = "quorumdb"
	}
	if c.SQLAddr == "" {
		c.SQLAddr = "127.0.0.1:4000"
	}
	if c.RPCAddr == "" {
		c.RPCAddr = "127.0.0.1:0"
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = "127.0.0.1:0"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.LivenessTTL <= 0 {
		c.LivenessTTL = 5 * time.Second
	}
	if c.RaftTickInterval <= 0 {
		c.RaftTickInterval = 100 * time.Millisecond
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	c.Placement.setDefaults()
	c.GC.setDefaults()
}

// Node is one running QuorumDB node: store, RPC server, SQL server, HTTP
// server and optionally an embedded etcd, started and stopped as one unit.
type Node struct {
	cfg Config
	log *slog.Logger
	// rgLog is log without the node attribute, for raftgroup's components
	// (they add it themselves).
	rgLog *slog.Logger
	id    uint64

	dir       *dataDir
	etcd      *cluster.EmbeddedEtcd
	client    *cluster.Client
	reg       *cluster.NodeRegistration
	book      *cluster.AddressBook
	engine    *kv.Engine
	rpcLn     net.Listener
	rpc       *grpc.Server
	trans     *raftgroup.GRPCTransport
	store     *raftgroup.Store
	tsoSrv    *cluster.TSOServer
	tso       *cluster.TSOClient
	kvClient  *raftgroup.KVClient
	admin     *raftgroup.AdminClient
	placement *raftgroup.PlacementDriver
	gc        gcState
	// sqlMetrics counts statements and connections for /metrics.
	sqlMetrics *sqlMetrics
	rates      rateTracker
	router     *txn.Router
	db         *txn.DB
	sql        *qsql.Server
	httpLn     net.Listener
	http       *http.Server

	// unreachable lets the transport, built before the store, tell the
	// store about peers it cannot reach.
	unreachable atomic.Pointer[raftgroup.Store]

	bg     sync.WaitGroup
	cancel context.CancelFunc

	mu      sync.Mutex
	stopped bool
	ready   bool
}

// Start brings a node up: it returns once the node serves SQL, or with an
// error that says what went wrong (port in use, data directory locked or
// foreign, etcd unreachable) after undoing what it started.
func Start(ctx context.Context, cfg Config) (_ *Node, err error) {
	cfg.setDefaults()
	n := &Node{cfg: cfg, log: cfg.Logger, sqlMetrics: newSQLMetrics()}
	bgCtx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	defer func() {
		if err != nil {
			n.shutdown(context.Background(), false)
		}
	}()

	dir, identity, err := openDataDir(cfg.DataDir, cfg.Cluster)
	if err != nil {
		return nil, err
	}
	n.dir = dir

	// Bind every port first: a port in use fails fast, before anything
	// registers in etcd.
	if n.rpcLn, err = listen("RPC", cfg.RPCAddr); err != nil {
		return nil, err
	}
	sqlLn, err := listen("SQL", cfg.SQLAddr)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			sqlLn.Close()
		}
	}()
	if n.httpLn, err = listen("HTTP", cfg.HTTPAddr); err != nil {
		return nil, err
	}

	endpoints := cfg.EtcdEndpoints
	if cfg.EmbeddedEtcd {
		n.etcd, err = cluster.StartEmbeddedEtcd(ctx, cluster.EmbeddedEtcdConfig{
			Dir:       filepath.Join(cfg.DataDir, "etcd"),
			Name:      "etcd-" + sanitize(cfg.Name),
			ClientURL: cfg.EmbeddedEtcdClientURL,
			PeerURL:   cfg.EmbeddedEtcdPeerURL,
		})
		if err != nil {
			return nil, fmt.Errorf("node: start embedded etcd: %w", err)
		}
		endpoints = n.etcd.Endpoints()
	}
	if len(endpoints) == 0 {
		return nil, errors.New("node: no etcd endpoints (use --etcd or --embedded-etcd)")
	}
	n.client, err = cluster.Connect(ctx, endpoints, cfg.Cluster,
		cluster.WithLeaseTTL(cfg.LivenessTTL), cluster.WithLogger(n.log))
	if err != nil {
		return nil, fmt.Errorf("node: connect to etcd %v: %w", endpoints, err)
	}

	if identity != nil {
		n.id = identity.NodeID
	} else {
		alloc, err := cluster.NewIDAllocator(n.client, "node", 1)
		if err != nil {
			return nil, fmt.Errorf("node: node ID allocator: %w", err)
		}
		if n.id, err = alloc.Allocate(ctx); err != nil {
			return nil, fmt.Errorf("node: allocate node ID: %w", err)
		}
		if err := dir.writeIdentity(Identity{Cluster: cfg.Cluster, NodeID: n.id}); err != nil {
			return nil, err
		}
	}
	if cfg.Name == "" {
		n.cfg.Name = fmt.Sprintf("node-%d", n.id)
	}
	// raftgroup's components tag their node themselves.
	n.rgLog = n.log
	n.log = n.log.With("node", n.id)

	n.engine, err = kv.Open(dir.storePath(), kv.EngineOptions{CacheSize: cfg.CacheSize, Logger: n.log})
	if err != nil {
		return nil, fmt.Errorf("node: open store: %w", err)
	}

	if n.book, err = n.client.NewAddressBook(ctx); err != nil {
		return nil, fmt.Errorf("node: node address book: %w", err)
	}
	resolver := n.book.NodeAddress

	n.tsoSrv, err = cluster.NewTSOServer(n.client, cluster.TSOServerConfig{AdvertiseAddr: n.rpcLn.Addr().String()})
	if err != nil {
		return nil, fmt.Errorf("node: TSO server: %w", err)
	}
	tsoCfg := cluster.TSOClientConfig{}
	if cfg.Knobs.Faults != nil {
		tsoCfg.DialOptions = []grpc.DialOption{
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithUnaryInterceptor(n.tsoFaultInterceptor),
		}
	}
	n.tso = cluster.NewTSOClient(n.client, tsoCfg)

	n.trans = raftgroup.NewGRPCTransport(raftgroup.GRPCTransportConfig{
		NodeID:   n.id,
		Resolver: resolver,
		Logger:   n.rgLog,
		Faults:   cfg.Knobs.Faults,
		// The store exists only after its transport: report through a
		// pointer set once it does.
		OnUnreachable: func(nodeID uint64) {
			if s := n.unreachable.Load(); s != nil {
				s.ReportUnreachable(nodeID)
			}
		},
	})
	n.store, err = raftgroup.NewStore(raftgroup.Config{
		NodeID:         n.id,
		Engine:         n.engine,
		Transport:      n.trans,
		Clock:          n.clock,
		TickInterval:   cfg.RaftTickInterval,
		RequestTimeout: cfg.RequestTimeout,
		Logger:         n.rgLog,
	})
	if err != nil {
		return nil, fmt.Errorf("node: open raft store: %w", err)
	}
	n.trans.SetHandler(n.store)
	n.unreachable.Store(n.store)

	n.rpc = grpc.NewServer(grpcServerOptions()...)
	n.trans.Register(n.rpc)
	raftgroup.RegisterKVService(n.rpc, n.store)
	cluster.RegisterTSOService(n.rpc, n.tsoSrv)
	n.registerPlacementServices()
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		if err := n.rpc.Serve(n.rpcLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			n.log.Error("RPC server stopped", "err", err)
		}
	}()
	n.store.Start()

	n.reg, err = n.client.RegisterWithID(ctx, cluster.NodeInfo{
		ID:       n.id,
		Name:     n.cfg.Name,
		RPCAddr:  n.rpcLn.Addr().String(),
		SQLAddr:  sqlLn.Addr().String(),
		HTTPAddr: n.httpLn.Addr().String(),
	})
	if err != nil {
		return nil, fmt.Errorf("node: register in etcd: %w", err)
	}
	n.bg.Add(2)
	go func() {
		defer n.bg.Done()
		_ = n.tsoSrv.Run(bgCtx)
	}()
	go func() {
		defer n.bg.Done()
		n.guardTSOLeadership(bgCtx)
	}()

	if err := n.bootstrapIfFirst(ctx); err != nil {
		return nil, err
	}
	if err := n.startPlacement(bgCtx); err != nil {
		return nil, err
	}

	n.kvClient = raftgroup.NewKVClient(raftgroup.KVClientConfig{
		NodeID:   n.id,
		Resolver: resolver,
		Faults:   cfg.Knobs.Faults,
		Logger:   n.log,
	})
	n.router = txn.NewRouter(txn.RouterConfig{
		Directory:   n.client,
		Nodes:       localFirst{self: n.id, store: n.store, remote: n.kvClient},
		Logger:      n.log,
		MaxWait:     cfg.RequestTimeout,
		LocalNodeID: n.id,
	})
	// Keep the range cache fresh from the directory's watch; requests still
	// correct a stale entry through the replicas' typed errors.
	rangeEvents := n.client.WatchRanges(bgCtx)
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		n.router.FollowDirectory(rangeEvents)
	}()
	n.db = txn.NewDB(txn.DBConfig{Sender: n.router, Clock: n.tso, Logger: n.log, SafePoints: n.client, GCLifetime: cfg.GC.Lifetime,
		ClosedFloor: func() kv.Timestamp { return n.store.FollowerReadFloor(time.Now()) }})
	if !cfg.GC.Disabled {
		n.runGC(bgCtx)
	}

	n.sql, err = qsql.NewServer(ctx, qsql.Config{
		Listener:     sqlLn,
		DB:           n.db,
		NodeID:       n.id,
		Logger:       n.log,
		ClusterInfo:  clusterInfo{n: n},
		Events:       n.sqlMetrics,
		RootPassword: cfg.RootPassword,
	})
	if err != nil {
		return nil, fmt.Errorf("node: start SQL server: %w", err)
	}
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		if err := n.sql.Serve(); err != nil {
			n.log.Debug("SQL server stopped", "err", err)
		}
	}()

	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		n.trackRates(bgCtx)
	}()
	n.http = &http.Server{Handler: n.httpHandler(), ReadHeaderTimeout: 5 * time.Second}
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		if err := n.http.Serve(n.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("HTTP server stopped", "err", err)
		}
	}()

	n.mu.Lock()
	n.ready = true
	n.mu.Unlock()
	n.log.Info("node started", "name", n.cfg.Name, "sql", n.SQLAddr(), "rpc", n.RPCAddr(), "http", n.HTTPAddr())
	return n, nil
}

// ID is the node's cluster-wide ID.
func (n *Node) ID() uint64 { return n.id }

// Name is the node's human name.
func (n *Node) Name() string { return n.cfg.Name }

// SQLAddr is where MySQL clients connect.
func (n *Node) SQLAddr() string { return n.sql.Addr().String() }

// RPCAddr is the internal gRPC address.
func (n *Node) RPCAddr() string { return n.rpcLn.Addr().String() }

// HTTPAddr is the admin/metrics address.
func (n *Node) HTTPAddr() string { return n.httpLn.Addr().String() }

// EtcdEndpoints are the endpoints of the embedded etcd (nil without one).
func (n *Node) EtcdEndpoints() []string {
	if n.etcd == nil {
		return nil
	}
	return n.etcd.Endpoints()
}

// DB is the node's transactional KV client.
func (n *Node) DB() *txn.DB { return n.db }

// Store is the node's multi-Raft store.
func (n *Node) Store() *raftgroup.Store { return n.store }

// Cluster is the node's etcd client.
func (n *Node) Cluster() *cluster.Client { return n.client }

// Stop shuts the node down gracefully: stop accepting SQL, drain, hand off
// Raft leaderships, revoke the liveness lease and close the store.
func (n *Node) Stop(ctx context.Context) error {
	return n.shutdown(ctx, true)
}

// Kill stops the node abruptly, as a crash would look to the rest of the
// cluster: no leadership hand-off, no lease revocation (the lease expires),
// connections cut. Used by in-process fault tests; data synced to the Raft
// log survives as after a real crash.
func (n *Node) Kill() {
	_ = n.shutdown(context.Background(), false)
}

func (n *Node) shutdown(ctx context.Context, graceful bool) error {
	n.mu.Lock()
	if n.stopped {
		n.mu.Unlock()
		return nil
	}
	n.stopped = true
	n.ready = false
	n.mu.Unlock()

	var errs []error
	if n.sql != nil {
		if err := n.sql.Close(); err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, fmt.Errorf("close SQL server: %w", err))
		}
	}
	if graceful && n.store != nil {
		n.transferLeaderships(ctx)
	}
	if n.cancel != nil {
		n.cancel()
	}
	n.stopPlacement()
	if graceful && n.reg != nil {
		if err := n.reg.Deregister(ctx); err != nil {
			errs = append(errs, fmt.Errorf("deregister: %w", err))
		}
	}
	if n.http != nil {
		_ = n.http.Close()
	} else if n.httpLn != nil {
		n.httpLn.Close()
	}
	if n.db != nil {
		n.db.Close()
	}
	if n.kvClient != nil {
		n.kvClient.Close()
	}
	if n.tso != nil {
		n.tso.Close()
	}
	if n.rpc != nil {
		n.rpc.Stop()
	} else if n.rpcLn != nil {
		n.rpcLn.Close()
	}
	if n.trans != nil {
		n.trans.Close()
	}
	if n.store != nil {
		n.store.Stop()
	}
	n.bg.Wait()
	if n.book != nil {
		n.book.Close()
	}
	if n.client != nil {
		n.client.Close()
	}
	if n.etcd != nil {
		n.etcd.Close()
	}
	if n.engine != nil {
		if err := n.engine.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if n.dir != nil {
		n.dir.close()
	}
	return errors.Join(errs...)
}

// transferLeaderships hands every range this node leads to another voter so
// the cluster does not wait for an election timeout after the node leaves.
func (n *Node) transferLeaderships(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for _, info := range n.store.RangeInfo() {
		if !info.IsLeader || info.Descriptor == nil {
			continue
		}
		for _, r := range info.Descriptor.Replicas {
			if r.NodeID == n.id || r.Type != kv.Voter {
				continue
			}
			if err := n.store.TransferLeadership(ctx, info.RangeID, r.NodeID); err == nil {
				break
			}
		}
	}
}

// clock is the Raft store's timestamp source: a fresh TSO timestamp, or 0
// when the oracle cannot be reached in time (the store then refuses the
// operation that needed it and the client retries).
func (n *Node) clock() uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ts, err := n.tso.GetTimestamp(ctx)
	if err != nil {
		n.log.Warn("timestamp oracle unavailable", "err", err)
		return 0
	}
	return ts
}

// bootstrapIfFirst creates the cluster's first range, covering the whole
// key space, on the one node that wins the bootstrap claim. A node that won
// the claim and crashed before creating the range creates it on restart.
func (n *Node) bootstrapIfFirst(ctx context.Context) error {
	won, owner, err := n.client.ClaimBootstrap(ctx, n.id)
	if err != nil {
		return fmt.Errorf("node: bootstrap claim: %w", err)
	}
	if !won {
		n.log.Debug("joining bootstrapped cluster", "bootstrapped_by", owner)
		return nil
	}
	for _, info := range n.store.RangeInfo() {
		if info.Descriptor != nil {
			return nil // already bootstrapped (restart)
		}
	}
	alloc, err := cluster.NewIDAllocator(n.client, "range", 1)
	if err != nil {
		return fmt.Errorf("node: range ID allocator: %w", err)
	}
	if err := alloc.ReserveThrough(ctx, raftgroup.FirstRangeID); err != nil {
		return fmt.Errorf("node: reserve first range ID: %w", err)
	}
	desc := raftgroup.FirstRangeDescriptor(n.id)
	if err := n.store.BootstrapRange(ctx, desc); err != nil {
		return fmt.Errorf("node: bootstrap first range: %w", err)
	}
	if err := n.client.PublishRange(ctx, desc); err != nil {
		return fmt.Errorf("node: publish first range: %w", err)
	}
	n.log.Info("bootstrapped cluster", "range", desc.String())
	return nil
}

// Ready reports whether the node can serve SQL: started, not stopping,
// registered (its liveness lease alive) and able to get timestamps.
func (n *Node) Ready(ctx context.Context) error {
	n.mu.Lock()
	ready := n.ready
	n.mu.Unlock()
	if !ready {
		return errors.New("node is starting or stopping")
	}
	if !n.reg.Live() {
		return errors.New("liveness lease lost")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := n.tso.GetTimestamp(ctx); err != nil {
		return fmt.Errorf("timestamp oracle: %w", err)
	}
	return nil
}

func listen(what, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("node: %s address %s: %w (is another process using the port?)", what, addr, err)
	}
	return ln, nil
}

func sanitize(s string) string {
	if s == "" {
		return "node"
	}
	return s
}

// localFirst sends requests for replicas on this node straight to the local
// store and everything else through the KV client.
type localFirst struct {
	self   uint64
	store  *raftgroup.Store
	remote *raftgroup.KVClient
}

func (l localFirst) Execute(ctx context.Context, nodeID, rangeID uint64, req *kv.Request) (*kv.Response, error) {
	if nodeID == l.self {
		return l.store.Execute(ctx, rangeID, req)
	}
	return l.remote.Execute(ctx, nodeID, rangeID, req)
}

func splitHostPort(addr string) (host, port string, err error) {
	return net.SplitHostPort(addr)
}
