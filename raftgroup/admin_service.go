package raftgroup

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/quorumdb/quorumdb/kv"
)

// The admin service: how the placement driver, running on one elected node,
// commands the leader of a range on any node. Same raw-frame gRPC style as
// the KV service (kvservice.go); every integer is an unsigned varint, every
// byte string and descriptor is length-prefixed (descriptors in
// kv.RangeDescriptor.Marshal form):
//
//	ChangeReplicas      <rangeID> <nAdd> <node>* <nRemove> <node>*  → ok <desc>
//	SplitRange          <rangeID> <newRangeID> <splitKey>           → ok <left> <right>
//	TransferLeadership  <rangeID> <targetNode>                      → ok
//	RangeStats          <splitAboveBytes>                           → ok <n> <stat>*
//	RepairAbandonedChange <rangeID>                                 → ok <desc>
//	  stat = <rangeID> <desc or empty> <leaderNode> <isLeader 0|1> <joint 0|1> <applied> <bytes> <splitKey>
//
// An answer starts with a status byte: 0 ok, 1 a kv error (kv.MarshalError,
// so NotLeaderError and friends keep their type), 2 an admin error of this
// package (InvalidChangeError, RangeExistsError) with its fields.

const (
	adminServiceName          = "quorumdb.raftgroup.Admin"
	adminChangeReplicasMethod = "/" + adminServiceName + "/ChangeReplicas"
	adminSplitRangeMethod     = "/" + adminServiceName + "/SplitRange"
	adminTransferMethod       = "/" + adminServiceName + "/TransferLeadership"
	adminRangeStatsMethod     = "/" + adminServiceName + "/RangeStats"
	adminRepairChangeMethod   = "/" + adminServiceName + "/RepairAbandonedChange"

	adminStatusOK       byte = 0
	adminStatusKVError  byte = 1
	adminStatusAdminErr byte = 2

	adminErrInvalidChange byte = 1
	adminErrRangeExists   byte = 2

	// adminMaxNodesPerChange bounds the add/remove lists of one call.
	adminMaxNodesPerChange = 16
)

// RangeStats describes one replica of a node, as the admin service reports
// it. Bytes and SplitKey are filled for the ranges the node leads only.
type RangeStats struct {
	RangeID uint64
	// Descriptor is the replica's descriptor (nil: not initialized yet).
	// The leader's copy is authoritative; a follower's may lag.
	Descriptor   *kv.RangeDescriptor
	LeaderNodeID uint64 // 0: unknown
	IsLeader     bool
	// JointConfig: the range's raft configuration is joint (a replica
	// change between its joint step and its end). Led ranges only.
	JointConfig bool
	// Applied is the replica's applied index: its advance between two
	// reports counts the commands the range applied (its write load).
	Applied uint64
	// Bytes is the logical size of the range's MVCC data: the sum of key and
	// value lengths of its locks, data versions and write records.
	Bytes uint64
	// SplitKey is the user key at the middle of the range's data (by bytes),
	// set when Bytes reached the request's SplitAboveBytes and the range
	// holds at least two user keys. It is a user key boundary: every version
	// of one row stays on one side.
	SplitKey []byte
}

// RegisterAdminService serves store's administrative calls on s, which must
// have been created with GRPCServerOptions (the node's single server hosts
// the transport, the KV service and this service).
func RegisterAdminService(s *grpc.Server, store *Store) {
	s.RegisterService(adminServiceDesc(), newAdminServer(store))
}

type adminServer struct {
	store *Store
	sizes *rangeSizeCache
}

func newAdminServer(store *Store) *adminServer {
	return &adminServer{store: store, sizes: newRangeSizeCache(store)}
}

func adminServiceDesc() *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: adminServiceName,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{
			{MethodName: "ChangeReplicas", Handler: adminUnaryHandler(adminChangeReplicasMethod, (*adminServer).serveChangeReplicas)},
			{MethodName: "SplitRange", Handler: adminUnaryHandler(adminSplitRangeMethod, (*adminServer).serveSplitRange)},
			{MethodName: "TransferLeadership", Handler: adminUnaryHandler(adminTransferMethod, (*adminServer).serveTransferLeadership)},
			{MethodName: "RangeStats", Handler: adminUnaryHandler(adminRangeStatsMethod, (*adminServer).serveRangeStats)},
			{MethodName: "RepairAbandonedChange", Handler: adminUnaryHandler(adminRepairChangeMethod, (*adminServer).serveRepairChange)},
		},
		Metadata: "raftgroup/admin_service.go",
	}
}

// adminUnaryHandler adapts a frame-in/frame-out method to gRPC, honouring
// the server's interceptors (as kvsvcUnaryHandler does for the KV service).
func adminUnaryHandler(method string, serve func(*adminServer, context.Context, []byte) grpcRawFrame) func(any, context.Context, func(any) error, grpc.UnaryServerInterceptor) (any, error) {
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		var in grpcRawFrame
		if err := dec(&in); err != nil {
			return nil, err
		}
		s := srv.(*adminServer)
		call := func(ctx context.Context, req any) (any, error) {
			out := serve(s, ctx, *req.(*grpcRawFrame))
			if err := ctx.Err(); err != nil {
				return nil, status.FromContextError(err).Err()
			}
			return &out, nil
		}
		if interceptor == nil {
			return call(ctx, &in)
		}
		return interceptor(ctx, &in, &grpc.UnaryServerInfo{Server: srv, FullMethod: method}, call)
	}
}

// adminErrorFrame encodes err: this package's admin errors with status 2,
// everything else through kv.MarshalError.
func adminErrorFrame(err error) grpcRawFrame {
	var (
		invalid *InvalidChangeError
		exists  *RangeExistsError
	)
	switch {
	case errors.As(err, &invalid):
		out := grpcRawFrame{adminStatusAdminErr, adminErrInvalidChange}
		out = binary.AppendUvarint(out, invalid.RangeID)
		return adminAppendBytes(out, []byte(invalid.Reason))
	case errors.As(err, &exists):
		out := grpcRawFrame{adminStatusAdminErr, adminErrRangeExists}
		return binary.AppendUvarint(out, exists.RangeID)
	}
	return append(grpcRawFrame{adminStatusKVError}, kv.MarshalError(err)...)
}

func adminBadRequest(err error) grpcRawFrame {
	return adminErrorFrame(&kv.InvalidRequestError{Reason: "admin: " + err.Error()})
}

func adminAppendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func adminBytes(b []byte, what string) ([]byte, []byte, error) {
	n, rest, err := transportUvarint(b, what+" length")
	if err != nil {
		return nil, nil, err
	}
	if n > uint64(len(rest)) {
		return nil, nil, fmt.Errorf("%s claims %d bytes, %d left", what, n, len(rest))
	}
	return rest[:n], rest[n:], nil
}

func adminNodeList(b []byte, what string) ([]kv.ReplicaDescriptor, []byte, error) {
	n, rest, err := transportUvarint(b, what+" count")
	if err != nil {
		return nil, nil, err
	}
	if n > adminMaxNodesPerChange {
		return nil, nil, fmt.Errorf("%d nodes to %s, at most %d", n, what, adminMaxNodesPerChange)
	}
	out := make([]kv.ReplicaDescriptor, n)
	for i := range out {
		if out[i].NodeID, rest, err = transportUvarint(rest, what+" node"); err != nil {
			return nil, nil, err
		}
	}
	return out, rest, nil
}

func adminExpectEnd(rest []byte) error {
	if len(rest) != 0 {
		return fmt.Errorf("%d trailing bytes", len(rest))
	}
	return nil
}

func (s *adminServer) serveChangeReplicas(ctx context.Context, in []byte) grpcRawFrame {
	rangeID, rest, err := transportUvarint(in, "range ID")
	var add, remove []kv.ReplicaDescriptor
	if err == nil {
		add, rest, err = adminNodeList(rest, "add")
	}
	if err == nil {
		remove, rest, err = adminNodeList(rest, "remove")
	}
	if err == nil {
		err = adminExpectEnd(rest)
	}
	if err != nil {
		return adminBadRequest(err)
	}
	desc, err := s.store.ChangeReplicas(ctx, rangeID, add, remove)
	if err != nil {
		return adminErrorFrame(err)
	}
	return adminAppendBytes(grpcRawFrame{adminStatusOK}, desc.Marshal())
}

func (s *adminServer) serveSplitRange(ctx context.Context, in []byte) grpcRawFrame {
	rangeID, rest, err := transportUvarint(in, "range ID")
	var newRangeID uint64
	var splitKey []byte
	if err == nil {
		newRangeID, rest, err = transportUvarint(rest, "new range ID")
	}
	if err == nil {
		splitKey, rest, err = adminBytes(rest, "split key")
	}
	if err == nil {
		err = adminExpectEnd(rest)
	}
	if err != nil {
		return adminBadRequest(err)
	}
	left, right, err := s.store.SplitRange(ctx, rangeID, splitKey, newRangeID)
	if err != nil {
		return adminErrorFrame(err)
	}
	out := adminAppendBytes(grpcRawFrame{adminStatusOK}, left.Marshal())
	return adminAppendBytes(out, right.Marshal())
}

func (s *adminServer) serveTransferLeadership(ctx context.Context, in []byte) grpcRawFrame {
	rangeID, rest, err := transportUvarint(in, "range ID")
	var target uint64
	if err == nil {
		target, rest, err = transportUvarint(rest, "target node")
	}
	if err == nil {
		err = adminExpectEnd(rest)
	}
	if err != nil {
		return adminBadRequest(err)
	}
	if err := s.store.TransferLeadership(ctx, rangeID, target); err != nil {
		return adminErrorFrame(err)
	}
	return grpcRawFrame{adminStatusOK}
}

func (s *adminServer) serveRepairChange(ctx context.Context, in []byte) grpcRawFrame {
	rangeID, rest, err := transportUvarint(in, "range ID")
	if err == nil {
		err = adminExpectEnd(rest)
	}
	if err != nil {
		return adminBadRequest(err)
	}
	desc, err := s.store.repairAbandonedChange(ctx, rangeID)
	if err != nil {
		return adminErrorFrame(err)
	}
	return adminAppendBytes(grpcRawFrame{adminStatusOK}, desc.Marshal())
}

func (s *adminServer) serveRangeStats(ctx context.Context, in []byte) grpcRawFrame {
	splitAbove, rest, err := transportUvarint(in, "split threshold")
	if err == nil {
		err = adminExpectEnd(rest)
	}
	if err != nil {
		return adminBadRequest(err)
	}
	stats, err := s.sizes.stats(ctx, splitAbove)
	if err != nil {
		return adminErrorFrame(err)
	}
	out := binary.AppendUvarint(grpcRawFrame{adminStatusOK}, uint64(len(stats)))
	for _, st := range stats {
		out = binary.AppendUvarint(out, st.RangeID)
		var desc []byte
		if st.Descriptor != nil {
			desc = st.Descriptor.Marshal()
		}
		out = adminAppendBytes(out, desc)
		out = binary.AppendUvarint(out, st.LeaderNodeID)
		leader := byte(0)
		if st.IsLeader {
			leader = 1
		}
		joint := byte(0)
		if st.JointConfig {
			joint = 1
		}
		out = append(out, leader, joint)
		out = binary.AppendUvarint(out, st.Applied)
		out = binary.AppendUvarint(out, st.Bytes)
		out = adminAppendBytes(out, st.SplitKey)
	}
	return out
}

// AdminClient calls the admin service of any node. It shares the KV
// client's connection handling: one lazily dialed connection per node, a
// bounded dial wait, *NodeUnavailableError for an unreachable node, typed kv
// errors (NotLeaderError, RangeNotFoundError, …) and this package's
// InvalidChangeError / RangeExistsError as the same types. Safe for
// concurrent use; Close releases the connections.
type AdminClient struct {
	conns *KVClient
}

// NewAdminClient returns a client resolving node addresses with resolver.
func NewAdminClient(resolver AddressResolver) *AdminClient {
	return NewAdminClientWithConfig(KVClientConfig{Resolver: resolver})
}

// NewAdminClientWithConfig returns a client with the connection settings of
// cfg (dial timeout, backoff, fault injection in tests).
func NewAdminClientWithConfig(cfg KVClientConfig) *AdminClient {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &AdminClient{conns: NewKVClient(cfg)}
}

// Close closes every connection.
func (c *AdminClient) Close() error { return c.conns.Close() }

func (c *AdminClient) call(ctx context.Context, nodeID uint64, method string, in grpcRawFrame) ([]byte, error) {
	var out grpcRawFrame
	if err := c.conns.invoke(ctx, nodeID, method, &in, &out); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("admin call to node %d: %w", nodeID, &MalformedFrameError{Reason: "empty admin response"})
	}
	switch out[0] {
	case adminStatusOK:
		return out[1:], nil
	case adminStatusKVError:
		if err := kv.UnmarshalError(out[1:]); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("admin call to node %d: %w", nodeID, &MalformedFrameError{Reason: "error status without an error"})
	case adminStatusAdminErr:
		return nil, adminDecodeError(nodeID, out[1:])
	}
	return nil, fmt.Errorf("admin call to node %d: %w", nodeID, &MalformedFrameError{Reason: fmt.Sprintf("unknown status %d", out[0])})
}

func adminDecodeError(nodeID uint64, b []byte) error {
	malformed := func(err error) error {
		return fmt.Errorf("admin error from node %d: %w", nodeID, &MalformedFrameError{Reason: err.Error()})
	}
	if len(b) == 0 {
		return malformed(fmt.Errorf("empty admin error"))
	}
	tag, rest := b[0], b[1:]
	rangeID, rest, err := transportUvarint(rest, "range ID")
	if err != nil {
		return malformed(err)
	}
	switch tag {
	case adminErrInvalidChange:
		reason, rest, err := adminBytes(rest, "reason")
		if err == nil {
			err = adminExpectEnd(rest)
		}
		if err != nil {
			return malformed(err)
		}
		return &InvalidChangeError{RangeID: rangeID, Reason: string(reason)}
	case adminErrRangeExists:
		if err := adminExpectEnd(rest); err != nil {
			return malformed(err)
		}
		return &RangeExistsError{RangeID: rangeID}
	}
	return malformed(fmt.Errorf("unknown admin error tag %d", tag))
}

func adminDecodeDescriptor(b []byte, what string) (*kv.RangeDescriptor, []byte, error) {
	raw, rest, err := adminBytes(b, what)
	if err != nil {
		return nil, nil, err
	}
	if len(raw) == 0 {
		return nil, rest, nil
	}
	d, err := kv.UnmarshalRangeDescriptor(raw)
	if err != nil {
		return nil, nil, err
	}
	return d, rest, nil
}

func appendNodeList(b []byte, nodes []uint64) []byte {
	b = binary.AppendUvarint(b, uint64(len(nodes)))
	for _, n := range nodes {
		b = binary.AppendUvarint(b, n)
	}
	return b
}

// ChangeReplicas asks node (the range's leader) to add replicas on the nodes
// in add and remove those on the nodes in remove (Store.ChangeReplicas:
// learners first, caught up, then one joint configuration). It returns the
// range's final descriptor. The wait is bounded by ctx.
func (c *AdminClient) ChangeReplicas(ctx context.Context, node, rangeID uint64, add, remove []uint64) (*kv.RangeDescriptor, error) {
	if len(add) > adminMaxNodesPerChange || len(remove) > adminMaxNodesPerChange {
		return nil, &InvalidChangeError{RangeID: rangeID, Reason: fmt.Sprintf("at most %d nodes to add or remove per call", adminMaxNodesPerChange)}
	}
	in := binary.AppendUvarint(nil, rangeID)
	in = appendNodeList(in, add)
	in = appendNodeList(in, remove)
	out, err := c.call(ctx, node, adminChangeReplicasMethod, in)
	if err != nil {
		return nil, err
	}
	desc, rest, err := adminDecodeDescriptor(out, "descriptor")
	if err == nil && desc == nil {
		err = fmt.Errorf("empty descriptor")
	}
	if err == nil {
		err = adminExpectEnd(rest)
	}
	if err != nil {
		return nil, fmt.Errorf("admin change replicas of r%d on node %d: %w", rangeID, node, &MalformedFrameError{Reason: err.Error()})
	}
	return desc, nil
}

// RepairAbandonedChange asks node (the range's leader) to finish what a
// failed ChangeReplicas left behind: it leaves a joint configuration and
// removes learners (either blocks every later change). It returns the
// range's resulting descriptor. Call it only when no change of the range
// can still be running.
func (c *AdminClient) RepairAbandonedChange(ctx context.Context, node, rangeID uint64) (*kv.RangeDescriptor, error) {
	out, err := c.call(ctx, node, adminRepairChangeMethod, binary.AppendUvarint(nil, rangeID))
	if err != nil {
		return nil, err
	}
	desc, rest, err := adminDecodeDescriptor(out, "descriptor")
	if err == nil && desc == nil {
		err = fmt.Errorf("empty descriptor")
	}
	if err == nil {
		err = adminExpectEnd(rest)
	}
	if err != nil {
		return nil, fmt.Errorf("admin repair of r%d on node %d: %w", rangeID, node, &MalformedFrameError{Reason: err.Error()})
	}
	return desc, nil
}

// SplitRange asks node (the range's leader) to split rangeID at splitKey,
// the right half becoming newRangeID. It returns both descriptors.
func (c *AdminClient) SplitRange(ctx context.Context, node, rangeID uint64, splitKey []byte, newRangeID uint64) (left, right *kv.RangeDescriptor, err error) {
	in := binary.AppendUvarint(nil, rangeID)
	in = binary.AppendUvarint(in, newRangeID)
	in = adminAppendBytes(in, splitKey)
	out, err := c.call(ctx, node, adminSplitRangeMethod, in)
	if err != nil {
		return nil, nil, err
	}
	left, rest, err := adminDecodeDescriptor(out, "left descriptor")
	if err == nil {
		right, rest, err = adminDecodeDescriptor(rest, "right descriptor")
	}
	if err == nil && (left == nil || right == nil) {
		err = fmt.Errorf("missing descriptor")
	}
	if err == nil {
		err = adminExpectEnd(rest)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("admin split of r%d on node %d: %w", rangeID, node, &MalformedFrameError{Reason: err.Error()})
	}
	return left, right, nil
}

// TransferLeadership asks node (the range's leader) to hand the range's
// leadership to the replica on target, and waits until it did.
func (c *AdminClient) TransferLeadership(ctx context.Context, node, rangeID, target uint64) error {
	in := binary.AppendUvarint(nil, rangeID)
	in = binary.AppendUvarint(in, target)
	out, err := c.call(ctx, node, adminTransferMethod, in)
	if err != nil {
		return err
	}
	if err := adminExpectEnd(out); err != nil {
		return fmt.Errorf("admin transfer of r%d on node %d: %w", rangeID, node, &MalformedFrameError{Reason: err.Error()})
	}
	return nil
}

// RangeStats returns every replica on node; for the ranges it leads, their
// size, and a middle split key for those of at least splitAboveBytes bytes
// (0: no split keys).
func (c *AdminClient) RangeStats(ctx context.Context, node uint64, splitAboveBytes uint64) ([]RangeStats, error) {
	out, err := c.call(ctx, node, adminRangeStatsMethod, binary.AppendUvarint(nil, splitAboveBytes))
	if err != nil {
		return nil, err
	}
	stats, err := adminDecodeStats(out)
	if err != nil {
		return nil, fmt.Errorf("admin range stats from node %d: %w", node, &MalformedFrameError{Reason: err.Error()})
	}
	return stats, nil
}

func adminDecodeStats(b []byte) ([]RangeStats, error) {
	n, rest, err := transportUvarint(b, "range count")
	if err != nil {
		return nil, err
	}
	// Each entry takes at least 8 bytes: a count above that is garbage.
	if n > uint64(len(rest))/8+1 {
		return nil, fmt.Errorf("%d ranges claimed in %d bytes", n, len(rest))
	}
	out := make([]RangeStats, n)
	for i := range out {
		st := &out[i]
		if st.RangeID, rest, err = transportUvarint(rest, "range ID"); err != nil {
			return nil, err
		}
		if st.Descriptor, rest, err = adminDecodeDescriptor(rest, "descriptor"); err != nil {
			return nil, err
		}
		if st.LeaderNodeID, rest, err = transportUvarint(rest, "leader node"); err != nil {
			return nil, err
		}
		if len(rest) == 0 || rest[0] > 1 {
			return nil, fmt.Errorf("bad leader flag")
		}
		st.IsLeader, rest = rest[0] == 1, rest[1:]
		if len(rest) == 0 || rest[0] > 1 {
			return nil, fmt.Errorf("bad joint flag")
		}
		st.JointConfig, rest = rest[0] == 1, rest[1:]
		if st.Applied, rest, err = transportUvarint(rest, "applied"); err != nil {
			return nil, err
		}
		if st.Bytes, rest, err = transportUvarint(rest, "bytes"); err != nil {
			return nil, err
		}
		var key []byte
		if key, rest, err = adminBytes(rest, "split key"); err != nil {
			return nil, err
		}
		if len(key) > 0 {
			st.SplitKey = append([]byte(nil), key...)
		}
	}
	return out, adminExpectEnd(rest)
}

// rangeSizeCache remembers the last measured size of each range this node
// leads, keyed by the descriptor generation and the applied index: a range
// that applied nothing since is not scanned again.
type rangeSizeCache struct {
	store *Store

	mu      sync.Mutex
	entries map[uint64]rangeSizeEntry
}

type rangeSizeEntry struct {
	generation, applied, splitAbove uint64
	bytes                           uint64
	splitKey                        []byte
	// joint only changes with a configuration change, which raises the
	// generation: it is read once per generation.
	joint bool
}

func newRangeSizeCache(store *Store) *rangeSizeCache {
	return &rangeSizeCache{store: store, entries: map[uint64]rangeSizeEntry{}}
}

// stats reports every replica of the store, measuring the ranges it leads.
func (c *rangeSizeCache) stats(ctx context.Context, splitAbove uint64) ([]RangeStats, error) {
	infos := c.store.RangeInfo()
	out := make([]RangeStats, 0, len(infos))
	seen := make(map[uint64]bool, len(infos))
	for _, ri := range infos {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		st := RangeStats{RangeID: ri.RangeID, Descriptor: ri.Descriptor, LeaderNodeID: ri.LeaderNodeID, IsLeader: ri.IsLeader, Applied: ri.Applied}
		if ri.IsLeader && ri.Descriptor != nil {
			seen[ri.RangeID] = true
			e, err := c.measure(ctx, ri, splitAbove)
			switch {
			case err == nil:
				st.Bytes, st.SplitKey, st.JointConfig = e.bytes, e.splitKey, e.joint
			case ctx.Err() != nil:
				return nil, err
			default:
				// The replica went away or failed to read: report it
				// without leadership so nobody acts on it this round.
				c.store.log.Warn("admin: range stats unavailable", "range", ri.RangeID, "err", err)
				st.IsLeader = false
			}
		}
		out = append(out, st)
	}
	c.mu.Lock()
	for id := range c.entries {
		if !seen[id] {
			delete(c.entries, id)
		}
	}
	c.mu.Unlock()
	return out, nil
}

func (c *rangeSizeCache) measure(ctx context.Context, ri RangeInfo, splitAbove uint64) (rangeSizeEntry, error) {
	c.mu.Lock()
	e, ok := c.entries[ri.RangeID]
	c.mu.Unlock()
	sameGen := ok && e.generation == ri.Descriptor.Generation
	if sameGen && e.applied == ri.Applied && e.splitAbove == splitAbove {
		return e, nil
	}
	joint := e.joint
	if !sameGen {
		var err error
		if joint, err = c.store.inJointConfig(ctx, ri.RangeID); err != nil {
			return rangeSizeEntry{}, err
		}
	}
	bytes, splitKey, err := measureRange(c.store.engine, ri.Descriptor, splitAbove)
	if err != nil {
		return rangeSizeEntry{}, err
	}
	e = rangeSizeEntry{generation: ri.Descriptor.Generation, applied: ri.Applied, splitAbove: splitAbove, bytes: bytes, splitKey: splitKey, joint: joint}
	c.mu.Lock()
	c.entries[ri.RangeID] = e
	c.mu.Unlock()
	return e, nil
}
