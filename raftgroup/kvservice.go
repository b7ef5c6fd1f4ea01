package raftgroup

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/quorumdb/quorumdb/kv"
)

// The KV service: how a client (the transaction layer of any node) sends a
// kv.Request to the node holding a range's replica. Hand-written gRPC
// service of raw frames (see transport_codec.go for the codec):
//
//	Execute request   <rangeID> <kv.Request bytes>
//	Execute response  0 <kv.Response bytes> | 1 <kv.MarshalError bytes>
//	Batch request     <n> { <rangeID> <len> <kv.Request bytes> }*n
//	Batch response    <n> { <status 0|1> <len> <kv.Response | kv error bytes> }*n
//
// Integers are unsigned varints. Typed kv errors (NotLeaderError,
// LockedError, …) travel inside a successful RPC and come out as the same
// typed values on the client; gRPC status errors mean the call itself failed.

const (
	kvsvcServiceName   = "quorumdb.raftgroup.KV"
	kvsvcExecuteMethod = "/" + kvsvcServiceName + "/Execute"
	kvsvcBatchMethod   = "/" + kvsvcServiceName + "/Batch"

	kvsvcStatusResponse byte = 0
	kvsvcStatusError    byte = 1

	// kvsvcMaxBatch bounds the items of one Batch call.
	kvsvcMaxBatch = 4096

	kvsvcDefaultDialTimeout = 2 * time.Second
)

// Executor serves kv requests addressed to ranges of this node. *Store
// implements it: reads after ReadIndex on the leader, writes through Raft.
type Executor interface {
	Execute(ctx context.Context, rangeID uint64, req *kv.Request) (*kv.Response, error)
}

// NodeUnavailableError: the node could not be reached (unknown address, no
// connection within the dial wait, connection lost, transport fault in a
// test). Sent reports whether the request may have reached the node before
// the failure: a write may then have been applied, so its outcome is unknown.
type NodeUnavailableError struct {
	NodeID uint64
	Sent   bool
	Err    error
}

func (e *NodeUnavailableError) Error() string {
	if e.Sent {
		return fmt.Sprintf("raftgroup: node %d unavailable, request outcome unknown: %v", e.NodeID, e.Err)
	}
	return fmt.Sprintf("raftgroup: node %d unavailable: %v", e.NodeID, e.Err)
}

func (e *NodeUnavailableError) Unwrap() error { return e.Err }

// RegisterKVService serves exec's ranges on s, which must have been created
// with GRPCServerOptions.
func RegisterKVService(s *grpc.Server, exec Executor) {
	s.RegisterService(kvsvcServiceDesc(), &kvsvcServer{exec: exec})
}

type kvsvcServer struct {
	exec Executor
}

func kvsvcServiceDesc() *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: kvsvcServiceName,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{
			{MethodName: "Execute", Handler: kvsvcUnaryHandler(kvsvcExecuteMethod, (*kvsvcServer).serveExecute)},
			{MethodName: "Batch", Handler: kvsvcUnaryHandler(kvsvcBatchMethod, (*kvsvcServer).serveBatch)},
		},
		Metadata: "raftgroup/kvservice.go",
	}
}

// kvsvcUnaryHandler adapts a frame-in/frame-out method to gRPC, honouring the
// server's interceptors.
func kvsvcUnaryHandler(method string, serve func(*kvsvcServer, context.Context, grpcRawFrame) grpcRawFrame) func(any, context.Context, func(any) error, grpc.UnaryServerInterceptor) (any, error) {
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		var in grpcRawFrame
		if err := dec(&in); err != nil {
			return nil, err
		}
		s := srv.(*kvsvcServer)
		call := func(ctx context.Context, req any) (any, error) {
			out := serve(s, ctx, *req.(*grpcRawFrame))
			if err := ctx.Err(); err != nil {
				// The caller's deadline passed or it went away: answer with
				// the gRPC status, so the client reports its context error
				// whichever side's timer fired first.
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

func (s *kvsvcServer) serveExecute(ctx context.Context, in grpcRawFrame) grpcRawFrame {
	rangeID, rest, err := transportUvarint(in, "range ID")
	if err != nil {
		return kvsvcErrorFrame(&kv.InvalidRequestError{Reason: err.Error()})
	}
	status, body := s.execute(ctx, rangeID, rest)
	return append(grpcRawFrame{status}, body...)
}

// execute runs one encoded request and returns its status byte and body.
func (s *kvsvcServer) execute(ctx context.Context, rangeID uint64, reqBytes []byte) (byte, []byte) {
	req, err := kv.UnmarshalRequest(reqBytes)
	if err != nil {
		return kvsvcStatusError, kv.MarshalError(&kv.InvalidRequestError{Reason: err.Error()})
	}
	resp, err := s.exec.Execute(ctx, rangeID, req)
	if err != nil {
		return kvsvcStatusError, kv.MarshalError(err)
	}
	if resp == nil {
		return kvsvcStatusError, kv.MarshalError(fmt.Errorf("r%d: executor returned neither a response nor an error", rangeID))
	}
	return kvsvcStatusResponse, resp.Marshal()
}

func kvsvcErrorFrame(err error) grpcRawFrame {
	return append(grpcRawFrame{kvsvcStatusError}, kv.MarshalError(err)...)
}

// serveBatch runs the items concurrently (no order between them) and answers
// each in place. A malformed batch fails as a whole.
func (s *kvsvcServer) serveBatch(ctx context.Context, in grpcRawFrame) grpcRawFrame {
	type item struct {
		rangeID uint64
		req     []byte
	}
	n, rest, err := transportUvarint(in, "batch size")
	if err != nil || n > kvsvcMaxBatch {
		return kvsvcBatchFailure(n, fmt.Errorf("malformed batch: %d items (max %d), %v", n, kvsvcMaxBatch, err))
	}
	items := make([]item, n)
	for i := range items {
		var size uint64
		if items[i].rangeID, rest, err = transportUvarint(rest, "range ID"); err == nil {
			size, rest, err = transportUvarint(rest, "request length")
		}
		if err == nil && size > uint64(len(rest)) {
			err = fmt.Errorf("item %d claims %d bytes, %d left", i, size, len(rest))
		}
		if err != nil {
			return kvsvcBatchFailure(n, fmt.Errorf("malformed batch: %w", err))
		}
		items[i].req, rest = rest[:size], rest[size:]
	}
	type result struct {
		status byte
		body   []byte
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range items {
		wg.Go(func() {
			results[i].status, results[i].body = s.execute(ctx, items[i].rangeID, items[i].req)
		})
	}
	wg.Wait()
	out := binary.AppendUvarint(nil, n)
	for _, r := range results {
		out = append(out, r.status)
		out = binary.AppendUvarint(out, uint64(len(r.body)))
		out = append(out, r.body...)
	}
	return out
}

// kvsvcBatchFailure answers every item of a malformed batch with err.
func kvsvcBatchFailure(n uint64, err error) grpcRawFrame {
	n = min(n, kvsvcMaxBatch)
	body := kv.MarshalError(&kv.InvalidRequestError{Reason: err.Error()})
	out := binary.AppendUvarint(nil, n)
	for range n {
		out = append(out, kvsvcStatusError)
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
	}
	return out
}

// KVClientConfig configures NewKVClient.
type KVClientConfig struct {
	// NodeID is the node the client runs on (0 for a client outside the
	// cluster); fault injection cuts calls by (NodeID, destination).
	NodeID uint64
	// Resolver maps node IDs to addresses; called on every call, so it should
	// be cheap (a cache).
	Resolver AddressResolver
	// DialTimeout bounds the wait for a connection to a node (default 2s);
	// past it the call fails with *NodeUnavailableError.
	DialTimeout time.Duration
	// MaxBackoff caps gRPC's reconnection backoff (default 1s).
	MaxBackoff time.Duration
	// Faults injects network faults in tests; nil in production.
	Faults *FaultInjector
	// Logger receives connection events (default: discarded).
	Logger *slog.Logger
}

// KVClient sends kv requests to nodes. It keeps one lazily dialed connection
// per node address. Safe for concurrent use; Close releases the connections.
type KVClient struct {
	cfg KVClientConfig
	log *slog.Logger

	mu     sync.Mutex
	closed bool
	conns  map[uint64]*transportConn
}

// KVBatchItem is one request of a Batch call.
type KVBatchItem struct {
	RangeID uint64
	Request *kv.Request
}

// KVBatchResult answers one KVBatchItem: Err is the item's typed kv error.
type KVBatchResult struct {
	Response *kv.Response
	Err      error
}

// NewKVClient returns a client; connections are made on first use.
func NewKVClient(cfg KVClientConfig) *KVClient {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = kvsvcDefaultDialTimeout
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = transportDefaultMaxBO
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &KVClient{cfg: cfg, log: log.With("component", "kvclient"), conns: make(map[uint64]*transportConn)}
}

// Execute sends req for range rangeID to node nodeID and returns its response
// or its error: a typed kv error from the node as the same typed value
// (unwrapped), *NodeUnavailableError when the node cannot be reached, an
// error wrapping ctx's error when ctx ends first.
func (c *KVClient) Execute(ctx context.Context, nodeID, rangeID uint64, req *kv.Request) (*kv.Response, error) {
	if req == nil {
		return nil, &kv.InvalidRequestError{Reason: "nil request"}
	}
	body := req.Marshal()
	in := make(grpcRawFrame, 0, len(body)+binary.MaxVarintLen64)
	in = binary.AppendUvarint(in, rangeID)
	in = append(in, body...)
	var out grpcRawFrame
	if err := c.invoke(ctx, nodeID, kvsvcExecuteMethod, &in, &out); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("kv call to node %d: %w", nodeID, &MalformedFrameError{Reason: "empty KV response"})
	}
	return kvsvcDecodeResult(nodeID, out[0], out[1:])
}

// Batch sends several requests to one node in one call; the node runs them
// concurrently, with no order between them. The results match items by
// index. The returned error is the call's (node unreachable, ctx); each
// item's own kv error is in its result.
func (c *KVClient) Batch(ctx context.Context, nodeID uint64, items []KVBatchItem) ([]KVBatchResult, error) {
	if len(items) > kvsvcMaxBatch {
		return nil, &kv.InvalidRequestError{Reason: fmt.Sprintf("batch of %d items, at most %d", len(items), kvsvcMaxBatch)}
	}
	in := binary.AppendUvarint(nil, uint64(len(items)))
	for i, it := range items {
		if it.Request == nil {
			return nil, &kv.InvalidRequestError{Reason: fmt.Sprintf("batch item %d has no request", i)}
		}
		body := it.Request.Marshal()
		in = binary.AppendUvarint(in, it.RangeID)
		in = binary.AppendUvarint(in, uint64(len(body)))
		in = append(in, body...)
	}
	frame := grpcRawFrame(in)
	var out grpcRawFrame
	if err := c.invoke(ctx, nodeID, kvsvcBatchMethod, &frame, &out); err != nil {
		return nil, err
	}
	n, rest, err := transportUvarint(out, "batch size")
	if err != nil || n != uint64(len(items)) {
		return nil, fmt.Errorf("kv batch to node %d: %w", nodeID, &MalformedFrameError{Reason: fmt.Sprintf("%d results for %d items (%v)", n, len(items), err)})
	}
	results := make([]KVBatchResult, n)
	for i := range results {
		if len(rest) == 0 {
			return nil, fmt.Errorf("kv batch to node %d: %w", nodeID, &MalformedFrameError{Reason: "truncated batch response"})
		}
		st := rest[0]
		var size uint64
		if size, rest, err = transportUvarint(rest[1:], "result length"); err != nil || size > uint64(len(rest)) {
			return nil, fmt.Errorf("kv batch to node %d: %w", nodeID, &MalformedFrameError{Reason: "truncated batch result"})
		}
		results[i].Response, results[i].Err = kvsvcDecodeResult(nodeID, st, rest[:size])
		rest = rest[size:]
	}
	return results, nil
}

func kvsvcDecodeResult(nodeID uint64, st byte, body []byte) (*kv.Response, error) {
	switch st {
	case kvsvcStatusResponse:
		resp, err := kv.UnmarshalResponse(body)
		if err != nil {
			return nil, fmt.Errorf("kv response from node %d: %w", nodeID, err)
		}
		return resp, nil
	case kvsvcStatusError:
		if err := kv.UnmarshalError(body); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("kv response from node %d: %w", nodeID, &MalformedFrameError{Reason: "error status without an error"})
	default:
		return nil, fmt.Errorf("kv response from node %d: %w", nodeID, &MalformedFrameError{Reason: fmt.Sprintf("unknown status %d", st)})
	}
}

// invoke makes one unary call, mapping failures to the client's errors.
func (c *KVClient) invoke(ctx context.Context, nodeID uint64, method string, in, out *grpcRawFrame) error {
	if c.cfg.Faults.Cut(c.cfg.NodeID, nodeID) {
		return &NodeUnavailableError{NodeID: nodeID, Err: &FaultInjectedError{From: c.cfg.NodeID, To: nodeID}}
	}
	cc, err := c.conn(nodeID)
	if err != nil {
		return &NodeUnavailableError{NodeID: nodeID, Err: err}
	}
	if err := c.awaitReady(ctx, cc); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("kv call to node %d: %w", nodeID, ctx.Err())
		}
		return &NodeUnavailableError{NodeID: nodeID, Err: err}
	}
	if d := c.cfg.Faults.Delay(); d > 0 {
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("kv call to node %d: %w", nodeID, ctx.Err())
		case <-timer.C:
		}
	}
	err = cc.Invoke(ctx, method, in, out)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("kv call to node %d: %w", nodeID, ctx.Err())
	}
	switch status.Code(err) {
	case codes.DeadlineExceeded:
		return fmt.Errorf("kv call to node %d: %w", nodeID, context.DeadlineExceeded)
	case codes.Canceled:
		return fmt.Errorf("kv call to node %d: %w", nodeID, context.Canceled)
	case codes.Unavailable:
		return &NodeUnavailableError{NodeID: nodeID, Sent: true, Err: err}
	}
	return fmt.Errorf("kv call to node %d: %w", nodeID, err)
}

// awaitReady waits, at most DialTimeout, for cc to be connected. A
// connection in backoff after a failure fails at once: the node is down and
// the caller should not pay the dial wait on every call.
func (c *KVClient) awaitReady(ctx context.Context, cc *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	for {
		s := cc.GetState()
		switch s {
		case connectivity.Ready:
			return nil
		case connectivity.Idle:
			cc.Connect()
		case connectivity.TransientFailure:
			return errors.New("connection failed; reconnecting in the background")
		case connectivity.Shutdown:
			return errors.New("client closed")
		}
		if !cc.WaitForStateChange(ctx, s) {
			return fmt.Errorf("no connection within %v", c.cfg.DialTimeout)
		}
	}
}

// conn returns the connection to nodeID's current address.
func (c *KVClient) conn(nodeID uint64) (*grpc.ClientConn, error) {
	if c.cfg.Resolver == nil {
		return nil, errors.New("kv client has no address resolver")
	}
	addr, err := c.cfg.Resolver(nodeID)
	if err != nil {
		return nil, fmt.Errorf("resolve node %d: %w", nodeID, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("kv client closed")
	}
	if cur := c.conns[nodeID]; cur != nil {
		if cur.addr == addr {
			return cur.cc, nil
		}
		c.log.Debug("node moved", "node", nodeID, "from", cur.addr, "to", addr)
		_ = cur.cc.Close()
		delete(c.conns, nodeID)
	}
	cc, err := grpcDial(addr, c.cfg.MaxBackoff, c.cfg.DialTimeout)
	if err != nil {
		return nil, fmt.Errorf("dial node %d at %s: %w", nodeID, addr, err)
	}
	c.conns[nodeID] = &transportConn{addr: addr, cc: cc}
	return cc, nil
}

// Close closes every connection; calls after Close fail.
func (c *KVClient) Close() error {
	c.mu.Lock()
	conns := c.conns
	c.conns = nil
	c.closed = true
	c.mu.Unlock()
	var errs []error
	for id, cur := range conns {
		if err := cur.cc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close connection to node %d: %w", id, err))
		}
	}
	return errors.Join(errs...)
}
