package txn

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/quorumdb/quorumdb/kv"
)

// GCStats reports one GC pass.
type GCStats struct {
	Ranges          int
	LocksResolved   int
	VersionsRemoved int
}

// gcScanBatch is the page size of the lock-finding scan of a GC pass.
const gcScanBatch = 1024

// RunGC removes, range by range, the versions no snapshot at or above
// safepoint can see. Before GC of a range it resolves every lock left there
// by transactions that started at or below the safepoint (they are expired
// or decided: a live transaction keeps the safepoint below its start), found
// by scanning the range at the safepoint. A lock that is still pending stops
// the pass with an error rather than being skipped: GC must not remove
// versions a pending transaction's commit depends on.
func (db *DB) RunGC(ctx context.Context, safepoint kv.Timestamp) (GCStats, error) {
	var st GCStats
	if safepoint == 0 {
		return st, &InvalidArgumentError{Reason: "GC safepoint 0"}
	}
	cur := kv.KeyMin
	stale := 0
	for bytes.Compare(cur, kv.KeyMax) < 0 {
		desc, err := db.sender.RangeForKey(ctx, cur)
		if err != nil {
			return st, fmt.Errorf("txn: gc: %w", err)
		}
		resolved, err := db.resolveOldLocks(ctx, desc.StartKey, desc.EndKey, safepoint)
		st.LocksResolved += resolved
		if err != nil {
			return st, err
		}
		resp, err := db.sender.SendToRange(ctx, desc, &kv.Request{GC: &kv.GCRequest{
			Start: desc.StartKey, End: desc.EndKey, SafePoint: safepoint,
		}})
		if err != nil {
			if isStaleRouting(err) && stale < maxRegroups {
				stale++
				continue // look the range up again
			}
			return st, fmt.Errorf("txn: gc of r%d: %w", desc.RangeID, err)
		}
		if resp.GC != nil {
			st.VersionsRemoved += resp.GC.VersionsRemoved
		}
		st.Ranges++
		cur = desc.EndKey
	}
	return st, nil
}

// RunGCOnce reads the safepoint from src and runs a GC pass with it.
func (db *DB) RunGCOnce(ctx context.Context, src SafepointSource) (GCStats, error) {
	sp, err := src.GCSafePoint(ctx)
	if err != nil {
		return GCStats{}, fmt.Errorf("txn: read GC safepoint: %w", err)
	}
	if sp == 0 {
		return GCStats{}, nil
	}
	return db.RunGC(ctx, sp)
}

// RunGCLoop runs a GC pass with src's safepoint every interval until ctx
// ends. A failed pass is logged and tried again at the next tick.
func (db *DB) RunGCLoop(ctx context.Context, src SafepointSource, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := db.RunGCOnce(ctx, src)
		if err != nil {
			db.logger.Warn("GC pass failed", "err", err)
			continue
		}
		db.logger.Debug("GC pass", "ranges", st.Ranges, "locks_resolved", st.LocksResolved, "versions_removed", st.VersionsRemoved)
	}
}

// resolveOldLocks scans [start, end) at safepoint and resolves every lock
// the scan meets (only locks with start_ts <= safepoint are reported).
func (db *DB) resolveOldLocks(ctx context.Context, start, end []byte, safepoint kv.Timestamp) (int, error) {
	resolved := 0
	stale := 0
	cur := start
	for bytes.Compare(cur, end) < 0 {
		desc, err := db.sender.RangeForKey(ctx, cur)
		if err != nil {
			return resolved, err
		}
		subEnd := end
		if bytes.Compare(desc.EndKey, subEnd) < 0 {
			subEnd = desc.EndKey
		}
		resp, err := db.sender.SendToRange(ctx, desc, &kv.Request{Scan: &kv.ScanRequest{
			Start: cur, End: subEnd, ReadTS: safepoint, Limit: gcScanBatch,
		}})
		if err != nil {
			if isStaleRouting(err) && stale < maxRegroups {
				stale++
				continue
			}
			lock, ok := asLocked(err)
			if !ok {
				return resolved, fmt.Errorf("txn: gc lock scan of r%d: %w", desc.RangeID, err)
			}
			decision, _, err := db.resolveLock(ctx, lock)
			if err != nil {
				return resolved, err
			}
			if decision != lockResolved {
				return resolved, fmt.Errorf("txn: gc: txn %d below the safepoint %d still holds a live lock on %q", lock.StartTS, safepoint, lock.Key)
			}
			resolved++
			continue
		}
		if resp.Scan != nil && resp.Scan.ResumeKey != nil {
			cur = resp.Scan.ResumeKey
			continue
		}
		cur = subEnd
	}
	return resolved, nil
}
