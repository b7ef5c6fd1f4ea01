package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/quorumdb/quorumdb/cluster"
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
		out = append(out, RangeStatus{
			RangeID:    d.RangeID,
			StartKey:   fmt.Sprintf("%q", d.StartKey),
			EndKey:     fmt.Sprintf("%q", d.EndKey),
			Generation: d.Generation,
			Replicas:   d.Replicas,
			Leader:     leaders[d.RangeID],
		})
	}
	return out, nil
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
