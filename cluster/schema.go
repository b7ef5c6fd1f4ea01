package cluster

import (
	"context"
	"fmt"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"
)

const (
	schemaVersionPath = "schema/version"
	schemaAckPath     = "schema/ack/"
)

// SchemaVersion returns the catalog version; 0 before the first bump.
func (c *Client) SchemaVersion(ctx context.Context) (uint64, error) {
	resp, err := c.etcd.Get(ctx, c.key(schemaVersionPath))
	if err != nil {
		return 0, wrapEtcdErr("read schema version", err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	v, err := parseUint(resp.Kvs[0].Value)
	if err != nil {
		return 0, fmt.Errorf("cluster: schema version holds %q: %w", resp.Kvs[0].Value, err)
	}
	return v, nil
}

// BumpSchemaVersion increments the catalog version by compare-and-swap and
// returns the new version. Concurrent bumps each get their own version.
func (c *Client) BumpSchemaVersion(ctx context.Context) (uint64, error) {
	first, err := c.reserveIDs(ctx, c.key(schemaVersionPath), 1, 0)
	if err != nil {
		return 0, fmt.Errorf("cluster: bump schema version: %w", err)
	}
	return first, nil
}

// WatchSchemaVersion delivers the current version and then every newer one.
// A slow reader sees only the latest version (intermediate ones may be
// skipped); versions never go backwards. The channel closes when ctx ends.
func (c *Client) WatchSchemaVersion(ctx context.Context) <-chan uint64 {
	ch := make(chan uint64, 1)
	go func() {
		defer close(ch)
		var last uint64
		c.followPrefix(ctx, c.key(schemaVersionPath), func(ev prefixEvent) {
			if ev.Deleted || ev.Key != "" {
				return
			}
			v, err := parseUint(ev.Value)
			if err != nil || v <= last {
				return
			}
			last = v
			// Latest wins: replace an undelivered older version.
			select {
			case <-ch:
			default:
			}
			select {
			case ch <- v:
			case <-ctx.Done():
			}
		}, nil)
	}()
	return ch
}

// WaitSchemaVersion blocks until the catalog version is at least v and
// returns it (bounded by ctx).
func (c *Client) WaitSchemaVersion(ctx context.Context, v uint64) (uint64, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for got := range c.WatchSchemaVersion(wctx) {
		if got >= v {
			return got, nil
		}
	}
	return 0, fmt.Errorf("cluster: wait for schema version %d: %w", v, ctx.Err())
}

// WaitForSchemaAcks blocks until every node of liveNodes that is still live
// has acknowledged version (NodeRegistration.AckSchemaVersion). A node that
// dies meanwhile no longer blocks. With liveNodes nil, every node live at each
// check must acknowledge. It ends with a *SchemaAckTimeoutError naming the
// lagging nodes when ctx ends first.
func (c *Client) WaitForSchemaAcks(ctx context.Context, version uint64, liveNodes []uint64) error {
	var pending []uint64
	for {
		var rev int64
		var err error
		pending, rev, err = c.pendingSchemaAcks(ctx, version, liveNodes)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return err
		}
		if len(pending) == 0 {
			return nil
		}
		if !c.waitForChange(ctx, rev+1, c.key(schemaAckPath), c.key(nodesPath)) {
			break
		}
	}
	return &SchemaAckTimeoutError{Version: version, Pending: pending, Err: ctx.Err()}
}

// pendingSchemaAcks returns the live nodes (of want, or all when want is nil)
// whose ack is below version, and the revision of that snapshot.
func (c *Client) pendingSchemaAcks(ctx context.Context, version uint64, want []uint64) ([]uint64, int64, error) {
	resp, err := c.etcd.Txn(ctx).Then(
		clientv3.OpGet(c.key(nodesPath), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		clientv3.OpGet(c.key(schemaAckPath), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, 0, wrapEtcdErr("read schema acks", err)
	}
	live := map[uint64]bool{}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		if id, err := parseNodeSuffix(string(kv.Key[len(c.key(nodesPath)):])); err == nil {
			live[id] = true
		}
	}
	acked := map[uint64]uint64{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		id, err := parseNodeSuffix(string(kv.Key[len(c.key(schemaAckPath)):]))
		if err != nil {
			continue
		}
		if v, err := parseUint(kv.Value); err == nil {
			acked[id] = v
		}
	}
	if want == nil {
		for id := range live {
			want = append(want, id)
		}
	}
	var pending []uint64
	for _, id := range want {
		if live[id] && acked[id] < version {
			pending = append(pending, id)
		}
	}
	slices.Sort(pending)
	return pending, resp.Header.Revision, nil
}

// waitForChange blocks until a key under one of the prefixes changes at or
// after rev. It returns false when ctx ends; true also when a watch broke (the
// caller re-reads anyway).
func (c *Client) waitForChange(ctx context.Context, rev int64, prefixes ...string) bool {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	changed := make(chan struct{}, len(prefixes))
	for _, p := range prefixes {
		wch := c.etcd.Watch(wctx, p, clientv3.WithPrefix(), clientv3.WithRev(rev))
		go func() {
			for wr := range wch {
				if len(wr.Events) > 0 || wr.Err() != nil || wr.Canceled {
					break
				}
			}
			changed <- struct{}{}
		}()
	}
	select {
	case <-changed:
		return ctx.Err() == nil
	case <-ctx.Done():
		return false
	}
}
