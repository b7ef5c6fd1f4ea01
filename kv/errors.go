package kv

import (
	"errors"
	"fmt"
)

// Typed errors. Two groups:
//
//   - Request errors, returned by Evaluate with nothing written: the answer to
//     the request, the same on every replica (LockedError, WriteConflictError,
//     TxnAbortedError, TxnCommittedError, SerializationError,
//     KeyOutOfRangeError, InvalidRequestError).
//   - Routing errors, returned by the Raft layer when a request reached the
//     wrong place or could not be served (NotLeaderError, RangeNotFoundError,
//     EpochMismatchError, ProposalDroppedError, RangeUnavailableError).
//
// All of them cross the network with MarshalError/UnmarshalError, so the
// transaction layer can switch on them with errors.As on either side of an RPC.
// Any other error from Evaluate is a storage failure.

// LockedError: Key holds a lock of another transaction that the request may
// not pass. Resolve it through the primary's status (CheckTxnStatus) or wait.
type LockedError struct {
	Key     []byte
	Primary []byte
	StartTS Timestamp
	TTL     uint64 // ms from StartTS's physical time
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("kv: key %q is locked by txn %d (primary %q, ttl %dms)", e.Key, e.StartTS, e.Primary, e.TTL)
}

// WriteConflictError: the transaction StartTS tried to write Key, which has a
// write committed after StartTS by the transaction ConflictStartTS.
type WriteConflictError struct {
	Key              []byte
	StartTS          Timestamp
	ConflictStartTS  Timestamp
	ConflictCommitTS Timestamp
}

func (e *WriteConflictError) Error() string {
	return fmt.Sprintf("kv: write conflict on key %q: txn %d met txn %d committed at %d",
		e.Key, e.StartTS, e.ConflictStartTS, e.ConflictCommitTS)
}

// TxnAbortedError: the transaction StartTS was rolled back (or never
// prewrote) on Key, so it can no longer prewrite or commit there.
type TxnAbortedError struct {
	Key     []byte
	StartTS Timestamp
	Reason  string
}

func (e *TxnAbortedError) Error() string {
	return fmt.Sprintf("kv: txn %d aborted on key %q: %s", e.StartTS, e.Key, e.Reason)
}

// TxnCommittedError: the transaction StartTS already committed Key at
// CommitTS, so it cannot be rolled back.
type TxnCommittedError struct {
	Key      []byte
	StartTS  Timestamp
	CommitTS Timestamp
}

func (e *TxnCommittedError) Error() string {
	return fmt.Sprintf("kv: txn %d already committed key %q at %d", e.StartTS, e.Key, e.CommitTS)
}

// SerializationError: read validation of the transaction StartTS found a
// write or a lock of another transaction on Key inside what it read; the
// transaction must retry (MySQL 1213, SQLSTATE 40001).
type SerializationError struct {
	Key     []byte
	StartTS Timestamp
}

func (e *SerializationError) Error() string {
	return fmt.Sprintf("kv: serialization failure of txn %d: key %q was written or locked by another transaction inside its reads", e.StartTS, e.Key)
}

// KeyOutOfRangeError: Key is not inside range RangeID ([StartKey, EndKey)).
// The client's range cache is stale or it split a request wrongly.
type KeyOutOfRangeError struct {
	Key      []byte
	RangeID  uint64
	StartKey []byte
	EndKey   []byte
}

func (e *KeyOutOfRangeError) Error() string {
	return fmt.Sprintf("kv: key %q outside r%d [%q, %q)", e.Key, e.RangeID, e.StartKey, e.EndKey)
}

// InvalidRequestError: the request is malformed (no operation, commit
// timestamp not after the start timestamp, duplicate keys, an inverted span).
// It is deterministic like the other request errors, so a replica applying it
// rejects it identically instead of failing.
type InvalidRequestError struct {
	Reason string
}

func (e *InvalidRequestError) Error() string { return "kv: invalid request: " + e.Reason }

// NotLeaderError: this replica is not the leader of RangeID. LeaderNodeID is
// the node believed to hold the leadership (0: unknown).
type NotLeaderError struct {
	RangeID      uint64
	LeaderNodeID uint64
}

func (e *NotLeaderError) Error() string {
	if e.LeaderNodeID == 0 {
		return fmt.Sprintf("kv: r%d: not leader (leader unknown)", e.RangeID)
	}
	return fmt.Sprintf("kv: r%d: not leader (leader on n%d)", e.RangeID, e.LeaderNodeID)
}

// RangeNotFoundError: this node has no replica of RangeID.
type RangeNotFoundError struct {
	RangeID uint64
}

func (e *RangeNotFoundError) Error() string {
	return fmt.Sprintf("kv: r%d not found on this node", e.RangeID)
}

// EpochMismatchError: the request was addressed with a stale descriptor of
// RangeID; Descriptors are the current ones covering what the request
// addressed (after a split, the left and right ranges).
type EpochMismatchError struct {
	RangeID     uint64
	Descriptors []*RangeDescriptor
}

func (e *EpochMismatchError) Error() string {
	return fmt.Sprintf("kv: r%d: stale range descriptor (%d current descriptors attached)", e.RangeID, len(e.Descriptors))
}

// ProposalDroppedError: the Raft proposal was dropped (leadership change,
// removed replica) before it was committed; it did not apply and can be
// retried.
type ProposalDroppedError struct {
	RangeID uint64
}

func (e *ProposalDroppedError) Error() string {
	return fmt.Sprintf("kv: r%d: proposal dropped before commit", e.RangeID)
}

// RangeUnavailableError: RangeID could not serve the request within its
// bounded wait (no quorum, no leader); Reason says what was missing.
type RangeUnavailableError struct {
	RangeID uint64
	Reason  string
}

func (e *RangeUnavailableError) Error() string {
	return fmt.Sprintf("kv: r%d unavailable: %s", e.RangeID, e.Reason)
}

// RemoteError is what UnmarshalError returns for an error that is not one of
// the typed errors above: the remote side's message, nothing more.
type RemoteError struct {
	Message string
}

func (e *RemoteError) Error() string { return e.Message }

// IsRequestError reports whether err is (or wraps) one of the request errors
// that Evaluate returns with nothing written: a deterministic answer, not a
// storage failure.
func IsRequestError(err error) bool {
	var (
		locked   *LockedError
		conflict *WriteConflictError
		aborted  *TxnAbortedError
		commit   *TxnCommittedError
		serial   *SerializationError
		outside  *KeyOutOfRangeError
		invalid  *InvalidRequestError
	)
	return errors.As(err, &locked) || errors.As(err, &conflict) || errors.As(err, &aborted) ||
		errors.As(err, &commit) || errors.As(err, &serial) || errors.As(err, &outside) ||
		errors.As(err, &invalid)
}

// Wire tags of MarshalError. Never renumber: encoded errors cross versions.
const (
	errTagRemote byte = iota + 1
	errTagLocked
	errTagWriteConflict
	errTagTxnAborted
	errTagTxnCommitted
	errTagSerialization
	errTagKeyOutOfRange
	errTagInvalidRequest
	errTagNotLeader
	errTagRangeNotFound
	errTagEpochMismatch
	errTagProposalDropped
	errTagRangeUnavailable
)

// MarshalError encodes err for the wire: the first typed error found in its
// chain keeps its type and fields; anything else becomes a RemoteError with
// err's message. nil encodes as nil.
func MarshalError(err error) []byte {
	if err == nil {
		return nil
	}
	var b []byte
	var (
		locked      *LockedError
		conflict    *WriteConflictError
		aborted     *TxnAbortedError
		committed   *TxnCommittedError
		serial      *SerializationError
		outside     *KeyOutOfRangeError
		invalid     *InvalidRequestError
		notLeader   *NotLeaderError
		notFound    *RangeNotFoundError
		mismatch    *EpochMismatchError
		dropped     *ProposalDroppedError
		unavailable *RangeUnavailableError
	)
	switch {
	case errors.As(err, &locked):
		b = append(b, errTagLocked)
		b = appendBytes(b, locked.Key)
		b = appendBytes(b, locked.Primary)
		b = appendUvarint(b, locked.StartTS)
		b = appendUvarint(b, locked.TTL)
	case errors.As(err, &conflict):
		b = append(b, errTagWriteConflict)
		b = appendBytes(b, conflict.Key)
		b = appendUvarint(b, conflict.StartTS)
		b = appendUvarint(b, conflict.ConflictStartTS)
		b = appendUvarint(b, conflict.ConflictCommitTS)
	case errors.As(err, &aborted):
		b = append(b, errTagTxnAborted)
		b = appendBytes(b, aborted.Key)
		b = appendUvarint(b, aborted.StartTS)
		b = appendString(b, aborted.Reason)
	case errors.As(err, &committed):
		b = append(b, errTagTxnCommitted)
		b = appendBytes(b, committed.Key)
		b = appendUvarint(b, committed.StartTS)
		b = appendUvarint(b, committed.CommitTS)
	case errors.As(err, &serial):
		b = append(b, errTagSerialization)
		b = appendBytes(b, serial.Key)
		b = appendUvarint(b, serial.StartTS)
	case errors.As(err, &outside):
		b = append(b, errTagKeyOutOfRange)
		b = appendBytes(b, outside.Key)
		b = appendUvarint(b, outside.RangeID)
		b = appendBytes(b, outside.StartKey)
		b = appendBytes(b, outside.EndKey)
	case errors.As(err, &invalid):
		b = append(b, errTagInvalidRequest)
		b = appendString(b, invalid.Reason)
	case errors.As(err, &notLeader):
		b = append(b, errTagNotLeader)
		b = appendUvarint(b, notLeader.RangeID)
		b = appendUvarint(b, notLeader.LeaderNodeID)
	case errors.As(err, &notFound):
		b = append(b, errTagRangeNotFound)
		b = appendUvarint(b, notFound.RangeID)
	case errors.As(err, &mismatch):
		b = append(b, errTagEpochMismatch)
		b = appendUvarint(b, mismatch.RangeID)
		b = appendUvarint(b, uint64(len(mismatch.Descriptors)))
		for _, d := range mismatch.Descriptors {
			b = appendBytes(b, d.Marshal())
		}
	case errors.As(err, &dropped):
		b = append(b, errTagProposalDropped)
		b = appendUvarint(b, dropped.RangeID)
	case errors.As(err, &unavailable):
		b = append(b, errTagRangeUnavailable)
		b = appendUvarint(b, unavailable.RangeID)
		b = appendString(b, unavailable.Reason)
	default:
		b = append(b, errTagRemote)
		b = appendString(b, err.Error())
	}
	return b
}

// UnmarshalError decodes what MarshalError produced; empty input is a nil
// error. Input it cannot decode becomes a RemoteError saying so, never a
// panic: an RPC answer is always an error when the caller expected one.
func UnmarshalError(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	d := decoder{b: append([]byte(nil), b[1:]...)}
	var out error
	switch tag := b[0]; tag {
	case errTagRemote:
		out = &RemoteError{Message: d.string()}
	case errTagLocked:
		out = &LockedError{Key: d.bytes(), Primary: d.bytes(), StartTS: d.uvarint(), TTL: d.uvarint()}
	case errTagWriteConflict:
		out = &WriteConflictError{Key: d.bytes(), StartTS: d.uvarint(), ConflictStartTS: d.uvarint(), ConflictCommitTS: d.uvarint()}
	case errTagTxnAborted:
		out = &TxnAbortedError{Key: d.bytes(), StartTS: d.uvarint(), Reason: d.string()}
	case errTagTxnCommitted:
		out = &TxnCommittedError{Key: d.bytes(), StartTS: d.uvarint(), CommitTS: d.uvarint()}
	case errTagSerialization:
		out = &SerializationError{Key: d.bytes(), StartTS: d.uvarint()}
	case errTagKeyOutOfRange:
		out = &KeyOutOfRangeError{Key: d.bytes(), RangeID: d.uvarint(), StartKey: d.bytes(), EndKey: d.bytes()}
	case errTagInvalidRequest:
		out = &InvalidRequestError{Reason: d.string()}
	case errTagNotLeader:
		out = &NotLeaderError{RangeID: d.uvarint(), LeaderNodeID: d.uvarint()}
	case errTagRangeNotFound:
		out = &RangeNotFoundError{RangeID: d.uvarint()}
	case errTagEpochMismatch:
		e := &EpochMismatchError{RangeID: d.uvarint()}
		n := d.count(1)
		for i := 0; i < n && d.err == nil; i++ {
			desc, err := UnmarshalRangeDescriptor(d.bytes())
			if err != nil {
				d.fail("descriptor %d: %w", i, err)
				break
			}
			e.Descriptors = append(e.Descriptors, desc)
		}
		out = e
	case errTagProposalDropped:
		out = &ProposalDroppedError{RangeID: d.uvarint()}
	case errTagRangeUnavailable:
		out = &RangeUnavailableError{RangeID: d.uvarint(), Reason: d.string()}
	default:
		return &RemoteError{Message: fmt.Sprintf("kv: undecodable remote error (tag %d, %d bytes)", tag, len(b))}
	}
	if err := d.finish(); err != nil {
		return &RemoteError{Message: fmt.Sprintf("kv: undecodable remote error (tag %d): %v", b[0], err)}
	}
	return out
}
