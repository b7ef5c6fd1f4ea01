package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"syscall"
	"time"

	"github.com/quorumdb/quorumdb/tests/chaos/checker"
)

// Nemesis injects one kind of fault. Fault returns the event and a heal
// function that undoes it (restart, resume, reconnect).
type Nemesis interface {
	Name() string
	// NeedsPartitions: the nemesis cuts links (skipped without netns).
	NeedsPartitions() bool
	Fault(ctx context.Context, c *Cluster, rng *rand.Rand) (ev checker.Event, heal func(context.Context) error, err error)
}

// Nemeses returns every nemesis by name, in the matrix's order.
func Nemeses() []Nemesis {
	return []Nemesis{
		killNemesis{}, killLeaderNemesis{}, pauseNemesis{}, partitionMinority{}, partitionLeader{},
		bridgeNemesis{}, killTSONemesis{}, restartEtcdNemesis{}, rollingRestart{},
	}
}

// NemesisByName finds a nemesis; "none" is a run without faults (nil).
func NemesisByName(name string) (Nemesis, error) {
	if name == "none" {
		return nil, nil
	}
	for _, n := range Nemeses() {
		if n.Name() == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("chaos: no nemesis %q", name)
}

func names(ns []*NodeProc) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.name
	}
	return out
}

func restartHeal(c *Cluster, n *NodeProc) func(context.Context) error {
	return func(ctx context.Context) error { return c.Restart(ctx, n) }
}

// minority picks floor((N-1)/2) random nodes.
func minority(c *Cluster, rng *rand.Rand) (minor, major []*NodeProc) {
	perm := rng.Perm(len(c.Nodes))
	k := (len(c.Nodes) - 1) / 2
	for i, p := range perm {
		if i < k {
			minor = append(minor, c.Nodes[p])
		} else {
			major = append(major, c.Nodes[p])
		}
	}
	return minor, major
}

type killNemesis struct{}

func (killNemesis) Name() string          { return "kill" }
func (killNemesis) NeedsPartitions() bool { return false }
func (killNemesis) Fault(_ context.Context, c *Cluster, rng *rand.Rand) (checker.Event, func(context.Context) error, error) {
	n := c.Nodes[rng.IntN(len(c.Nodes))]
	c.Kill(n)
	return checker.Event{Kind: "kill", Nodes: []string{n.name}, Detail: "SIGKILL"}, restartHeal(c, n), nil
}

type killLeaderNemesis struct{}

func (killLeaderNemesis) Name() string          { return "kill-leader" }
func (killLeaderNemesis) NeedsPartitions() bool { return false }
func (killLeaderNemesis) Fault(ctx context.Context, c *Cluster, _ *rand.Rand) (checker.Event, func(context.Context) error, error) {
	n, rangeID, err := c.BusiestLeader(ctx)
	if err != nil {
		return checker.Event{}, nil, err
	}
	c.Kill(n)
	return checker.Event{Kind: "kill-leader", Nodes: []string{n.name}, Detail: fmt.Sprintf("SIGKILL the leader of range %d", rangeID)}, restartHeal(c, n), nil
}

type pauseNemesis struct{}

func (pauseNemesis) Name() string          { return "pause" }
func (pauseNemesis) NeedsPartitions() bool { return false }
func (pauseNemesis) Fault(_ context.Context, c *Cluster, rng *rand.Rand) (checker.Event, func(context.Context) error, error) {
	n := c.Nodes[rng.IntN(len(c.Nodes))]
	if err := n.signal(syscall.SIGSTOP); err != nil {
		return checker.Event{}, nil, err
	}
	return checker.Event{Kind: "pause", Nodes: []string{n.name}, Detail: "SIGSTOP"}, func(ctx context.Context) error {
		if err := n.signal(syscall.SIGCONT); err != nil {
			return err
		}
		return c.WaitReady(ctx, n, 30*time.Second)
	}, nil
}

// cutBetween cuts every link between the two groups, both ways.
func cutBetween(c *Cluster, a, b []*NodeProc) error {
	for _, x := range a {
		for _, y := range b {
			if err := c.net.Cut(x.index, y.index); err != nil {
				return err
			}
			if err := c.net.Cut(y.index, x.index); err != nil {
				return err
			}
		}
	}
	return nil
}

func healNet(c *Cluster) func(context.Context) error {
	return func(context.Context) error { return c.net.HealAll() }
}

type partitionMinority struct{}

func (partitionMinority) Name() string          { return "partition-minority" }
func (partitionMinority) NeedsPartitions() bool { return true }
func (partitionMinority) Fault(_ context.Context, c *Cluster, rng *rand.Rand) (checker.Event, func(context.Context) error, error) {
	minor, major := minority(c, rng)
	if err := cutBetween(c, minor, major); err != nil {
		return checker.Event{}, nil, err
	}
	return checker.Event{Kind: "partition", Nodes: names(minor), Detail: fmt.Sprintf("%v | %v", names(minor), names(major))}, healNet(c), nil
}

type partitionLeader struct{}

func (partitionLeader) Name() string          { return "partition-leader" }
func (partitionLeader) NeedsPartitions() bool { return true }
func (partitionLeader) Fault(ctx context.Context, c *Cluster, _ *rand.Rand) (checker.Event, func(context.Context) error, error) {
	leader, rangeID, err := c.BusiestLeader(ctx)
	if err != nil {
		return checker.Event{}, nil, err
	}
	var rest []*NodeProc
	for _, n := range c.Nodes {
		if n != leader {
			rest = append(rest, n)
		}
	}
	if err := cutBetween(c, []*NodeProc{leader}, rest); err != nil {
		return checker.Event{}, nil, err
	}
	return checker.Event{Kind: "partition", Nodes: []string{leader.name}, Detail: fmt.Sprintf("leader of range %d isolated from %v", rangeID, names(rest))}, healNet(c), nil
}

// bridgeNemesis splits the nodes into two halves that share one node (the
// bridge): each half plus the bridge is a majority... of its own view.
type bridgeNemesis struct{}

func (bridgeNemesis) Name() string          { return "bridge" }
func (bridgeNemesis) NeedsPartitions() bool { return true }
func (bridgeNemesis) Fault(_ context.Context, c *Cluster, rng *rand.Rand) (checker.Event, func(context.Context) error, error) {
	perm := rng.Perm(len(c.Nodes))
	nodes := make([]*NodeProc, len(perm))
	for i, p := range perm {
		nodes[i] = c.Nodes[p]
	}
	mid := len(nodes) / 2
	left, bridge, right := nodes[:mid], nodes[mid], nodes[mid+1:]
	if err := cutBetween(c, left, right); err != nil {
		return checker.Event{}, nil, err
	}
	// No node is in a minority of its own: every side still sees the bridge.
	return checker.Event{Kind: "bridge", Detail: fmt.Sprintf("%v | bridge %s | %v", names(left), bridge.name, names(right))}, healNet(c), nil
}

type killTSONemesis struct{}

func (killTSONemesis) Name() string          { return "kill-tso" }
func (killTSONemesis) NeedsPartitions() bool { return false }
func (killTSONemesis) Fault(ctx context.Context, c *Cluster, _ *rand.Rand) (checker.Event, func(context.Context) error, error) {
	n, err := c.TSOLeader(ctx)
	if err != nil {
		return checker.Event{}, nil, err
	}
	c.Kill(n)
	return checker.Event{Kind: "kill-tso", Nodes: []string{n.name}, Detail: "SIGKILL the TSO leader"}, restartHeal(c, n), nil
}

type restartEtcdNemesis struct{}

func (restartEtcdNemesis) Name() string          { return "restart-etcd" }
func (restartEtcdNemesis) NeedsPartitions() bool { return false }
func (restartEtcdNemesis) Fault(_ context.Context, c *Cluster, _ *rand.Rand) (checker.Event, func(context.Context) error, error) {
	c.KillEtcd()
	return checker.Event{Kind: "kill-etcd", Detail: "SIGKILL etcd"}, func(ctx context.Context) error {
		if err := c.StartEtcd(ctx); err != nil {
			return err
		}
		for _, n := range c.Nodes {
			if err := c.WaitReady(ctx, n, 30*time.Second); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

// rollingRestart restarts every node in turn (SIGTERM, restart, ready)
// during its fault; its heal does nothing.
type rollingRestart struct{}

func (rollingRestart) Name() string          { return "rolling-restart" }
func (rollingRestart) NeedsPartitions() bool { return false }
func (rollingRestart) Fault(ctx context.Context, c *Cluster, _ *rand.Rand) (checker.Event, func(context.Context) error, error) {
	for _, n := range c.Nodes {
		n.stop(syscall.SIGTERM, 30*time.Second)
		if err := c.Restart(ctx, n); err != nil {
			return checker.Event{}, nil, err
		}
	}
	return checker.Event{Kind: "rolling-restart", Nodes: names(c.Nodes), Detail: "SIGTERM and restart each node in turn"}, func(context.Context) error { return nil }, nil
}
