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
