// Package kv is the storage layer of a QuorumDB node: one pebble database per
// process holding every replica's user data and Raft state, the key layout that
// keeps each range's data contiguous, the MVCC engine (locks, data versions and
// write records in Percolator style) and the range commands that the Raft layer
// applies deterministically on every replica.
//
// kv knows nothing about SQL, Raft or the network. It must not import any
// other QuorumDB package, read a clock, or use randomness or map order in
// anything that runs on apply.
//
// # Entry points
//
//   - Evaluate(rw, desc, req) runs one Request (api.go) on an indexed batch.
//     EvaluateReadOnly runs Get, Scan and ValidateReads on any Reader (a
//     snapshot); IsReadOnly tells the Raft layer which requests those are.
//   - Request/Response Marshal and UnmarshalRequest/UnmarshalResponse are the
//     wire and Raft-log encoding; MarshalError/UnmarshalError carry the typed
//     errors of errors.go across the network.
//   - ChecksumRange hashes a range's MVCC spans so replicas can be compared.
//
// # Invariants
//
//   - Determinism: the same command on the same state produces the same writes
//     and the same result on every replica.
//   - All or nothing: a command checks every key before it writes. A request
//     error (IsRequestError: LockedError, WriteConflictError, TxnAbortedError,
//     TxnCommittedError, SerializationError, KeyOutOfRangeError,
//     InvalidRequestError) leaves the batch unchanged; any other error from
//     Evaluate is a storage failure.
//   - A write record at commit_ts is what makes a version visible; a data
//     version without one is invisible. A transaction's commit_ts is always
//     after its start_ts.
//   - A rollback marker (or the overlapped-rollback flag of a commit record at
//     the same timestamp) at a transaction's start_ts forbids that transaction
//     to prewrite or commit the key afterwards.
//
// # Key spaces (first byte of the pebble key)
//
//	0x01 'r' <rangeID BE8> <suffix>          range-local state (raft log, hard state, applied index, descriptor)
//	0x10 <escaped user key>                  lock family: user key -> lock
//	0x11 <escaped user key> <^start_ts BE8>  data family: the value written at prewrite
//	0x12 <escaped user key> <^commit_ts BE8> write family: write record {start_ts, kind}
//
// User keys (what ranges partition and MVCC versions) are arbitrary bytes:
// system keys start with 's', table keys with 't' followed by the table ID and
// index ID as fixed-width big-endian integers. The escaping keeps user-key
// order and makes the versions of one key contiguous, newest first.
//
// # Value encodings (mvcc_values.go)
//
//	lock:  <kind> <start_ts uvarint> <ttl_ms uvarint> <min_commit_ts uvarint> <primary key bytes>
//	data:  the user value, no header
//	write: <kind | 0x80 when overlapped rollback> <start_ts uvarint>
//
// Kinds: put 1, delete 2, lock 3 (the MutationOp values), rollback 4 (write
// records only). A lock's min_commit_ts is start_ts+1.
//
// # Reads
//
// A read at read_ts fails with LockedError on a lock (of any kind) whose
// start_ts <= read_ts; otherwise it takes the newest write record at or below
// read_ts that is a put or a delete, skipping lock records and rollback
// markers. Scans visit the keys of the span that have a lock or a write
// record, in order (or reverse); when Limit stops one and such a key remains,
// ResumeKey is the successor of the last row (forward) or the last row itself
// (reverse, the new exclusive end).
//
// # Rollback markers
//
// Rolling back transaction T on key k writes k@start_ts(T) = {T, rollback}. A
// 1PC leader chooses commit_ts = max(tso, max_read_ts+1), so another
// transaction U can commit k at exactly start_ts(T). Both records want the same
// pebble key; the commit record wins and carries the 0x80 flag meaning "T is
// also rolled back here", whichever arrives first (TiKV's overlapped rollback).
// A commit record at ts == start_ts(T) is not a write conflict for T: it is
// inside T's snapshot.
//
// # Garbage collection
//
// GC(span, safepoint) keeps every record above the safepoint. At or below it,
// per key, it keeps the newest put (and its data) and removes everything
// older; if the newest put-or-delete is a delete, that goes too; lock records
// and rollback markers at or below the safepoint go. Locks are never touched:
// resolve them first. The safepoint must be below every live transaction's
// start_ts, or a removed marker could let a late prewrite through.
package kv
