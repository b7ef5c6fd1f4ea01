package cluster

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/quorumdb/quorumdb/kv"
)

// The range directory is ranges/<hex(end key)> -> JSON descriptor. Lowercase
// hex of equal-width digits preserves byte order, so etcd's key order is the
// order of end keys and "the range containing k" is the first entry whose
// end key is above k: one range read with limit 1.
const rangesPath = "ranges/"

func (c *Client) rangeKey(endKey []byte) string {
	return c.key(rangesPath + hex.EncodeToString(endKey))
}

// keyAfterEnd returns the smallest directory key whose end key is strictly
// above key.
func (c *Client) keyAfterEnd(key []byte) string {
	return c.rangeKey(key) + "\x00"
}

// PublishRange publishes desc; see PublishRanges.
func (c *Client) PublishRange(ctx context.Context, desc *kv.RangeDescriptor) error {
	return c.PublishRanges(ctx, desc)
}

// PublishRanges publishes descriptors in one etcd transaction. Every
// published descriptor overlapping one of descs must have a lower generation:
// it is superseded and removed (or overwritten when it has the same end
// key). If a published overlapping descriptor is at least as new, nothing is
// written and a *StaleDescriptorError is returned; re-publishing an identical
// descriptor is a no-op.
//
// Generations must order overlapping descriptors: a split gives both halves
// a generation above the parent's (e.g. parent+1 for both), a membership
// change raises the range's own generation. Publish both halves of a split
// together so that no key is uncovered in between.
func (c *Client) PublishRanges(ctx context.Context, descs ...*kv.RangeDescriptor) error {
	if len(descs) == 0 {
		return nil
	}
	sorted := slices.Clone(descs)
	slices.SortFunc(sorted, func(a, b *kv.RangeDescriptor) int { return bytes.Compare(a.StartKey, b.StartKey) })
	for i, d := range sorted {
		if d == nil || len(d.EndKey) == 0 || bytes.Compare(d.StartKey, d.EndKey) >= 0 {
			return fmt.Errorf("cluster: publish range: descriptor %v: start key must be below a non-empty end key: %w", d, ErrInvalidArgument)
		}
		if d.RangeID == 0 {
			return fmt.Errorf("cluster: publish range: descriptor %v has range ID 0: %w", d, ErrInvalidArgument)
		}
		if i > 0 && bytes.Compare(sorted[i-1].EndKey, d.StartKey) > 0 {
			return fmt.Errorf("cluster: publish range: descriptors %v and %v overlap: %w", sorted[i-1], d, ErrInvalidArgument)
		}
	}
	spanStart, spanEnd := sorted[0].StartKey, sorted[len(sorted)-1].EndKey
	for {
		done, err := c.tryPublishRanges(ctx, sorted, spanStart, spanEnd)
		if err != nil || done {
			return err
		}
		// The directory changed between read and write: read again.
	}
}

func (c *Client) tryPublishRanges(ctx context.Context, descs []*kv.RangeDescriptor, spanStart, spanEnd []byte) (bool, error) {
	// Every published range overlapping [spanStart, spanEnd) has an end key
	// in (spanStart, spanEnd], or is the first one ending above spanEnd.
	lo, mid, hi := c.keyAfterEnd(spanStart), c.keyAfterEnd(spanEnd), clientv3.GetPrefixRangeEnd(c.key(rangesPath))
	read, err := c.etcd.Txn(ctx).Then(
		clientv3.OpGet(lo, clientv3.WithRange(mid)),
		clientv3.OpGet(mid, clientv3.WithRange(hi), clientv3.WithLimit(1)),
	).Commit()
	if err != nil {
		return false, wrapEtcdErr("publish range: read directory", err)
	}
	type published struct {
		key    string
		modRev int64
		desc   *kv.RangeDescriptor
	}
	var existing []published
	guardEnd := hi
	for i, r := range read.Responses {
		for _, kvp := range r.GetResponseRange().Kvs {
			d, err := kv.UnmarshalRangeDescriptor(kvp.Value)
			if err != nil {
				return false, fmt.Errorf("cluster: publish range: %s: %w", kvp.Key, err)
			}
			existing = append(existing, published{key: string(kvp.Key), modRev: kvp.ModRevision, desc: d})
			if i == 1 {
				guardEnd = string(kvp.Key) + "\x00"
			}
		}
	}
	// The write succeeds only if nothing in [lo, guardEnd) changed: no key
	// created or modified since the read (range compare) and none deleted
	// (per-key compares).
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(lo), "<", read.Header.Revision+1).WithRange(guardEnd),
	}
	newKeys := map[string]bool{}
	for _, d := range descs {
		newKeys[c.rangeKey(d.EndKey)] = true
	}
	var ops []clientv3.Op
	unchanged := map[string]bool{}
	for _, e := range existing {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(e.key), "=", e.modRev))
		for _, d := range descs {
			if !overlaps(e.desc, d) {
				continue
			}
			if e.desc.Generation > d.Generation || (e.desc.Generation == d.Generation && !sameDescriptor(e.desc, d)) {
				return false, &StaleDescriptorError{Offered: d, Published: e.desc}
			}
			if e.desc.Generation == d.Generation {
				unchanged[e.key] = true
			}
		}
		if !overlapsAny(e.desc, descs) {
			continue
		}
		if !newKeys[e.key] {
			ops = append(ops, clientv3.OpDelete(e.key))
		}
	}
	for _, d := range descs {
		k := c.rangeKey(d.EndKey)
		if unchanged[k] {
			continue
		}
		ops = append(ops, clientv3.OpPut(k, string(d.Marshal())))
	}
	if len(ops) == 0 {
		return true, nil
	}
	txn, err := c.etcd.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return false, wrapEtcdErr("publish range: write directory", err)
	}
	return txn.Succeeded, nil
}

func overlaps(a, b *kv.RangeDescriptor) bool {
	return bytes.Compare(a.StartKey, b.EndKey) < 0 && bytes.Compare(b.StartKey, a.EndKey) < 0
}

func overlapsAny(a *kv.RangeDescriptor, ds []*kv.RangeDescriptor) bool {
	for _, d := range ds {
		if overlaps(a, d) {
			return true
		}
	}
	return false
}

func sameDescriptor(a, b *kv.RangeDescriptor) bool {
	return bytes.Equal(a.Marshal(), b.Marshal())
}

// LookupRange returns the published range containing key.
func (c *Client) LookupRange(ctx context.Context, key []byte) (*kv.RangeDescriptor, error) {
	resp, err := c.etcd.Get(ctx, c.keyAfterEnd(key),
		clientv3.WithRange(clientv3.GetPrefixRangeEnd(c.key(rangesPath))), clientv3.WithLimit(1))
	if err != nil {
		return nil, wrapEtcdErr(fmt.Sprintf("look up range of key %q", key), err)
	}
	if len(resp.Kvs) == 0 {
		return nil, &RangeNotFoundError{Key: key}
	}
	d, err := kv.UnmarshalRangeDescriptor(resp.Kvs[0].Value)
	if err != nil {
		return nil, fmt.Errorf("cluster: look up range: %s: %w", resp.Kvs[0].Key, err)
	}
	if !d.ContainsKey(key) {
		return nil, &RangeNotFoundError{Key: key}
	}
	return d, nil
}

// ListRanges returns every published descriptor in key order.
func (c *Client) ListRanges(ctx context.Context) ([]*kv.RangeDescriptor, error) {
	resp, err := c.etcd.Get(ctx, c.key(rangesPath), clientv3.WithPrefix())
	if err != nil {
		return nil, wrapEtcdErr("list ranges", err)
	}
	out := make([]*kv.RangeDescriptor, 0, len(resp.Kvs))
	for _, kvp := range resp.Kvs {
		d, err := kv.UnmarshalRangeDescriptor(kvp.Value)
		if err != nil {
			return nil, fmt.Errorf("cluster: list ranges: %s: %w", kvp.Key, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// RangeEvent is one change of the range directory: Desc was published, or
// (Removed) the entry holding Desc was removed because it was superseded.
type RangeEvent struct {
	Desc    *kv.RangeDescriptor
	Removed bool
}

// WatchRanges delivers every published descriptor, then every change, in
// etcd order (an overwrite by a newer generation arrives as one published
// event). The channel closes when ctx ends.
func (c *Client) WatchRanges(ctx context.Context) <-chan RangeEvent {
	ch := make(chan RangeEvent, 64)
	go func() {
		defer close(ch)
		c.followPrefix(ctx, c.key(rangesPath), func(ev prefixEvent) {
			d, err := kv.UnmarshalRangeDescriptor(ev.Value)
			if err != nil {
				c.logger.Warn("skipping undecodable range descriptor", "key", ev.Key, "err", err)
				return
			}
			select {
			case ch <- RangeEvent{Desc: d, Removed: ev.Deleted}:
			case <-ctx.Done():
			}
		}, nil)
	}()
	return ch
}
