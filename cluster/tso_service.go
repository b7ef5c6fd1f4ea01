package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The TSO gRPC service, described by hand (no protoc). Request: the count of
// timestamps as 4 bytes big-endian. Response: the first timestamp as 8 bytes
// big-endian; the block is first … first+count-1.
const (
	tsoServiceName         = "quorumdb.cluster.TSO"
	tsoGetTimestampsMethod = "/" + tsoServiceName + "/GetTimestamps"
)

// tsoHandler is the interface the service descriptor's HandlerType names.
type tsoHandler interface {
	GetTimestamps(count uint32) (uint64, error)
}

func tsoServiceDesc() *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: tsoServiceName,
		HandlerType: (*tsoHandler)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "GetTimestamps",
			Handler:    handleGetTimestamps,
		}},
		Metadata: "cluster/tso_service.go",
	}
}

func handleGetTimestamps(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	var req []byte
	if err := dec(&req); err != nil {
		return nil, err
	}
	call := func(_ context.Context, r any) (any, error) {
		body := *r.(*[]byte)
		if len(body) != 4 {
			return nil, status.Errorf(codes.InvalidArgument, "TSO request of %d bytes, want 4", len(body))
		}
		first, err := srv.(tsoHandler).GetTimestamps(binary.BigEndian.Uint32(body))
		if err != nil {
			return nil, tsoStatus(err)
		}
		resp := binary.BigEndian.AppendUint64(nil, first)
		return &resp, nil
	}
	if interceptor == nil {
		return call(ctx, &req)
	}
	return interceptor(ctx, &req, &grpc.UnaryServerInfo{Server: srv, FullMethod: tsoGetTimestampsMethod}, call)
}

func tsoStatus(err error) error {
	var notLeader *TSONotLeaderError
	switch {
	case errors.As(err, &notLeader):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, ErrInvalidArgument):
		return status.Error(codes.InvalidArgument, err.Error())
	default:
		return status.Error(codes.Unavailable, err.Error())
	}
}

// RegisterTSOService registers srv's timestamp service on s. The server must
// be created with TSOServerCodec (or another codec that passes *[]byte
// through), since the service has no protobuf messages.
func RegisterTSOService(s *grpc.Server, srv *TSOServer) {
	s.RegisterService(tsoServiceDesc(), srv)
}

// TSOServerCodec is the grpc.ServerOption the server hosting the TSO service
// needs: grpc.ForceServerCodec(RawCodec{}).
func TSOServerCodec() grpc.ServerOption {
	return grpc.ForceServerCodec(RawCodec{})
}

// callGetTimestamps is the client side of the RPC.
func callGetTimestamps(ctx context.Context, conn *grpc.ClientConn, count uint32) (uint64, error) {
	req := binary.BigEndian.AppendUint32(nil, count)
	var resp []byte
	if err := conn.Invoke(ctx, tsoGetTimestampsMethod, &req, &resp, grpc.ForceCodec(RawCodec{})); err != nil {
		return 0, err
	}
	if len(resp) != 8 {
		return 0, fmt.Errorf("cluster: TSO response of %d bytes, want 8", len(resp))
	}
	return binary.BigEndian.Uint64(resp), nil
}
