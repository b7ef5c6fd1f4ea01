package raftgroup

import (
	"encoding/binary"
	"fmt"

	"github.com/quorumdb/quorumdb/kv"
)

// Every normal raft entry this layer proposes is an envelope:
//
//	kind (1 byte) | proposal ID (8 bytes BE) | payload
//
// The proposal ID lets the proposing node find the waiter of an applied
// entry; other nodes ignore it. Entries raft itself appends (the empty entry
// of a new leader) have no data and are not envelopes.
type commandKind byte

const (
	// kindKV carries a kv.Request (payload: (*kv.Request).Marshal()).
	kindKV commandKind = 1
	// kindSplit carries a split: new range ID (8 bytes BE) | split key.
	kindSplit commandKind = 2
	// kindChangeReplicas is the context of a ConfChangeV2 entry: the
	// descriptor in force once the change applies (kv descriptor encoding).
	kindChangeReplicas commandKind = 3
)

const envelopeHeaderSize = 9

func (k commandKind) String() string {
	switch k {
	case kindKV:
		return "kv"
	case kindSplit:
		return "split"
	case kindChangeReplicas:
		return "change-replicas"
	}
	return fmt.Sprintf("kind(%d)", byte(k))
}

func encodeEnvelope(kind commandKind, proposalID uint64, payload []byte) []byte {
	b := make([]byte, envelopeHeaderSize, envelopeHeaderSize+len(payload))
	b[0] = byte(kind)
	binary.BigEndian.PutUint64(b[1:9], proposalID)
	return append(b, payload...)
}

func decodeEnvelope(b []byte) (kind commandKind, proposalID uint64, payload []byte, err error) {
	if len(b) < envelopeHeaderSize {
		return 0, 0, nil, fmt.Errorf("raftgroup: envelope of %d bytes", len(b))
	}
	kind = commandKind(b[0])
	switch kind {
	case kindKV, kindSplit, kindChangeReplicas:
	default:
		return 0, 0, nil, fmt.Errorf("raftgroup: unknown command kind %d", b[0])
	}
	return kind, binary.BigEndian.Uint64(b[1:9]), b[envelopeHeaderSize:], nil
}

// splitCommand splits a range at SplitKey; the right half becomes NewRangeID.
type splitCommand struct {
	SplitKey   []byte
	NewRangeID uint64
}

func (c splitCommand) encode() []byte {
	b := binary.BigEndian.AppendUint64(nil, c.NewRangeID)
	return append(b, c.SplitKey...)
}

func decodeSplitCommand(b []byte) (splitCommand, error) {
	if len(b) < 8 {
		return splitCommand{}, fmt.Errorf("raftgroup: split command of %d bytes", len(b))
	}
	return splitCommand{NewRangeID: binary.BigEndian.Uint64(b[:8]), SplitKey: append([]byte(nil), b[8:]...)}, nil
}

func encodeChangeReplicas(proposalID uint64, desc *kv.RangeDescriptor) []byte {
	return encodeEnvelope(kindChangeReplicas, proposalID, desc.Marshal())
}
