package raftgroup

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/quorumdb/quorumdb/kv"
)

// logStorage is one replica's raft.Storage on the node's pebble DB. The log
// bounds live in memory (FirstIndex/LastIndex never touch pebble); recent
// entries are served from a bounded cache, older ones from pebble.
//
// The Ready loop writes entries and hard state to pebble itself (batched
// across ranges) and then calls appended/setHardState so the in-memory view
// follows what is durable. raft reads only entries it knows are stable.
type logStorage struct {
	rangeID uint64
	engine  *kv.Engine

	mu         sync.Mutex
	hardState  *raftpb.HardState
	applied    appliedState // mirrors the persisted applied state
	truncated  truncatedState
	lastIndex  uint64
	lastTerm   uint64
	cache      []*raftpb.Entry // contiguous, ends at lastIndex when non-empty
	cacheBytes int
	cacheLimit int
	// cacheTotal is the store-wide size of all entry caches; past
	// cacheBudget a replica that appends keeps only its newest entry.
	cacheTotal  *atomic.Int64
	cacheBudget int64
	// onSnapshot pins the data of a snapshot raft is about to send; set by
	// the replica, called on its owner worker.
	onSnapshot func(index uint64)
}

func newLogStorage(engine *kv.Engine, rangeID uint64, ps persistedState, cacheLimit int, cacheTotal *atomic.Int64, cacheBudget int64) (*logStorage, error) {
	s := &logStorage{
		rangeID:     rangeID,
		engine:      engine,
		hardState:   proto.Clone(ps.HardState).(*raftpb.HardState),
		applied:     ps.Applied,
		truncated:   ps.Truncated,
		cacheLimit:  cacheLimit,
		cacheTotal:  cacheTotal,
		cacheBudget: cacheBudget,
	}
	if err := s.loadLastIndex(); err != nil {
		return nil, err
	}
	return s, nil
}

// loadLastIndex finds the last log entry in pebble (or the truncated index
// when the log is empty).
func (s *logStorage) loadLastIndex() error {
	s.lastIndex, s.lastTerm = s.truncated.Index, s.truncated.Term
	prefix := kv.RaftLogPrefix(s.rangeID)
	it, err := s.engine.DB().NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: kv.PrefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("raftgroup: r%d: open log iterator: %w", s.rangeID, err)
	}
	defer it.Close()
	if it.Last() {
		e := &raftpb.Entry{}
		if err := proto.Unmarshal(it.Value(), e); err != nil {
			return fmt.Errorf("raftgroup: r%d: decode last log entry: %w", s.rangeID, err)
		}
		if e.GetIndex() > s.truncated.Index {
			s.lastIndex, s.lastTerm = e.GetIndex(), e.GetTerm()
		}
	}
	return it.Error()
}

// InitialState implements raft.Storage.
func (s *logStorage) InitialState() (*raftpb.HardState, *raftpb.ConfState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return proto.Clone(s.hardState).(*raftpb.HardState), proto.Clone(raftpb.EnsureConfState(s.applied.ConfState)).(*raftpb.ConfState), nil
}

// FirstIndex implements raft.Storage.
func (s *logStorage) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.truncated.Index + 1, nil
}

// LastIndex implements raft.Storage.
func (s *logStorage) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastIndex, nil
}

// Term implements raft.Storage.
func (s *logStorage) Term(i uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case i == s.truncated.Index:
		return s.truncated.Term, nil
	case i < s.truncated.Index:
		return 0, raft.ErrCompacted
	case i > s.lastIndex:
		return 0, raft.ErrUnavailable
	case i == s.lastIndex:
		return s.lastTerm, nil
	}
	if e := s.cached(i); e != nil {
		return e.GetTerm(), nil
	}
	e, err := s.readEntry(i)
	if err != nil {
		return 0, err
	}
	return e.GetTerm(), nil
}

// Entries implements raft.Storage.
func (s *logStorage) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lo <= s.truncated.Index {
		return nil, raft.ErrCompacted
	}
	if hi > s.lastIndex+1 || lo > hi {
		return nil, raft.ErrUnavailable
	}
	if lo == hi {
		return nil, nil
	}
	out := make([]*raftpb.Entry, 0, min(hi-lo, 64))
	var size uint64
	add := func(e *raftpb.Entry) bool {
		sz := uint64(proto.Size(e))
		if len(out) > 0 && size+sz > maxSize {
			return false
		}
		out = append(out, e)
		size += sz
		return true
	}
	if len(s.cache) > 0 && lo >= s.cache[0].GetIndex() {
		first := s.cache[0].GetIndex()
		for i := lo; i < hi; i++ {
			if !add(s.cache[i-first]) {
				break
			}
		}
		return out, nil
	}
	it, err := s.engine.DB().NewIter(&pebble.IterOptions{
		LowerBound: kv.RaftLogKey(s.rangeID, lo),
		UpperBound: kv.RaftLogKey(s.rangeID, hi),
	})
	if err != nil {
		return nil, fmt.Errorf("raftgroup: r%d: open log iterator: %w", s.rangeID, err)
	}
	defer it.Close()
	next := lo
	for valid := it.First(); valid; valid = it.Next() {
		e := &raftpb.Entry{}
		if err := proto.Unmarshal(it.Value(), e); err != nil {
			return nil, fmt.Errorf("raftgroup: r%d: decode log entry: %w", s.rangeID, err)
		}
		if e.GetIndex() != next {
			// A hole: the log was truncated under us or is damaged.
			return nil, raft.ErrUnavailable
		}
		if !add(e) {
			return out, nil
		}
		next++
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("raftgroup: r%d: read log: %w", s.rangeID, err)
	}
	if next != hi {
		return nil, raft.ErrUnavailable
	}
	return out, nil
}

// Snapshot implements raft.Storage: the metadata of a snapshot at the
// applied index. Its data is produced separately (snapshot_send.go) from a
// pebble snapshot taken at the same point, which is possible because the
// replica's applied state in pebble only changes while its owner holds it.
func (s *logStorage) Snapshot() (*raftpb.Snapshot, error) {
	s.mu.Lock()
	snap := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		Index:     new(s.applied.Index),
		Term:      new(s.applied.Term),
		ConfState: proto.Clone(raftpb.EnsureConfState(s.applied.ConfState)).(*raftpb.ConfState),
	}}
	onSnapshot := s.onSnapshot
	s.mu.Unlock()
	if onSnapshot != nil {
		onSnapshot(snap.GetMetadata().GetIndex())
	}
	return snap, nil
}

func (s *logStorage) cached(i uint64) *raftpb.Entry {
	if len(s.cache) == 0 {
		return nil
	}
	first := s.cache[0].GetIndex()
	if i < first || i > s.lastIndex {
		return nil
	}
	return s.cache[i-first]
}

func (s *logStorage) readEntry(i uint64) (*raftpb.Entry, error) {
	b, err := kv.GetRaw(s.engine.DB(), kv.RaftLogKey(s.rangeID, i))
	if err != nil {
		return nil, fmt.Errorf("raftgroup: r%d: read entry %d: %w", s.rangeID, i, err)
	}
	if b == nil {
		return nil, raft.ErrUnavailable
	}
	e := &raftpb.Entry{}
	if err := proto.Unmarshal(b, e); err != nil {
		return nil, fmt.Errorf("raftgroup: r%d: decode entry %d: %w", s.rangeID, i, err)
	}
	return e, nil
}

// writeAppend adds the writes for appending ents (replacing any conflicting
// suffix) to b. Call appended after b is durable.
func (s *logStorage) writeAppend(b *pebble.Batch, ents []*raftpb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	for _, e := range ents {
		v, err := proto.Marshal(e)
		if err != nil {
			return fmt.Errorf("raftgroup: r%d: marshal entry: %w", s.rangeID, err)
		}
		if err := b.Set(kv.RaftLogKey(s.rangeID, e.GetIndex()), v, nil); err != nil {
			return fmt.Errorf("raftgroup: r%d: write entry: %w", s.rangeID, err)
		}
	}
	s.mu.Lock()
	oldLast := s.lastIndex
	s.mu.Unlock()
	newLast := ents[len(ents)-1].GetIndex()
	if newLast < oldLast {
		if err := b.DeleteRange(kv.RaftLogKey(s.rangeID, newLast+1), kv.RaftLogKey(s.rangeID, oldLast+1), nil); err != nil {
			return fmt.Errorf("raftgroup: r%d: delete log suffix: %w", s.rangeID, err)
		}
	}
	return nil
}

// appended updates the in-memory log view after ents became durable.
func (s *logStorage) appended(ents []*raftpb.Entry) {
	if len(ents) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	first := ents[0].GetIndex()
	// Drop cached entries at and after first: they are being replaced.
	if len(s.cache) > 0 {
		cfirst := s.cache[0].GetIndex()
		switch {
		case first <= cfirst:
			s.dropCacheLocked()
		case first <= s.lastIndex:
			for _, e := range s.cache[first-cfirst:] {
				s.addCacheBytes(-proto.Size(e))
			}
			s.cache = s.cache[:first-cfirst]
		}
	}
	if len(s.cache) > 0 && s.cache[len(s.cache)-1].GetIndex()+1 != first {
		s.dropCacheLocked()
	}
	for _, e := range ents {
		s.cache = append(s.cache, e)
		s.addCacheBytes(proto.Size(e))
	}
	for len(s.cache) > 1 && (s.cacheBytes > s.cacheLimit || s.cacheTotal.Load() > s.cacheBudget) {
		s.addCacheBytes(-proto.Size(s.cache[0]))
		s.cache[0] = nil
		s.cache = s.cache[1:]
	}
	last := ents[len(ents)-1]
	s.lastIndex, s.lastTerm = last.GetIndex(), last.GetTerm()
}

func (s *logStorage) setHardState(hs *raftpb.HardState) {
	s.mu.Lock()
	s.hardState = proto.Clone(hs).(*raftpb.HardState)
	s.mu.Unlock()
}

func (s *logStorage) currentHardState() *raftpb.HardState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return proto.Clone(s.hardState).(*raftpb.HardState)
}

func (s *logStorage) setApplied(a appliedState) {
	s.mu.Lock()
	s.applied = a
	s.mu.Unlock()
}

func (s *logStorage) appliedState() appliedState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied
}

// bounds returns the first index, last index and truncated state.
func (s *logStorage) bounds() (first, last uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.truncated.Index + 1, s.lastIndex
}

// writeTruncate adds to b the removal of entries up to and including index.
// Call truncatedTo after b is committed.
func (s *logStorage) writeTruncate(b kv.Writer, index, term uint64) error {
	s.mu.Lock()
	first := s.truncated.Index + 1
	s.mu.Unlock()
	if index < first {
		return nil
	}
	if err := b.DeleteRange(kv.RaftLogKey(s.rangeID, first), kv.RaftLogKey(s.rangeID, index+1), nil); err != nil {
		return fmt.Errorf("raftgroup: r%d: truncate log: %w", s.rangeID, err)
	}
	if err := b.Set(kv.RaftTruncatedStateKey(s.rangeID), encodeTruncatedState(truncatedState{Index: index, Term: term}), nil); err != nil {
		return fmt.Errorf("raftgroup: r%d: write truncated state: %w", s.rangeID, err)
	}
	return nil
}

func (s *logStorage) truncatedTo(index, term uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if index <= s.truncated.Index {
		return
	}
	s.truncated = truncatedState{Index: index, Term: term}
	for len(s.cache) > 0 && s.cache[0].GetIndex() <= index {
		s.addCacheBytes(-proto.Size(s.cache[0]))
		s.cache[0] = nil
		s.cache = s.cache[1:]
	}
	if s.lastIndex < index {
		s.lastIndex, s.lastTerm = index, term
	}
}

// resetToSnapshot makes the log empty after index/term (a snapshot was
// applied; its ingest already rewrote the range-local state in pebble).
func (s *logStorage) resetToSnapshot(hs *raftpb.HardState, a appliedState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hardState = proto.Clone(hs).(*raftpb.HardState)
	s.applied = a
	s.truncated = truncatedState{Index: a.Index, Term: a.Term}
	s.lastIndex, s.lastTerm = a.Index, a.Term
	s.dropCacheLocked()
}

func (s *logStorage) addCacheBytes(n int) {
	s.cacheBytes += n
	s.cacheTotal.Add(int64(n))
}

func (s *logStorage) dropCacheLocked() {
	s.cacheTotal.Add(-int64(s.cacheBytes))
	s.cache, s.cacheBytes = nil, 0
}

// dropCache empties the entry cache (a quiesced range needs none; a
// destroyed one must give its bytes back to the store's budget).
func (s *logStorage) dropCache() {
	s.mu.Lock()
	s.dropCacheLocked()
	s.mu.Unlock()
}

var _ raft.Storage = (*logStorage)(nil)
