package cluster

import (
	"encoding"
	"fmt"

	"google.golang.org/protobuf/proto"
)

// RawCodec is a gRPC codec for services described by hand, without protoc:
// messages are *[]byte (or []byte when sending) carried as they are. Types
// implementing encoding.BinaryMarshaler/BinaryUnmarshaler and protobuf
// messages are handled too, so one gRPC server forced to this codec
// (grpc.ForceServerCodec(cluster.RawCodec{})) can also host services that
// use protobuf messages. It is never registered globally: servers take it as
// a ServerOption, clients as a grpc.ForceCodec call option.
type RawCodec struct{}

// Name is the gRPC content-subtype.
func (RawCodec) Name() string { return "quorumdb-raw" }

// Marshal returns v's wire form.
func (RawCodec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case *[]byte:
		return *m, nil
	case []byte:
		return m, nil
	case encoding.BinaryMarshaler:
		return m.MarshalBinary()
	case proto.Message:
		return proto.Marshal(m)
	}
	return nil, fmt.Errorf("cluster: raw codec cannot marshal %T", v)
}

// Unmarshal fills v from data. Bytes are copied: gRPC may reuse data.
func (RawCodec) Unmarshal(data []byte, v any) error {
	switch m := v.(type) {
	case *[]byte:
		*m = append([]byte(nil), data...)
		return nil
	case encoding.BinaryUnmarshaler:
		return m.UnmarshalBinary(data)
	case proto.Message:
		return proto.Unmarshal(data, m)
	}
	return fmt.Errorf("cluster: raw codec cannot unmarshal into %T", v)
}
