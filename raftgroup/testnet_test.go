package raftgroup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/quorumdb/quorumdb/kv"
)

// testNet is an in-process network between Stores implementing Transport:
// direct delivery to the destination's MessageHandler, with node kills and
// partitions. Messages are cloned on the way, as a real transport would
// serialize them.
type testNet struct {
	mu       sync.RWMutex
	handlers map[uint64]MessageHandler
	down     map[uint64]bool
	side     map[uint64]int // partition side; nodes absent talk to everyone
	// blocked drops one range's messages and snapshots to one node.
	blocked map[[2]uint64]bool // {rangeID, toNode}
	dropped atomic.Uint64
}

func newTestNet() *testNet {
	return &testNet{handlers: map[uint64]MessageHandler{}, down: map[uint64]bool{}, side: map[uint64]int{}, blocked: map[[2]uint64]bool{}}
}

func (n *testNet) register(id uint64, h MessageHandler) {
	n.mu.Lock()
	n.handlers[id] = h
	n.down[id] = false
	n.mu.Unlock()
}

func (n *testNet) setDown(id uint64, down bool) {
	n.mu.Lock()
	n.down[id] = down
	n.mu.Unlock()
}

// partition splits the nodes into sides; nodes on different sides cannot
// talk. heal removes every partition.
func (n *testNet) partition(sides ...[]uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.side = map[uint64]int{}
	for i, s := range sides {
		for _, id := range s {
			n.side[id] = i + 1
		}
	}
}

func (n *testNet) heal() { n.partition() }

// block drops (or, with on false, lets through again) every message and
// snapshot of rangeID addressed to node.
func (n *testNet) block(rangeID, node uint64, on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if on {
		n.blocked[[2]uint64{rangeID, node}] = true
	} else {
		delete(n.blocked, [2]uint64{rangeID, node})
	}
}

func (n *testNet) isBlocked(rangeID, node uint64) bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.blocked[[2]uint64{rangeID, node}]
}

func (n *testNet) route(from, to uint64) (MessageHandler, bool) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.down[from] || n.down[to] {
		return nil, false
	}
	sf, st := n.side[from], n.side[to]
	if sf != 0 && st != 0 && sf != st {
		return nil, false
	}
	h, ok := n.handlers[to]
	return h, ok
}

type testTransport struct {
	net  *testNet
	node uint64
}

func (t *testTransport) Send(msg *RaftMessage) bool {
	h, ok := t.net.route(t.node, msg.ToNode)
	if !ok || t.net.isBlocked(msg.RangeID, msg.ToNode) {
		t.net.dropped.Add(1)
		return false
	}
	cp := &RaftMessage{RangeID: msg.RangeID, FromNode: msg.FromNode, ToNode: msg.ToNode, Message: proto.Clone(msg.Message).(*raftpb.Message)}
	if err := h.HandleRaftMessage(context.Background(), cp); err != nil && !errors.Is(err, ErrStoreStopped) {
		return false
	}
	return true
}

func (t *testTransport) SendSnapshot(ctx context.Context, header *RaftMessage, data SnapshotSource) error {
	h, ok := t.net.route(t.node, header.ToNode)
	if !ok || t.net.isBlocked(header.RangeID, header.ToNode) {
		return fmt.Errorf("testnet: n%d cannot reach n%d", t.node, header.ToNode)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan []byte, 4)
	var srcErr error
	go func() {
		srcErr = data(func(chunk []byte) error {
			select {
			case chunks <- append([]byte(nil), chunk...):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		close(chunks)
	}()
	cp := &RaftMessage{RangeID: header.RangeID, FromNode: header.FromNode, ToNode: header.ToNode, Message: proto.Clone(header.Message).(*raftpb.Message)}
	err := h.HandleSnapshot(ctx, cp, func() ([]byte, error) {
		select {
		case c, ok := <-chunks:
			if !ok {
				if srcErr != nil {
					return nil, srcErr
				}
				return nil, io.EOF
			}
			return c, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	cancel()
	for range chunks { // let the producer finish
	}
	return err
}

// testCluster runs n stores on on-disk engines over a testNet, or, in
// gRPC mode, over the real GRPCTransport on 127.0.0.1 with a shared
// FaultInjector.
type testCluster struct {
	t      testing.TB
	net    *testNet
	clock  atomic.Uint64
	dirs   map[uint64]string
	stores map[uint64]*Store
	engs   map[uint64]*kv.Engine
	tune   func(*Config)
	mu     sync.Mutex

	grpc    bool
	faults  *FaultInjector
	book    *transportTestAddrs
	servers map[uint64]*grpc.Server
	trans   map[uint64]*GRPCTransport
}

// testTransports are the transports every acceptance test runs over.
var testTransports = []string{"testnet", "grpc"}

const testTick = 10 * time.Millisecond

// electionTimeout is ElectionTicks × tick in the test configuration.
const testElectionTimeout = 10 * testTick

func newTestCluster(t testing.TB, n int, tune func(*Config)) *testCluster {
	return newTestClusterOver(t, "testnet", n, tune)
}

func newTestClusterOver(t testing.TB, transport string, n int, tune func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, net: newTestNet(), dirs: map[uint64]string{}, stores: map[uint64]*Store{}, engs: map[uint64]*kv.Engine{}, tune: tune,
		grpc: transport == "grpc", faults: NewFaultInjector(11), book: &transportTestAddrs{}, servers: map[uint64]*grpc.Server{}, trans: map[uint64]*GRPCTransport{}}
	c.clock.Store(kv.MakeTimestamp(uint64(time.Now().UnixMilli()), 0))
	for id := uint64(1); id <= uint64(n); id++ {
		c.dirs[id] = t.TempDir()
		c.startNode(id)
	}
	t.Cleanup(c.stopAll)
	return c
}

// now is the cluster's timestamp oracle: strictly increasing, and never
// behind the wall clock (closed timestamps are the oracle's time minus a lag).
func (c *testCluster) now() uint64 {
	for {
		old := c.clock.Load()
		next := max(old+1, kv.MakeTimestamp(uint64(time.Now().UnixMilli()), 0))
		if c.clock.CompareAndSwap(old, next) {
			return next
		}
	}
}

func (c *testCluster) startNode(id uint64) *Store {
	c.t.Helper()
	eng, err := kv.Open(c.dirs[id], kv.EngineOptions{CacheSize: 8 << 20, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		c.t.Fatalf("open engine n%d: %v", id, err)
	}
	var transport Transport = &testTransport{net: c.net, node: id}
	var gt *GRPCTransport
	if c.grpc {
		gt = NewGRPCTransport(GRPCTransportConfig{
			NodeID:     id,
			Resolver:   c.book.resolve,
			Faults:     c.faults,
			MaxBackoff: 50 * time.Millisecond,
			OnUnreachable: func(peer uint64) {
				if st := c.store(id); st != nil {
					st.ReportUnreachable(peer)
				}
			},
		})
		transport = gt
	}
	cfg := Config{
		NodeID:         id,
		Engine:         eng,
		Transport:      transport,
		Clock:          c.now,
		TickInterval:   testTick,
		ElectionTicks:  10,
		HeartbeatTicks: 1,
		RequestTimeout: 3 * time.Second,
		Logger:         slog.New(slog.DiscardHandler),
	}
	if c.tune != nil {
		c.tune(&cfg)
	}
	s, err := NewStore(cfg)
	if err != nil {
		c.t.Fatalf("new store n%d: %v", id, err)
	}
	if c.grpc {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			c.t.Fatal(err)
		}
		c.book.set(id, lis.Addr().String())
		gt.SetHandler(s)
		srv := grpc.NewServer(GRPCServerOptions()...)
		gt.Register(srv)
		go func() { _ = srv.Serve(lis) }()
		c.mu.Lock()
		c.servers[id], c.trans[id] = srv, gt
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.stores[id], c.engs[id] = s, eng
	c.mu.Unlock()
	c.net.register(id, s)
	s.Start()
	return s
}

// partition splits the nodes into sides that cannot talk; heal ends it.
func (c *testCluster) partition(sides ...[]uint64) {
	if c.grpc {
		c.faults.Partition(sides...)
		return
	}
	c.net.partition(sides...)
}

func (c *testCluster) heal() {
	if c.grpc {
		c.faults.Heal()
		return
	}
	c.net.heal()
}

// stopNode kills a node: it drops off the network, its store stops and its
// engine closes (unsynced writes may be lost, as in a crash after the last
// fsync).
func (c *testCluster) stopNode(id uint64) {
	c.net.setDown(id, true)
	c.mu.Lock()
	s, eng := c.stores[id], c.engs[id]
	srv, gt := c.servers[id], c.trans[id]
	delete(c.stores, id)
	delete(c.engs, id)
	delete(c.servers, id)
	delete(c.trans, id)
	c.mu.Unlock()
	if srv != nil {
		srv.Stop()
		_ = gt.Close()
	}
	if s != nil {
		s.Stop()
	}
	if eng != nil {
		_ = eng.Close()
	}
}

func (c *testCluster) stopAll() {
	c.mu.Lock()
	ids := make([]uint64, 0, len(c.stores))
	for id := range c.stores {
		ids = append(ids, id)
	}
	c.mu.Unlock()
	for _, id := range ids {
		c.stopNode(id)
	}
}

func (c *testCluster) store(id uint64) *Store {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stores[id]
}

func (c *testCluster) liveIDs() []uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []uint64
	for id := uint64(1); id <= uint64(len(c.dirs)); id++ {
		if c.stores[id] != nil {
			ids = append(ids, id)
		}
	}
	return ids
}

func testDescriptor(rangeID uint64, nodes ...uint64) *kv.RangeDescriptor {
	d := &kv.RangeDescriptor{RangeID: rangeID, StartKey: kv.KeyMin, EndKey: kv.KeyMax, Generation: 1}
	for i, n := range nodes {
		d.Replicas = append(d.Replicas, kv.ReplicaDescriptor{NodeID: n, ReplicaID: uint64(i + 1)})
	}
	d.NextReplicaID = uint64(len(nodes) + 1)
	return d
}

func (c *testCluster) bootstrap(desc *kv.RangeDescriptor) {
	c.t.Helper()
	for _, r := range desc.Replicas {
		if err := c.store(r.NodeID).BootstrapRange(context.Background(), desc); err != nil {
			c.t.Fatalf("bootstrap r%d on n%d: %v", desc.RangeID, r.NodeID, err)
		}
	}
}

// waitFor polls cond every tick until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tk := time.NewTicker(testTick / 2)
	defer tk.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tk.C
	}
}

// leader returns the node whose replica of rangeID is the leader among the
// nodes given (all live nodes when none), or 0.
func (c *testCluster) leader(rangeID uint64, among ...uint64) uint64 {
	if len(among) == 0 {
		among = c.liveIDs()
	}
	var found uint64
	for _, id := range among {
		s := c.store(id)
		if s == nil {
			continue
		}
		if r := s.replica(rangeID); r != nil && r.isLeaderNow() {
			if found != 0 {
				// Two leaders of different terms can coexist briefly.
				return 0
			}
			found = id
		}
	}
	return found
}

func (c *testCluster) waitLeader(rangeID uint64, timeout time.Duration, among ...uint64) uint64 {
	c.t.Helper()
	var l uint64
	waitFor(c.t, timeout, fmt.Sprintf("a leader of r%d", rangeID), func() bool {
		l = c.leader(rangeID, among...)
		return l != 0
	})
	return l
}

// put writes key=value through a 1PC on whichever node leads, following
// NotLeader hints, until ctx is done.
func (c *testCluster) put(ctx context.Context, rangeID uint64, key, value []byte, among ...uint64) (uint64, error) {
	var lastErr error
	for ctx.Err() == nil {
		target := c.leader(rangeID, among...)
		if target == 0 {
			target = firstOr(among, c.liveIDs())
		}
		s := c.store(target)
		if s == nil {
			lastErr = fmt.Errorf("n%d is down", target)
			continue
		}
		start := c.now()
		resp, err := s.Execute(ctx, rangeID, &kv.Request{OnePhaseCommit: &kv.OnePhaseCommitRequest{
			Mutations: []kv.Mutation{{Op: kv.OpPut, Key: key, Value: value}},
			StartTS:   start,
			CommitTS:  c.now(),
		}})
		if err == nil {
			return resp.OnePhaseCommit.CommitTS, nil
		}
		lastErr = err
		var nl *kv.NotLeaderError
		var dropped *kv.ProposalDroppedError
		var unavailable *kv.RangeUnavailableError
		if !errors.As(err, &nl) && !errors.As(err, &dropped) && !errors.As(err, &unavailable) && !errors.Is(err, ErrStoreStopped) {
			return 0, err
		}
		select {
		case <-ctx.Done():
		case <-time.After(testTick):
		}
	}
	return 0, fmt.Errorf("put %q: %w (last error: %v)", key, ctx.Err(), lastErr)
}

func firstOr(a, b []uint64) uint64 {
	if len(a) > 0 {
		return a[0]
	}
	if len(b) > 0 {
		return b[0]
	}
	return 0
}

// get reads key at a fresh timestamp on the leader.
func (c *testCluster) get(ctx context.Context, rangeID uint64, key []byte, among ...uint64) ([]byte, bool, error) {
	var lastErr error
	for ctx.Err() == nil {
		target := c.leader(rangeID, among...)
		if target == 0 {
			target = firstOr(among, c.liveIDs())
		}
		s := c.store(target)
		if s == nil {
			continue
		}
		resp, err := s.Execute(ctx, rangeID, &kv.Request{Get: &kv.GetRequest{Key: key, ReadTS: c.now()}})
		if err == nil {
			return resp.Get.Value, resp.Get.Found, nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
		case <-time.After(testTick):
		}
	}
	return nil, false, fmt.Errorf("get %q: %w (last error: %v)", key, ctx.Err(), lastErr)
}

// checksums returns each live replica's checksum of rangeID's data at its
// applied state.
func (c *testCluster) checksums(rangeID uint64) map[uint64]uint64 {
	out := map[uint64]uint64{}
	for _, id := range c.liveIDs() {
		s := c.store(id)
		r := s.replica(rangeID)
		if r == nil {
			continue
		}
		d := r.Descriptor()
		if d == nil {
			continue
		}
		sum, err := kv.ChecksumRange(s.engine.DB(), d)
		if err != nil {
			c.t.Fatalf("checksum r%d on n%d: %v", rangeID, id, err)
		}
		out[id] = sum
	}
	return out
}

// waitConverged waits until every replica of rangeID on the given nodes has
// applied the same index and holds the same data.
func (c *testCluster) waitConverged(rangeID uint64, nodes []uint64, timeout time.Duration) {
	c.t.Helper()
	waitFor(c.t, timeout, fmt.Sprintf("r%d to converge on %v", rangeID, nodes), func() bool {
		var applied uint64
		for i, id := range nodes {
			s := c.store(id)
			if s == nil {
				return false
			}
			r := s.replica(rangeID)
			if r == nil || r.Descriptor() == nil {
				return false
			}
			r.mu.Lock()
			a := r.applied
			r.mu.Unlock()
			if i == 0 {
				applied = a
			} else if a != applied {
				return false
			}
		}
		sums := c.checksums(rangeID)
		var first uint64
		for i, id := range nodes {
			if i == 0 {
				first = sums[id]
			} else if sums[id] != first {
				return false
			}
		}
		return true
	})
}

// forEachTransport runs an acceptance test over the in-process network and
// over the real gRPC transport.
func forEachTransport(t *testing.T, test func(t *testing.T, transport string)) {
	for _, tr := range testTransports {
		t.Run(tr, func(t *testing.T) { test(t, tr) })
	}
}
