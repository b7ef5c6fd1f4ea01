package raftgroup

import (
	"math/rand/v2"
	"sync"
	"time"
)

// FaultInjector is a testing knob that makes the network misbehave: it cuts
// nodes off (isolation, partitions), drops a seeded random fraction of
// messages and delays them. A node's GRPCTransport consults it when sending
// (cuts, random drops, delay) and when receiving (cuts only, so a fault
// injector shared by every node of a test does not drop a message twice);
// its KVClient consults it before each call (cuts only). Production code
// passes nil: every method is safe on a nil *FaultInjector and injects
// nothing.
//
// Cuts are symmetric and defined on (from, to) node pairs, so one injector
// can be shared by all nodes of a test or each node can have its own.
// Methods are safe for concurrent use.
type FaultInjector struct {
	mu       sync.Mutex
	rng      *rand.Rand
	isolated map[uint64]bool
	// group maps a node to its side of the current partition; nodes not in
	// the map talk to everyone.
	group    map[uint64]int
	dropRate float64
	delay    time.Duration
}

// NewFaultInjector returns an injector with no faults; seed makes its random
// drops reproducible.
func NewFaultInjector(seed uint64) *FaultInjector {
	return &FaultInjector{
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		isolated: make(map[uint64]bool),
		group:    make(map[uint64]int),
	}
}

// Isolate cuts every message to and from each of nodeIDs.
func (f *FaultInjector) Isolate(nodeIDs ...uint64) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range nodeIDs {
		f.isolated[id] = true
	}
}

// Rejoin lifts Isolate for nodeIDs (partitions stay in force).
func (f *FaultInjector) Rejoin(nodeIDs ...uint64) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range nodeIDs {
		delete(f.isolated, id)
	}
}

// Partition splits the listed nodes into groups that cannot talk to each
// other; nodes inside one group still talk, and nodes in no group talk to
// everyone. It replaces the previous partition. Partition() with no groups
// removes it.
func (f *FaultInjector) Partition(groups ...[]uint64) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.group = make(map[uint64]int)
	for i, g := range groups {
		for _, id := range g {
			f.group[id] = i
		}
	}
}

// SetDropRate makes a fraction p (0 to 1) of sent messages and snapshots
// disappear, chosen by the seeded generator.
func (f *FaultInjector) SetDropRate(p float64) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropRate = min(max(p, 0), 1)
}

// SetDelay holds every sent batch and snapshot for d before it leaves.
func (f *FaultInjector) SetDelay(d time.Duration) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = max(d, 0)
}

// Heal removes every fault: isolation, partition, drop rate and delay.
func (f *FaultInjector) Heal() {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.isolated = make(map[uint64]bool)
	f.group = make(map[uint64]int)
	f.dropRate = 0
	f.delay = 0
}

// Cut reports whether isolation or the partition separates from and to.
func (f *FaultInjector) Cut(from, to uint64) bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cutLocked(from, to)
}

func (f *FaultInjector) cutLocked(from, to uint64) bool {
	if f.isolated[from] || f.isolated[to] {
		return true
	}
	gf, okf := f.group[from]
	gt, okt := f.group[to]
	return okf && okt && gf != gt
}

// ShouldDrop decides the fate of one message sent from→to: true when it is
// cut or loses the random draw.
func (f *FaultInjector) ShouldDrop(from, to uint64) bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cutLocked(from, to) {
		return true
	}
	return f.dropRate > 0 && f.rng.Float64() < f.dropRate
}

// Delay is the current artificial delay.
func (f *FaultInjector) Delay() time.Duration {
	if f == nil {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.delay
}
