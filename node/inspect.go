package node

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/quorumdb/quorumdb/cluster"
	"github.com/quorumdb/quorumdb/kv"
	"github.com/quorumdb/quorumdb/raftgroup"
)

// ListRanges lists the ranges of c's cluster directory, in key order, and asks every live
// node (GET /api/ranges on its HTTP address) what it knows of each range's
// leader: a node that hosts a replica reports the leader its Raft group
// knows. Nodes that cannot be asked are skipped; a range no live replica
// reports on shows leader 0.
func ListRanges(ctx context.Context, c *cluster.Client, hc *http.Client) ([]RangeStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	descs, err := c.ListRanges(ctx)
	if err != nil {
		return nil, err
	}
	nodes, err := c.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	leaders := map[uint64]uint64{}
	var wg sync.WaitGroup
	for _, ni := range nodes {
		if ni.HTTPAddr == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			views, err := fetchRanges(ctx, hc, ni.HTTPAddr)
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, v := range views {
				// The leader's own view is authoritative; otherwise take
				// any replica's.
				if v.LocalReplica && v.Leader != 0 && (v.Leader == ni.ID || leaders[v.RangeID] == 0) {
					leaders[v.RangeID] = v.Leader
				}
			}
		}()
	}
	wg.Wait()
	out := make([]RangeStatus, 0, len(descs))
	for _, d := range descs {
		rs := RangeStatus{Leader: leaders[d.RangeID]}
		rs.setDescriptor(d)
		out = append(out, rs)
	}
	return out, nil
}

// setDescriptor fills the descriptor's fields of r.
func (r *RangeStatus) setDescriptor(d *kv.RangeDescriptor) {
	r.RangeID = d.RangeID
	r.StartKey = fmt.Sprintf("%q", d.StartKey)
	r.EndKey = fmt.Sprintf("%q", d.EndKey)
	r.Generation = d.Generation
	r.Replicas = d.Replicas
}

// ReplicaList renders the replicas as "n1,n2,n3(learner)".
func (r RangeStatus) ReplicaList() string {
	reps := make([]string, 0, len(r.Replicas))
	for _, rep := range r.Replicas {
		s := fmt.Sprintf("n%d", rep.NodeID)
		if rep.Type == kv.Learner {
			s += "(learner)"
		}
		reps = append(reps, s)
	}
	return strings.Join(reps, ",")
}

func fetchRanges(ctx context.Context, hc *http.Client, addr string) ([]RangeStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/ranges", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/api/ranges: %s", addr, resp.Status)
	}
	var out []RangeStatus
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("decode %s/api/ranges: %w", addr, err)
	}
	return out, nil
}

// RangeLoad is what a range's leader reports about its size and load.
type RangeLoad struct {
	// SizeBytes is the logical size of the range's MVCC data.
	SizeBytes uint64 `json:"size_bytes"`
	// AppliesPerSec is the rate of Raft commands the range applied (its
	// write load) over the sample.
	AppliesPerSec float64 `json:"applies_per_sec"`
}

// ListRangeLoad asks every live node's admin service for the ranges it
// leads, twice, sample apart, and returns each range's size and apply rate.
func ListRangeLoad(ctx context.Context, c *cluster.Client, sample time.Duration) (map[uint64]RangeLoad, error) {
	book, err := c.NewAddressBook(ctx)
	if err != nil {
		return nil, err
	}
	defer book.Close()
	admin := raftgroup.NewAdminClient(book.NodeAddress)
	defer admin.Close()
	nodes, err := c.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	poll := func() map[uint64]raftgroup.RangeStats {
		var mu sync.Mutex
		out := map[uint64]raftgroup.RangeStats{}
		var wg sync.WaitGroup
		for _, ni := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				defer cancel()
				stats, err := admin.RangeStats(sctx, ni.ID, math.MaxUint64)
				if err != nil {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				for _, s := range stats {
					if s.IsLeader {
						out[s.RangeID] = s
					}
				}
			}()
		}
		wg.Wait()
		return out
	}
	first := poll()
	start := time.Now()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(sample):
	}
	second := poll()
	elapsed := time.Since(start).Seconds()
	load := make(map[uint64]RangeLoad, len(second))
	for id, s := range second {
		l := RangeLoad{SizeBytes: s.Bytes}
		if f, ok := first[id]; ok && s.Applied >= f.Applied && elapsed > 0 {
			l.AppliesPerSec = float64(s.Applied-f.Applied) / elapsed
		}
		load[id] = l
	}
	return load, nil
}
