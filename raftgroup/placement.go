package raftgroup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quorumdb/quorumdb/cluster"
	"github.com/quorumdb/quorumdb/kv"
)

// PlacementCluster is what the placement driver needs from etcd.
// *cluster.Client implements it.
type PlacementCluster interface {
	// ListNodes returns the live nodes (liveness lease held).
	ListNodes(ctx context.Context) ([]cluster.NodeInfo, error)
	// ListRanges returns the published range directory.
	ListRanges(ctx context.Context) ([]*kv.RangeDescriptor, error)
	// Campaign blocks until the candidate leads the election.
	Campaign(ctx context.Context, election, candidate string) (*cluster.Leadership, error)
}

// PlacementAdmin commands the leaders of ranges on any node. *AdminClient
// implements it.
type PlacementAdmin interface {
	ChangeReplicas(ctx context.Context, node, rangeID uint64, add, remove []uint64) (*kv.RangeDescriptor, error)
	SplitRange(ctx context.Context, node, rangeID uint64, splitKey []byte, newRangeID uint64) (left, right *kv.RangeDescriptor, err error)
	TransferLeadership(ctx context.Context, node, rangeID, target uint64) error
	RangeStats(ctx context.Context, node uint64, splitAboveBytes uint64) ([]RangeStats, error)
	RepairAbandonedChange(ctx context.Context, node, rangeID uint64) (*kv.RangeDescriptor, error)
}

// RangeIDAllocator hands out range IDs never used before.
// *cluster.IDAllocator (kind cluster.IDKindRange) implements it.
type RangeIDAllocator interface {
	Allocate(ctx context.Context) (uint64, error)
}

// FirstRangeID is the ID of the range a new cluster starts with.
const FirstRangeID = 1

// FirstRangeDescriptor is the descriptor the node that bootstraps a new
// cluster (cluster.Client.ClaimBootstrap's winner) passes to
// Store.BootstrapRange: one range over the whole key space with a single
// replica on that node. The placement driver up-replicates it as nodes
// join; the range ID allocator must be reserved through FirstRangeID.
func FirstRangeDescriptor(nodeID uint64) *kv.RangeDescriptor {
	return &kv.RangeDescriptor{
		RangeID:       FirstRangeID,
		StartKey:      kv.KeyMin,
		EndKey:        kv.KeyMax,
		Replicas:      []kv.ReplicaDescriptor{{NodeID: nodeID, ReplicaID: 1, Type: kv.Voter}},
		Generation:    1,
		NextReplicaID: 2,
	}
}

// Defaults of PlacementConfig.
const (
	DefaultPlacementInterval   = time.Second
	DefaultReplicationFactor   = 3
	DefaultDeadNodeGrace       = 30 * time.Second
	DefaultSplitThresholdBytes = 64 << 20
)

// PlacementConfig configures a PlacementDriver. Zero values take the
// defaults named per field.
type PlacementConfig struct {
	// NodeID is this node (its candidate name in the election is "n<ID>").
	NodeID uint64
	// Cluster, Admin and RangeIDs are required.
	Cluster  PlacementCluster
	Admin    PlacementAdmin
	RangeIDs RangeIDAllocator

	// Interval between two rounds of the leader (default 1s).
	Interval time.Duration
	// ReplicationFactor is the number of voters per range (default 3),
	// capped by the number of live nodes.
	ReplicationFactor int
	// DeadNodeGrace is how long a node's liveness lease must be gone before
	// its replicas are replaced (default 30s).
	DeadNodeGrace time.Duration
	// SplitThresholdBytes splits a range whose MVCC data exceeds it
	// (default 64 MiB).
	SplitThresholdBytes uint64
	// LoadSplitAppliesPerSecond splits a range applying more commands per
	// second than this (0, the default: no load-based split). The store
	// counts no reads per range, so load is measured on writes only.
	LoadSplitAppliesPerSecond float64
	// MaxMovesPerRound bounds the replica moves of one rebalancing round
	// (default 2); MaxLeaderTransfersPerRound its leadership transfers
	// (default 2).
	MaxMovesPerRound           int
	MaxLeaderTransfersPerRound int
	// MaxConcurrentChanges bounds the commands in flight in one round
	// (default 4). There is never more than one per range.
	MaxConcurrentChanges int
	// ChangeTimeout bounds one command (a replica change includes the
	// learner's snapshot; default 60s); StatsTimeout one stats call
	// (default 3s).
	ChangeTimeout time.Duration
	StatsTimeout  time.Duration
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Clock returns the current time (default time.Now); tests may shift it.
	Clock func() time.Time
}

func (c *PlacementConfig) setDefaults() error {
	if c.NodeID == 0 {
		return fmt.Errorf("raftgroup: placement: NodeID is required")
	}
	if c.Cluster == nil || c.Admin == nil || c.RangeIDs == nil {
		return fmt.Errorf("raftgroup: placement: Cluster, Admin and RangeIDs are required")
	}
	if c.Interval <= 0 {
		c.Interval = DefaultPlacementInterval
	}
	if c.ReplicationFactor <= 0 {
		c.ReplicationFactor = DefaultReplicationFactor
	}
	if c.DeadNodeGrace <= 0 {
		c.DeadNodeGrace = DefaultDeadNodeGrace
	}
	if c.SplitThresholdBytes == 0 {
		c.SplitThresholdBytes = DefaultSplitThresholdBytes
	}
	if c.MaxMovesPerRound <= 0 {
		c.MaxMovesPerRound = 2
	}
	if c.MaxLeaderTransfersPerRound <= 0 {
		c.MaxLeaderTransfersPerRound = 2
	}
	if c.MaxConcurrentChanges <= 0 {
		c.MaxConcurrentChanges = 4
	}
	if c.ChangeTimeout <= 0 {
		c.ChangeTimeout = 60 * time.Second
	}
	if c.StatsTimeout <= 0 {
		c.StatsTimeout = 3 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	return nil
}

// PlacementDriver keeps every range replicated, balanced and small. It runs
// on every node; one leader, elected through etcd (election
// cluster.ElectionPlacementDriver, keys pd/election/…), acts. Each round
// of the leader reads the live nodes and the range directory from etcd,
// asks every live node for the ranges it leads (RangeStats), plans at most
// one command per range (planPlacement) and sends the commands to the
// ranges' leaders through the admin service, each bounded by
// ChangeTimeout. The etcd leadership is only a way to have one planner:
// safety comes from Raft (one pending membership change per range,
// generations), never from the election.
type PlacementDriver struct {
	cfg PlacementConfig
	log *slog.Logger

	leading atomic.Bool
	rounds  atomic.Uint64

	// Owned by the leader loop (one goroutine).
	downSince  map[uint64]time.Time
	lastApply  map[uint64]applySample
	changeSeen map[uint64]time.Time // first round that saw a learner or joint configuration in the range
	lastNotes  map[uint64]string    // the last "not acting" reason logged per range

	// changeOver maps a range to the time by which the last failed replica
	// change sent to it has certainly ended (written by the round's
	// concurrent actions).
	changeMu   sync.Mutex
	changeOver map[uint64]time.Time
}

type applySample struct {
	applied uint64
	at      time.Time
}

// NewPlacementDriver validates cfg. Call Run to take part in the election.
func NewPlacementDriver(cfg PlacementConfig) (*PlacementDriver, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &PlacementDriver{
		cfg:        cfg,
		log:        cfg.Logger.With("component", "placement", "node", cfg.NodeID),
		downSince:  map[uint64]time.Time{},
		lastApply:  map[uint64]applySample{},
		changeSeen: map[uint64]time.Time{},
		lastNotes:  map[uint64]string{},
		changeOver: map[uint64]time.Time{},
	}, nil
}

// Leading reports whether this driver currently leads.
func (d *PlacementDriver) Leading() bool { return d.leading.Load() }

// Rounds counts the rounds this driver ran as the leader.
func (d *PlacementDriver) Rounds() uint64 { return d.rounds.Load() }

// Run campaigns for the placement leadership and, while leading, runs a
// round every Interval. It returns nil when ctx ends (resigning a held
// leadership so another node takes over at once).
func (d *PlacementDriver) Run(ctx context.Context) error {
	candidate := fmt.Sprintf("n%d", d.cfg.NodeID)
	backoff := d.cfg.Interval
	for ctx.Err() == nil {
		l, err := d.cfg.Cluster.Campaign(ctx, cluster.ElectionPlacementDriver, candidate)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			d.log.Warn("placement election failed; retrying", "err", err, "in", backoff)
			if !sleepCtx(ctx, backoff) {
				break
			}
			backoff = min(2*backoff, 10*d.cfg.Interval)
			continue
		}
		backoff = d.cfg.Interval
		d.lead(ctx, l)
	}
	return nil
}

func (d *PlacementDriver) lead(ctx context.Context, l *cluster.Leadership) {
	d.log.Info("placement driver leading")
	d.leading.Store(true)
	// State of a previous term is stale: a node seen down then may have
	// come back in between.
	clear(d.downSince)
	clear(d.lastApply)
	clear(d.changeSeen)
	clear(d.lastNotes)
	lctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-l.Done():
		case <-lctx.Done():
		}
		cancel()
	}()
	defer func() {
		cancel()
		d.leading.Store(false)
		rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := l.Resign(rctx); err != nil {
			d.log.Warn("resigning placement leadership failed", "err", err)
		}
		rcancel()
		d.log.Info("placement driver no longer leading", "reason", l.Err())
	}()
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	for {
		if !l.Valid() {
			return
		}
		d.round(lctx, l)
		select {
		case <-lctx.Done():
			return
		case <-t.C:
		}
	}
}

// round runs one observation, plan and execution.
func (d *PlacementDriver) round(ctx context.Context, l *cluster.Leadership) {
	d.rounds.Add(1)
	in, err := d.observe(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("placement round skipped", "err", err)
		}
		return
	}
	actions, notes := planPlacement(in, placementRules{
		ReplicationFactor:          d.cfg.ReplicationFactor,
		SplitThresholdBytes:        d.cfg.SplitThresholdBytes,
		LoadSplitAppliesPerSecond:  d.cfg.LoadSplitAppliesPerSecond,
		MaxMovesPerRound:           d.cfg.MaxMovesPerRound,
		MaxLeaderTransfersPerRound: d.cfg.MaxLeaderTransfersPerRound,
	})
	d.logNotes(notes)
	if len(actions) == 0 {
		return
	}
	sem := make(chan struct{}, d.cfg.MaxConcurrentChanges)
	var wg sync.WaitGroup
	for _, a := range actions {
		if !l.Valid() || ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			d.execute(ctx, a)
		})
	}
	wg.Wait()
}

// logNotes logs why ranges are left alone, once per range and reason (a
// range without quorum would otherwise be reported every round).
func (d *PlacementDriver) logNotes(notes []placementNote) {
	current := make(map[uint64]string, len(notes))
	for _, n := range notes {
		current[n.RangeID] = n.Msg
		if d.lastNotes[n.RangeID] != n.Msg {
			d.log.Info("placement: not acting on range", "range", n.RangeID, "why", n.Msg)
		}
	}
	d.lastNotes = current
}

// observe gathers a round's input: live nodes, every live node's ranges,
// the directory for ranges no reachable node reported leading.
func (d *PlacementDriver) observe(ctx context.Context) (placementInput, error) {
	sctx, cancel := context.WithTimeout(ctx, d.cfg.StatsTimeout)
	defer cancel()
	liveInfos, err := d.cfg.Cluster.ListNodes(sctx)
	if err != nil {
		return placementInput{}, fmt.Errorf("list live nodes: %w", err)
	}
	dir, err := d.cfg.Cluster.ListRanges(sctx)
	if err != nil {
		return placementInput{}, fmt.Errorf("list range directory: %w", err)
	}
	now := d.cfg.Clock()
	nodes := map[uint64]*placementNode{}
	for _, n := range liveInfos {
		nodes[n.ID] = &placementNode{ID: n.ID, Live: true}
	}

	splitAbove := d.cfg.SplitThresholdBytes
	if d.cfg.LoadSplitAppliesPerSecond > 0 {
		splitAbove = 1 // a hot range needs its middle key whatever its size
	}
	type report struct {
		node  uint64
		stats []RangeStats
		err   error
	}
	reports := make(chan report, len(liveInfos))
	for _, n := range liveInfos {
		go func() {
			st, err := d.cfg.Admin.RangeStats(sctx, n.ID, splitAbove)
			reports <- report{node: n.ID, stats: st, err: err}
		}()
	}
	led := map[uint64]*placementRange{}
	for range liveInfos {
		rep := <-reports
		if rep.err != nil {
			d.log.Info("placement: node did not report its ranges", "target", rep.node, "err", rep.err)
			continue
		}
		nodes[rep.node].Reachable = true
		for _, st := range rep.stats {
			if !st.IsLeader || st.Descriptor == nil {
				continue
			}
			if prev, ok := led[st.RangeID]; ok && prev.Desc.Generation >= st.Descriptor.Generation {
				continue // a deposed leader that has not heard yet
			}
			led[st.RangeID] = &placementRange{Desc: st.Descriptor, Leader: rep.node, Bytes: st.Bytes, SplitKey: st.SplitKey,
				JointConfig: st.JointConfig, ApplyRate: d.applyRate(st.RangeID, st.Applied, now)}
		}
	}
	in := placementInput{Nodes: nodes}
	for _, r := range led {
		in.Ranges = append(in.Ranges, r)
	}
	for _, desc := range dir {
		if covered(led, desc) {
			continue
		}
		in.Ranges = append(in.Ranges, &placementRange{Desc: desc, ApplyRate: -1})
	}
	d.markAbandonedChanges(in.Ranges, now)
	// Liveness history: every node named by a replica but not live is down
	// since the first round that saw it so; it is dead after the grace.
	for _, r := range in.Ranges {
		for _, rd := range r.Desc.Replicas {
			if _, ok := nodes[rd.NodeID]; !ok {
				nodes[rd.NodeID] = &placementNode{ID: rd.NodeID}
			}
		}
	}
	for id, n := range nodes {
		if n.Live {
			delete(d.downSince, id)
			continue
		}
		since, ok := d.downSince[id]
		if !ok {
			since = now
			d.downSince[id] = now
			d.log.Info("placement: node is not live; its replicas will be replaced after the grace period", "target", id, "grace", d.cfg.DeadNodeGrace)
		}
		n.Dead = now.Sub(since) >= d.cfg.DeadNodeGrace
	}
	return in, nil
}

// markAbandonedChanges flags the ranges whose learner or joint
// configuration no running change can still finish: the change this driver
// sent failed and is over, or the state has lasted longer than any change
// may run.
func (d *PlacementDriver) markAbandonedChanges(ranges []*placementRange, now time.Time) {
	d.changeMu.Lock()
	defer d.changeMu.Unlock()
	inChange := map[uint64]bool{}
	for _, r := range ranges {
		learner := slices.ContainsFunc(r.Desc.Replicas, func(rd kv.ReplicaDescriptor) bool { return rd.Type == kv.Learner })
		if r.Leader == 0 || (!learner && !r.JointConfig) {
			continue
		}
		id := r.Desc.RangeID
		inChange[id] = true
		since, ok := d.changeSeen[id]
		if !ok {
			since = now
			d.changeSeen[id] = now
		}
		over, failed := d.changeOver[id]
		r.Abandoned = (failed && !now.Before(over)) || now.Sub(since) >= d.cfg.ChangeTimeout+d.cfg.Interval
	}
	for id := range d.changeSeen {
		if !inChange[id] {
			delete(d.changeSeen, id)
			delete(d.changeOver, id)
		}
	}
}

// noteFailedChange records when the failed replica change of a range is
// over on the leader: at once when the leader answered (its ChangeReplicas
// returned the error), else when the call's deadline passes (the leader
// may still be running it).
func (d *PlacementDriver) noteFailedChange(rangeID uint64, err error, deadline time.Time) {
	over := deadline
	var unavailable *NodeUnavailableError
	answered := !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) &&
		(!errors.As(err, &unavailable) || !unavailable.Sent)
	if answered {
		over = d.cfg.Clock()
	}
	d.changeMu.Lock()
	d.changeOver[rangeID] = over
	d.changeMu.Unlock()
}

// covered reports whether a range reported by its leader supersedes or is
// the published desc (same range ID or an overlapping newer descriptor).
func covered(led map[uint64]*placementRange, desc *kv.RangeDescriptor) bool {
	if _, ok := led[desc.RangeID]; ok {
		return true
	}
	for _, r := range led {
		if bytes.Compare(r.Desc.StartKey, desc.EndKey) < 0 && bytes.Compare(desc.StartKey, r.Desc.EndKey) < 0 && r.Desc.Generation >= desc.Generation {
			return true
		}
	}
	return false
}

// applyRate is the range's applied commands per second since the last
// round (-1 on the first sample).
func (d *PlacementDriver) applyRate(rangeID, applied uint64, now time.Time) float64 {
	prev, ok := d.lastApply[rangeID]
	d.lastApply[rangeID] = applySample{applied: applied, at: now}
	if !ok || applied < prev.applied || !now.After(prev.at) {
		return -1
	}
	return float64(applied-prev.applied) / now.Sub(prev.at).Seconds()
}

// execute sends one action to the range's leader, bounded by ChangeTimeout.
func (d *PlacementDriver) execute(ctx context.Context, a placementAction) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.ChangeTimeout)
	defer cancel()
	d.log.Info("placement: acting", "action", a.Kind.String(), "range", a.RangeID, "leader", a.Leader,
		"add", a.Add, "remove", a.Remove, "target", a.Target, "split_key", a.SplitKey, "reason", a.Reason)
	start := d.cfg.Clock()
	var err error
	switch a.Kind {
	case actionAddReplica, actionReplaceReplica, actionRemoveReplica, actionMoveReplica:
		var desc *kv.RangeDescriptor
		desc, err = d.cfg.Admin.ChangeReplicas(ctx, a.Leader, a.RangeID, a.Add, a.Remove)
		if err == nil {
			d.log.Info("placement: replicas changed", "range", a.RangeID, "desc", desc.String(), "took", d.cfg.Clock().Sub(start))
		} else {
			d.noteFailedChange(a.RangeID, err, start.Add(d.cfg.ChangeTimeout))
		}
	case actionRepairChange:
		var desc *kv.RangeDescriptor
		desc, err = d.cfg.Admin.RepairAbandonedChange(ctx, a.Leader, a.RangeID)
		if err == nil {
			d.log.Info("placement: abandoned replica change cleaned up", "range", a.RangeID, "desc", desc.String())
		}
	case actionTransferLeader:
		err = d.cfg.Admin.TransferLeadership(ctx, a.Leader, a.RangeID, a.Target)
		if err == nil {
			d.log.Info("placement: leadership transferred", "range", a.RangeID, "from", a.Leader, "to", a.Target)
		}
	case actionSplit:
		var newID uint64
		newID, err = d.cfg.RangeIDs.Allocate(ctx)
		if err != nil {
			err = fmt.Errorf("allocate range ID: %w", err)
			break
		}
		var left, right *kv.RangeDescriptor
		left, right, err = d.cfg.Admin.SplitRange(ctx, a.Leader, a.RangeID, a.SplitKey, newID)
		if err == nil {
			d.log.Info("placement: range split", "range", a.RangeID, "left", left.String(), "right", right.String())
		}
	default:
		err = fmt.Errorf("unknown action %d", a.Kind)
	}
	if err != nil {
		level := slog.LevelWarn
		var notLeader *kv.NotLeaderError
		if errors.As(err, &notLeader) {
			level = slog.LevelInfo // the leadership moved since the round's observation
		}
		d.log.Log(ctx, level, "placement: action failed; the next round re-plans", "action", a.Kind.String(), "range", a.RangeID, "err", err)
	}
}

// sleepCtx waits d or until ctx ends; false when ctx ended.
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
