package raftgroup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/quorumdb/quorumdb/kv"
)

// Stores replicating over the real gRPC transport, served and driven through
// the KV service, with faults from one shared FaultInjector: the wiring a
// node process uses (one gRPC server per node hosting transport + KV).

type transportStoreNode struct {
	id        uint64
	store     *Store
	transport *GRPCTransport
	server    *grpc.Server
	client    *KVClient // this node's client (cut by the node's faults)
	engine    *kv.Engine
}

type transportStoreCluster struct {
	t      *testing.T
	faults *FaultInjector
	book   *transportTestAddrs
	clock  atomic.Uint64
	nodes  map[uint64]*transportStoreNode
}

func newTransportStoreCluster(t *testing.T, n int, tune func(*Config)) *transportStoreCluster {
	c := &transportStoreCluster{t: t, faults: NewFaultInjector(7), book: &transportTestAddrs{}, nodes: map[uint64]*transportStoreNode{}}
	c.clock.Store(kv.MakeTimestamp(uint64(time.Now().UnixMilli()), 0))
	quiet := slog.New(slog.DiscardHandler)
	for id := uint64(1); id <= uint64(n); id++ {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		c.book.set(id, lis.Addr().String())
		eng, err := kv.Open(t.TempDir(), kv.EngineOptions{CacheSize: 8 << 20, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		node := &transportStoreNode{id: id, engine: eng}
		node.transport = NewGRPCTransport(GRPCTransportConfig{
			NodeID:        id,
			Resolver:      c.book.resolve,
			Faults:        c.faults,
			MaxBackoff:    100 * time.Millisecond,
			OnUnreachable: func(peer uint64) { node.store.ReportUnreachable(peer) },
		})
		cfg := Config{
			NodeID:         id,
			Engine:         eng,
			Transport:      node.transport,
			Clock:          func() uint64 { return c.clock.Add(1) },
			TickInterval:   10 * time.Millisecond,
			ElectionTicks:  10,
			HeartbeatTicks: 1,
			RequestTimeout: 2 * time.Second,
			Logger:         quiet,
		}
		if tune != nil {
			tune(&cfg)
		}
		node.store, err = NewStore(cfg)
		if err != nil {
			t.Fatal(err)
		}
		node.transport.SetHandler(node.store)
		node.server = grpc.NewServer(GRPCServerOptions()...)
		node.transport.Register(node.server)
		RegisterKVService(node.server, node.store)
		go func() { _ = node.server.Serve(lis) }()
		node.client = NewKVClient(KVClientConfig{NodeID: id, Resolver: c.book.resolve, Faults: c.faults, DialTimeout: time.Second, MaxBackoff: 100 * time.Millisecond})
		node.store.Start()
		c.nodes[id] = node
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			n.server.Stop()
			_ = n.transport.Close()
			n.store.Stop()
			_ = n.client.Close()
			_ = n.engine.Close()
		}
	})
	return c
}

// put writes key=value with a 1PC sent from node via's client, starting at
// node first and following NotLeader hints, until ctx ends.
func (c *transportStoreCluster) put(ctx context.Context, via, first uint64, key, value string) error {
	target := first
	var last error
	for ctx.Err() == nil {
		start := c.clock.Add(1)
		_, err := c.nodes[via].client.Execute(ctx, target, 1, &kv.Request{OnePhaseCommit: &kv.OnePhaseCommitRequest{
			Mutations: []kv.Mutation{{Op: kv.OpPut, Key: []byte(key), Value: []byte(value)}},
			StartTS:   start,
			CommitTS:  c.clock.Add(1),
		}})
		if err == nil {
			return nil
		}
		last = err
		var notLeader *kv.NotLeaderError
		if errors.As(err, &notLeader) && notLeader.LeaderNodeID != 0 {
			target = notLeader.LeaderNodeID
			continue
		}
		// No leader known or the target is unreachable: try the next node.
		target = target%uint64(len(c.nodes)) + 1
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("put %s via n%d: %w (last: %v)", key, via, ctx.Err(), last)
}

// get reads key at a fresh timestamp through node via's client, following
// NotLeader hints, until ctx ends.
func (c *transportStoreCluster) get(ctx context.Context, via uint64, key string) (bool, error) {
	target := via
	var last error
	for ctx.Err() == nil {
		resp, err := c.nodes[via].client.Execute(ctx, target, 1, &kv.Request{Get: &kv.GetRequest{Key: []byte(key), ReadTS: c.clock.Add(1)}})
		if err == nil {
			return resp.Get.Found, nil
		}
		last = err
		var notLeader *kv.NotLeaderError
		if errors.As(err, &notLeader) && notLeader.LeaderNodeID != 0 {
			target = notLeader.LeaderNodeID
			continue
		}
		target = target%uint64(len(c.nodes)) + 1
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false, fmt.Errorf("get %s via n%d: %w (last: %v)", key, via, ctx.Err(), last)
}

func (c *transportStoreCluster) leader() uint64 {
	for id, n := range c.nodes {
		for _, ri := range n.store.RangeInfo() {
			if ri.RangeID == 1 && ri.IsLeader {
				return id
			}
		}
	}
	return 0
}

func (c *transportStoreCluster) waitConverged(desc *kv.RangeDescriptor) {
	c.t.Helper()
	transportWaitFor(c.t, "replicas to converge", func() bool {
		var sums []uint64
		for id := uint64(1); id <= uint64(len(c.nodes)); id++ {
			sum, err := kv.ChecksumRange(c.nodes[id].engine.DB(), desc)
			if err != nil {
				c.t.Fatalf("checksum n%d: %v", id, err)
			}
			sums = append(sums, sum)
		}
		for _, s := range sums[1:] {
			if s != sums[0] {
				return false
			}
		}
		return true
	})
}

func TestStoresReplicateOverGRPCTransportThroughPartition(t *testing.T) {
	c := newTransportStoreCluster(t, 3, nil)
	desc := &kv.RangeDescriptor{RangeID: 1, StartKey: kv.KeyMin, EndKey: kv.KeyMax, Generation: 1, NextReplicaID: 4,
		Replicas: []kv.ReplicaDescriptor{{NodeID: 1, ReplicaID: 1}, {NodeID: 2, ReplicaID: 2}, {NodeID: 3, ReplicaID: 3}}}
	for _, n := range c.nodes {
		if err := n.store.BootstrapRange(context.Background(), desc); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 20 {
		if err := c.put(ctx, 2, 1, fmt.Sprintf("k%02d", i), "before"); err != nil {
			t.Fatal(err)
		}
	}
	old := c.leader()
	if old == 0 {
		t.Fatal("writes committed without a leader")
	}

	// Cut the leader off: the other two elect a leader and keep committing;
	// the old leader's side cannot commit, and says so within its bound.
	var majority []uint64
	for id := range c.nodes {
		if id != old {
			majority = append(majority, id)
		}
	}
	c.faults.Partition([]uint64{old}, majority)
	for i := range 20 {
		if err := c.put(ctx, majority[0], majority[0], fmt.Sprintf("m%02d", i), "majority"); err != nil {
			t.Fatal(err)
		}
	}
	minorityCtx, cancelMinority := context.WithTimeout(ctx, time.Second)
	err := c.put(minorityCtx, old, old, "lost", "minority")
	cancelMinority()
	if err == nil {
		t.Fatal("the isolated old leader committed a write")
	}
	// The majority never saw it commit. (After healing it may still apply:
	// the minority's error said the outcome was unknown.)
	if found, err := c.get(ctx, majority[0], "lost"); err != nil || found {
		t.Fatalf("majority reads the minority's write: found=%v, %v", found, err)
	}
	if _, err := c.nodes[majority[0]].client.Execute(ctx, old, 1, &kv.Request{Get: &kv.GetRequest{Key: []byte("k00"), ReadTS: c.clock.Add(1)}}); !errors.As(err, new(*NodeUnavailableError)) {
		t.Fatalf("client across the partition: got %v, want NodeUnavailableError", err)
	}

	c.faults.Heal()
	if err := c.put(ctx, old, old, "after", "heal"); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(desc)
	for _, key := range []string{"k00", "m19", "after"} {
		if found, err := c.get(ctx, old, key); err != nil || !found {
			t.Fatalf("key %s after the partition healed: found=%v, %v", key, found, err)
		}
	}
	var sent uint64
	for _, n := range c.nodes {
		s := n.transport.Stats()
		sent += s.MessagesSent
		if s.FramesSent > s.MessagesSent {
			t.Fatalf("n%d: more frames than messages: %+v", n.id, s)
		}
	}
	if sent == 0 {
		t.Fatal("the stores did not use the gRPC transport")
	}
}

func TestStoreCatchesUpBySnapshotOverGRPCTransport(t *testing.T) {
	c := newTransportStoreCluster(t, 3, func(cfg *Config) {
		cfg.LogKeepEntries = 5
		cfg.LogTruncateThreshold = 20
		cfg.SnapshotChunkBytes = 4 << 10
	})
	desc := &kv.RangeDescriptor{RangeID: 1, StartKey: kv.KeyMin, EndKey: kv.KeyMax, Generation: 1, NextReplicaID: 4,
		Replicas: []kv.ReplicaDescriptor{{NodeID: 1, ReplicaID: 1}, {NodeID: 2, ReplicaID: 2}, {NodeID: 3, ReplicaID: 3}}}
	for _, n := range c.nodes {
		if err := n.store.BootstrapRange(context.Background(), desc); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.put(ctx, 1, 1, "first", "x"); err != nil {
		t.Fatal(err)
	}
	var leader uint64
	transportWaitFor(t, "a leader", func() bool { leader = c.leader(); return leader != 0 })
	lagging := leader%3 + 1 // a follower
	c.faults.Isolate(lagging)
	first := lagging%3 + 1
	value := string(make([]byte, 512))
	for i := range 100 {
		if err := c.put(ctx, first, first, fmt.Sprintf("k%03d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	c.faults.Heal()
	c.waitConverged(desc)
	// The snapshot's ack reaches the sender just after the receiver applied
	// it, so wait for the count rather than read it once.
	transportWaitFor(t, "an acknowledged snapshot", func() bool {
		var snapshots uint64
		for _, n := range c.nodes {
			snapshots += n.transport.Stats().SnapshotsSent
		}
		return snapshots > 0
	})
	if got := c.nodes[lagging].transport.Stats().SnapshotsReceived; got == 0 {
		t.Fatalf("n%d caught up without a snapshot: the log was not truncated behind it", lagging)
	}
}
