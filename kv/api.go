package kv

// This file is the contract between kv and the layers above it: the requests
// a range serves, their responses, and the typed errors they return. The Raft
// layer routes a Request to a range's leader, proposes writes through the log
// and evaluates them on apply with Evaluate; reads are evaluated on the leader
// after a ReadIndex. The transaction layer builds Requests and switches on the
// typed errors.

// Timestamp is a hybrid timestamp from the timestamp oracle:
// physical milliseconds << 18 | logical counter. 0 means "none".
type Timestamp = uint64

// TimestampLogicalBits is the width of the logical part of a Timestamp.
const TimestampLogicalBits = 18

// PhysicalMillis returns the physical part of ts in Unix milliseconds.
func PhysicalMillis(ts Timestamp) uint64 { return ts >> TimestampLogicalBits }

// MakeTimestamp composes a timestamp from its parts.
func MakeTimestamp(physicalMillis, logical uint64) Timestamp {
	return physicalMillis<<TimestampLogicalBits | logical
}

// Span is [Key, EndKey) of user keys; an empty EndKey means the single Key.
type Span struct {
	Key    []byte
	EndKey []byte
}

// KeyValue is one visible row of a read.
type KeyValue struct {
	Key   []byte
	Value []byte
}

// MutationOp is what a transaction does to a key.
type MutationOp uint8

const (
	// OpPut writes Value.
	OpPut MutationOp = iota + 1
	// OpDelete deletes the key.
	OpDelete
	// OpLock writes nothing but takes part in conflict detection (SELECT … FOR
	// UPDATE, and a key read by a transaction that must not change under it).
	OpLock
)

// Mutation is one buffered write of a transaction.
type Mutation struct {
	Op    MutationOp
	Key   []byte
	Value []byte
}

// TxnStatus is the state of a transaction as its primary key records it.
type TxnStatus uint8

const (
	// TxnPending: the primary is locked and the lock has not expired.
	TxnPending TxnStatus = iota + 1
	// TxnCommitted: the primary has a write record; CommitTS says when.
	TxnCommitted
	// TxnRolledBack: the primary has a rollback marker (or nothing at all and a
	// marker was just written).
	TxnRolledBack
)

// Request is one operation on one range. Exactly one field is set.
type Request struct {
	Get            *GetRequest
	Scan           *ScanRequest
	ValidateReads  *ValidateReadsRequest
	Prewrite       *PrewriteRequest
	Commit         *CommitRequest
	Rollback       *RollbackRequest
	CheckTxnStatus *CheckTxnStatusRequest
	ResolveLock    *ResolveLockRequest
	TxnHeartbeat   *TxnHeartbeatRequest
	OnePhaseCommit *OnePhaseCommitRequest
	GC             *GCRequest
}

// Response answers a Request; the field matching the request is set.
type Response struct {
	Get            *GetResponse
	Scan           *ScanResponse
	ValidateReads  *ValidateReadsResponse
	Prewrite       *PrewriteResponse
	Commit         *CommitResponse
	Rollback       *RollbackResponse
	CheckTxnStatus *CheckTxnStatusResponse
	ResolveLock    *ResolveLockResponse
	TxnHeartbeat   *TxnHeartbeatResponse
	OnePhaseCommit *OnePhaseCommitResponse
	GC             *GCResponse
}

// GetRequest reads Key at ReadTS. A lock of another transaction with
// start_ts <= ReadTS is reported as *LockedError instead of being skipped.
type GetRequest struct {
	Key    []byte
	ReadTS Timestamp
}

// GetResponse: Found is false when no visible version exists (or the newest
// visible one is a delete).
type GetResponse struct {
	Value []byte
	Found bool
}

// ScanRequest reads the visible rows of [Start, End) at ReadTS, at most Limit
// (0: no limit), in descending key order when Reverse. Locks are reported as
// for Get (the first one met, in scan order).
type ScanRequest struct {
	Start, End []byte
	ReadTS     Timestamp
	Limit      int
	Reverse    bool
}

// ScanResponse: ResumeKey is set when Limit stopped the scan: the next scan
// continues from it ([ResumeKey, End) forward, [Start, ResumeKey) reverse).
// It is left nil when no key with MVCC state (lock or write record) remains in
// the span, so a scan that exactly fills Limit usually needs no extra round.
type ScanResponse struct {
	Rows      []KeyValue
	ResumeKey []byte
}

// ValidateReadsRequest asks whether anything another transaction did could
// have changed what a transaction read: a write record (not a rollback marker)
// with commit_ts in (From, To] in any span, or a lock of another transaction
// (start_ts != TxnStartTS) with start_ts <= To in any span. Write records and
// locks of the transaction TxnStartTS itself are not conflicts. A lock with
// start_ts > To is not one either: its commit_ts will be after its start_ts,
// hence after To, so that writer serializes after the validating transaction
// (To is that transaction's commit_ts).
type ValidateReadsRequest struct {
	Spans      []Span
	TxnStartTS Timestamp
	From, To   Timestamp
}

// ValidateReadsResponse: Conflict is set with the first offending key.
type ValidateReadsResponse struct {
	Conflict    bool
	ConflictKey []byte
}

// PrewriteRequest locks every key of Mutations for the transaction StartTS,
// all locks pointing at Primary, and writes the data versions. It fails with
// *WriteConflictError if any key has a write record with commit_ts > StartTS,
// *LockedError if another transaction holds a lock, *TxnAbortedError if the
// transaction already has a rollback marker on a key. It is idempotent for
// the same transaction. On any error nothing is written. A key may appear only
// once in Mutations (*InvalidRequestError otherwise).
type PrewriteRequest struct {
	Mutations []Mutation
	Primary   []byte
	StartTS   Timestamp
	// LockTTL is how long (ms, from StartTS's physical time) a lock counts as
	// live when its coordinator stops heartbeating.
	LockTTL uint64
}

// PrewriteResponse is empty on success.
type PrewriteResponse struct{}

// CommitRequest turns the transaction's locks on Keys into write records at
// CommitTS. Idempotent: a key already committed by this transaction is fine.
// A key with neither lock nor write record of this transaction, or with a
// rollback marker, fails with *TxnAbortedError.
type CommitRequest struct {
	Keys     [][]byte
	StartTS  Timestamp
	CommitTS Timestamp
}

// CommitResponse is empty on success.
type CommitResponse struct{}

// RollbackRequest removes the transaction's locks and data on Keys and leaves
// a rollback marker on each, so a late prewrite fails. Rolling back a
// committed key fails with *TxnCommittedError.
type RollbackRequest struct {
	Keys    [][]byte
	StartTS Timestamp
}

// RollbackResponse is empty on success.
type RollbackResponse struct{}

// CheckTxnStatusRequest reads the status of the transaction StartTS from its
// primary key. If the primary's lock has expired at CurrentTS (physical time
// of StartTS + LockTTL < physical time of CurrentTS) and RollbackIfExpired,
// the primary is rolled back (marker written) and reported rolled back. If the
// primary has neither lock nor record, a rollback marker is written so the
// transaction can never commit later, and it is reported rolled back.
type CheckTxnStatusRequest struct {
	PrimaryKey        []byte
	StartTS           Timestamp
	CurrentTS         Timestamp
	RollbackIfExpired bool
}

// CheckTxnStatusResponse reports the decision (or TxnPending with the lock's TTL).
type CheckTxnStatusResponse struct {
	Status   TxnStatus
	CommitTS Timestamp
	LockTTL  uint64
}

// ResolveLockRequest finishes the transaction StartTS on Keys: commits them at
// CommitTS, or rolls them back when CommitTS is 0. Keys without a lock of
// that transaction are skipped.
type ResolveLockRequest struct {
	Keys     [][]byte
	StartTS  Timestamp
	CommitTS Timestamp
}

// ResolveLockResponse is empty on success.
type ResolveLockResponse struct{}

// TxnHeartbeatRequest extends the TTL of the primary lock of a live
// transaction to NewTTL (never shortens it).
type TxnHeartbeatRequest struct {
	PrimaryKey []byte
	StartTS    Timestamp
	NewTTL     uint64
}

// TxnHeartbeatResponse returns the TTL now in force.
type TxnHeartbeatResponse struct {
	LockTTL uint64
}

// OnePhaseCommitRequest commits a transaction whose writes and reads all lie
// in one range, in one command: it fails like Prewrite on conflicts, validates
// ReadSpans like ValidateReads over (StartTS, CommitTS] (failing with
// *SerializationError; locks of other transactions with start_ts > CommitTS
// are ignored), then writes data and write records at CommitTS
// directly, without locks. CommitTS is fixed by the leader before proposing.
// Applying the same command again (a retried proposal) succeeds and writes
// nothing more: keys already committed by StartTS are skipped and the
// transaction's own records do not fail validation.
type OnePhaseCommitRequest struct {
	Mutations []Mutation
	ReadSpans []Span
	StartTS   Timestamp
	CommitTS  Timestamp
}

// OnePhaseCommitResponse carries the commit timestamp.
type OnePhaseCommitResponse struct {
	CommitTS Timestamp
}

// GCRequest removes, in [Start, End), every version older than the newest one
// at or below SafePoint (and that one too if it is a delete), and rollback
// markers and lock records (OpLock commits) at or below SafePoint. Locks are
// left alone (resolve them first).
type GCRequest struct {
	Start, End []byte
	SafePoint  Timestamp
}

// GCResponse counts what was removed.
type GCResponse struct {
	VersionsRemoved int
}
