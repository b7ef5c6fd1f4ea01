package txn

import (
	"errors"
	"fmt"
	"time"

	"github.com/quorumdb/quorumdb/kv"
)

// SerializationError: the transaction could not commit without breaking
// serializability (a read changed under it, a write-write conflict, or it
// was rolled back by another transaction that found its locks expired or
// lost a conflict to an older one). Retrying with a fresh start timestamp is
// safe; the SQL layer maps it to MySQL 1213 / SQLSTATE 40001.
type SerializationError struct {
	StartTS kv.Timestamp
	// Key is the key where the conflict was detected (may be nil).
	Key []byte
	// Reason says what kind of conflict it was.
	Reason string
}

func (e *SerializationError) Error() string {
	if e.Key == nil {
		return fmt.Sprintf("txn %d: serialization failure, retry the transaction: %s", e.StartTS, e.Reason)
	}
	return fmt.Sprintf("txn %d: serialization failure on key %q, retry the transaction: %s", e.StartTS, e.Key, e.Reason)
}

// LockWaitTimeoutError: a read or write waited longer than the lock-wait
// timeout for another transaction's lock (MySQL 1205).
type LockWaitTimeoutError struct {
	Key         []byte
	LockStartTS kv.Timestamp
	Waited      time.Duration
}

func (e *LockWaitTimeoutError) Error() string {
	return fmt.Sprintf("txn: lock wait timeout after %v on key %q held by txn %d", e.Waited.Round(time.Millisecond), e.Key, e.LockStartTS)
}

// TxnTooLargeError: the transaction's buffered writes exceed the configured
// limit (DBConfig.MaxTxnBytes).
type TxnTooLargeError struct {
	Bytes int64
	Limit int64
}

func (e *TxnTooLargeError) Error() string {
	return fmt.Sprintf("txn: transaction too large: %d bytes of buffered writes exceed the limit of %d bytes; split the work into smaller transactions", e.Bytes, e.Limit)
}

// RangeUnavailableError: a range could not be reached within the router's
// bounded wait (no leader, no quorum, every replica unreachable).
type RangeUnavailableError struct {
	RangeID  uint64
	StartKey []byte
	EndKey   []byte
	Waited   time.Duration
	// LastErr is the last error seen while trying.
	LastErr error
}

func (e *RangeUnavailableError) Error() string {
	return fmt.Sprintf("txn: range r%d [%q, %q) unavailable after %v: %v", e.RangeID, e.StartKey, e.EndKey, e.Waited.Round(time.Millisecond), e.LastErr)
}

func (e *RangeUnavailableError) Unwrap() error { return e.LastErr }

// AmbiguousCommitError: the commit point (the primary's commit or the 1PC
// command) was sent but its outcome could not be learned; the transaction
// may or may not have committed. Not retryable blindly.
type AmbiguousCommitError struct {
	StartTS kv.Timestamp
	Err     error
}

func (e *AmbiguousCommitError) Error() string {
	return fmt.Sprintf("txn %d: commit outcome unknown: %v", e.StartTS, e.Err)
}

func (e *AmbiguousCommitError) Unwrap() error { return e.Err }

// TxnClosedError: an operation on a transaction that already committed or
// rolled back (or failed to commit).
type TxnClosedError struct {
	StartTS kv.Timestamp
	State   string
}

func (e *TxnClosedError) Error() string {
	return fmt.Sprintf("txn %d: transaction is %s", e.StartTS, e.State)
}

// ReadOnlyTxnError: a write in a read-only (or AS OF) transaction.
type ReadOnlyTxnError struct{}

func (e *ReadOnlyTxnError) Error() string { return "txn: cannot write in a read-only transaction" }

// SnapshotTooOldError: an AS OF read asked for a timestamp at or below the
// GC safepoint, whose versions may already be gone.
type SnapshotTooOldError struct {
	AsOf      kv.Timestamp
	SafePoint kv.Timestamp
}

func (e *SnapshotTooOldError) Error() string {
	return fmt.Sprintf("txn: snapshot at %d is too old: versions at or below the GC safepoint %d may be gone", e.AsOf, e.SafePoint)
}

// InvalidArgumentError: bad input from the caller (empty key, inverted span,
// unknown savepoint, a key in the reserved 0xff 0xff space).
type InvalidArgumentError struct {
	Reason string
}

func (e *InvalidArgumentError) Error() string { return "txn: invalid argument: " + e.Reason }

// IsRetryable reports whether err means "run the transaction again with a
// fresh start timestamp": a serialization failure, or a kv write conflict or
// abort that reached the caller without being translated.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	var (
		ser      *SerializationError
		kvSer    *kv.SerializationError
		conflict *kv.WriteConflictError
		aborted  *kv.TxnAbortedError
	)
	return errors.As(err, &ser) || errors.As(err, &kvSer) || errors.As(err, &conflict) || errors.As(err, &aborted)
}
