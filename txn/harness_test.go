package txn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/quorumdb/quorumdb/kv"
)

// memStore is the interim test store until raftgroup's single-node Store is
// in: a real in-memory kv.Engine with several ranges, every request
// evaluated by kv.Evaluate under one mutex (so every command is atomic, as a
// Raft apply would be). It plays the range leader's part of the 1PC hazard:
// it tracks the highest timestamp each range has served a read (or a
// validation) at, and raises a 1PC's commit_ts above it.
type memStore struct {
	mu        sync.Mutex
	eng       *kv.Engine
	ranges    map[uint64]*kv.RangeDescriptor
	maxReadTS map[uint64]kv.Timestamp
	nextID    uint64
	counts    map[string]int // requests served, by kind
}

func newMemStore(t testing.TB, splitKeys ...string) *memStore {
	t.Helper()
	eng, err := kv.Open("", kv.EngineOptions{InMemory: true, CacheSize: 8 << 20})
	if err != nil {
		t.Fatalf("open engine: %v", err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	s := &memStore{eng: eng, ranges: make(map[uint64]*kv.RangeDescriptor), maxReadTS: make(map[uint64]kv.Timestamp), counts: make(map[string]int)}
	bounds := append([][]byte{kv.KeyMin}, toKeys(splitKeys)...)
	bounds = append(bounds, kv.KeyMax)
	for i := 0; i+1 < len(bounds); i++ {
		s.nextID++
		s.ranges[s.nextID] = &kv.RangeDescriptor{
			RangeID: s.nextID, StartKey: bounds[i], EndKey: bounds[i+1], Generation: 1,
			Replicas: []kv.ReplicaDescriptor{{NodeID: 1, ReplicaID: 1}, {NodeID: 2, ReplicaID: 2}, {NodeID: 3, ReplicaID: 3}},
		}
	}
	return s
}

func toKeys(ss []string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
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

// Execute evaluates req on range rangeID (LocalStore).
func (s *memStore) Execute(ctx context.Context, rangeID uint64, req *kv.Request) (*kv.Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	desc, ok := s.ranges[rangeID]
	if !ok {
		return nil, &kv.RangeNotFoundError{RangeID: rangeID}
	}
	s.counts[requestKind(req)]++
	if kv.IsReadOnly(req) {
		ts := kv.Timestamp(0)
		switch {
		case req.Get != nil:
			ts = req.Get.ReadTS
		case req.Scan != nil:
			ts = req.Scan.ReadTS
		case req.ValidateReads != nil:
			ts = req.ValidateReads.To
		}
		resp, err := kv.EvaluateReadOnly(s.eng.DB(), desc, req)
		if err == nil || kv.IsRequestError(err) {
			var outside *kv.KeyOutOfRangeError
			if !errors.As(err, &outside) {
				s.maxReadTS[rangeID] = max(s.maxReadTS[rangeID], ts)
			}
		}
		return resp, err
	}
	if req.OnePhaseCommit != nil {
		c := *req.OnePhaseCommit
		c.CommitTS = max(c.CommitTS, s.maxReadTS[rangeID]+1)
		req = &kv.Request{OnePhaseCommit: &c}
	}
	b := s.eng.NewBatch()
	defer func() { _ = b.Close() }()
	resp, err := kv.Evaluate(b, desc, req)
	if err != nil {
		return nil, err
	}
	if err := s.eng.Commit(b, false); err != nil {
		return nil, err
	}
	return resp, nil
}

// LookupRange implements RangeDirectory.
func (s *memStore) LookupRange(ctx context.Context, key []byte) (*kv.RangeDescriptor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.ranges {
		if d.ContainsKey(key) {
			return d.Clone(), nil
		}
	}
	return nil, fmt.Errorf("no range holds %q", key)
}

// split cuts the range holding key at key; the left keeps its ID.
func (s *memStore) split(key string) (left, right *kv.RangeDescriptor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := []byte(key)
	for _, d := range s.ranges {
		if d.ContainsKey(k) && !bytes.Equal(d.StartKey, k) {
			s.nextID++
			r := d.Clone()
			r.RangeID, r.StartKey, r.Generation = s.nextID, k, d.Generation+1
			l := d.Clone()
			l.EndKey, l.Generation = k, d.Generation+1
			s.ranges[l.RangeID], s.ranges[r.RangeID] = l, r
			s.maxReadTS[r.RangeID] = s.maxReadTS[l.RangeID]
			return l.Clone(), r.Clone()
		}
	}
	return nil, nil
}

func (s *memStore) count(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[kind]
}

func (s *memStore) resetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.counts)
}

// rangeIDs returns the range IDs in key order.
func (s *memStore) descriptors() []*kv.RangeDescriptor {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*kv.RangeDescriptor, 0, len(s.ranges))
	for _, d := range s.ranges {
		out = append(out, d.Clone())
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].StartKey, out[j].StartKey) < 0 })
	return out
}

// newTestDB returns a DB over a memStore split at splitKeys.
func newTestDB(t testing.TB, cfg DBConfig, splitKeys ...string) (*DB, *memStore) {
	t.Helper()
	s := newMemStore(t, splitKeys...)
	if cfg.Sender == nil {
		cfg.Sender = NewLocalStoreSender(LocalStoreSenderConfig{Store: s, Directory: s})
	}
	if cfg.Clock == nil {
		cfg.Clock = NewLocalClock(0)
	}
	db := NewDB(cfg)
	t.Cleanup(db.Close)
	return db, s
}
