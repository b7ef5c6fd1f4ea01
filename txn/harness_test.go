package txn

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
)

// testStore is a real single-node raftgroup.Store on an in-memory engine,
// with single-voter ranges (bootstrapped whole, then split), serving
// requests through Execute: reads after ReadIndex on the leader, writes
// through Raft, the leader's max_read_ts and latches for 1PC. It counts the
// requests it serves by kind so tests can tell which commit path ran.
type testStore struct {
	store  *raftgroup.Store
	clock  *LocalClock
	nextID uint64

	mu     sync.Mutex
	counts map[string]int
}

func newTestStore(t testing.TB, splitKeys ...string) *testStore {
	t.Helper()
	clock := NewLocalClock(0)
	st := raftgrouptest.StartStore(t, raftgrouptest.Clock(clock), nil)
	s := &testStore{store: st, clock: clock, nextID: 1, counts: make(map[string]int)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.BootstrapRange(ctx, raftgroup.FirstRangeDescriptor(1)); err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	for _, k := range splitKeys {
		if _, _, err := s.split(ctx, k); err != nil {
			t.Fatalf("split at %q: %v", k, err)
		}
	}
	return s
}

func requestKind(req *kv.Request) string {
	switch {
	case req.Get != nil:
		return "get"
	case req.Scan != nil:
		return "scan"
	case req.ValidateReads != nil:
		return "validate"
	case req.Prewrite != nil:
		return "prewrite"
	case req.Commit != nil:
		return "commit"
	case req.Rollback != nil:
		return "rollback"
	case req.CheckTxnStatus != nil:
		return "status"
	case req.ResolveLock != nil:
		return "resolve"
	case req.TxnHeartbeat != nil:
		return "heartbeat"
	case req.OnePhaseCommit != nil:
		return "1pc"
	case req.GC != nil:
		return "gc"
	}
	return "?"
}

// Execute implements LocalStore.
func (s *testStore) Execute(ctx context.Context, rangeID uint64, req *kv.Request) (*kv.Response, error) {
	s.mu.Lock()
	s.counts[requestKind(req)]++
	s.mu.Unlock()
	return s.store.Execute(ctx, rangeID, req)
}

// LookupRange implements RangeDirectory from the store's own replicas.
func (s *testStore) LookupRange(ctx context.Context, key []byte) (*kv.RangeDescriptor, error) {
	for _, d := range s.descriptors() {
		if d.ContainsKey(key) {
			return d, nil
		}
	}
	return nil, fmt.Errorf("no range holds %q", key)
}

// split cuts the range holding key at key.
func (s *testStore) split(ctx context.Context, key string) (left, right *kv.RangeDescriptor, err error) {
	d, err := s.LookupRange(ctx, []byte(key))
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	s.mu.Unlock()
	left, right, err = s.store.SplitRange(ctx, d.RangeID, []byte(key), id)
	if err != nil && left != nil && right == nil {
		// raftgroup can return before the right range is registered on
		// the store (seen under -race); the split did apply, so wait for it.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			for _, d := range s.descriptors() {
				if d.RangeID == id {
					return left, d, nil
				}
			}
		}
	}
	return left, right, err
}

func (s *testStore) count(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[kind]
}

func (s *testStore) resetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.counts)
}

// descriptors returns the store's range descriptors in key order.
func (s *testStore) descriptors() []*kv.RangeDescriptor {
	var out []*kv.RangeDescriptor
	for _, info := range s.store.RangeInfo() {
		if info.Descriptor != nil {
			out = append(out, info.Descriptor)
		}
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].StartKey, out[j].StartKey) < 0 })
	return out
}

// newTestDB returns a DB over a single-node store split at splitKeys.
func newTestDB(t testing.TB, cfg DBConfig, splitKeys ...string) (*DB, *testStore) {
	t.Helper()
	s := newTestStore(t, splitKeys...)
	if cfg.Sender == nil {
		cfg.Sender = NewLocalStoreSender(LocalStoreSenderConfig{Store: s, Directory: s})
	}
	if cfg.Clock == nil {
		cfg.Clock = s.clock
	}
	db := NewDB(cfg)
	t.Cleanup(db.Close)
	return db, s
}
