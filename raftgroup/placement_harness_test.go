package raftgroup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/quorumdb/quorumdb/cluster"
	"github.com/quorumdb/quorumdb/kv"
)

// The placement tests run real stores over the real gRPC transport on
// 127.0.0.1, each node with its own etcd client, liveness registration,
// address book, range publisher and placement driver, against a real
// embedded etcd started for the test (ports 0).

// pdStartEtcd starts an embedded etcd member for one test; it stops with
// the test.
func pdStartEtcd(t testing.TB) *cluster.EmbeddedEtcd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := cluster.StartEmbeddedEtcd(ctx, cluster.EmbeddedEtcdConfig{
		Dir:       t.TempDir(),
		Name:      "pd-test",
		ClientURL: "http://127.0.0.1:0",
		PeerURL:   "http://127.0.0.1:0",
	})
	if err != nil {
		t.Fatalf("start embedded etcd: %v", err)
	}
	t.Cleanup(e.Close)
	return e
}

// pdLogger logs at warn level and above to stderr when PD_TEST_LOG is
// set (PD_TEST_LOG=debug or info for more), otherwise nowhere.
func pdLogger() *slog.Logger {
	lvl := os.Getenv("PD_TEST_LOG")
	if lvl == "" {
		return slog.New(slog.DiscardHandler)
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(lvl)); err != nil {
		l = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// pdOptions tune a pdCluster.
type pdOptions struct {
	grace          time.Duration
	splitThreshold uint64
	interval       time.Duration
	noDriver       bool // nodes run the publisher only
}

type pdNode struct {
	id        uint64
	client    *cluster.Client
	reg       *cluster.NodeRegistration
	book      *cluster.AddressBook
	engine    *kv.Engine
	transport *GRPCTransport
	store     *Store
	server    *grpc.Server
	admin     *AdminClient
	driver    *PlacementDriver
	cancel    context.CancelFunc
	done      sync.WaitGroup
	killed    bool
}

type pdCluster struct {
	t     *testing.T
	etcd  *cluster.EmbeddedEtcd
	opts  pdOptions
	name  string
	clock atomic.Uint64
	log   *slog.Logger

	mu    sync.Mutex
	nodes map[uint64]*pdNode
}

func newPDCluster(t *testing.T, opts pdOptions) *pdCluster {
	if opts.grace == 0 {
		opts.grace = 2 * time.Second
	}
	if opts.splitThreshold == 0 {
		opts.splitThreshold = 1 << 30
	}
	if opts.interval == 0 {
		opts.interval = 100 * time.Millisecond
	}
	c := &pdCluster{t: t, etcd: pdStartEtcd(t), opts: opts, name: "pd", nodes: map[uint64]*pdNode{}, log: pdLogger()}
	c.clock.Store(kv.MakeTimestamp(uint64(time.Now().UnixMilli()), 0))
	t.Cleanup(c.stopAll)
	return c
}

func (c *pdCluster) now() uint64 { return c.clock.Add(1) }

func (c *pdCluster) connect() *cluster.Client {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := cluster.Connect(ctx, c.etcd.Endpoints(), c.name, cluster.WithLeaseTTL(2*time.Second), cluster.WithLogger(c.log))
	if err != nil {
		c.t.Fatalf("connect to etcd: %v", err)
	}
	return cl
}

// startNode brings node id up: registered (live), serving transport, KV and
// admin on one gRPC server, publishing its ranges and running a driver.
func (c *pdCluster) startNode(id uint64) *pdNode {
	t := c.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &pdNode{id: id, client: c.connect()}
	if n.reg, err = n.client.RegisterWithID(ctx, cluster.NodeInfo{ID: id, RPCAddr: lis.Addr().String()}); err != nil {
		t.Fatalf("register n%d: %v", id, err)
	}
	if n.book, err = n.client.NewAddressBook(ctx); err != nil {
		t.Fatalf("address book n%d: %v", id, err)
	}
	if n.engine, err = kv.Open(t.TempDir(), kv.EngineOptions{CacheSize: 8 << 20, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	n.transport = NewGRPCTransport(GRPCTransportConfig{
		NodeID:        id,
		Resolver:      n.book.NodeAddress,
		MaxBackoff:    100 * time.Millisecond,
		OnUnreachable: func(peer uint64) { n.store.ReportUnreachable(peer) },
	})
	n.store, err = NewStore(Config{
		NodeID:         id,
		Engine:         n.engine,
		Transport:      n.transport,
		Clock:          c.now,
		TickInterval:   10 * time.Millisecond,
		ElectionTicks:  10,
		HeartbeatTicks: 1,
		RequestTimeout: 2 * time.Second,
		Logger:         c.log,
	})
	if err != nil {
		t.Fatal(err)
	}
	n.transport.SetHandler(n.store)
	n.server = grpc.NewServer(GRPCServerOptions()...)
	n.transport.Register(n.server)
	RegisterKVService(n.server, n.store)
	RegisterAdminService(n.server, n.store)
	go func() { _ = n.server.Serve(lis) }()
	n.store.Start()
	n.admin = NewAdminClientWithConfig(KVClientConfig{NodeID: id, Resolver: n.book.NodeAddress, DialTimeout: 500 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})

	rctx, rcancel := context.WithCancel(context.Background())
	n.cancel = rcancel
	n.done.Go(func() {
		_ = RunRangePublisherWithOptions(rctx, n.store, n.client, RangePublisherOptions{Interval: 50 * time.Millisecond, Logger: c.log})
	})
	if !c.opts.noDriver {
		ids, err := cluster.NewIDAllocator(n.client, cluster.IDKindRange, 5)
		if err != nil {
			t.Fatal(err)
		}
		n.driver, err = NewPlacementDriver(PlacementConfig{
			NodeID:              id,
			Cluster:             n.client,
			Admin:               n.admin,
			RangeIDs:            ids,
			Interval:            c.opts.interval,
			DeadNodeGrace:       c.opts.grace,
			SplitThresholdBytes: c.opts.splitThreshold,
			ChangeTimeout:       8 * time.Second,
			StatsTimeout:        time.Second,
			Logger:              c.log,
		})
		if err != nil {
			t.Fatal(err)
		}
		n.done.Go(func() { _ = n.driver.Run(rctx) })
	}
	c.mu.Lock()
	c.nodes[id] = n
	c.mu.Unlock()
	return n
}

// kill crashes node id: its etcd client goes away without revoking
// anything (the liveness lease and a held placement leadership expire),
// its server, transport and store stop. (The driver's resign then fails on
// the closed client within its 2 s bound.)
func (c *pdCluster) kill(id uint64) { c.stop(id, true) }

// stop stops node id; a clean stop resigns the driver's leadership and
// deregisters before closing the etcd client.
func (c *pdCluster) stop(id uint64, crash bool) {
	c.mu.Lock()
	n := c.nodes[id]
	if n == nil || n.killed {
		c.mu.Unlock()
		return
	}
	n.killed = true
	c.mu.Unlock()
	if crash {
		_ = n.client.Close()
	}
	n.cancel()
	n.server.Stop()
	_ = n.transport.Close()
	n.store.Stop()
	n.done.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_ = n.reg.Deregister(ctx) // stops its re-registration loop
	cancel()
	if !crash {
		_ = n.client.Close()
	}
}

func (c *pdCluster) stopAll() {
	c.mu.Lock()
	nodes := make([]*pdNode, 0, len(c.nodes))
	for _, n := range c.nodes {
		nodes = append(nodes, n)
	}
	c.mu.Unlock()
	for _, n := range nodes {
		c.stop(n.id, false)
	}
	for _, n := range nodes {
		n.book.Close()
		_ = n.admin.Close()
		_ = n.engine.Close()
	}
}

func (c *pdCluster) node(id uint64) *pdNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

func (c *pdCluster) liveNodes() []*pdNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*pdNode
	for _, n := range c.nodes {
		if !n.killed {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b *pdNode) int { return int(a.id) - int(b.id) })
	return out
}

// reserveRangeIDs keeps the drivers' allocators above IDs the test uses.
func (c *pdCluster) reserveRangeIDs(through uint64) {
	c.t.Helper()
	cl := c.liveNodes()[0].client
	a, err := cluster.NewIDAllocator(cl, cluster.IDKindRange, 1)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := a.ReserveThrough(pdCtx(c.t, 5*time.Second), through); err != nil {
		c.t.Fatal(err)
	}
}

// pdRangeView is one range as seen by its current leader.
type pdRangeView struct {
	desc   *kv.RangeDescriptor
	leader uint64
}

// leaderView returns every range that a live node leads, by range ID.
func (c *pdCluster) leaderView() map[uint64]pdRangeView {
	out := map[uint64]pdRangeView{}
	for _, n := range c.liveNodes() {
		for _, ri := range n.store.RangeInfo() {
			if ri.IsLeader && ri.Descriptor != nil {
				if prev, ok := out[ri.RangeID]; ok && prev.desc.Generation >= ri.Descriptor.Generation {
					continue
				}
				out[ri.RangeID] = pdRangeView{desc: ri.Descriptor, leader: n.id}
			}
		}
	}
	return out
}

// bootstrap creates desc's initial state on every node it lists, the first
// voter (which campaigns at once) last. A replica that already got the
// range by snapshot from an early leader is fine.
func (c *pdCluster) bootstrap(desc *kv.RangeDescriptor) {
	c.t.Helper()
	for i := len(desc.Replicas) - 1; i >= 0; i-- {
		rd := desc.Replicas[i]
		err := c.node(rd.NodeID).store.BootstrapRange(pdCtx(c.t, 5*time.Second), desc)
		var exists *RangeExistsError
		if err != nil && !errors.As(err, &exists) {
			c.t.Fatalf("bootstrap r%d on n%d: %v", desc.RangeID, rd.NodeID, err)
		}
	}
}

func pdDescriptor(rangeID uint64, nodes ...uint64) *kv.RangeDescriptor {
	d := &kv.RangeDescriptor{RangeID: rangeID, StartKey: kv.KeyMin, EndKey: kv.KeyMax, Generation: 1, NextReplicaID: uint64(len(nodes) + 1)}
	for i, n := range nodes {
		d.Replicas = append(d.Replicas, kv.ReplicaDescriptor{NodeID: n, ReplicaID: uint64(i + 1)})
	}
	return d
}

func pdCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// pdWaitFor polls cond every 20ms until it holds, failing the test after
// timeout with what and the last status.
func pdWaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, status := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pdRetryable: the range moved, has no leader yet, or the node is busy
// electing; the caller tries again.
func pdRetryable(err error) bool {
	var (
		notLeader *kv.NotLeaderError
		notFound  *kv.RangeNotFoundError
		outside   *kv.KeyOutOfRangeError
		mismatch  *kv.EpochMismatchError
		dropped   *kv.ProposalDroppedError
		unavail   *kv.RangeUnavailableError
	)
	return errors.As(err, &notLeader) || errors.As(err, &notFound) || errors.As(err, &outside) ||
		errors.As(err, &mismatch) || errors.As(err, &dropped) || errors.As(err, &unavail) ||
		errors.Is(err, ErrStoreStopped) || errors.Is(err, context.DeadlineExceeded)
}

// execute routes req for key to the live leader of its range (found from
// the stores) and retries routing answers until ctx ends.
func (c *pdCluster) execute(ctx context.Context, key []byte, req func() *kv.Request) (*kv.Response, error) {
	var last error
	for ctx.Err() == nil {
		var target *pdNode
		var rangeID uint64
		for _, n := range c.liveNodes() {
			for _, ri := range n.store.RangeInfo() {
				if ri.IsLeader && ri.Descriptor != nil && ri.Descriptor.ContainsKey(key) {
					target, rangeID = n, ri.RangeID
				}
			}
		}
		if target != nil {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			resp, err := target.store.Execute(cctx, rangeID, req())
			cancel()
			if err == nil {
				return resp, nil
			}
			if !pdRetryable(err) {
				return nil, err
			}
			last = err
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("key %q: %w (last: %v)", key, ctx.Err(), last)
}

func (c *pdCluster) put(ctx context.Context, key, value []byte) error {
	_, err := c.execute(ctx, key, func() *kv.Request {
		start := c.now()
		return &kv.Request{OnePhaseCommit: &kv.OnePhaseCommitRequest{
			Mutations: []kv.Mutation{{Op: kv.OpPut, Key: key, Value: value}}, StartTS: start, CommitTS: c.now(),
		}}
	})
	return err
}

func (c *pdCluster) get(ctx context.Context, key []byte) ([]byte, bool, error) {
	resp, err := c.execute(ctx, key, func() *kv.Request {
		return &kv.Request{Get: &kv.GetRequest{Key: key, ReadTS: c.now()}}
	})
	if err != nil {
		return nil, false, err
	}
	return resp.Get.Value, resp.Get.Found, nil
}

// directory lists the published ranges through node via's etcd client.
func (c *pdCluster) directory(via *pdNode) ([]*kv.RangeDescriptor, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return via.client.ListRanges(ctx)
}

// pdCheckCover reports whether descs (in key order) tile [KeyMin, KeyMax).
func pdCheckCover(descs []*kv.RangeDescriptor) error {
	want := kv.KeyMin
	for _, d := range descs {
		if !bytes.Equal(d.StartKey, want) {
			return fmt.Errorf("gap or overlap at %q: next range %s", want, d)
		}
		want = d.EndKey
	}
	if !bytes.Equal(want, kv.KeyMax) {
		return fmt.Errorf("directory ends at %q", want)
	}
	return nil
}

func pdReplicaNodes(d *kv.RangeDescriptor) string {
	var parts []string
	for _, rd := range d.Replicas {
		parts = append(parts, fmt.Sprintf("n%d/%s", rd.NodeID, rd.Type))
	}
	return strings.Join(parts, ",")
}

// pdSplit splits rangeID at key on store (its leader). Store.SplitRange can
// answer "split applied but r<new> is not initialized here" when the
// proposal is answered before the store creates the right range (the
// answer precedes afterSplit on the worker); the split did happen, so wait
// for the right range to appear.
func pdSplit(t testing.TB, ctx context.Context, store *Store, rangeID uint64, key []byte, newRangeID uint64) (left, right *kv.RangeDescriptor) {
	t.Helper()
	left, right, err := store.SplitRange(ctx, rangeID, key, newRangeID)
	if err == nil {
		return left, right
	}
	if left == nil || !bytes.Equal(left.EndKey, key) {
		t.Fatalf("split r%d at %q: %v", rangeID, key, err)
	}
	pdWaitFor(t, 5*time.Second, fmt.Sprintf("r%d created by the split", newRangeID), func() (bool, string) {
		for _, ri := range store.RangeInfo() {
			if ri.RangeID == newRangeID && ri.Descriptor != nil {
				right = ri.Descriptor
				return true, ""
			}
		}
		return false, err.Error()
	})
	return left, right
}

// splitAt splits the range holding key at key, on whichever node leads it
// (retrying while leadership moves: the drivers may be balancing leaders).
func (c *pdCluster) splitAt(ctx context.Context, key []byte, newRangeID uint64) {
	c.t.Helper()
	pdWaitFor(c.t, 15*time.Second, fmt.Sprintf("split at %q", key), func() (bool, string) {
		for id, v := range c.leaderView() {
			if !v.desc.ContainsKey(key) {
				continue
			}
			if bytes.Equal(v.desc.StartKey, key) {
				return true, "" // done by an earlier attempt
			}
			_, _, err := c.node(v.leader).store.SplitRange(ctx, id, key, newRangeID)
			if err != nil && !pdRetryable(err) && !strings.Contains(err.Error(), "not initialized here") {
				c.t.Fatalf("split r%d at %q: %v", id, key, err)
			}
			if err == nil || !pdRetryable(err) {
				return true, ""
			}
			return false, err.Error()
		}
		return false, "no leader holds the key"
	})
}
