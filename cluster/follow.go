package cluster

import (
	"bytes"
	"context"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// prefixEvent is one change under a followed prefix. Key is relative to the
// prefix. For a deletion Value is the last value this follower saw.
type prefixEvent struct {
	Key     string
	Value   []byte
	Deleted bool
}

// followPrefix lists everything under prefix, emits it as puts, then emits
// every later change in revision order. When the watch breaks (compaction,
// etcd restart, lost leader) it lists again and emits only the difference
// from what it had emitted, so a consumer sees a consistent sequence.
// afterSync, when non-nil, is called after each complete listing has been
// emitted. It returns when ctx ends; transient etcd errors are retried with
// backoff. emit must not block forever: it should select on ctx.
func (c *Client) followPrefix(ctx context.Context, prefix string, emit func(prefixEvent), afterSync func()) {
	state := map[string][]byte{}
	bo := newBackoff(20*time.Millisecond, time.Second)
	for ctx.Err() == nil {
		resp, err := c.etcd.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil {
			if bo.wait(ctx) != nil {
				return
			}
			continue
		}
		seen := make(map[string]bool, len(resp.Kvs))
		for _, kv := range resp.Kvs {
			k := string(kv.Key[len(prefix):])
			seen[k] = true
			if old, ok := state[k]; ok && bytes.Equal(old, kv.Value) {
				continue
			}
			state[k] = kv.Value
			emit(prefixEvent{Key: k, Value: kv.Value})
		}
		for k, v := range state {
			if !seen[k] {
				delete(state, k)
				emit(prefixEvent{Key: k, Value: v, Deleted: true})
			}
		}
		if afterSync != nil {
			afterSync()
		}
		if c.watchFrom(ctx, prefix, resp.Header.Revision+1, state, emit) {
			bo = newBackoff(20*time.Millisecond, time.Second)
		} else if bo.wait(ctx) != nil {
			return
		}
	}
}

// watchFrom applies watch events to state until the watch ends. It reports
// whether any event arrived (to reset the caller's backoff).
func (c *Client) watchFrom(ctx context.Context, prefix string, rev int64, state map[string][]byte, emit func(prefixEvent)) bool {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	progressed := false
	for wr := range c.etcd.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev)) {
		if wr.Err() != nil || wr.Canceled {
			return progressed
		}
		for _, ev := range wr.Events {
			progressed = true
			k := string(ev.Kv.Key[len(prefix):])
			switch ev.Type {
			case mvccpb.PUT:
				state[k] = ev.Kv.Value
				emit(prefixEvent{Key: k, Value: ev.Kv.Value})
			case mvccpb.DELETE:
				old, ok := state[k]
				if !ok {
					continue
				}
				delete(state, k)
				emit(prefixEvent{Key: k, Value: old, Deleted: true})
			}
		}
	}
	return progressed
}
