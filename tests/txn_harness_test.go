package tests

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/kv"
	"github.com/quorumdb/quorumdb/raftgroup"
	"github.com/quorumdb/quorumdb/raftgroup/raftgrouptest"
	"github.com/quorumdb/quorumdb/txn"
)

// localKV is the store of the transaction acceptance tests until the
// in-process cluster helper exists: a real single-node raftgroup.Store on an
// in-memory engine, its key space split into several single-voter ranges
// (reads after ReadIndex, writes through Raft, the leader's max_read_ts and
// latches for 1PC). Several txn.DBs, each with its own range cache, stand for
// coordinators on different nodes; they share one clock as they would share
// the timestamp oracle.
type localKV struct {
	store  *raftgroup.Store
	clock  *txn.LocalClock
	nextID uint64

	mu sync.Mutex
	// before1PC, when set, runs before a 1PC command is handed to the store,
	// so a test can order other work before its proposal.
	before1PC func(req *kv.OnePhaseCommitRequest)
}

func newLocalKV(t testing.TB, splitKeys ...string) *localKV {
	t.Helper()
	clock := txn.NewLocalClock(0)
	st := raftgrouptest.StartStore(t, raftgrouptest.Clock(clock), nil)
	s := &localKV{store: st, clock: clock, nextID: 1}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.BootstrapRange(ctx, raftgroup.FirstRangeDescriptor(1)); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	for _, k := range splitKeys {
		if err := s.split(ctx, k); err != nil {
			t.Fatalf("split at %q: %v", k, err)
		}
	}
	return s
}

func (s *localKV) split(ctx context.Context, key string) error {
	d, err := s.LookupRange(ctx, []byte(key))
	if err != nil {
		return err
	}
	s.nextID++
	id := s.nextID
	left, right, err := s.store.SplitRange(ctx, d.RangeID, []byte(key), id)
	if err != nil && left != nil && right == nil {
		// The split applied but the right range may not be registered yet.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if s.rangeOf(key) == id {
				return nil
			}
		}
	}
	return err
}

// Execute implements txn.LocalStore.
func (s *localKV) Execute(ctx context.Context, rangeID uint64, req *kv.Request) (*kv.Response, error) {
	if req.OnePhaseCommit != nil {
		s.mu.Lock()
		hook := s.before1PC
		s.mu.Unlock()
		if hook != nil {
			hook(req.OnePhaseCommit)
		}
	}
	return s.store.Execute(ctx, rangeID, req)
}

// LookupRange implements txn.RangeDirectory from the store's replicas.
func (s *localKV) LookupRange(ctx context.Context, key []byte) (*kv.RangeDescriptor, error) {
	for _, d := range s.descriptors() {
		if d.ContainsKey(key) {
			return d, nil
		}
	}
	return nil, fmt.Errorf("no range holds %q", key)
}

func (s *localKV) descriptors() []*kv.RangeDescriptor {
	var out []*kv.RangeDescriptor
	for _, info := range s.store.RangeInfo() {
		if info.Descriptor != nil {
			out = append(out, info.Descriptor)
		}
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].StartKey, out[j].StartKey) < 0 })
	return out
}

// rangeOf returns the ID of the range holding key.
func (s *localKV) rangeOf(key string) uint64 {
	d, _ := s.LookupRange(context.Background(), []byte(key))
	if d == nil {
		return 0
	}
	return d.RangeID
}

// coordinators returns n DBs over s ("nodes"), sharing the store's clock.
func (s *localKV) coordinators(t testing.TB, n int, cfg txn.DBConfig) []*txn.DB {
	t.Helper()
	out := make([]*txn.DB, n)
	for i := range out {
		c := cfg
		c.Sender = txn.NewLocalStoreSender(txn.LocalStoreSenderConfig{Store: s, Directory: s})
		c.Clock = s.clock
		out[i] = txn.NewDB(c)
		t.Cleanup(out[i].Close)
	}
	return out
}

// barrier lets n goroutines wait until all have arrived (bounded by ctx).
type barrier struct {
	mu      sync.Mutex
	n       int
	arrived int
	ch      chan struct{}
}

func newBarrier(n int) *barrier { return &barrier{n: n, ch: make(chan struct{})} }

func (b *barrier) wait(ctx context.Context) error {
	b.mu.Lock()
	b.arrived++
	if b.arrived == b.n {
		close(b.ch)
	}
	b.mu.Unlock()
	select {
	case <-b.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func keyRangeIDs(s *localKV, keys ...string) []uint64 {
	var ids []uint64
	for _, k := range keys {
		ids = append(ids, s.rangeOf(k))
	}
	return ids
}

func distinct(ids []uint64) bool {
	for i := range ids {
		for j := i + 1; j < len(ids); j++ {
			if ids[i] == ids[j] {
				return false
			}
		}
	}
	return true
}
