package raftgroup

import (
	"errors"
	"fmt"
)

// Typed errors of the gRPC transport, the fault injector and the KV service
// (NodeUnavailableError lives beside the KV client in kvservice.go).

// ErrTransportClosed is returned by SendSnapshot after Close.
var ErrTransportClosed = errors.New("raftgroup: transport closed")

// MalformedFrameError reports a frame that does not parse: a peer running an
// incompatible version, or corruption. The stream carrying it is closed.
type MalformedFrameError struct {
	Reason string
}

func (e *MalformedFrameError) Error() string {
	return "raftgroup: malformed transport frame: " + e.Reason
}

// MisdirectedFrameError reports a stream that reached the wrong node: the
// resolver's address for ToNode now belongs to node At (a node restarted on
// another node's old port). The sender re-resolves and reconnects.
type MisdirectedFrameError struct {
	ToNode, At uint64
}

func (e *MisdirectedFrameError) Error() string {
	return fmt.Sprintf("raftgroup: frame for node %d arrived at node %d", e.ToNode, e.At)
}

// SnapshotRejectedError is what SendSnapshot returns when the receiving node
// got the stream but its MessageHandler.HandleSnapshot failed. Reason is the
// receiver's error text (the error value itself does not cross the network).
type SnapshotRejectedError struct {
	NodeID, RangeID uint64
	Reason          string
}

func (e *SnapshotRejectedError) Error() string {
	return fmt.Sprintf("raftgroup: node %d rejected the snapshot of range %d: %s", e.NodeID, e.RangeID, e.Reason)
}

// FaultInjectedError reports a message or call that a FaultInjector cut
// (partition or isolation). Only tests configure faults.
type FaultInjectedError struct {
	From, To uint64
}

func (e *FaultInjectedError) Error() string {
	return fmt.Sprintf("raftgroup: fault injection cuts node %d from node %d", e.From, e.To)
}
