package raftgroup

import (
	"errors"
	"fmt"
)

// Errors of the store itself. Routing errors that cross to the layers above
// (not leader, range not found, stale descriptor, dropped proposal, range
// unavailable) are kv's typed errors, so they survive the KV RPC unchanged.

// ErrStoreStopped is returned by calls made after Stop.
var ErrStoreStopped = errors.New("raftgroup: store stopped")

// RangeExistsError: BootstrapRange or a split found the range already here.
type RangeExistsError struct {
	RangeID uint64
}

func (e *RangeExistsError) Error() string {
	return fmt.Sprintf("raftgroup: r%d already exists on this store", e.RangeID)
}

// ReplicaTombstonedError: a message or snapshot addressed a replica ID of a
// range that was removed from this node at a later replica ID.
type ReplicaTombstonedError struct {
	RangeID, ReplicaID, NextReplicaID uint64
}

func (e *ReplicaTombstonedError) Error() string {
	return fmt.Sprintf("raftgroup: r%d replica %d was removed here (next allowed replica id %d)", e.RangeID, e.ReplicaID, e.NextReplicaID)
}

// SnapshotOverlapError: an incoming snapshot covers keys an initialized
// replica of another range on this store still owns (this store has not yet
// applied the split or merge that separates them). The sender retries later.
type SnapshotOverlapError struct {
	RangeID, OverlappingRangeID uint64
}

func (e *SnapshotOverlapError) Error() string {
	return fmt.Sprintf("raftgroup: snapshot of r%d overlaps r%d on this store", e.RangeID, e.OverlappingRangeID)
}

// InvalidChangeError: a membership change or split that cannot be applied
// as asked (unknown node, a change already in progress, a split key outside
// the range).
type InvalidChangeError struct {
	RangeID uint64
	Reason  string
}

func (e *InvalidChangeError) Error() string {
	return fmt.Sprintf("raftgroup: r%d: %s", e.RangeID, e.Reason)
}

// ReplicaNotInDescriptorError: BootstrapRange was called on a node that the
// descriptor does not list.
type ReplicaNotInDescriptorError struct {
	RangeID, NodeID uint64
}

func (e *ReplicaNotInDescriptorError) Error() string {
	return fmt.Sprintf("raftgroup: r%d: node %d holds no replica in the descriptor", e.RangeID, e.NodeID)
}
