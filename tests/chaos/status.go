package chaos

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// rangeView is one range as a node's /api/ranges lists it.
type rangeView struct {
	RangeID  uint64 `json:"range_id"`
	Replicas []struct {
		NodeID uint64 `json:"node_id"`
		Type   int    `json:"type"`
	} `json:"replicas"`
	Leader       uint64 `json:"leader"`
	LocalReplica bool   `json:"local_replica"`
	Applied      uint64 `json:"applied_index"`
}

// RangeState is the cluster's view of one range, merged over the nodes.
type RangeState struct {
	RangeID  uint64
	Replicas int
	// Leader is the node that says it leads (0: none known).
	Leader uint64
	// Applied is each hosting node's applied index.
	Applied map[uint64]uint64
}

// Ranges merges the /api/ranges answers of every reachable node (asked
// in parallel, each for at most 2 s).
func (c *Cluster) Ranges(ctx context.Context) (map[uint64]*RangeState, error) {
	s := c.sample(ctx, 0)
	if len(s.Nodes) == 0 {
		return nil, fmt.Errorf("chaos: no node answered /api/ranges: %v", s.Errs)
	}
	out := map[uint64]*RangeState{}
	for _, n := range c.Nodes {
		views, ok := s.Nodes[n.name]
		if !ok {
			continue
		}
		for _, v := range views {
			rs := out[v.RangeID]
			if rs == nil {
				rs = &RangeState{RangeID: v.RangeID, Applied: map[uint64]uint64{}}
				out[v.RangeID] = rs
			}
			voters := 0
			for _, r := range v.Replicas {
				if r.Type == 0 {
					voters++
				}
			}
			rs.Replicas = max(rs.Replicas, voters)
			if v.LocalReplica {
				rs.Applied[n.ID] = v.Applied
				if v.Leader == n.ID {
					rs.Leader = n.ID
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, errNoRanges
	}
	return out, nil
}

func (p *proc) isPaused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

// MinReplicas is the smallest voter count of any range (how replicated
// the data is: 1 until the placement driver up-replicates).
func (c *Cluster) MinReplicas(ctx context.Context) (int, error) {
	rs, err := c.Ranges(ctx)
	if err != nil {
		return 0, err
	}
	m := 1 << 30
	for _, r := range rs {
		m = min(m, r.Replicas)
	}
	return m, nil
}

// WaitReplicated waits until every range has at least want voters.
func (c *Cluster) WaitReplicated(ctx context.Context, want int, d time.Duration) error {
	return waitFor(ctx, d, func(ctx context.Context) error {
		m, err := c.MinReplicas(ctx)
		if err != nil {
			return err
		}
		if m < want {
			return fmt.Errorf("a range has %d voters, want %d", m, want)
		}
		return nil
	})
}

// BusiestLeader is the node leading the range with the highest applied
// index (the one taking the most writes).
func (c *Cluster) BusiestLeader(ctx context.Context) (*NodeProc, uint64, error) {
	rs, err := c.Ranges(ctx)
	if err != nil {
		return nil, 0, err
	}
	var best *RangeState
	var bestApplied uint64
	for _, r := range rs {
		var a uint64
		for _, v := range r.Applied {
			a = max(a, v)
		}
		if r.Leader != 0 && (best == nil || a > bestApplied) {
			best, bestApplied = r, a
		}
	}
	if best == nil {
		return nil, 0, ErrNoLeader
	}
	n := c.NodeByID(best.Leader)
	if n == nil {
		return nil, 0, fmt.Errorf("%w: leader %d of range %d is no node of ours", ErrNoLeader, best.Leader, best.RangeID)
	}
	return n, best.RangeID, nil
}

// NodeByID finds a node by cluster ID.
func (c *Cluster) NodeByID(id uint64) *NodeProc {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// TSOLeader reads the TSO leader's RPC address from etcd
// (/quorumdb/<cluster>/tso/leader) and maps it to its node.
func (c *Cluster) TSOLeader(ctx context.Context) (*NodeProc, error) {
	cli, err := c.etcdClient()
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	key := "/quorumdb/" + c.cfg.Name + "/tso/leader"
	resp, err := cli.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("chaos: read %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%w: %s is empty", ErrNoLeader, key)
	}
	addr := strings.TrimSpace(string(resp.Kvs[0].Value))
	for _, n := range c.Nodes {
		if n.RPCAddr == addr {
			return n, nil
		}
	}
	return nil, fmt.Errorf("%w: TSO leader %s is no node of ours", ErrNoLeader, addr)
}

// caughtUp reports whether every replica of every range, as every voter
// reports now, has applied at least what its leader had applied when
// target was taken.
func caughtUp(now, target map[uint64]*RangeState) bool {
	for id, t := range target {
		want := t.Applied[t.Leader]
		r := now[id]
		if r == nil || len(r.Applied) < r.Replicas {
			return false
		}
		for _, applied := range r.Applied {
			if applied < want {
				return false
			}
		}
	}
	return true
}

// rangeSample is what every node said about its replicas at one moment.
type rangeSample struct {
	At    int64                  `json:"at"`
	Nodes map[string][]rangeView `json:"nodes"`
	Errs  map[string]string      `json:"errors,omitempty"`
}

// sample asks every running node for its view of the ranges.
func (c *Cluster) sample(ctx context.Context, at int64) rangeSample {
	s := rangeSample{At: at, Nodes: map[string][]rangeView{}, Errs: map[string]string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		if !n.running() || n.isPaused() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			var views []rangeView
			err := c.get(cctx, n, "/api/ranges", &views)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				s.Errs[n.name] = err.Error()
				return
			}
			s.Nodes[n.name] = views
		}()
	}
	wg.Wait()
	return s
}
