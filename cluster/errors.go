package cluster

import (
	"errors"
	"fmt"

	"github.com/quorumdb/quorumdb/kv"
)

// ErrEtcdUnavailable wraps every failure that comes from not reaching etcd
// within the bounded wait (dial, a request that timed out). Callers test it
// with errors.Is and may retry later.
var ErrEtcdUnavailable = errors.New("etcd unavailable")

// ErrInvalidArgument wraps every rejection of bad input (empty cluster name,
// a descriptor whose start key is not below its end key, a zero batch size).
var ErrInvalidArgument = errors.New("invalid argument")

// ErrLeadershipLost is returned by operations of a Leadership that has ended
// (resigned, lease expired, election key deleted, guarded write refused).
var ErrLeadershipLost = errors.New("leadership lost")

// ErrClosed is returned by operations on a closed component.
var ErrClosed = errors.New("closed")

// NodeNotFoundError says no address is known for a node ID.
type NodeNotFoundError struct {
	NodeID uint64
}

func (e *NodeNotFoundError) Error() string {
	return fmt.Sprintf("cluster: node %d is not registered", e.NodeID)
}

// RangeNotFoundError says the range directory has no published range that
// contains Key. Either the key space is not bootstrapped yet or a split is
// being published; the caller retries after a short wait.
type RangeNotFoundError struct {
	Key []byte
}

func (e *RangeNotFoundError) Error() string {
	return fmt.Sprintf("cluster: no published range contains key %q", e.Key)
}

// StaleDescriptorError says a published descriptor overlapping Offered has a
// generation at least as new, so Offered was not published. Published is the
// directory's copy; the publisher's view is out of date.
type StaleDescriptorError struct {
	Offered   *kv.RangeDescriptor
	Published *kv.RangeDescriptor
}

func (e *StaleDescriptorError) Error() string {
	return fmt.Sprintf("cluster: descriptor %s is not newer than the published %s", e.Offered, e.Published)
}

// TSONotLeaderError says the TSO server asked is not (or no longer) the
// leader. Leader is the leader's RPC address when known.
type TSONotLeaderError struct {
	Leader string
}

func (e *TSONotLeaderError) Error() string {
	if e.Leader == "" {
		return "cluster: this TSO server is not the leader"
	}
	return fmt.Sprintf("cluster: this TSO server is not the leader (leader at %s)", e.Leader)
}

// TSOUnavailableError is what a TSOClient returns when no leader handed out
// timestamps within its bounded wait. Last is the last failure seen.
type TSOUnavailableError struct {
	Waited string
	Last   error
}

func (e *TSOUnavailableError) Error() string {
	return fmt.Sprintf("cluster: timestamp oracle unavailable after %s: %v", e.Waited, e.Last)
}

func (e *TSOUnavailableError) Unwrap() error { return e.Last }

// ErrTSOWindowExhausted says the TSO leader has handed out every timestamp
// below the high-water mark it managed to persist (etcd unreachable for longer
// than the window). It is retryable.
var ErrTSOWindowExhausted = errors.New("cluster: TSO window exhausted: cannot persist a new high-water mark in etcd")

// SafePointRegressionError says a GC safepoint lower than the current one was
// offered; the safepoint only moves forward.
type SafePointRegressionError struct {
	Current, Offered kv.Timestamp
}

func (e *SafePointRegressionError) Error() string {
	return fmt.Sprintf("cluster: GC safepoint %d is below the current %d", e.Offered, e.Current)
}

// SchemaAckTimeoutError says some live nodes had not acknowledged Version when
// the wait ended.
type SchemaAckTimeoutError struct {
	Version uint64
	Pending []uint64
	Err     error
}

func (e *SchemaAckTimeoutError) Error() string {
	return fmt.Sprintf("cluster: nodes %v did not acknowledge schema version %d: %v", e.Pending, e.Version, e.Err)
}

func (e *SchemaAckTimeoutError) Unwrap() error { return e.Err }
