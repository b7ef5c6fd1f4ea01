package raftgroup

import (
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/quorumdb/quorumdb/kv"
)

func openMemEngine(t testing.TB) *kv.Engine {
	t.Helper()
	eng, err := kv.Open("", kv.EngineOptions{InMemory: true, CacheSize: 1 << 20, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	return eng
}

func testEntries(lo, hi, term uint64) []*raftpb.Entry {
	var out []*raftpb.Entry
	for i := lo; i < hi; i++ {
		out = append(out, &raftpb.Entry{Index: new(i), Term: new(term), Data: []byte("payload-payload-payload")})
	}
	return out
}

func newTestLogStorage(t *testing.T, eng *kv.Engine, cacheLimit int) *logStorage {
	t.Helper()
	desc := testDescriptor(7, 1, 2, 3)
	b := eng.NewWriteBatch()
	if err := writeInitialState(b, desc, 1, &raftpb.HardState{}); err != nil {
		t.Fatal(err)
	}
	if err := eng.Commit(b, false); err != nil {
		t.Fatal(err)
	}
	ps, err := loadPersistedState(eng.DB(), 7)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newLogStorage(eng, 7, ps, cacheLimit, new(atomic.Int64), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func appendDurably(t *testing.T, eng *kv.Engine, s *logStorage, ents []*raftpb.Entry) {
	t.Helper()
	b := eng.NewWriteBatch()
	if err := s.writeAppend(b, ents); err != nil {
		t.Fatal(err)
	}
	if err := eng.Commit(b, true); err != nil {
		t.Fatal(err)
	}
	s.appended(ents)
}

func TestLogStorageSyntheticInitialState(t *testing.T) {
	eng := openMemEngine(t)
	s := newTestLogStorage(t, eng, 1<<20)
	hs, cs, err := s.InitialState()
	if err != nil || hs.GetTerm() != initialLogTerm || hs.GetCommit() != initialLogIndex {
		t.Fatalf("hard state %v err %v", hs, err)
	}
	if len(cs.GetVoters()) != 3 {
		t.Fatalf("conf state %v", cs)
	}
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first != initialLogIndex+1 || last != initialLogIndex {
		t.Fatalf("first %d last %d", first, last)
	}
	if term, err := s.Term(initialLogIndex); err != nil || term != initialLogTerm {
		t.Fatalf("term of truncated index: %d %v", term, err)
	}
	if _, err := s.Term(initialLogIndex - 1); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("want ErrCompacted, got %v", err)
	}
	if _, err := s.Entries(initialLogIndex, initialLogIndex+1, 1<<20); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("want ErrCompacted, got %v", err)
	}
	snap, err := s.Snapshot()
	if err != nil || snap.GetMetadata().GetIndex() != initialLogIndex || snap.GetMetadata().GetTerm() != initialLogTerm {
		t.Fatalf("snapshot %v %v", snap, err)
	}
}

func TestLogStorageEntriesFromCacheAndPebble(t *testing.T) {
	for _, cacheLimit := range []int{1 << 20, 1} { // everything cached; only the last entry cached
		eng := openMemEngine(t)
		s := newTestLogStorage(t, eng, cacheLimit)
		appendDurably(t, eng, s, testEntries(11, 31, 6))
		ents, err := s.Entries(11, 31, 1<<20)
		if err != nil || len(ents) != 20 || ents[0].GetIndex() != 11 || ents[19].GetIndex() != 30 {
			t.Fatalf("cache %d: entries %d err %v", cacheLimit, len(ents), err)
		}
		// maxSize returns at least one entry, then stops at the limit.
		if ents, _ := s.Entries(11, 31, 1); len(ents) != 1 {
			t.Fatalf("cache %d: maxSize 1 gave %d entries", cacheLimit, len(ents))
		}
		if _, err := s.Entries(11, 32, 1<<20); !errors.Is(err, raft.ErrUnavailable) {
			t.Fatalf("cache %d: past the end: %v", cacheLimit, err)
		}
		if term, err := s.Term(20); err != nil || term != 6 {
			t.Fatalf("cache %d: term(20) %d %v", cacheLimit, term, err)
		}
		if _, err := s.Term(31); !errors.Is(err, raft.ErrUnavailable) {
			t.Fatalf("cache %d: term(31): %v", cacheLimit, err)
		}
		// A new leader overwrites the suffix from 25 with a shorter log.
		appendDurably(t, eng, s, testEntries(25, 27, 7))
		if last, _ := s.LastIndex(); last != 26 {
			t.Fatalf("cache %d: last %d after overwrite", cacheLimit, last)
		}
		ents, err = s.Entries(20, 27, 1<<20)
		if err != nil || len(ents) != 7 || ents[5].GetTerm() != 7 || ents[4].GetTerm() != 6 {
			t.Fatalf("cache %d: after overwrite: %v %v", cacheLimit, ents, err)
		}
		// The overwritten entries are gone from pebble too: a reload agrees.
		ps, err := loadPersistedState(eng.DB(), 7)
		if err != nil {
			t.Fatal(err)
		}
		reloaded, err := newLogStorage(eng, 7, ps, cacheLimit, new(atomic.Int64), 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		if last, _ := reloaded.LastIndex(); last != 26 {
			t.Fatalf("cache %d: reloaded last %d", cacheLimit, last)
		}
		if _, err := reloaded.Entries(11, 27, 1<<20); err != nil {
			t.Fatalf("cache %d: reloaded entries: %v", cacheLimit, err)
		}
	}
}

func TestLogStorageTruncation(t *testing.T) {
	eng := openMemEngine(t)
	s := newTestLogStorage(t, eng, 1<<20)
	appendDurably(t, eng, s, testEntries(11, 41, 6))
	b := eng.NewWriteBatch()
	if err := s.writeTruncate(b, 30, 6); err != nil {
		t.Fatal(err)
	}
	if err := eng.Commit(b, false); err != nil {
		t.Fatal(err)
	}
	s.truncatedTo(30, 6)
	if first, _ := s.FirstIndex(); first != 31 {
		t.Fatalf("first %d", first)
	}
	if _, err := s.Entries(30, 35, 1<<20); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("want ErrCompacted: %v", err)
	}
	if term, err := s.Term(30); err != nil || term != 6 {
		t.Fatalf("term at the truncated index: %d %v", term, err)
	}
	ps, err := loadPersistedState(eng.DB(), 7)
	if err != nil {
		t.Fatal(err)
	}
	if ps.Truncated.Index != 30 {
		t.Fatalf("persisted truncated state %+v", ps.Truncated)
	}
	reloaded, err := newLogStorage(eng, 7, ps, 1<<20, new(atomic.Int64), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	ents, err := reloaded.Entries(31, 41, 1<<20)
	if err != nil || len(ents) != 10 {
		t.Fatalf("reloaded entries %d %v", len(ents), err)
	}
}

func TestEnvelopeRoundTripAndRejectsGarbage(t *testing.T) {
	b := encodeEnvelope(kindSplit, 42, splitCommand{SplitKey: []byte("m"), NewRangeID: 9}.encode())
	kind, id, payload, err := decodeEnvelope(b)
	if err != nil || kind != kindSplit || id != 42 {
		t.Fatalf("%v %v %v", kind, id, err)
	}
	cmd, err := decodeSplitCommand(payload)
	if err != nil || string(cmd.SplitKey) != "m" || cmd.NewRangeID != 9 {
		t.Fatalf("%+v %v", cmd, err)
	}
	for _, bad := range [][]byte{nil, {1, 2}, append([]byte{99}, make([]byte, 8)...)} {
		if _, _, _, err := decodeEnvelope(bad); err == nil {
			t.Fatalf("decoded garbage %x", bad)
		}
	}
	if _, err := decodeSplitCommand([]byte{1}); err == nil {
		t.Fatal("decoded a short split command")
	}
}

func TestLogStorageCacheBudgetIsStoreWide(t *testing.T) {
	eng := openMemEngine(t)
	total := new(atomic.Int64)
	mk := func(rangeID uint64) *logStorage {
		desc := testDescriptor(rangeID, 1)
		b := eng.NewWriteBatch()
		if err := writeInitialState(b, desc, 1, &raftpb.HardState{}); err != nil {
			t.Fatal(err)
		}
		if err := eng.Commit(b, false); err != nil {
			t.Fatal(err)
		}
		ps, err := loadPersistedState(eng.DB(), rangeID)
		if err != nil {
			t.Fatal(err)
		}
		s, err := newLogStorage(eng, rangeID, ps, 1<<20, total, 2000)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := mk(1), mk(2)
	appendDurably(t, eng, a, testEntries(11, 41, 6))
	appendDurably(t, eng, b, testEntries(11, 41, 6))
	if total.Load() > 2000+200 {
		t.Fatalf("caches hold %d bytes, budget 2000", total.Load())
	}
	for _, s := range []*logStorage{a, b} {
		if ents, err := s.Entries(11, 41, 1<<20); err != nil || len(ents) != 30 {
			t.Fatalf("entries beyond the cache: %d %v", len(ents), err)
		}
	}
	a.dropCache()
	b.dropCache()
	if total.Load() != 0 {
		t.Fatalf("%d bytes accounted after dropping every cache", total.Load())
	}
}
