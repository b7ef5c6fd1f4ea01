package raftgroup

import (
	"context"

	"go.etcd.io/raft/v3/raftpb"
)

// RaftMessage is one Raft message of one range, addressed node to node. The
// raftpb.Message's From/To are replica IDs inside the range's group.
type RaftMessage struct {
	RangeID  uint64
	FromNode uint64
	ToNode   uint64
	Message  *raftpb.Message
}

// SnapshotSource produces a snapshot's data as a sequence of chunks, calling
// send for each; it stops at the first error send returns.
type SnapshotSource func(send func(chunk []byte) error) error

// Transport moves Raft messages between stores. The store depends only on
// this interface; the gRPC transport implements it.
type Transport interface {
	// Send queues msg for its destination node and never blocks. It returns
	// false when the message was dropped (queue full, unknown node, fault
	// injection); Raft retransmits.
	Send(msg *RaftMessage) bool
	// SendSnapshot streams a snapshot: header carries the MsgSnap (with
	// metadata), then the chunks from data. It returns once the receiver has
	// applied the snapshot, or with the error that stopped it.
	SendSnapshot(ctx context.Context, header *RaftMessage, data SnapshotSource) error
}

// MessageHandler receives what the transport delivers. *Store implements it.
type MessageHandler interface {
	// HandleRaftMessage steps one incoming message into its replica, creating
	// an uninitialized replica when the range is unknown here. It must not
	// block on Raft I/O.
	HandleRaftMessage(ctx context.Context, msg *RaftMessage) error
	// HandleSnapshot receives a snapshot stream: recv returns the next chunk
	// and io.EOF after the last one. It returns once the snapshot is applied.
	HandleSnapshot(ctx context.Context, header *RaftMessage, recv func() ([]byte, error)) error
}

// AddressResolver maps a node ID to its RPC address ("host:port").
type AddressResolver func(nodeID uint64) (string, error)
