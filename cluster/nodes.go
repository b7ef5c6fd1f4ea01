package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// NodeInfo is what a node publishes about itself.
type NodeInfo struct {
	ID       uint64 `json:"id"`
	Name     string `json:"name,omitempty"`
	RPCAddr  string `json:"rpc_addr"`
	SQLAddr  string `json:"sql_addr,omitempty"`
	HTTPAddr string `json:"http_addr,omitempty"`
}

// Key paths of the node registry.
const (
	nodesPath     = "nodes/"      // live nodes, on the node's lease
	nodeAddrsPath = "nodes-addr/" // last known info of every node ever registered
)

func nodeSuffix(id uint64) string { return strconv.FormatUint(id, 10) }

func parseNodeSuffix(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("cluster: bad node key %q", s)
	}
	return id, nil
}

func decodeNodeInfo(b []byte) (NodeInfo, error) {
	var n NodeInfo
	if err := json.Unmarshal(b, &n); err != nil {
		return NodeInfo{}, fmt.Errorf("cluster: decode node info: %w", err)
	}
	return n, nil
}

// NodeRegistration is a node's membership in the live set: its nodes/<id>
// key lives as long as the lease this registration keeps alive. If the lease
// is lost (etcd unreachable longer than the TTL) the registration grants a
// new lease and registers again as soon as etcd answers, so a node recovers
// its liveness on its own. Deregister ends it.
type NodeRegistration struct {
	c    *Client
	info NodeInfo

	mu         sync.Mutex
	lease      clientv3.LeaseID
	live       bool
	ackVersion uint64
	closed     bool

	cancel context.CancelFunc
	done   chan struct{}
}

// Register allocates a new node ID (from ids/node), stores it in info.ID and
// registers the node. A node restarting on its data directory must call
// RegisterWithID with the ID it persisted.
func (c *Client) Register(ctx context.Context, info NodeInfo) (*NodeRegistration, error) {
	if info.ID != 0 {
		return nil, fmt.Errorf("cluster: register: node ID %d given, use RegisterWithID: %w", info.ID, ErrInvalidArgument)
	}
	if info.RPCAddr == "" {
		return nil, fmt.Errorf("cluster: register: empty RPC address: %w", ErrInvalidArgument)
	}
	alloc, err := NewIDAllocator(c, IDKindNode, 1)
	if err != nil {
		return nil, err
	}
	id, err := alloc.Allocate(ctx)
	if err != nil {
		return nil, fmt.Errorf("cluster: register: %w", err)
	}
	info.ID = id
	return c.RegisterWithID(ctx, info)
}

// RegisterWithID registers a node under an ID it already owns. It raises the
// node ID counter to at least info.ID so the ID is never handed out again,
// and replaces a registration left by an earlier run of the same node (its
// old lease then expires holding nothing).
func (c *Client) RegisterWithID(ctx context.Context, info NodeInfo) (*NodeRegistration, error) {
	if info.ID == 0 {
		return nil, fmt.Errorf("cluster: register: node ID 0: %w", ErrInvalidArgument)
	}
	if info.RPCAddr == "" {
		return nil, fmt.Errorf("cluster: register node %d: empty RPC address: %w", info.ID, ErrInvalidArgument)
	}
	if _, err := c.reserveIDs(ctx, c.key("ids/"+IDKindNode), 0, info.ID); err != nil {
		return nil, fmt.Errorf("cluster: register node %d: %w", info.ID, err)
	}
	r := &NodeRegistration{c: c, info: info, done: make(chan struct{})}
	if err := r.register(ctx); err != nil {
		return nil, err
	}
	kctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.keepAlive(kctx)
	return r, nil
}

// register grants a lease and writes the node's keys (and its schema ack)
// attached to it.
func (r *NodeRegistration) register(ctx context.Context) error {
	c := r.c
	grant, err := c.etcd.Grant(ctx, c.leaseTTLSeconds())
	if err != nil {
		return wrapEtcdErr(fmt.Sprintf("register node %d: grant lease", r.info.ID), err)
	}
	val, err := json.Marshal(r.info)
	if err != nil {
		return fmt.Errorf("cluster: register node %d: %w", r.info.ID, err)
	}
	r.mu.Lock()
	ack := r.ackVersion
	r.mu.Unlock()
	ops := []clientv3.Op{
		clientv3.OpPut(c.key(nodesPath+nodeSuffix(r.info.ID)), string(val), clientv3.WithLease(grant.ID)),
		clientv3.OpPut(c.key(nodeAddrsPath+nodeSuffix(r.info.ID)), string(val)),
	}
	if ack > 0 {
		ops = append(ops, clientv3.OpPut(c.key(schemaAckPath+nodeSuffix(r.info.ID)), formatUint(ack), clientv3.WithLease(grant.ID)))
	}
	if _, err := c.etcd.Txn(ctx).Then(ops...).Commit(); err != nil {
		revokeCtx, cancel := context.WithTimeout(context.Background(), defaultRequestTimeout)
		_, _ = c.etcd.Revoke(revokeCtx, grant.ID)
		cancel()
		return wrapEtcdErr(fmt.Sprintf("register node %d", r.info.ID), err)
	}
	r.mu.Lock()
	r.lease, r.live = grant.ID, true
	newerAck := r.ackVersion
	r.mu.Unlock()
	if newerAck > ack {
		// An ack arrived while registering and may have used the old lease.
		if _, err := c.etcd.Put(ctx, c.key(schemaAckPath+nodeSuffix(r.info.ID)), formatUint(newerAck), clientv3.WithLease(grant.ID)); err != nil {
			c.logger.Warn("re-writing schema ack after registration failed", "node", r.info.ID, "err", err)
		}
	}
	c.logger.Info("node registered", "node", r.info.ID, "rpc", r.info.RPCAddr, "lease", int64(grant.ID))
	return nil
}

// keepAlive renews the lease; when the lease is lost it registers again.
func (r *NodeRegistration) keepAlive(ctx context.Context) {
	defer close(r.done)
	bo := newBackoff(50*time.Millisecond, 2*time.Second)
	for ctx.Err() == nil {
		r.mu.Lock()
		lease, live := r.lease, r.live
		r.mu.Unlock()
		if live {
			ch, err := r.c.etcd.KeepAlive(ctx, lease)
			if err == nil {
				for range ch {
					bo = newBackoff(50*time.Millisecond, 2*time.Second)
				}
			}
			if ctx.Err() != nil {
				return
			}
			r.mu.Lock()
			r.live = false
			r.mu.Unlock()
			r.c.logger.Warn("node liveness lease lost; registering again", "node", r.info.ID)
		}
		rctx, cancel := context.WithTimeout(ctx, r.c.leaseTTL)
		err := r.register(rctx)
		cancel()
		if err != nil {
			r.c.logger.Warn("node re-registration failed", "node", r.info.ID, "err", err)
			if bo.wait(ctx) != nil {
				return
			}
		}
	}
}

// ID returns the node ID.
func (r *NodeRegistration) ID() uint64 { return r.info.ID }

// Info returns the registered node info.
func (r *NodeRegistration) Info() NodeInfo { return r.info }

// Live reports whether the registration currently holds a lease it renews.
func (r *NodeRegistration) Live() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.live && !r.closed
}

// AckSchemaVersion records that this node has loaded schema version v
// (schema/ack/<node>, on the node's lease). The ack only moves forward.
func (r *NodeRegistration) AckSchemaVersion(ctx context.Context, v uint64) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fmt.Errorf("cluster: ack schema version: node %d: %w", r.info.ID, ErrClosed)
	}
	if v <= r.ackVersion {
		r.mu.Unlock()
		return nil
	}
	r.ackVersion = v
	lease := r.lease
	r.mu.Unlock()
	key := r.c.key(schemaAckPath + nodeSuffix(r.info.ID))
	for {
		_, err := r.c.etcd.Put(ctx, key, formatUint(v), clientv3.WithLease(lease))
		if err == nil {
			return nil
		}
		if !isLeaseNotFound(err) {
			return wrapEtcdErr(fmt.Sprintf("ack schema version %d for node %d", v, r.info.ID), err)
		}
		// The lease was lost. A re-registration that starts from now on
		// writes the ack itself; one that already finished left a new
		// lease, which the ack must use.
		r.mu.Lock()
		current := r.lease
		r.mu.Unlock()
		if current == lease {
			return nil
		}
		lease = current
	}
}

// Deregister revokes the lease (the node leaves the live set at once) and
// stops renewing. Its last known address stays resolvable.
func (r *NodeRegistration) Deregister(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	<-r.done
	r.mu.Lock()
	lease := r.lease
	r.live = false
	r.mu.Unlock()
	if _, err := r.c.etcd.Revoke(ctx, lease); err != nil && !isLeaseNotFound(err) {
		return wrapEtcdErr(fmt.Sprintf("deregister node %d", r.info.ID), err)
	}
	return nil
}

// ListNodes returns the live nodes ordered by ID.
func (c *Client) ListNodes(ctx context.Context) ([]NodeInfo, error) {
	return c.listNodeInfos(ctx, nodesPath)
}

// ListKnownNodes returns the last known info of every node ever registered,
// live or not, ordered by ID.
func (c *Client) ListKnownNodes(ctx context.Context) ([]NodeInfo, error) {
	return c.listNodeInfos(ctx, nodeAddrsPath)
}

func (c *Client) listNodeInfos(ctx context.Context, path string) ([]NodeInfo, error) {
	resp, err := c.etcd.Get(ctx, c.key(path), clientv3.WithPrefix())
	if err != nil {
		return nil, wrapEtcdErr("list nodes", err)
	}
	nodes := make([]NodeInfo, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		n, err := decodeNodeInfo(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", kv.Key, err)
		}
		nodes = append(nodes, n)
	}
	slices.SortFunc(nodes, func(a, b NodeInfo) int { return cmpUint(a.ID, b.ID) })
	return nodes, nil
}

// GetNode returns the last known info of a node and whether it is live.
func (c *Client) GetNode(ctx context.Context, id uint64) (info NodeInfo, live bool, err error) {
	resp, err := c.etcd.Txn(ctx).Then(
		clientv3.OpGet(c.key(nodeAddrsPath+nodeSuffix(id))),
		clientv3.OpGet(c.key(nodesPath+nodeSuffix(id)), clientv3.WithCountOnly()),
	).Commit()
	if err != nil {
		return NodeInfo{}, false, wrapEtcdErr(fmt.Sprintf("get node %d", id), err)
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return NodeInfo{}, false, &NodeNotFoundError{NodeID: id}
	}
	info, err = decodeNodeInfo(kvs[0].Value)
	if err != nil {
		return NodeInfo{}, false, err
	}
	return info, resp.Responses[1].GetResponseRange().Count > 0, nil
}

// NodeEventKind says whether a node joined or left the live set.
type NodeEventKind uint8

const (
	// NodeUp: the node is live (registered, or its info changed).
	NodeUp NodeEventKind = iota + 1
	// NodeDown: the node's lease ended (deregistered or expired).
	NodeDown
)

func (k NodeEventKind) String() string {
	switch k {
	case NodeUp:
		return "up"
	case NodeDown:
		return "down"
	}
	return "unknown"
}

// NodeEvent is one change of the live set.
type NodeEvent struct {
	Kind NodeEventKind
	Node NodeInfo
}

// WatchNodes delivers the live set as events: first NodeUp for every live
// node, then every change. The channel closes when ctx ends. Events are never
// dropped; a slow reader delays the watch.
func (c *Client) WatchNodes(ctx context.Context) <-chan NodeEvent {
	ch := make(chan NodeEvent, 16)
	go func() {
		defer close(ch)
		c.followPrefix(ctx, c.key(nodesPath), func(ev prefixEvent) {
			n, err := decodeNodeInfo(ev.Value)
			if err != nil {
				c.logger.Warn("skipping undecodable node entry", "key", ev.Key, "err", err)
				return
			}
			kind := NodeUp
			if ev.Deleted {
				kind = NodeDown
			}
			select {
			case ch <- NodeEvent{Kind: kind, Node: n}:
			case <-ctx.Done():
			}
		}, nil)
	}()
	return ch
}

// AddressBook resolves node IDs to RPC addresses from a local map that a
// watch on nodes-addr/ keeps fresh. Addresses of dead nodes stay resolvable
// (a restarted node keeps its ID). Its NodeAddress method has the shape of
// raftgroup.AddressResolver.
type AddressBook struct {
	c      *Client
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.RWMutex
	nodes map[uint64]NodeInfo
}

// NewAddressBook loads every known node address and starts following
// changes. It returns once the first listing is loaded (bounded by ctx).
func (c *Client) NewAddressBook(ctx context.Context) (*AddressBook, error) {
	wctx, cancel := context.WithCancel(context.Background())
	b := &AddressBook{c: c, cancel: cancel, done: make(chan struct{}), nodes: map[uint64]NodeInfo{}}
	synced := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(b.done)
		c.followPrefix(wctx, c.key(nodeAddrsPath), b.apply, func() { once.Do(func() { close(synced) }) })
	}()
	select {
	case <-synced:
		return b, nil
	case <-ctx.Done():
		b.Close()
		return nil, fmt.Errorf("cluster: load node addresses: %w: %w", ErrEtcdUnavailable, ctx.Err())
	}
}

func (b *AddressBook) apply(ev prefixEvent) {
	id, err := parseNodeSuffix(ev.Key)
	if err != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if ev.Deleted {
		delete(b.nodes, id)
		return
	}
	n, err := decodeNodeInfo(ev.Value)
	if err != nil {
		b.c.logger.Warn("skipping undecodable node address", "node", id, "err", err)
		return
	}
	b.nodes[id] = n
}

// Node returns the cached info of a node.
func (b *AddressBook) Node(nodeID uint64) (NodeInfo, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	n, ok := b.nodes[nodeID]
	return n, ok
}

// NodeAddress returns the RPC address of a node. A node missing from the
// cache (registered an instant ago) is looked up in etcd with a bounded wait.
func (b *AddressBook) NodeAddress(nodeID uint64) (string, error) {
	if n, ok := b.Node(nodeID); ok {
		return n.RPCAddr, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultRequestTimeout)
	defer cancel()
	n, _, err := b.c.GetNode(ctx, nodeID)
	if err != nil {
		var nf *NodeNotFoundError
		if errors.As(err, &nf) {
			return "", err
		}
		return "", fmt.Errorf("cluster: resolve node %d: %w", nodeID, err)
	}
	b.mu.Lock()
	if _, ok := b.nodes[nodeID]; !ok {
		b.nodes[nodeID] = n
	}
	b.mu.Unlock()
	return n.RPCAddr, nil
}

// Close stops following changes.
func (b *AddressBook) Close() {
	b.cancel()
	<-b.done
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
