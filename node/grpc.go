package node

import (
	"fmt"
	"reflect"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// The node hosts every internal service (Raft transport, KV requests, admin
// commands, timestamp oracle) on one gRPC server and one port. Each service
// moves opaque byte frames, typed by the package that owns it (a named
// []byte type), and needs a server codec that passes them through; a gRPC
// server takes only one forced codec, so the node supplies one that passes
// any pointer to a byte-slice type through and leaves everything else to
// protobuf.

// frameCodec is the node server's codec. It is immutable.
type frameCodec struct {
	fallback encoding.CodecV2
}

func newFrameCodec() frameCodec {
	return frameCodec{fallback: encoding.GetCodecV2(grpcproto.Name)}
}

// Name matches the content-subtype the clients of every service announce.
func (frameCodec) Name() string { return "quorumdb-raw" }

func byteSlicePtr(v any) (reflect.Value, bool) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return reflect.Value{}, false
	}
	e := rv.Elem()
	if e.Kind() != reflect.Slice || e.Type().Elem().Kind() != reflect.Uint8 {
		return reflect.Value{}, false
	}
	return e, true
}

func (c frameCodec) Marshal(v any) (mem.BufferSlice, error) {
	if e, ok := byteSlicePtr(v); ok {
		return mem.BufferSlice{mem.SliceBuffer(e.Bytes())}, nil
	}
	if b, ok := v.([]byte); ok {
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	if c.fallback == nil {
		return nil, fmt.Errorf("node: grpc codec cannot marshal %T", v)
	}
	return c.fallback.Marshal(v)
}

func (c frameCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if e, ok := byteSlicePtr(v); ok {
		// Materialize copies: gRPC frees data's buffers when this returns.
		e.SetBytes(data.Materialize())
		return nil
	}
	if c.fallback == nil {
		return fmt.Errorf("node: grpc codec cannot unmarshal into %T", v)
	}
	return c.fallback.Unmarshal(data, v)
}

// grpcServerOptions are the options of the node's internal gRPC server.
func grpcServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(newFrameCodec()),
		grpc.MaxRecvMsgSize(64 << 20),
		grpc.MaxSendMsgSize(64 << 20),
	}
}
