package cluster

import (
	"context"
	"fmt"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ID kinds with a counter under ids/<kind>.
const (
	IDKindNode  = "node"
	IDKindRange = "range"
	IDKindTable = "table"
	IDKindIndex = "index"
)

// IDAllocator hands out unique IDs of one kind, starting at 1. It reserves
// blocks of blockSize IDs with a compare-and-swap on ids/<kind>, which holds
// the highest ID ever reserved; IDs of a block are handed out locally. IDs
// reserved but not handed out before a restart are skipped, never reused.
// Allocators on any number of clients never return the same ID. Safe for
// concurrent use.
type IDAllocator struct {
	c         *Client
	kind      string
	key       string
	blockSize uint64

	mu   sync.Mutex
	next uint64 // next ID to hand out
	end  uint64 // exclusive end of the current block
}

// NewIDAllocator returns an allocator of kind (a name without '/') reserving
// blockSize IDs per etcd round trip.
func NewIDAllocator(c *Client, kind string, blockSize uint64) (*IDAllocator, error) {
	if err := validateName("ID kind", kind); err != nil {
		return nil, err
	}
	if blockSize == 0 {
		return nil, fmt.Errorf("cluster: ID allocator %q: block size 0: %w", kind, ErrInvalidArgument)
	}
	return &IDAllocator{c: c, kind: kind, key: c.key("ids/" + kind), blockSize: blockSize}, nil
}

// Allocate returns an ID never returned before by any allocator of this kind.
func (a *IDAllocator) Allocate(ctx context.Context) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.next == a.end {
		first, err := a.c.reserveIDs(ctx, a.key, a.blockSize, 0)
		if err != nil {
			return 0, fmt.Errorf("cluster: allocate %s ID: %w", a.kind, err)
		}
		a.next, a.end = first, first+a.blockSize
	}
	id := a.next
	a.next++
	return id, nil
}

// ReserveThrough makes sure no allocator of this kind ever hands out an ID
// at or below id (for IDs fixed by bootstrap or persisted by a node).
func (a *IDAllocator) ReserveThrough(ctx context.Context, id uint64) error {
	if _, err := a.c.reserveIDs(ctx, a.key, 0, id); err != nil {
		return fmt.Errorf("cluster: reserve %s IDs through %d: %w", a.kind, id, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.next <= id {
		// The local block overlaps the now-reserved prefix: drop it.
		a.next, a.end = 0, 0
	}
	return nil
}

// reserveIDs raises the counter at key to max(counter+n, floor) by CAS and
// returns the first ID of the reserved block (counter+1 before the raise).
func (c *Client) reserveIDs(ctx context.Context, key string, n, floor uint64) (uint64, error) {
	for {
		resp, err := c.etcd.Get(ctx, key)
		if err != nil {
			return 0, wrapEtcdErr("read ID counter", err)
		}
		var last uint64
		cmp := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		if len(resp.Kvs) == 1 {
			if last, err = parseUint(resp.Kvs[0].Value); err != nil {
				return 0, fmt.Errorf("cluster: ID counter %s holds %q: %w", key, resp.Kvs[0].Value, err)
			}
			cmp = clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)
		}
		target := max(last+n, floor)
		if target == last {
			return last + 1, nil
		}
		txn, err := c.etcd.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, formatUint(target))).Commit()
		if err != nil {
			return 0, wrapEtcdErr("raise ID counter", err)
		}
		if txn.Succeeded {
			return last + 1, nil
		}
		// Another allocator raised the counter in between: read it again.
	}
}
