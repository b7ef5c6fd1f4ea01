package node

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// tsoGuardInterval is how often the node checks whether it is cut off, and
// tsoGuardGrace how long it must look cut off before it gives up the
// timestamp oracle's leadership.
const (
	tsoGuardInterval = 500 * time.Millisecond
	tsoGuardGrace    = 3 * time.Second
)

// guardTSOLeadership hands the timestamp oracle's leadership on when this
// node is cut off from the other nodes but not from etcd: it keeps its etcd
// lease (so the election never moves), yet nobody can reach it for
// timestamps, and the majority side could commit nothing. The sign of being
// cut off is Raft's own: none of this node's replicas knows a leader (an
// isolated leader steps down through CheckQuorum; an isolated follower loses
// its leader). The oracle's correctness never depends on this (the etcd
// election fences it); it only restores availability.
func (n *Node) guardTSOLeadership(ctx context.Context) {
	t := time.NewTicker(tsoGuardInterval)
	defer t.Stop()
	var cutOffSince time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !n.cutOff() {
			cutOffSince = time.Time{}
			continue
		}
		if cutOffSince.IsZero() {
			cutOffSince = time.Now()
			continue
		}
		if time.Since(cutOffSince) >= tsoGuardGrace && n.tsoSrv.IsLeader() {
			n.log.Warn("no replica on this node knows a Raft leader: handing on the timestamp oracle's leadership")
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if err := n.tsoSrv.Resign(rctx); err != nil {
				n.log.Warn("resign the timestamp oracle", "err", err)
			}
			cancel()
			cutOffSince = time.Time{}
		}
	}
}

// cutOff reports whether this node hosts replicas of ranges with other
// voters and none of them knows a leader.
func (n *Node) cutOff() bool {
	replicated := 0
	for _, info := range n.store.RangeInfo() {
		if info.Descriptor == nil || len(info.Descriptor.Replicas) < 2 {
			continue
		}
		replicated++
		if info.LeaderNodeID != 0 {
			return false
		}
	}
	return replicated > 0
}

// tsoFaultInterceptor makes the timestamp client obey the test fault
// injector like the Raft transport and the KV client do: a call to the
// oracle on a node this node is cut off from fails as a partition would.
func (n *Node) tsoFaultInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if target, ok := n.nodeByRPCAddr(cc.Target()); ok && n.cfg.Knobs.Faults.Cut(n.id, target) {
		return status.Errorf(codes.Unavailable, "fault injection: node %d cut off from node %d", n.id, target)
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (n *Node) nodeByRPCAddr(addr string) (uint64, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	nodes, err := n.client.ListKnownNodes(ctx)
	if err != nil {
		return 0, false
	}
	for _, ni := range nodes {
		if ni.RPCAddr == addr {
			return ni.ID, true
		}
	}
	return 0, false
}
