package raftgroup

import (
	"encoding/binary"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/quorumdb/quorumdb/kv"
)

// This file holds the encodings of the range-local raft state that raftgroup
// owns (the keys are kv's, the values are ours) and the synthetic initial
// state of a new range.

// Every new range starts with a log truncated at this index and term: an
// empty replica has nothing below it and can only catch up by snapshot, and a
// replica created by a split or bootstrap needs no log entries at all.
const (
	initialLogIndex uint64 = 10
	initialLogTerm  uint64 = 5
)

// appliedState is what the apply batch persists with every state change: the
// index and term of the last applied entry and the membership in force at
// that index (which can be a joint configuration, so it is kept as raft's own
// ConfState rather than derived from the descriptor's replica types).
type appliedState struct {
	Index     uint64
	Term      uint64
	ConfState *raftpb.ConfState
}

func encodeAppliedState(s appliedState) []byte {
	b := make([]byte, 16, 32)
	binary.BigEndian.PutUint64(b[0:8], s.Index)
	binary.BigEndian.PutUint64(b[8:16], s.Term)
	cs, err := proto.Marshal(raftpb.EnsureConfState(s.ConfState))
	if err != nil {
		panic(fmt.Sprintf("raftgroup: marshal conf state: %v", err)) // plain repeated ints: cannot fail
	}
	return append(b, cs...)
}

func decodeAppliedState(b []byte) (appliedState, error) {
	if len(b) < 16 {
		return appliedState{}, fmt.Errorf("raftgroup: applied state of %d bytes", len(b))
	}
	s := appliedState{
		Index:     binary.BigEndian.Uint64(b[0:8]),
		Term:      binary.BigEndian.Uint64(b[8:16]),
		ConfState: &raftpb.ConfState{},
	}
	if err := proto.Unmarshal(b[16:], s.ConfState); err != nil {
		return appliedState{}, fmt.Errorf("raftgroup: decode conf state: %w", err)
	}
	return s, nil
}

// truncatedState names the last entry removed from the log (the entry before
// the first one still present); its term is kept for raft's log matching.
type truncatedState struct {
	Index uint64
	Term  uint64
}

func encodeTruncatedState(s truncatedState) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b[0:8], s.Index)
	binary.BigEndian.PutUint64(b[8:16], s.Term)
	return b
}

func decodeTruncatedState(b []byte) (truncatedState, error) {
	if len(b) != 16 {
		return truncatedState{}, fmt.Errorf("raftgroup: truncated state of %d bytes", len(b))
	}
	return truncatedState{Index: binary.BigEndian.Uint64(b[0:8]), Term: binary.BigEndian.Uint64(b[8:16])}, nil
}

func encodeUint64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func decodeUint64(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("raftgroup: expected 8 bytes, got %d", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

func marshalHardState(hs *raftpb.HardState) []byte {
	b, err := proto.Marshal(hs)
	if err != nil {
		panic(fmt.Sprintf("raftgroup: marshal hard state: %v", err)) // three scalars: cannot fail
	}
	return b
}

// confStateFromDescriptor is the membership of a range that is not in a
// joint configuration.
func confStateFromDescriptor(desc *kv.RangeDescriptor) *raftpb.ConfState {
	cs := &raftpb.ConfState{}
	for _, r := range desc.Replicas {
		if r.Type == kv.Learner {
			cs.Learners = append(cs.Learners, r.ReplicaID)
		} else {
			cs.Voters = append(cs.Voters, r.ReplicaID)
		}
	}
	return cs
}

// persistedState is everything loaded from pebble to rebuild one replica.
type persistedState struct {
	ReplicaID  uint64
	HardState  *raftpb.HardState
	Applied    appliedState
	Truncated  truncatedState
	Descriptor *kv.RangeDescriptor // nil for an uninitialized replica
	Tombstone  uint64              // next replica ID allowed (0: none)
	ClosedTS   kv.Timestamp        // highest closed timestamp applied
}

// loadPersistedState reads a replica's range-local state.
func loadPersistedState(r kv.Reader, rangeID uint64) (persistedState, error) {
	var ps persistedState
	b, err := kv.GetRaw(r, kv.RaftReplicaIDKey(rangeID))
	if err != nil {
		return ps, err
	}
	if b != nil {
		if ps.ReplicaID, err = decodeUint64(b); err != nil {
			return ps, fmt.Errorf("r%d replica id: %w", rangeID, err)
		}
	}
	ps.HardState = &raftpb.HardState{}
	if b, err = kv.GetRaw(r, kv.RaftHardStateKey(rangeID)); err != nil {
		return ps, err
	} else if b != nil {
		if err := proto.Unmarshal(b, ps.HardState); err != nil {
			return ps, fmt.Errorf("r%d hard state: %w", rangeID, err)
		}
	}
	ps.Applied.ConfState = &raftpb.ConfState{}
	if b, err = kv.GetRaw(r, kv.RaftAppliedStateKey(rangeID)); err != nil {
		return ps, err
	} else if b != nil {
		if ps.Applied, err = decodeAppliedState(b); err != nil {
			return ps, fmt.Errorf("r%d: %w", rangeID, err)
		}
	}
	if b, err = kv.GetRaw(r, kv.RaftTruncatedStateKey(rangeID)); err != nil {
		return ps, err
	} else if b != nil {
		if ps.Truncated, err = decodeTruncatedState(b); err != nil {
			return ps, fmt.Errorf("r%d: %w", rangeID, err)
		}
	}
	if b, err = kv.GetRaw(r, kv.RangeDescriptorKey(rangeID)); err != nil {
		return ps, err
	} else if b != nil {
		if ps.Descriptor, err = kv.UnmarshalRangeDescriptor(b); err != nil {
			return ps, fmt.Errorf("r%d: %w", rangeID, err)
		}
	}
	if b, err = kv.GetRaw(r, kv.RangeTombstoneKey(rangeID)); err != nil {
		return ps, err
	} else if b != nil {
		if ps.Tombstone, err = decodeUint64(b); err != nil {
			return ps, fmt.Errorf("r%d tombstone: %w", rangeID, err)
		}
	}
	if b, err = kv.GetRaw(r, kv.RangeClosedTimestampKey(rangeID)); err != nil {
		return ps, err
	} else if b != nil {
		if ps.ClosedTS, err = decodeUint64(b); err != nil {
			return ps, fmt.Errorf("r%d closed timestamp: %w", rangeID, err)
		}
	}
	return ps, nil
}

// writeInitialState writes the synthetic state of a new, initialized
// replica: descriptor, applied and truncated state at initialLogIndex, and a
// hard state that never moves backwards from prev (an uninitialized replica
// may already have voted in a later term).
func writeInitialState(w kv.Writer, desc *kv.RangeDescriptor, replicaID uint64, prev *raftpb.HardState) error {
	id := desc.RangeID
	hs := &raftpb.HardState{Term: new(initialLogTerm), Commit: new(initialLogIndex)}
	if prev.GetTerm() > initialLogTerm {
		hs.Term = new(prev.GetTerm())
		hs.Vote = new(prev.GetVote())
	}
	if prev.GetCommit() > initialLogIndex {
		hs.Commit = new(prev.GetCommit())
	}
	sets := []struct{ k, v []byte }{
		{kv.RangeDescriptorKey(id), desc.Marshal()},
		{kv.RaftReplicaIDKey(id), encodeUint64(replicaID)},
		{kv.RaftHardStateKey(id), marshalHardState(hs)},
		{kv.RaftAppliedStateKey(id), encodeAppliedState(appliedState{Index: initialLogIndex, Term: initialLogTerm, ConfState: confStateFromDescriptor(desc)})},
		{kv.RaftTruncatedStateKey(id), encodeTruncatedState(truncatedState{Index: initialLogIndex, Term: initialLogTerm})},
	}
	for _, s := range sets {
		if err := w.Set(s.k, s.v, nil); err != nil {
			return fmt.Errorf("raftgroup: write initial state of r%d: %w", id, err)
		}
	}
	return nil
}
