package cluster

import (
	"errors"
	"testing"
	"time"
)

// nextNodeEvent reads one event with a bounded wait.
func nextNodeEvent(t *testing.T, ch <-chan NodeEvent) NodeEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("node watch closed")
		}
		return ev
	case <-time.After(15 * time.Second):
		t.Fatal("no node event within 15s")
	}
	return NodeEvent{}
}

func TestRegisterListWatchDeregister(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	c := connectTest(t)
	watch := c.WatchNodes(ctx)

	r1, err := c.Register(ctx, NodeInfo{Name: "n1", RPCAddr: "127.0.0.1:7001", SQLAddr: "127.0.0.1:4001"})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := c.Register(ctx, NodeInfo{Name: "n2", RPCAddr: "127.0.0.1:7002"})
	if err != nil {
		t.Fatal(err)
	}
	if r1.ID() == 0 || r2.ID() == 0 || r1.ID() == r2.ID() {
		t.Fatalf("node IDs %d and %d", r1.ID(), r2.ID())
	}
	for _, want := range []uint64{r1.ID(), r2.ID()} {
		ev := nextNodeEvent(t, watch)
		if ev.Kind != NodeUp || ev.Node.ID != want {
			t.Fatalf("event %v %+v, want up of node %d", ev.Kind, ev.Node, want)
		}
	}
	nodes, err := c.ListNodes(ctx)
	if err != nil || len(nodes) != 2 || nodes[0].ID != r1.ID() || nodes[0].SQLAddr != "127.0.0.1:4001" {
		t.Fatalf("live nodes %+v, %v", nodes, err)
	}

	book, err := c.NewAddressBook(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer book.Close()
	if addr, err := book.NodeAddress(r2.ID()); err != nil || addr != "127.0.0.1:7002" {
		t.Fatalf("resolve node %d: %q, %v", r2.ID(), addr, err)
	}

	if err := r1.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	ev := nextNodeEvent(t, watch)
	if ev.Kind != NodeDown || ev.Node.ID != r1.ID() || ev.Node.RPCAddr != "127.0.0.1:7001" {
		t.Fatalf("event %v %+v, want down of node %d", ev.Kind, ev.Node, r1.ID())
	}
	if nodes, err := c.ListNodes(ctx); err != nil || len(nodes) != 1 || nodes[0].ID != r2.ID() {
		t.Fatalf("live nodes after deregister %+v, %v", nodes, err)
	}
	// The dead node stays resolvable, and GetNode says it is not live.
	if addr, err := book.NodeAddress(r1.ID()); err != nil || addr != "127.0.0.1:7001" {
		t.Fatalf("resolve deregistered node: %q, %v", addr, err)
	}
	if info, live, err := c.GetNode(ctx, r1.ID()); err != nil || live || info.Name != "n1" {
		t.Fatalf("GetNode(%d) = %+v live=%v err=%v", r1.ID(), info, live, err)
	}
	var nf *NodeNotFoundError
	if _, err := book.NodeAddress(999999); !errors.As(err, &nf) {
		t.Fatalf("unknown node: %v", err)
	}
	if known, err := c.ListKnownNodes(ctx); err != nil || len(known) != 2 {
		t.Fatalf("known nodes %+v, %v", known, err)
	}
	if err := r2.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestAddressBookSeesNewNodesAndRestartKeepsID(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	c := connectTest(t)
	book, err := c.NewAddressBook(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer book.Close()
	r, err := c.Register(ctx, NodeInfo{RPCAddr: "127.0.0.1:7101"})
	if err != nil {
		t.Fatal(err)
	}
	id := r.ID()
	waitFor(t, 10*time.Second, "address book update", func() bool {
		n, ok := book.Node(id)
		return ok && n.RPCAddr == "127.0.0.1:7101"
	})
	// The node process dies without deregistering and restarts on its data
	// directory (same ID, new port) before its old lease expires.
	r.cancel()
	<-r.done
	r2, err := c.RegisterWithID(ctx, NodeInfo{ID: id, RPCAddr: "127.0.0.1:7199"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r2.Deregister(ctx) }()
	waitFor(t, 10*time.Second, "new address", func() bool {
		addr, err := book.NodeAddress(id)
		return err == nil && addr == "127.0.0.1:7199"
	})
	// The old lease expiring must not take the new registration with it.
	if _, err := c.etcd.Revoke(ctx, r.lease); err != nil {
		t.Fatal(err)
	}
	if _, live, err := c.GetNode(ctx, id); err != nil || !live {
		t.Fatalf("restarted node live=%v err=%v", live, err)
	}

	// A node ID persisted by a node (or fixed by a test) is never handed
	// out again.
	r3, err := c.RegisterWithID(ctx, NodeInfo{ID: 500, RPCAddr: "127.0.0.1:7500"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r3.Deregister(ctx) }()
	r4, err := c.Register(ctx, NodeInfo{RPCAddr: "127.0.0.1:7501"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r4.Deregister(ctx) }()
	if r4.ID() <= 500 {
		t.Fatalf("new node got ID %d at or below a registered one", r4.ID())
	}
	if _, err := c.RegisterWithID(ctx, NodeInfo{RPCAddr: "x"}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("ID 0: %v", err)
	}
	if _, err := c.Register(ctx, NodeInfo{}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("no RPC address: %v", err)
	}
}

func TestLivenessExpiresWithoutKeepAliveAndRecoversAfterLeaseLoss(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 40*time.Second)
	observer := connectTest(t)
	nodeClient := connectTest(t)
	watch := observer.WatchNodes(ctx)

	r, err := nodeClient.Register(ctx, NodeInfo{RPCAddr: "127.0.0.1:7201"})
	if err != nil {
		t.Fatal(err)
	}
	if ev := nextNodeEvent(t, watch); ev.Kind != NodeUp || ev.Node.ID != r.ID() {
		t.Fatalf("event %v %+v", ev.Kind, ev.Node)
	}

	// The lease is lost (here: revoked behind the node's back, as after a
	// long etcd outage): the node goes down, then registers again.
	r.mu.Lock()
	lease := r.lease
	r.mu.Unlock()
	if _, err := observer.etcd.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	if ev := nextNodeEvent(t, watch); ev.Kind != NodeDown || ev.Node.ID != r.ID() {
		t.Fatalf("event %v %+v, want down", ev.Kind, ev.Node)
	}
	if ev := nextNodeEvent(t, watch); ev.Kind != NodeUp || ev.Node.ID != r.ID() {
		t.Fatalf("event %v %+v, want up again", ev.Kind, ev.Node)
	}
	waitFor(t, 10*time.Second, "registration live again", r.Live)

	// The process dies (no keep-alive, no revoke): the node leaves the live
	// set within about one TTL.
	died := time.Now()
	_ = nodeClient.Close()
	if ev := nextNodeEvent(t, watch); ev.Kind != NodeDown || ev.Node.ID != r.ID() {
		t.Fatalf("event %v %+v, want down after the process died", ev.Kind, ev.Node)
	}
	t.Logf("dead node left the live set after %s (TTL %s)", time.Since(died).Round(time.Millisecond), nodeClient.LeaseTTL())
	r.cancel()
	<-r.done
}
