package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/quorumdb/quorumdb/kv"
	"github.com/quorumdb/quorumdb/txn"
)

// localKV is the interim store for the transaction acceptance tests until
// the in-process cluster helper exists: a real in-memory kv.Engine cut into
// several ranges, every request evaluated by kv.Evaluate under one mutex (as
// atomic as a Raft apply), playing the range leader's part of the 1PC hazard
// (commit_ts of a 1PC raised above the highest read or validation timestamp
// the range has served). Several txn.DBs, each with its own range cache,
// stand for coordinators on different nodes; they share one clock as they
// would share the timestamp oracle.
type localKV struct {
	mu        sync.Mutex
	eng       *kv.Engine
	ranges    map[uint64]*kv.RangeDescriptor
	maxReadTS map[uint64]kv.Timestamp
	// before1PC, when set, runs before a 1PC command is evaluated (outside
	// the mutex), so a test can order other work before its apply.
	before1PC func(req *kvOnePhase)
}

func newLocalKV(t testing.TB, splitKeys ...string) *localKV {
	t.Helper()
	eng, err := kv.Open("", kv.EngineOptions{InMemory: true, CacheSize: 8 << 20})
	if err != nil {
		t.Fatalf("open engine: %v", err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	s := &localKV{eng: eng, ranges: make(map[uint64]*kv.RangeDescriptor), maxReadTS: make(map[uint64]kv.Timestamp)}
	bounds := [][]byte{kv.KeyMin}
	for _, k := range splitKeys {
		bounds = append(bounds, []byte(k))
	}
	bounds = append(bounds, kv.KeyMax)
	for i := 0; i+1 < len(bounds); i++ {
		id := uint64(i + 1)
		s.ranges[id] = &kv.RangeDescriptor{RangeID: id, StartKey: bounds[i], EndKey: bounds[i+1], Generation: 1,
			Replicas: []kv.ReplicaDescriptor{{NodeID: 1, ReplicaID: 1}}}
	}
	return s
}

func (s *localKV) Execute(ctx context.Context, rangeID uint64, req *kv.Request) (*kv.Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if req.OnePhaseCommit != nil {
		s.mu.Lock()
		hook := s.before1PC
		s.mu.Unlock()
		if hook != nil {
			hook(req.OnePhaseCommit)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	desc, ok := s.ranges[rangeID]
	if !ok {
		return nil, &kv.RangeNotFoundError{RangeID: rangeID}
	}
	if kv.IsReadOnly(req) {
		var ts kv.Timestamp
		switch {
		case req.Get != nil:
			ts = req.Get.ReadTS
		case req.Scan != nil:
			ts = req.Scan.ReadTS
		case req.ValidateReads != nil:
			ts = req.ValidateReads.To
		}
		resp, err := kv.EvaluateReadOnly(s.eng.DB(), desc, req)
		var outside *kv.KeyOutOfRangeError
		if !errors.As(err, &outside) {
			s.maxReadTS[rangeID] = max(s.maxReadTS[rangeID], ts)
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

func (s *localKV) LookupRange(ctx context.Context, key []byte) (*kv.RangeDescriptor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.ranges {
		if d.ContainsKey(key) {
			return d.Clone(), nil
		}
	}
	return nil, fmt.Errorf("no range holds %q", key)
}

// rangeOf returns the ID of the range holding key.
func (s *localKV) rangeOf(key string) uint64 {
	d, _ := s.LookupRange(context.Background(), []byte(key))
	if d == nil {
		return 0
	}
	return d.RangeID
}

// coordinators returns n DBs over s ("nodes"), sharing one clock (call it
// once per store: coordinators with different clocks do not order their
// timestamps).
func (s *localKV) coordinators(t testing.TB, n int, cfg txn.DBConfig) []*txn.DB {
	t.Helper()
	clock := txn.NewLocalClock(0)
	out := make([]*txn.DB, n)
	for i := range out {
		c := cfg
		c.Sender = txn.NewLocalStoreSender(txn.LocalStoreSenderConfig{Store: s, Directory: s})
		c.Clock = clock
		out[i] = txn.NewDB(c)
		t.Cleanup(out[i].Close)
	}
	return out
}

// barrier lets n goroutines wait until all have arrived (bounded).
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

var _ = bytes.Compare

type kvOnePhase = kv.OnePhaseCommitRequest
