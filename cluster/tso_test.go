package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/quorumdb/quorumdb/kv"
)

// tsoNode is one TSO candidate: a TSOServer behind a real gRPC server.
type tsoNode struct {
	srv    *TSOServer
	client *Client
	addr   string
	grpc   *grpc.Server
	cancel context.CancelFunc
	done   chan struct{}
}

func startTSONodeB(b *testing.B) *tsoNode {
	n := startTSONode(b, connectTest(b), nil)
	waitFor(b, 20*time.Second, "leader", n.srv.IsLeader)
	return n
}

func startTSONode(t testing.TB, c *Client, knobs *TSOTestingKnobs) *tsoNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewTSOServer(c, TSOServerConfig{AdvertiseAddr: ln.Addr().String(), Knobs: knobs})
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(TSOServerCodec())
	RegisterTSOService(gs, srv)
	go func() { _ = gs.Serve(ln) }()
	ctx, cancel := context.WithCancel(context.Background())
	n := &tsoNode{srv: srv, client: c, addr: ln.Addr().String(), grpc: gs, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		_ = srv.Run(ctx)
	}()
	t.Cleanup(n.stop)
	return n
}

// stop shuts the node down cleanly (resigning if it leads).
func (n *tsoNode) stop() {
	n.cancel()
	<-n.done
	n.grpc.Stop()
}

// crash kills the node without resigning: its etcd client and RPC server
// vanish, its lease expires on its own.
func (n *tsoNode) crash() {
	n.grpc.Stop()
	_ = n.client.Close()
	n.cancel()
	<-n.done
}

func waitForTSOLeader(t testing.TB, nodes []*tsoNode, not *tsoNode) *tsoNode {
	t.Helper()
	var leader *tsoNode
	waitFor(t, 20*time.Second, "a TSO leader", func() bool {
		for _, n := range nodes {
			if n != not && n.srv.IsLeader() {
				leader = n
				return true
			}
		}
		return false
	})
	return leader
}

// tsoHistory checks what every worker observes: each worker's timestamps
// strictly increase, every timestamp is unique, and a timestamp is larger
// than every timestamp returned to anyone before its call began.
type tsoHistory struct {
	maxReturned atomic.Uint64
	mu          sync.Mutex
	seen        map[kv.Timestamp]bool
	count       atomic.Int64
}

func (h *tsoHistory) worker(ctx context.Context, get func(context.Context) (kv.Timestamp, error)) error {
	var last kv.Timestamp
	for ctx.Err() == nil {
		before := h.maxReturned.Load()
		ts, err := get(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if ts <= before {
			return fmt.Errorf("timestamp %d not above %d returned before the call began", ts, before)
		}
		if ts <= last {
			return fmt.Errorf("worker sequence went from %d to %d", last, ts)
		}
		last = ts
		h.mu.Lock()
		dup := h.seen[ts]
		h.seen[ts] = true
		h.mu.Unlock()
		if dup {
			return fmt.Errorf("timestamp %d handed out twice", ts)
		}
		for {
			cur := h.maxReturned.Load()
			if ts <= cur || h.maxReturned.CompareAndSwap(cur, ts) {
				break
			}
		}
		h.count.Add(1)
	}
	return nil
}

func (h *tsoHistory) waitForProgress(t *testing.T, n int64) {
	t.Helper()
	target := h.count.Load() + n
	waitFor(t, 20*time.Second, fmt.Sprintf("%d more timestamps", n), func() bool { return h.count.Load() >= target })
}

func TestTSOMonotonicAcrossLeaderChanges(t *testing.T) {
	var nodes []*tsoNode
	for range 3 {
		nodes = append(nodes, startTSONode(t, connectTest(t), nil))
	}
	leader := waitForTSOLeader(t, nodes, nil)

	h := &tsoHistory{seen: map[kv.Timestamp]bool{}}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	var clients []*TSOClient
	for range 3 {
		tc := NewTSOClient(connectTest(t), TSOClientConfig{MaxWait: 15 * time.Second})
		clients = append(clients, tc)
		defer tc.Close()
		for range 4 {
			wg.Go(func() {
				if err := h.worker(ctx, tc.GetTimestamp); err != nil {
					errs <- err
					stop()
				}
			})
		}
	}
	h.waitForProgress(t, 200)

	// Forced change 1: the leader resigns.
	if err := leader.srv.Resign(context.Background()); err != nil {
		t.Fatal(err)
	}
	leader = waitForTSOLeader(t, nodes, leader)
	h.waitForProgress(t, 200)

	// Forced change 2: the leader crashes; its lease must expire first.
	leader.crash()
	leader = waitForTSOLeader(t, nodes, leader)
	h.waitForProgress(t, 200)

	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var rpcs, reqs uint64
	for _, tc := range clients {
		s := tc.Stats()
		rpcs += s.RPCs
		reqs += s.Requests
	}
	t.Logf("%d timestamps, %d unique, %d requests in %d RPCs", h.count.Load(), len(h.seen), reqs, rpcs)
}

func TestTSODeposedLeaderStopsBeforeSuccessorServes(t *testing.T) {
	// A reaches etcd through a proxy that the test cuts: A is partitioned
	// from etcd but still up and asked for timestamps directly.
	proxy := newTCPProxy(t, etcdHostPort(testEtcd.Endpoints()[0]))
	a := startTSONode(t, connectEndpoints(t, []string{"http://" + proxy.addr()}), nil)
	waitFor(t, 20*time.Second, "A leads", a.srv.IsLeader)
	b := startTSONode(t, connectTest(t), nil)

	// For every timestamp A hands out, remember when the call started: a
	// call that started after B's first timestamp returned must fail.
	// (Both clocks are read on the safe side of the calls they time.)
	var lastA atomic.Uint64
	var lastAServedAt atomic.Int64
	hammer, stopHammer := context.WithCancel(context.Background())
	hammerDone := make(chan struct{})
	go func() {
		defer close(hammerDone)
		for hammer.Err() == nil {
			started := time.Now().UnixNano()
			if ts, err := a.srv.GetTimestamps(1); err == nil {
				lastA.Store(ts)
				lastAServedAt.Store(started)
			}
		}
	}()
	waitFor(t, 5*time.Second, "A serving", func() bool { return lastA.Load() != 0 })
	proxy.cut()

	var first kv.Timestamp
	waitFor(t, 20*time.Second, "B serving", func() bool {
		ts, err := b.srv.GetTimestamps(1)
		if err != nil {
			return false
		}
		first = ts
		return true
	})
	bServedAt := time.Now().UnixNano()
	// A must have refused before B served: asked now, it refuses.
	var notLeader *TSONotLeaderError
	if _, err := a.srv.GetTimestamps(1); !errors.As(err, &notLeader) {
		t.Fatalf("deposed leader answered: %v", err)
	}
	stopHammer()
	<-hammerDone
	if last := lastAServedAt.Load(); last >= bServedAt {
		t.Fatalf("A served a call started at %d, after B served at %d", last, bServedAt)
	}
	if first <= lastA.Load() {
		t.Fatalf("successor's first timestamp %d not above the deposed leader's last %d", first, lastA.Load())
	}
	t.Logf("A's last successful call started %s before B's first timestamp", time.Duration(bServedAt-lastAServedAt.Load()))
}

func TestTSOStopsWhenElectionKeyDeleted(t *testing.T) {
	c := connectTest(t)
	n := startTSONode(t, c, nil)
	waitFor(t, 20*time.Second, "leader", n.srv.IsLeader)
	ctx := testCtx(t, 10*time.Second)
	// Deleting every election key deposes the leader behind its back.
	if _, err := c.etcd.Delete(ctx, c.key(ElectionTSO+"/election/"), withPrefix()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "leader steps down", func() bool {
		_, err := n.srv.GetTimestamps(1)
		var nl *TSONotLeaderError
		return errors.As(err, &nl)
	})
}

func TestTSOClientBatchesConcurrentCalls(t *testing.T) {
	n := startTSONode(t, connectTest(t), nil)
	waitFor(t, 20*time.Second, "leader", n.srv.IsLeader)
	tc := NewTSOClient(connectTest(t), TSOClientConfig{})
	defer tc.Close()
	h := &tsoHistory{seen: map[kv.Timestamp]bool{}}
	const callers, calls = 64, 30
	ctx := testCtx(t, 30*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			var last kv.Timestamp
			for range calls {
				ts, err := tc.GetTimestamp(ctx)
				if err != nil {
					errs <- err
					return
				}
				if ts <= last {
					errs <- fmt.Errorf("sequence went from %d to %d", last, ts)
					return
				}
				last = ts
				h.mu.Lock()
				dup := h.seen[ts]
				h.seen[ts] = true
				h.mu.Unlock()
				if dup {
					errs <- fmt.Errorf("duplicate %d", ts)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s := tc.Stats()
	if s.Requests != callers*calls {
		t.Fatalf("stats count %d requests, want %d", s.Requests, callers*calls)
	}
	if s.RPCs >= s.Requests {
		t.Fatalf("no batching: %d RPCs for %d calls", s.RPCs, s.Requests)
	}
	t.Logf("%d calls in %d RPCs", s.Requests, s.RPCs)
}

func TestTSOMonotonicWhenClockGoesBack(t *testing.T) {
	var offset atomic.Int64
	knobs := &TSOTestingKnobs{Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }}
	n := startTSONode(t, connectTest(t), knobs)
	waitFor(t, 20*time.Second, "leader", n.srv.IsLeader)
	var last kv.Timestamp
	take := func() {
		t.Helper()
		ts, err := n.srv.GetTimestamps(MaxTimestampBatch)
		if err != nil {
			t.Fatal(err)
		}
		if ts <= last {
			t.Fatalf("timestamp went from %d to %d", last, ts)
		}
		last = ts + MaxTimestampBatch - 1
	}
	for range 10 {
		take()
	}
	offset.Store(int64(-10 * time.Second))
	for range 10 {
		take()
	}
	if _, err := n.srv.GetTimestamps(0); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("batch of 0: %v", err)
	}
	if _, err := n.srv.GetTimestamps(MaxTimestampBatch + 1); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("oversized batch: %v", err)
	}
}

func TestTSOClientWithoutLeaderFailsInBoundedTime(t *testing.T) {
	tc := NewTSOClient(connectTest(t), TSOClientConfig{MaxWait: 300 * time.Millisecond})
	defer tc.Close()
	start := time.Now()
	_, err := tc.GetTimestamp(testCtx(t, 10*time.Second))
	var unavailable *TSOUnavailableError
	if !errors.As(err, &unavailable) {
		t.Fatalf("no TSO leader: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("failing took %s", d)
	}
	tc.Close()
	if _, err := tc.GetTimestamp(testCtx(t, time.Second)); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestTSONonLeaderRefusesOverRPC(t *testing.T) {
	c := connectTest(t)
	leader := startTSONode(t, c, nil)
	waitFor(t, 20*time.Second, "leader", leader.srv.IsLeader)
	follower := startTSONode(t, connectTest(t), nil)
	conn, err := grpc.NewClient(follower.addr, grpcInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = callGetTimestamps(testCtx(t, 5*time.Second), conn, 1)
	if err == nil {
		t.Fatal("a follower handed out a timestamp")
	}
	conn2, err := grpc.NewClient(leader.addr, grpcInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	if ts, err := callGetTimestamps(testCtx(t, 5*time.Second), conn2, 10); err != nil || kv.PhysicalMillis(ts) == 0 {
		t.Fatalf("leader over RPC: %d, %v", ts, err)
	}
}
