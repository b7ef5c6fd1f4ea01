package raftgroup

import (
	"encoding/binary"
	"fmt"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// This file holds what the node's gRPC services put on the wire: a codec that
// passes raw byte frames through (so no .proto files and no protoc are
// needed), and the binary layout of the transport's frames.
//
// Frame layout (first byte is the kind; integers are unsigned varints):
//
//	raft batch      1 <fromNode> <toNode> { <rangeID> <len> <raftpb.Message proto> }*
//	snapshot header 2 <fromNode> <toNode> <rangeID> <raftpb.Message proto (MsgSnap)>
//	snapshot chunk  3 <chunk bytes>
//	snapshot ack    4 <status: 0 applied, 1 rejected> <reason (UTF-8, rest of frame)>

const (
	grpcFrameRaftBatch      byte = 1
	grpcFrameSnapshotHeader byte = 2
	grpcFrameSnapshotChunk  byte = 3
	grpcFrameSnapshotAck    byte = 4

	grpcSnapshotAckApplied  byte = 0
	grpcSnapshotAckRejected byte = 1
)

// grpcMaxMessageBytes bounds one gRPC message in either direction. Raft
// batches aim at GRPCTransportConfig.MaxFrameBytes (a few MiB) and KV
// responses are bounded by scan limits; the ceiling only rejects absurd frames.
const grpcMaxMessageBytes = 64 << 20

// grpcCodecName is the content-subtype the raw codec announces. A server
// created without GRPCServerOptions falls back to protobuf and fails every
// call with "failed to unmarshal, message is *raftgroup.grpcRawFrame".
const grpcCodecName = "quorumdb-raw"

// grpcRawFrame is one opaque message on a QuorumDB gRPC stream.
type grpcRawFrame []byte

// grpcRawCodec marshals *grpcRawFrame as its bytes and delegates anything
// else (protobuf messages of services hosted on the same server, such as
// gRPC health) to gRPC's protobuf codec. It is immutable.
type grpcRawCodec struct {
	fallback encoding.CodecV2
}

func newGRPCRawCodec() grpcRawCodec {
	return grpcRawCodec{fallback: encoding.GetCodecV2(grpcproto.Name)}
}

func (c grpcRawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*grpcRawFrame); ok {
		return mem.BufferSlice{mem.SliceBuffer(*f)}, nil
	}
	if c.fallback == nil {
		return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
	}
	return c.fallback.Marshal(v)
}

func (c grpcRawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*grpcRawFrame); ok {
		// Materialize copies: gRPC frees data's buffers when this returns.
		*f = data.Materialize()
		return nil
	}
	if c.fallback == nil {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	return c.fallback.Unmarshal(data, v)
}

func (grpcRawCodec) Name() string { return grpcCodecName }

// GRPCServerOptions returns the options the node's *grpc.Server must be
// created with before the transport (Register) and the KV service
// (RegisterKVService) are registered on it: the raw-frame codec (which still
// serves protobuf messages of other services) and the message size limit.
//
// Server keepalive closes an inbound connection whose client went silent
// (a blackholed peer): the transport's own probes keep healthy connections
// busy every second, so these pings only go out on dead ones, and the
// receiver does not hold a dead peer's stream until TCP gives up.
func GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(newGRPCRawCodec()),
		grpc.MaxRecvMsgSize(grpcMaxMessageBytes),
		grpc.MaxSendMsgSize(grpcMaxMessageBytes),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 5 * time.Second, Timeout: 3 * time.Second}),
	}
}

// grpcCallOptions are added to every client call of the transport and the KV
// client.
func grpcCallOptions() []grpc.CallOption {
	return []grpc.CallOption{
		grpc.ForceCodecV2(newGRPCRawCodec()),
		grpc.MaxCallRecvMsgSize(grpcMaxMessageBytes),
		grpc.MaxCallSendMsgSize(grpcMaxMessageBytes),
	}
}

// transportBatchEncoder appends raft messages to one batch frame.
type transportBatchEncoder struct {
	buf   []byte
	count int
}

func (e *transportBatchEncoder) reset(fromNode, toNode uint64) {
	e.buf = make([]byte, 0, 512)
	e.buf = append(e.buf, grpcFrameRaftBatch)
	e.buf = binary.AppendUvarint(e.buf, fromNode)
	e.buf = binary.AppendUvarint(e.buf, toNode)
	e.count = 0
}

// add appends one message. On error the frame is unchanged.
func (e *transportBatchEncoder) add(rangeID uint64, m *raftpb.Message) error {
	size := proto.Size(m)
	mark := len(e.buf)
	e.buf = binary.AppendUvarint(e.buf, rangeID)
	e.buf = binary.AppendUvarint(e.buf, uint64(size))
	out, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(e.buf, m)
	if err != nil {
		e.buf = e.buf[:mark]
		return fmt.Errorf("marshal raft message of range %d: %w", rangeID, err)
	}
	e.buf = out
	e.count++
	return nil
}

// transportDecodedBatch is a decoded raft batch frame.
type transportDecodedBatch struct {
	fromNode, toNode uint64
	messages         []*RaftMessage
}

func transportDecodeBatch(frame []byte) (*transportDecodedBatch, error) {
	if len(frame) == 0 || frame[0] != grpcFrameRaftBatch {
		return nil, &MalformedFrameError{Reason: "not a raft batch frame"}
	}
	rest := frame[1:]
	from, rest, err := transportUvarint(rest, "from node")
	if err != nil {
		return nil, err
	}
	to, rest, err := transportUvarint(rest, "to node")
	if err != nil {
		return nil, err
	}
	b := &transportDecodedBatch{fromNode: from, toNode: to}
	for len(rest) > 0 {
		var rangeID, size uint64
		if rangeID, rest, err = transportUvarint(rest, "range ID"); err != nil {
			return nil, err
		}
		if size, rest, err = transportUvarint(rest, "message length"); err != nil {
			return nil, err
		}
		if size > uint64(len(rest)) {
			return nil, &MalformedFrameError{Reason: fmt.Sprintf("message of range %d claims %d bytes, %d left", rangeID, size, len(rest))}
		}
		m := new(raftpb.Message)
		if err := proto.Unmarshal(rest[:size], m); err != nil {
			return nil, &MalformedFrameError{Reason: fmt.Sprintf("raft message of range %d: %v", rangeID, err)}
		}
		rest = rest[size:]
		b.messages = append(b.messages, &RaftMessage{RangeID: rangeID, FromNode: from, ToNode: to, Message: m})
	}
	return b, nil
}

func transportUvarint(b []byte, what string) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, nil, &MalformedFrameError{Reason: "bad varint for " + what}
	}
	return v, b[n:], nil
}

func transportEncodeSnapshotHeader(h *RaftMessage) (grpcRawFrame, error) {
	buf := []byte{grpcFrameSnapshotHeader}
	buf = binary.AppendUvarint(buf, h.FromNode)
	buf = binary.AppendUvarint(buf, h.ToNode)
	buf = binary.AppendUvarint(buf, h.RangeID)
	out, err := proto.MarshalOptions{}.MarshalAppend(buf, h.Message)
	if err != nil {
		return nil, fmt.Errorf("marshal snapshot header of range %d: %w", h.RangeID, err)
	}
	return out, nil
}

func transportDecodeSnapshotHeader(frame []byte) (*RaftMessage, error) {
	if len(frame) == 0 || frame[0] != grpcFrameSnapshotHeader {
		return nil, &MalformedFrameError{Reason: "snapshot stream does not start with a header frame"}
	}
	rest := frame[1:]
	from, rest, err := transportUvarint(rest, "from node")
	if err != nil {
		return nil, err
	}
	to, rest, err := transportUvarint(rest, "to node")
	if err != nil {
		return nil, err
	}
	rangeID, rest, err := transportUvarint(rest, "range ID")
	if err != nil {
		return nil, err
	}
	m := new(raftpb.Message)
	if err := proto.Unmarshal(rest, m); err != nil {
		return nil, &MalformedFrameError{Reason: fmt.Sprintf("snapshot header of range %d: %v", rangeID, err)}
	}
	return &RaftMessage{RangeID: rangeID, FromNode: from, ToNode: to, Message: m}, nil
}

func transportEncodeSnapshotChunk(chunk []byte) grpcRawFrame {
	buf := make([]byte, 1+len(chunk))
	buf[0] = grpcFrameSnapshotChunk
	copy(buf[1:], chunk)
	return buf
}

func transportEncodeSnapshotAck(err error) grpcRawFrame {
	if err == nil {
		return grpcRawFrame{grpcFrameSnapshotAck, grpcSnapshotAckApplied}
	}
	return append(grpcRawFrame{grpcFrameSnapshotAck, grpcSnapshotAckRejected}, err.Error()...)
}

// transportDecodeSnapshotAck returns the receiver's verdict: rejected reports
// whether it refused the snapshot, with its reason.
func transportDecodeSnapshotAck(frame []byte) (rejected bool, reason string, err error) {
	if len(frame) < 2 || frame[0] != grpcFrameSnapshotAck {
		return false, "", &MalformedFrameError{Reason: "expected a snapshot ack frame"}
	}
	switch frame[1] {
	case grpcSnapshotAckApplied:
		return false, "", nil
	case grpcSnapshotAckRejected:
		return true, string(frame[2:]), nil
	default:
		return false, "", &MalformedFrameError{Reason: fmt.Sprintf("unknown snapshot ack status %d", frame[1])}
	}
}
