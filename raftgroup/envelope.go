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
	// kindChangeReplicas is the context of a ConfChangeV2 entry written
	// before changeReplicasCommand existed: the descriptor the proposer
	// expected once the change applies (kv descriptor encoding). Still
	// decoded for logs that hold it, and applied the same way as
	// kindChangeReplicasV2 (never installed as is: see
	// deriveChangedDescriptor).
	kindChangeReplicas commandKind = 3
	// kindChangeReplicasV2 is the context of a ConfChangeV2 entry: a
	// changeReplicasCommand.
	kindChangeReplicasV2 commandKind = 4
	// kindCloseTimestamp closes a timestamp (payload: 8 bytes BE): the
	// leader promises that no write at or below it applies after this
	// entry, so every replica that applied it serves reads at or below it
	// from its own state (replica_closedts.go).
	kindCloseTimestamp commandKind = 5
)

const envelopeHeaderSize = 9

func (k commandKind) String() string {
	switch k {
	case kindKV:
		return "kv"
	case kindSplit:
		return "split"
	case kindChangeReplicas:
		return "change-replicas-v1"
	case kindChangeReplicasV2:
		return "change-replicas"
	case kindCloseTimestamp:
		return "close-timestamp"
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
	case kindKV, kindSplit, kindChangeReplicas, kindChangeReplicasV2, kindCloseTimestamp:
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

// changeReplicasCommand is what a membership change carries besides the
// raft ConfChangeV2 itself: the descriptor generation and span it was
// computed from (for diagnostics: apply never trusts them) and the node of
// every replica it adds (raft's change names replica IDs only). The
// descriptor installed at apply is always derived from the descriptor in
// force at apply and the ConfChangeV2's own add/remove list.
type changeReplicasCommand struct {
	BaseGeneration   uint64
	StartKey, EndKey []byte
	Added            []kv.ReplicaDescriptor
}

func (c changeReplicasCommand) encode() []byte {
	b := binary.AppendUvarint(nil, c.BaseGeneration)
	b = binary.AppendUvarint(b, uint64(len(c.StartKey)))
	b = append(b, c.StartKey...)
	b = binary.AppendUvarint(b, uint64(len(c.EndKey)))
	b = append(b, c.EndKey...)
	b = binary.AppendUvarint(b, uint64(len(c.Added)))
	for _, rd := range c.Added {
		b = binary.AppendUvarint(b, rd.NodeID)
		b = binary.AppendUvarint(b, rd.ReplicaID)
		b = append(b, byte(rd.Type))
	}
	return b
}

func decodeChangeReplicasCommand(b []byte) (changeReplicasCommand, error) {
	var c changeReplicasCommand
	bad := func(what string) (changeReplicasCommand, error) {
		return changeReplicasCommand{}, fmt.Errorf("raftgroup: change-replicas command: bad %s", what)
	}
	uv := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	bytesField := func() ([]byte, bool) {
		l, ok := uv()
		if !ok || l > uint64(len(b)) {
			return nil, false
		}
		v := append([]byte(nil), b[:l]...)
		b = b[l:]
		return v, true
	}
	var ok bool
	if c.BaseGeneration, ok = uv(); !ok {
		return bad("generation")
	}
	if c.StartKey, ok = bytesField(); !ok {
		return bad("start key")
	}
	if c.EndKey, ok = bytesField(); !ok {
		return bad("end key")
	}
	n, ok := uv()
	if !ok || n > uint64(len(b)) {
		return bad("replica count")
	}
	for i := uint64(0); i < n; i++ {
		var rd kv.ReplicaDescriptor
		if rd.NodeID, ok = uv(); !ok {
			return bad("node id")
		}
		if rd.ReplicaID, ok = uv(); !ok {
			return bad("replica id")
		}
		if len(b) == 0 {
			return bad("replica type")
		}
		rd.Type, b = kv.ReplicaType(b[0]), b[1:]
		c.Added = append(c.Added, rd)
	}
	if len(b) != 0 {
		return bad("trailing bytes")
	}
	return c, nil
}

// decodeChangeReplicasPayload reads the payload of either change-replicas
// kind. An old (kindChangeReplicas) payload is the descriptor the proposer
// expected: its generation minus one is the base, its replicas name the
// nodes of the added replica IDs.
func decodeChangeReplicasPayload(kind commandKind, payload []byte) (changeReplicasCommand, error) {
	switch kind {
	case kindChangeReplicasV2:
		return decodeChangeReplicasCommand(payload)
	case kindChangeReplicas:
		d, err := kv.UnmarshalRangeDescriptor(payload)
		if err != nil {
			return changeReplicasCommand{}, err
		}
		return changeReplicasCommand{BaseGeneration: d.Generation - 1, StartKey: d.StartKey, EndKey: d.EndKey, Added: d.Replicas}, nil
	}
	return changeReplicasCommand{}, fmt.Errorf("raftgroup: %s command in a conf change entry", kind)
}

func encodeChangeReplicas(proposalID uint64, cmd changeReplicasCommand) []byte {
	return encodeEnvelope(kindChangeReplicasV2, proposalID, cmd.encode())
}
