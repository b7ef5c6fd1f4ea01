package raftgroup

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumdb/quorumdb/kv"
)

// Metrics is a snapshot of the store's counters (exported later through
// /metrics by the node).
type Metrics struct {
	Proposals        uint64 // commands handed to raft by Execute and the admin calls
	Commits          uint64 // entries applied (committed entries of every range)
	Applies          uint64 // proposals of this node answered after apply
	Reads            uint64 // linearizable reads served
	ClosedReads      uint64 // reads served at a closed timestamp, without a ReadIndex (follower reads)
	Closes           uint64 // close-timestamp entries proposed
	Fsyncs           uint64 // synced raft log batches (one per worker round)
	FsyncLatency     Histogram
	Leaders          int64 // ranges this node leads
	Replicas         int   // replicas hosted
	Quiesced         int   // replicas not ticking
	SnapshotsSent    uint64
	SnapshotsApplied uint64
	DroppedMessages  uint64 // incoming messages dropped on a full inbox
}

// Histogram counts durations in power-of-two microsecond buckets: bucket i
// holds durations in [2^(i-1), 2^i) µs (bucket 0: below 1 µs).
type Histogram struct {
	Buckets [32]uint64
	Count   uint64
	Sum     time.Duration
}

// Quantile returns an upper bound of the q-quantile (0 < q <= 1).
func (h Histogram) Quantile(q float64) time.Duration {
	if h.Count == 0 {
		return 0
	}
	target := uint64(q * float64(h.Count))
	if target == 0 {
		target = 1
	}
	var seen uint64
	for i, n := range h.Buckets {
		seen += n
		if seen >= target {
			return time.Duration(1<<i) * time.Microsecond
		}
	}
	return time.Duration(1<<31) * time.Microsecond
}

type storeMetrics struct {
	proposals, commits, applies, reads atomic.Uint64
	closedReads, closes                atomic.Uint64
	fsyncs                             atomic.Uint64
	leaderships                        atomic.Int64
	snapshotsSent, snapshotsApplied    atomic.Uint64
	droppedMessages                    atomic.Uint64

	mu    sync.Mutex
	fsync Histogram
}

func (m *storeMetrics) observeFsync(d time.Duration) {
	m.fsyncs.Add(1)
	us := d.Microseconds()
	i := 0
	for us > 0 && i < 31 {
		us >>= 1
		i++
	}
	m.mu.Lock()
	m.fsync.Buckets[i]++
	m.fsync.Count++
	m.fsync.Sum += d
	m.mu.Unlock()
}

// Metrics returns the store's counters.
func (s *Store) Metrics() Metrics {
	m := Metrics{
		Proposals:        s.metrics.proposals.Load(),
		Commits:          s.metrics.commits.Load(),
		Applies:          s.metrics.applies.Load(),
		Reads:            s.metrics.reads.Load(),
		ClosedReads:      s.metrics.closedReads.Load(),
		Closes:           s.metrics.closes.Load(),
		Fsyncs:           s.metrics.fsyncs.Load(),
		Leaders:          s.metrics.leaderships.Load(),
		SnapshotsSent:    s.metrics.snapshotsSent.Load(),
		SnapshotsApplied: s.metrics.snapshotsApplied.Load(),
		DroppedMessages:  s.metrics.droppedMessages.Load(),
	}
	s.metrics.mu.Lock()
	m.FsyncLatency = s.metrics.fsync
	s.metrics.mu.Unlock()
	for _, r := range s.replicaList(nil) {
		m.Replicas++
		r.mu.Lock()
		if r.quiesced {
			m.Quiesced++
		}
		r.mu.Unlock()
	}
	return m
}

// RangeInfo describes one replica for admin pages.
type RangeInfo struct {
	RangeID      uint64
	ReplicaID    uint64
	Descriptor   *kv.RangeDescriptor // nil: not initialized yet
	LeaderNodeID uint64              // 0: unknown
	IsLeader     bool
	Term         uint64
	Applied      uint64
	Quiesced     bool
	ClosedTS     kv.Timestamp // reads at or below it are served by this replica
}

// RangeInfo lists every replica on this store.
func (s *Store) RangeInfo() []RangeInfo {
	var out []RangeInfo
	for _, r := range s.replicaList(nil) {
		r.mu.Lock()
		info := RangeInfo{
			RangeID:   r.rangeID,
			ReplicaID: r.replicaID,
			IsLeader:  r.isLeader,
			Term:      r.term,
			Applied:   r.applied,
			Quiesced:  r.quiesced,
			ClosedTS:  r.closedTS,
		}
		if r.desc != nil {
			info.Descriptor = r.desc.Clone()
		}
		if r.leaderID != 0 {
			info.LeaderNodeID = r.nodeOfReplicaLocked(r.leaderID)
		}
		r.mu.Unlock()
		out = append(out, info)
	}
	sortRangeInfo(out)
	return out
}

func sortRangeInfo(rs []RangeInfo) {
	slices.SortFunc(rs, func(a, b RangeInfo) int { return cmp.Compare(a.RangeID, b.RangeID) })
}
