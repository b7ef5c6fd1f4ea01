package txn

import (
	"context"
	"log/slog"
	"time"

	"github.com/quorumdb/quorumdb/kv"
)

// LocalStoreSender routes requests to the ranges of one in-process store
// (single-node embedded use, and the SQL layer's tests): descriptors come
// from the store's own directory, requests go straight to Store.Execute, with
// the same retries as the Router (a just-created range may not have elected
// its leader yet) and the same bounded wait.
type LocalStoreSender struct {
	router *Router
}

// LocalStoreSenderConfig configures a LocalStoreSender.
type LocalStoreSenderConfig struct {
	Store     LocalStore
	Directory RangeDirectory
	Logger    *slog.Logger
	// MaxWait bounds the retries of one request (0: DefaultRouterMaxWait).
	MaxWait time.Duration
}

// NewLocalStoreSender returns a sender over one in-process store.
func NewLocalStoreSender(cfg LocalStoreSenderConfig) *LocalStoreSender {
	r := NewRouter(RouterConfig{
		Directory: cfg.Directory,
		Nodes:     localNodes{store: cfg.Store},
		Logger:    cfg.Logger,
		MaxWait:   cfg.MaxWait,
	})
	r.anyNode = localNodeID
	return &LocalStoreSender{router: r}
}

// localNodeID stands for "this process" when a descriptor lists no replica.
const localNodeID = ^uint64(0)

// localNodes sends every request to the local store whatever the node ID:
// all replicas of a single-node store are local.
type localNodes struct{ store LocalStore }

func (l localNodes) Execute(ctx context.Context, _ uint64, rangeID uint64, req *kv.Request) (*kv.Response, error) {
	return l.store.Execute(ctx, rangeID, req)
}

// RangeForKey implements RangeSender.
func (s *LocalStoreSender) RangeForKey(ctx context.Context, key []byte) (*kv.RangeDescriptor, error) {
	return s.router.RangeForKey(ctx, key)
}

// RangeBeforeKey implements RangeSender.
func (s *LocalStoreSender) RangeBeforeKey(ctx context.Context, floor, key []byte) (*kv.RangeDescriptor, error) {
	return s.router.RangeBeforeKey(ctx, floor, key)
}

// SendToRange implements RangeSender.
func (s *LocalStoreSender) SendToRange(ctx context.Context, desc *kv.RangeDescriptor, req *kv.Request) (*kv.Response, error) {
	return s.router.SendToRange(ctx, desc, req)
}

// SendToNearest implements NearestSender: every replica is local, so it is
// SendToRange.
func (s *LocalStoreSender) SendToNearest(ctx context.Context, desc *kv.RangeDescriptor, req *kv.Request) (*kv.Response, error) {
	return s.router.SendToRange(ctx, desc, req)
}

// UpdateRange feeds a descriptor (after a split) into the cache.
func (s *LocalStoreSender) UpdateRange(d *kv.RangeDescriptor) { s.router.UpdateRange(d) }
