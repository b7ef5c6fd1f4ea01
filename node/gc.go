package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/quorumdb/quorumdb/kv"
	"github.com/quorumdb/quorumdb/txn"
)

// GCConfig configures MVCC garbage collection.
type GCConfig struct {
	// Lifetime is how long old row versions are kept (default 10 min):
	// AS OF reads can go back this far, and the safepoint never passes an
	// open transaction's snapshot.
	Lifetime time.Duration
	// Interval between GC rounds (default 1 min).
	Interval time.Duration
	// Disabled turns garbage collection off on this node.
	Disabled bool
}

func (c *GCConfig) setDefaults() {
	if c.Lifetime <= 0 {
		c.Lifetime = 10 * time.Minute
	}
	if c.Interval <= 0 {
		c.Interval = time.Minute
	}
}

// gcElection elects the one node that advances the safepoint and collects.
const gcElection = "gc"

// gcState is what the node's GC loop reports.
type gcState struct {
	mu        sync.Mutex
	rounds    int
	safepoint kv.Timestamp
	total     txn.GCStats
	lastErr   error
}

// GCStatus is a snapshot of this node's garbage collection.
type GCStatus struct {
	// Rounds this node ran as the GC leader, and what they removed.
	Rounds    int
	SafePoint kv.Timestamp
	Total     txn.GCStats
	LastError error
}

// GCStatus reports this node's garbage collection so far.
func (n *Node) GCStatus() GCStatus {
	n.gc.mu.Lock()
	defer n.gc.mu.Unlock()
	return GCStatus{Rounds: n.gc.rounds, SafePoint: n.gc.safepoint, Total: n.gc.total, LastError: n.gc.lastErr}
}

// runGC runs on every node until ctx ends. Each node reports its GC floor
// (the oldest snapshot its open transactions read at) every interval; the
// node elected for GC sets the safepoint to min(now - lifetime, every live
// node's floor), never backwards, and removes the versions below it range
// by range.
func (n *Node) runGC(ctx context.Context) {
	cfg := n.cfg.GC
	n.bg.Add(2)
	go func() {
		defer n.bg.Done()
		n.gcReportLoop(ctx, cfg.Interval/2)
	}()
	go func() {
		defer n.bg.Done()
		for ctx.Err() == nil {
			lead, err := n.client.Campaign(ctx, gcElection, fmt.Sprintf("n%d", n.id))
			if err != nil {
				if !sleepCtx(ctx, cfg.Interval) {
					return
				}
				continue
			}
			n.gcLead(ctx, lead.Done())
			// Bounded: resigning through a client that is closing would
			// otherwise wait forever and hold up the node's shutdown.
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := lead.Resign(rctx); err != nil && ctx.Err() == nil {
				n.log.Debug("resign GC leadership", "err", err)
			}
			cancel()
		}
	}()
}

func (n *Node) gcReportLoop(ctx context.Context, every time.Duration) {
	for {
		if err := n.reportGCFloor(ctx); err != nil && ctx.Err() == nil {
			n.log.Debug("report GC floor", "err", err)
		}
		if !sleepCtx(ctx, every) {
			return
		}
	}
}

func (n *Node) reportGCFloor(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	now, err := n.tso.GetTimestamp(ctx)
	if err != nil {
		return err
	}
	floor := now
	if m := n.db.MinActiveStartTS(); m != 0 && m < floor {
		floor = m
	}
	return n.reg.ReportGCFloor(ctx, floor)
}

// gcLead runs GC rounds while this node holds the GC leadership.
func (n *Node) gcLead(ctx context.Context, lost <-chan struct{}) {
	t := time.NewTicker(n.cfg.GC.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-lost:
			return
		case <-t.C:
		}
		st, sp, err := n.gcRound(ctx)
		n.gc.mu.Lock()
		n.gc.rounds++
		n.gc.lastErr = err
		if err == nil {
			n.gc.safepoint = sp
			n.gc.total.Ranges += st.Ranges
			n.gc.total.LocksResolved += st.LocksResolved
			n.gc.total.VersionsRemoved += st.VersionsRemoved
		}
		n.gc.mu.Unlock()
		if err != nil {
			n.log.Warn("GC round failed", "err", err)
		} else {
			n.log.Debug("GC round", "safepoint", sp, "ranges", st.Ranges, "versions_removed", st.VersionsRemoved)
		}
	}
}

func (n *Node) gcRound(ctx context.Context) (txn.GCStats, kv.Timestamp, error) {
	// A round may take longer than the interval between rounds (many
	// ranges, a loaded machine); the next round simply starts later.
	ctx, cancel := context.WithTimeout(ctx, max(n.cfg.GC.Interval, 30*time.Second))
	defer cancel()
	// Report this node's own floor first, so the safepoint below covers
	// transactions that began since the last report.
	if err := n.reportGCFloor(ctx); err != nil {
		return txn.GCStats{}, 0, fmt.Errorf("report own GC floor: %w", err)
	}
	now, err := n.tso.GetTimestamp(ctx)
	if err != nil {
		return txn.GCStats{}, 0, fmt.Errorf("timestamp: %w", err)
	}
	lifetimeMs := uint64(n.cfg.GC.Lifetime.Milliseconds())
	if kv.PhysicalMillis(now) <= lifetimeMs {
		return txn.GCStats{}, 0, nil
	}
	sp := kv.MakeTimestamp(kv.PhysicalMillis(now)-lifetimeMs, 0)
	floor, reports, err := n.client.MinGCFloor(ctx)
	if err != nil {
		return txn.GCStats{}, 0, err
	}
	if reports > 0 && floor <= sp {
		sp = floor - 1
	}
	cur, err := n.client.GCSafePoint(ctx)
	if err != nil {
		return txn.GCStats{}, 0, err
	}
	if sp > cur {
		if err := n.client.SetGCSafePoint(ctx, sp); err != nil {
			return txn.GCStats{}, 0, err
		}
	} else {
		sp = cur
	}
	if sp == 0 {
		return txn.GCStats{}, 0, nil
	}
	st, err := n.db.RunGC(ctx, sp)
	return st, sp, err
}

// sleepCtx waits d or until ctx ends; it reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
