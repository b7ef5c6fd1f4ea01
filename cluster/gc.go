package cluster

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/quorumdb/quorumdb/kv"
)

const gcSafePointPath = "gc/safepoint"

// GCSafePoint returns the cluster's GC safepoint: versions older than it may
// be collected. 0 before the first SetGCSafePoint.
func (c *Client) GCSafePoint(ctx context.Context) (kv.Timestamp, error) {
	resp, err := c.etcd.Get(ctx, c.key(gcSafePointPath))
	if err != nil {
		return 0, wrapEtcdErr("read GC safepoint", err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	v, err := parseUint(resp.Kvs[0].Value)
	if err != nil {
		return 0, fmt.Errorf("cluster: GC safepoint holds %q: %w", resp.Kvs[0].Value, err)
	}
	return v, nil
}

// SetGCSafePoint moves the safepoint forward to ts by compare-and-swap. A ts
// below the current safepoint is refused with *SafePointRegressionError; an
// equal one is accepted unchanged.
func (c *Client) SetGCSafePoint(ctx context.Context, ts kv.Timestamp) error {
	key := c.key(gcSafePointPath)
	for {
		resp, err := c.etcd.Get(ctx, key)
		if err != nil {
			return wrapEtcdErr("read GC safepoint", err)
		}
		cmp := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		if len(resp.Kvs) == 1 {
			cur, err := parseUint(resp.Kvs[0].Value)
			if err != nil {
				return fmt.Errorf("cluster: GC safepoint holds %q: %w", resp.Kvs[0].Value, err)
			}
			if ts < cur {
				return &SafePointRegressionError{Current: cur, Offered: ts}
			}
			if ts == cur {
				return nil
			}
			cmp = clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)
		}
		txn, err := c.etcd.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, formatUint(ts))).Commit()
		if err != nil {
			return wrapEtcdErr("set GC safepoint", err)
		}
		if txn.Succeeded {
			return nil
		}
	}
}

// gcFloorPath holds, per live node, the smallest start timestamp among the
// node's open transactions (or a recent timestamp when it has none), on the
// node's lease: a dead node's floor disappears with it.
const gcFloorPath = "gc/floor/"

// ReportGCFloor publishes this node's GC floor: no version a transaction of
// this node may still read lies below it. The GC safepoint never passes the
// smallest floor of the live nodes.
func (r *NodeRegistration) ReportGCFloor(ctx context.Context, floor kv.Timestamp) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fmt.Errorf("cluster: report GC floor: node %d: %w", r.info.ID, ErrClosed)
	}
	lease := r.lease
	r.mu.Unlock()
	key := r.c.key(gcFloorPath + nodeSuffix(r.info.ID))
	if _, err := r.c.etcd.Put(ctx, key, formatUint(floor), clientv3.WithLease(lease)); err != nil {
		return wrapEtcdErr(fmt.Sprintf("report GC floor of node %d", r.info.ID), err)
	}
	return nil
}

// MinGCFloor returns the smallest GC floor the live nodes reported and how
// many nodes reported one.
func (c *Client) MinGCFloor(ctx context.Context) (floor kv.Timestamp, reports int, err error) {
	resp, err := c.etcd.Get(ctx, c.key(gcFloorPath), clientv3.WithPrefix())
	if err != nil {
		return 0, 0, wrapEtcdErr("read GC floors", err)
	}
	for _, item := range resp.Kvs {
		v, err := parseUint(item.Value)
		if err != nil {
			return 0, 0, fmt.Errorf("cluster: GC floor %s holds %q: %w", item.Key, item.Value, err)
		}
		if reports == 0 || v < floor {
			floor = v
		}
		reports++
	}
	return floor, reports, nil
}
