package txn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/cluster"
	"github.com/quorumdb/quorumdb/kv"
)

// memNodes puts three "nodes" in front of a single-node store: each range has a
// leader node, other nodes answer NotLeader with a hint, a down node fails
// like an unreachable address. Fault injection on top of the real evaluator.
type memNodes struct {
	store *testStore

	mu            sync.Mutex
	leader        map[uint64]uint64
	down          map[uint64]bool
	hang          map[uint64]bool // never answer (a silent partition)
	mismatchRange uint64          // answer EpochMismatch for this range (0: never)
	calls         []string
}

var errConnRefused = errors.New("dial: connection refused")

func newMemNodes(s *testStore) *memNodes {
	return &memNodes{store: s, leader: make(map[uint64]uint64), down: make(map[uint64]bool), hang: make(map[uint64]bool)}
}

func (n *memNodes) Execute(ctx context.Context, nodeID, rangeID uint64, req *kv.Request) (*kv.Response, error) {
	n.mu.Lock()
	n.calls = append(n.calls, fmt.Sprintf("n%d/r%d", nodeID, rangeID))
	down := n.down[nodeID]
	hang := n.hang[nodeID]
	leader := n.leader[rangeID]
	if leader == 0 {
		leader = 1
	}
	mismatch := n.mismatchRange == rangeID
	n.mu.Unlock()
	if down {
		return nil, fmt.Errorf("node %d: %w", nodeID, errConnRefused)
	}
	if hang {
		<-ctx.Done()
		return nil, fmt.Errorf("node %d: %w", nodeID, ctx.Err())
	}
	if nodeID != leader {
		return nil, &kv.NotLeaderError{RangeID: rangeID, LeaderNodeID: leader}
	}
	if mismatch {
		var descs []*kv.RangeDescriptor
		for _, d := range n.store.descriptors() {
			descs = append(descs, threeReplicas(d))
		}
		return nil, &kv.EpochMismatchError{RangeID: rangeID, Descriptors: descs}
	}
	return n.store.Execute(ctx, rangeID, req)
}

// threeReplicas presents a single-node descriptor as replicated on n1..n3.
func threeReplicas(d *kv.RangeDescriptor) *kv.RangeDescriptor {
	d = d.Clone()
	d.Replicas = []kv.ReplicaDescriptor{{NodeID: 1, ReplicaID: 1}, {NodeID: 2, ReplicaID: 2}, {NodeID: 3, ReplicaID: 3}}
	return d
}

// LookupRange is the directory of the three-node view.
func (n *memNodes) LookupRange(ctx context.Context, key []byte) (*kv.RangeDescriptor, error) {
	d, err := n.store.LookupRange(ctx, key)
	if err != nil {
		return nil, err
	}
	return threeReplicas(d), nil
}

func (n *memNodes) set(f func(n *memNodes)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f(n)
}

func (n *memNodes) takeCalls() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := n.calls
	n.calls = nil
	return c
}

func newRouterDB(t *testing.T, maxWait time.Duration, splitKeys ...string) (*DB, *Router, *memNodes, *testStore) {
	t.Helper()
	s := newTestStore(t, splitKeys...)
	nodes := newMemNodes(s)
	r := NewRouter(RouterConfig{Directory: nodes, Nodes: nodes, MaxWait: maxWait, InitialBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	db := NewDB(DBConfig{Sender: r, Clock: s.clock})
	t.Cleanup(db.Close)
	return db, r, nodes, s
}

func TestRouterFollowsLeaderHint(t *testing.T) {
	db, _, nodes, _ := newRouterDB(t, time.Second)
	nodes.set(func(n *memNodes) { n.leader[1] = 3 })
	mustPut(t, db, "a", "1")
	calls := nodes.takeCalls()
	if len(calls) < 2 || calls[0] != "n1/r1" || calls[1] != "n3/r1" {
		t.Fatalf("calls %v: want n1 then the hinted n3", calls)
	}
	if v, _ := readCommitted(t, db, "a"); v != "1" {
		t.Fatalf("a = %q", v)
	}
	for _, c := range nodes.takeCalls() {
		if c != "n3/r1" {
			t.Fatalf("after learning the leader, a call went to %s", c)
		}
	}
}

func TestRouterSkipsUnreachableNode(t *testing.T) {
	db, _, nodes, _ := newRouterDB(t, time.Second)
	mustPut(t, db, "a", "1")
	// The leader's node dies; leadership moves to n2.
	nodes.set(func(n *memNodes) { n.down[1] = true; n.leader[1] = 2 })
	mustPut(t, db, "a", "2")
	if v, _ := readCommitted(t, db, "a"); v != "2" {
		t.Fatalf("a = %q", v)
	}
}

// TestRouterGivesUpOnSilentLeader: the cached leader stops answering (cut
// off by a partition that drops packets) while the other replicas elected a
// new one; each attempt is bounded, so the request reaches the new leader
// long before the range's overall wait runs out.
func TestRouterGivesUpOnSilentLeader(t *testing.T) {
	s := newTestStore(t)
	nodes := newMemNodes(s)
	r := NewRouter(RouterConfig{Directory: nodes, Nodes: nodes, MaxWait: 30 * time.Second,
		AttemptTimeout: 100 * time.Millisecond, InitialBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	db := NewDB(DBConfig{Sender: r, Clock: s.clock})
	t.Cleanup(db.Close)
	mustPut(t, db, "a", "1")
	nodes.set(func(n *memNodes) { n.hang[1] = true; n.leader[1] = 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.Run(ctx, TxnOptions{}, func(ctx context.Context, tx *Txn) error {
		return tx.Put(ctx, []byte("a"), []byte("2"))
	}); err != nil {
		t.Fatalf("put with a silent old leader: %v", err)
	}
	if v, _ := readCommitted(t, db, "a"); v != "2" {
		t.Fatalf("a = %q", v)
	}
}

func TestRouterRegroupsAfterSplit(t *testing.T) {
	db, r, _, s := newRouterDB(t, time.Second)
	mustPut(t, db, "a", "1", "x", "1") // caches the single range
	if r.CachedRanges() != 1 {
		t.Fatalf("cached %d ranges", r.CachedRanges())
	}
	if _, _, err := s.split(context.Background(), "m"); err != nil {
		t.Fatal(err)
	}
	// Writes to both halves with the stale descriptor: KeyOutOfRange, then
	// the router looks the ranges up again and the commit goes through 2PC.
	mustPut(t, db, "a", "2", "x", "2")
	tx, _ := db.Begin(context.Background(), TxnOptions{})
	rows, err := tx.Scan(context.Background(), []byte("a"), nil, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := rowsString(rows); got != "a=2 x=2 " {
		t.Fatalf("after split: %s", got)
	}
	if r.CachedRanges() != 2 {
		t.Fatalf("cached %d ranges after the split, want 2", r.CachedRanges())
	}
}

func TestRouterEpochMismatchRefreshesCache(t *testing.T) {
	db, r, nodes, s := newRouterDB(t, time.Second)
	mustPut(t, db, "a", "1", "x", "1")
	if _, _, err := s.split(context.Background(), "m"); err != nil {
		t.Fatal(err)
	}
	nodes.set(func(n *memNodes) { n.mismatchRange = 1 })
	// The first request to r1 with the old descriptor gets the current
	// descriptors back; from then on r1 is only [KeyMin, m), which the
	// nodes serve normally again.
	done := make(chan error, 1)
	go func() {
		tx, _ := db.Begin(context.Background(), TxnOptions{})
		_, _, err := tx.Get(context.Background(), []byte("x"))
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatalf("get after epoch mismatch: %v", err)
	}
	nodes.set(func(n *memNodes) { n.mismatchRange = 0 })
	if r.CachedRanges() != 2 {
		t.Fatalf("cache holds %d ranges, want the 2 from the mismatch error", r.CachedRanges())
	}
}

func TestRouterBoundedWaitNamesRange(t *testing.T) {
	db, _, nodes, _ := newRouterDB(t, 200*time.Millisecond, "m")
	nodes.set(func(n *memNodes) { n.down[1], n.down[2], n.down[3] = true, true, true })
	start := time.Now()
	tx, _ := db.Begin(context.Background(), TxnOptions{})
	_, _, err := tx.Get(context.Background(), []byte("x"))
	var ru *RangeUnavailableError
	if !errors.As(err, &ru) || ru.RangeID != 2 {
		t.Fatalf("get with every node down: %v, want RangeUnavailableError for r2", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("bounded wait took %v", el)
	}
	if !errors.Is(err, errConnRefused) {
		t.Fatalf("the error does not carry the last cause: %v", err)
	}
}

func TestRangeCacheOrderedInsertEvict(t *testing.T) {
	c := newRangeCache()
	d := func(id uint64, s, e string, gen uint64) *kv.RangeDescriptor {
		end := []byte(e)
		if e == "" {
			end = kv.KeyMax
		}
		return &kv.RangeDescriptor{RangeID: id, StartKey: []byte(s), EndKey: end, Generation: gen}
	}
	c.insert(d(1, "", "", 1))
	if got := c.lookup([]byte("q")); got == nil || got.RangeID != 1 {
		t.Fatalf("lookup q = %v", got)
	}
	// A split: the left part and the right part replace the whole.
	c.insert(d(1, "", "m", 2))
	c.insert(d(2, "m", "", 2))
	if got := c.lookup([]byte("q")); got == nil || got.RangeID != 2 {
		t.Fatalf("lookup q after split = %v", got)
	}
	if got := c.lookup([]byte("a")); got == nil || got.RangeID != 1 {
		t.Fatalf("lookup a after split = %v", got)
	}
	if got := c.lookupBefore([]byte("m")); got == nil || got.RangeID != 1 {
		t.Fatalf("lookupBefore m = %v", got)
	}
	if got := c.lookupBefore(kv.KeyMax); got == nil || got.RangeID != 2 {
		t.Fatalf("lookupBefore KeyMax = %v", got)
	}
	// A late stale answer (older generation) does not replace the new one.
	c.insert(d(1, "", "", 1))
	if got := c.lookup([]byte("q")); got == nil || got.RangeID != 2 {
		t.Fatalf("a stale descriptor replaced a newer one: %v", got)
	}
	c.evict(d(2, "m", "", 2))
	if got := c.lookup([]byte("q")); got != nil {
		t.Fatalf("evicted range still found: %v", got)
	}
	if c.len() != 1 {
		t.Fatalf("cache len %d", c.len())
	}
}

func TestRouterFollowDirectory(t *testing.T) {
	r := NewRouter(RouterConfig{Directory: RangeDirectoryFunc(func(ctx context.Context, key []byte) (*kv.RangeDescriptor, error) {
		return nil, errors.New("directory down")
	}), Nodes: nil, MaxWait: 50 * time.Millisecond})
	events := make(chan cluster.RangeEvent, 4)
	whole := &kv.RangeDescriptor{RangeID: 1, StartKey: kv.KeyMin, EndKey: kv.KeyMax, Generation: 1}
	left := &kv.RangeDescriptor{RangeID: 1, StartKey: kv.KeyMin, EndKey: []byte("m"), Generation: 2}
	right := &kv.RangeDescriptor{RangeID: 2, StartKey: []byte("m"), EndKey: kv.KeyMax, Generation: 2}
	events <- cluster.RangeEvent{Desc: whole}
	events <- cluster.RangeEvent{Desc: left}
	events <- cluster.RangeEvent{Desc: right}
	events <- cluster.RangeEvent{Desc: whole, Removed: true}
	close(events)
	r.FollowDirectory(events)
	ctx := context.Background()
	if d, err := r.RangeForKey(ctx, []byte("x")); err != nil || d.RangeID != 2 {
		t.Fatalf("x -> %v, %v", d, err)
	}
	if d, err := r.RangeForKey(ctx, []byte("a")); err != nil || d.RangeID != 1 || d.Generation != 2 {
		t.Fatalf("a -> %v, %v", d, err)
	}
	// With the directory down and nothing cached, the lookup fails in
	// bounded time with a typed error.
	r.EvictRange(right)
	var ru *RangeUnavailableError
	if _, err := r.RangeForKey(ctx, []byte("x")); !errors.As(err, &ru) {
		t.Fatalf("lookup with the directory down: %v", err)
	}
}
