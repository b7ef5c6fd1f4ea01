package node

import (
	"context"
	"fmt"
	"time"

	"github.com/quorumdb/quorumdb/cluster"
	"github.com/quorumdb/quorumdb/raftgroup"
)

// PlacementConfig configures the placement driver every node runs (one,
// elected through etcd, acts).
type PlacementConfig struct {
	// ReplicationFactor is the number of voters per range (default 3,
	// capped by the number of live nodes).
	ReplicationFactor int
	// DeadNodeGrace is how long a node's liveness lease must be gone before
	// its replicas are replaced (default 30 s).
	DeadNodeGrace time.Duration
	// SplitSizeBytes splits a range whose data exceeds it (default 64 MiB).
	SplitSizeBytes uint64
	// Interval between placement rounds (default 1 s).
	Interval time.Duration
	// Disabled turns the placement driver off on this node (tests that
	// place replicas by hand); the range publisher still runs.
	Disabled bool
	// PublishInterval is how often a node publishes the descriptors of the
	// ranges it leads to the etcd directory (default 200 ms).
	PublishInterval time.Duration
}

func (c *PlacementConfig) setDefaults() {
	if c.PublishInterval <= 0 {
		c.PublishInterval = 200 * time.Millisecond
	}
}

// registerPlacementServices adds the admin service (the placement driver's
// commands to range leaders) to the node's gRPC server.
func (n *Node) registerPlacementServices() {
	raftgroup.RegisterAdminService(n.rpc, n.store)
}

// startPlacement starts the range publisher and this node's placement
// driver candidate; both stop when ctx ends.
func (n *Node) startPlacement(ctx context.Context) error {
	p := n.cfg.Placement
	n.admin = raftgroup.NewAdminClientWithConfig(raftgroup.KVClientConfig{
		NodeID:   n.id,
		Resolver: n.book.NodeAddress,
		Faults:   n.cfg.Knobs.Faults,
		Logger:   n.log,
	})
	rangeIDs, err := cluster.NewIDAllocator(n.client, cluster.IDKindRange, 1)
	if err != nil {
		return fmt.Errorf("node: range ID allocator: %w", err)
	}
	pd, err := raftgroup.NewPlacementDriver(raftgroup.PlacementConfig{
		NodeID:              n.id,
		Cluster:             n.client,
		Admin:               n.admin,
		RangeIDs:            rangeIDs,
		Interval:            p.Interval,
		ReplicationFactor:   p.ReplicationFactor,
		DeadNodeGrace:       p.DeadNodeGrace,
		SplitThresholdBytes: p.SplitSizeBytes,
		Logger:              n.rgLog,
	})
	if err != nil {
		return fmt.Errorf("node: placement driver: %w", err)
	}
	n.placement = pd
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		_ = raftgroup.RunRangePublisherWithOptions(ctx, n.store, n.client, raftgroup.RangePublisherOptions{
			Interval: p.PublishInterval,
			Logger:   n.rgLog,
		})
	}()
	if p.Disabled {
		return nil
	}
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		_ = pd.Run(ctx)
	}()
	return nil
}

func (n *Node) stopPlacement() {
	if n.admin != nil {
		_ = n.admin.Close()
	}
}
