package kv

import (
	"encoding/binary"
	"fmt"
)

// Pebble key prefixes. Everything a range owns can be found by span: its
// range-local state under rangeLocalPrefix+rangeID, its MVCC data in the three
// family spans bounded by the escaped start and end keys.
const (
	localPrefix  byte = 0x01
	rangeLocalID byte = 'r'

	lockFamily  byte = 0x10
	dataFamily  byte = 0x11
	writeFamily byte = 0x12
)

// Suffixes of range-local keys (after \x01 'r' <rangeID BE8>).
const (
	suffixHardState      byte = 'h' // raftpb.HardState, per replica
	suffixAppliedState   byte = 'a' // applied index and term
	suffixTruncatedState byte = 't' // first index/term still in the log
	suffixReplicaID      byte = 'i' // this node's replica ID in the group
	suffixTombstone      byte = 'x' // replica removed: smallest replica ID still allowed
	suffixDescriptor     byte = 'd' // the range descriptor (replicated)
	suffixLog            byte = 'l' // log entries <index BE8>
	suffixClosedTS       byte = 'c' // highest closed timestamp applied (BE8)
)

// User-key prefixes.
const (
	// SystemPrefix starts every system key (catalog, users, sequences).
	SystemPrefix byte = 's'
	// TablePrefix starts every table key.
	TablePrefix byte = 't'
)

// RangeLocalPrefix returns the prefix of all range-local keys of rangeID.
func RangeLocalPrefix(rangeID uint64) []byte {
	k := make([]byte, 0, 10)
	k = append(k, localPrefix, rangeLocalID)
	return binary.BigEndian.AppendUint64(k, rangeID)
}

// RangeLocalSpan returns [start, end) covering every range-local key of rangeID.
func RangeLocalSpan(rangeID uint64) (start, end []byte) {
	return RangeLocalPrefix(rangeID), RangeLocalPrefix(rangeID + 1)
}

func rangeLocalKey(rangeID uint64, suffix byte) []byte {
	return append(RangeLocalPrefix(rangeID), suffix)
}

// RaftHardStateKey holds the replica's raftpb.HardState.
func RaftHardStateKey(rangeID uint64) []byte { return rangeLocalKey(rangeID, suffixHardState) }

// RaftAppliedStateKey holds the applied index (written in the apply batch).
func RaftAppliedStateKey(rangeID uint64) []byte { return rangeLocalKey(rangeID, suffixAppliedState) }

// RangeClosedTimestampKey holds the highest closed timestamp the replica
// applied: a promise, made through the range's log, that no write at or
// below it applies after the entry that carried it (written in the apply
// batch).
func RangeClosedTimestampKey(rangeID uint64) []byte { return rangeLocalKey(rangeID, suffixClosedTS) }

// RaftTruncatedStateKey holds the index and term of the last truncated entry.
func RaftTruncatedStateKey(rangeID uint64) []byte {
	return rangeLocalKey(rangeID, suffixTruncatedState)
}

// RaftReplicaIDKey holds this node's replica ID in the range.
func RaftReplicaIDKey(rangeID uint64) []byte { return rangeLocalKey(rangeID, suffixReplicaID) }

// RangeTombstoneKey marks a removed replica; it holds the next replica ID
// this node may accept for the range.
func RangeTombstoneKey(rangeID uint64) []byte { return rangeLocalKey(rangeID, suffixTombstone) }

// RangeDescriptorKey holds the range's authoritative descriptor.
func RangeDescriptorKey(rangeID uint64) []byte { return rangeLocalKey(rangeID, suffixDescriptor) }

// RaftLogPrefix is the prefix of the range's log entries.
func RaftLogPrefix(rangeID uint64) []byte { return rangeLocalKey(rangeID, suffixLog) }

// RaftLogKey is the key of the log entry at index.
func RaftLogKey(rangeID, index uint64) []byte {
	return binary.BigEndian.AppendUint64(RaftLogPrefix(rangeID), index)
}

// DecodeRaftLogIndex returns the index encoded at the end of a RaftLogKey.
func DecodeRaftLogIndex(key []byte) (uint64, error) {
	if len(key) < 8 {
		return 0, fmt.Errorf("kv: raft log key %x too short", key)
	}
	return binary.BigEndian.Uint64(key[len(key)-8:]), nil
}

// TableKeyPrefix returns 't' <tableID BE4> <indexID BE4>: every key of one
// index of one table starts with it, so an index is one contiguous span.
func TableKeyPrefix(tableID, indexID uint32) []byte {
	k := make([]byte, 0, 9)
	k = append(k, TablePrefix)
	k = binary.BigEndian.AppendUint32(k, tableID)
	return binary.BigEndian.AppendUint32(k, indexID)
}

// TableSpan returns the span of every index of tableID.
func TableSpan(tableID uint32) (start, end []byte) {
	s := append([]byte{TablePrefix}, binary.BigEndian.AppendUint32(nil, tableID)...)
	e := append([]byte{TablePrefix}, binary.BigEndian.AppendUint32(nil, tableID+1)...)
	return s, e
}

// SystemKey returns 's' followed by the given parts, each written as is. Use
// fixed-width or self-delimiting parts so distinct keys never share prefixes
// by accident.
func SystemKey(parts ...[]byte) []byte {
	k := []byte{SystemPrefix}
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}

// PrefixEnd returns the smallest key greater than every key with prefix p
// (nil when p is all 0xff).
func PrefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
