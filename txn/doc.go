// Package txn is the client side of QuorumDB's store: routing requests to
// ranges, and serializable distributed transactions over them.
//
// # What it owns
//
//   - Routing (router.go, range_cache.go, dist.go): a cache of range
//     descriptors ordered by key, filled from the range directory (cluster's
//     etcd directory, through RangeDirectory) and corrected by the typed
//     errors replicas return (NotLeader → the hinted node, EpochMismatch →
//     the attached descriptors, KeyOutOfRange → evict, RangeNotFound or an
//     unreachable node → the other replicas); requests cut per range and sent
//     in parallel; a bounded total wait ending in *RangeUnavailableError.
//     Router.FollowDirectory keeps the cache warm from the directory's watch.
//     LocalStoreSender does the same for one in-process store.
//   - The transaction coordinator (db.go, txn.go, read.go, iterator.go,
//     commit.go, lock_resolver.go, heartbeat.go): lazy start timestamp,
//     reads at it merged with the write buffer, recorded read spans, one-phase
//     commit for single-range transactions, two-phase commit with read
//     validation otherwise, lock resolution, heartbeats, bounded retries.
//   - GC passes (gc.go): resolve old locks, then kv.GCRequest per range
//     (RunGC, RunGCOnce with cluster's safepoint, RunGCLoop); AS OF reads
//     below the safepoint are refused (*SnapshotTooOldError).
//   - Follower reads: AS OF transactions read through the nearest replica
//     (Router.SendToNearest: this node's own, which serves reads at closed
//     timestamps; the leader otherwise or after a lock); AS OF above the
//     oracle is refused; DB.FollowerReadTimestamp.
//
// It must not know how a range replicates (that is raftgroup/) or evaluate
// MVCC itself (that is kv/): everything goes through kv.Request.
//
// # The protocol (see the team's TXN.md)
//
// A transaction takes start_ts from the timestamp oracle on its first read
// (or at commit when it never read): a transaction that does nothing costs
// nothing. Reads see the newest version at start_ts; a lock of another
// transaction met by a read is resolved through its primary (committed →
// rolled forward, rolled back or expired → removed, pending → wait up to
// LockWaitTimeout). Every point read and scanned span is recorded (a scan
// stopped by its limit records only what it covered).
//
// Commit: a transaction without writes is done (its snapshot was
// consistent). If every write and read span lies in one range, one
// OnePhaseCommit request does conflict checks, validation and the write at a
// commit_ts the range leader raises above every read it has served.
// Otherwise: prewrite per range in parallel (locks pointing at the primary,
// the first key in key order), commit_ts from the oracle, ValidateReads over
// (start_ts, commit_ts] for every read span, commit of the primary (the
// commit point), secondaries committed in the background.
//
// # Invariants
//
//   - A transaction's writes are all locks before it takes commit_ts; its
//     commit_ts is taken after every prewrite succeeded; it commits only if
//     no write committed in (start_ts, commit_ts] and no foreign lock
//     remains in what it read. This is what makes commit_ts order a serial
//     order (TXN.md, "Serializability by read validation").
//   - Waits never cycle: readers hold nothing; a writer waits only for a
//     younger transaction's lock and aborts (retryably) on an older one's;
//     validation waits only briefly and only for younger transactions.
//   - Every wait on the network or on another transaction is bounded.
//   - Nothing is written before Commit; Rollback of an open transaction
//     sends nothing.
package txn
