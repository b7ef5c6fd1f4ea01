package txn

import (
	"context"

	"github.com/quorumdb/quorumdb/kv"
)

// RangeSender is what the coordinator needs from routing: find the range of
// a key and send a request to one range. Router (a cluster) and
// LocalStoreSender (one in-process store) implement it.
//
// SendToRange returns the kv request errors untouched (LockedError,
// WriteConflictError, …). When the descriptor it was given turned out to be
// stale (*kv.KeyOutOfRangeError, *kv.EpochMismatchError, or a
// *kv.RangeNotFoundError from every replica) it updates its cache and returns
// that error, and the caller regroups the request by the fresh descriptors.
type RangeSender interface {
	// RangeForKey returns the descriptor of the range holding key.
	RangeForKey(ctx context.Context, key []byte) (*kv.RangeDescriptor, error)
	// RangeBeforeKey returns the range holding the keys just below key
	// (StartKey < key <= EndKey). Keys at or above floor are known to be
	// wanted, so the sender may walk forward from floor to find it.
	RangeBeforeKey(ctx context.Context, floor, key []byte) (*kv.RangeDescriptor, error)
	// SendToRange sends req, whose keys all lie in desc, to that range.
	SendToRange(ctx context.Context, desc *kv.RangeDescriptor, req *kv.Request) (*kv.Response, error)
}

// NearestSender is a RangeSender that can send a read at a past timestamp
// to the nearest replica instead of the leader: a replica serves reads at or
// below its range's closed timestamp (Router). AS OF transactions read
// through it when the sender has it.
type NearestSender interface {
	SendToNearest(ctx context.Context, desc *kv.RangeDescriptor, req *kv.Request) (*kv.Response, error)
}

// TimestampSource hands out timestamps: each one larger than every
// timestamp handed out before the call began (cluster's batching TSO client).
type TimestampSource interface {
	GetTimestamp(ctx context.Context) (kv.Timestamp, error)
}

// RangeDirectory finds the published descriptor of the range holding a key
// (cluster's etcd range directory, or a local store's descriptors).
type RangeDirectory interface {
	LookupRange(ctx context.Context, key []byte) (*kv.RangeDescriptor, error)
}

// RangeDirectoryFunc adapts a function to RangeDirectory.
type RangeDirectoryFunc func(ctx context.Context, key []byte) (*kv.RangeDescriptor, error)

// LookupRange calls f.
func (f RangeDirectoryFunc) LookupRange(ctx context.Context, key []byte) (*kv.RangeDescriptor, error) {
	return f(ctx, key)
}

// NodeSender sends one request to the replica of a range on a node
// (raftgroup.KVClient over gRPC).
type NodeSender interface {
	Execute(ctx context.Context, nodeID, rangeID uint64, req *kv.Request) (*kv.Response, error)
}

// LocalStore executes a request on a range of an in-process store
// (*raftgroup.Store).
type LocalStore interface {
	Execute(ctx context.Context, rangeID uint64, req *kv.Request) (*kv.Response, error)
}

// SafepointSource gives the cluster's GC safepoint: versions older than the
// newest one at or below it may be removed (cluster.Client's etcd key).
type SafepointSource interface {
	GCSafePoint(ctx context.Context) (kv.Timestamp, error)
}
