package kv

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// Benchmarks run on a real on-disk pebble in b.TempDir(); batches commit
// without sync (as Raft apply does), so they measure the engine, not fsync.

const benchRows = 10000

func benchKey(i int) []byte { return fmt.Appendf(nil, "t%08d", i) }

func openBenchEngine(b *testing.B) *Engine {
	b.Helper()
	e, err := Open(b.TempDir(), EngineOptions{CacheSize: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Close() })
	return e
}

func benchDesc() *RangeDescriptor {
	return &RangeDescriptor{RangeID: 1, StartKey: KeyMin, EndKey: KeyMax}
}

// loadBenchRows writes benchRows committed rows of 100 bytes with 1PC
// commands of 100 keys each, then flushes them to an sstable.
func loadBenchRows(b *testing.B, e *Engine) {
	b.Helper()
	value := make([]byte, 100)
	for i := 0; i < benchRows; i += 100 {
		muts := make([]Mutation, 0, 100)
		for j := i; j < i+100; j++ {
			muts = append(muts, Mutation{Op: OpPut, Key: benchKey(j), Value: value})
		}
		batch := e.NewBatch()
		ts := Timestamp(10 + 2*i)
		if _, err := Evaluate(batch, benchDesc(), &Request{OnePhaseCommit: &OnePhaseCommitRequest{Mutations: muts, StartTS: ts, CommitTS: ts + 1}}); err != nil {
			b.Fatal(err)
		}
		if err := e.Commit(batch, false); err != nil {
			b.Fatal(err)
		}
	}
	if err := e.DB().Flush(); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkGet(b *testing.B) {
	e := openBenchEngine(b)
	loadBenchRows(b, e)
	desc := benchDesc()
	rng := rand.New(rand.NewPCG(1, 1))
	readTS := Timestamp(1 << 40)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := EvaluateReadOnly(e.DB(), desc, &Request{Get: &GetRequest{Key: benchKey(rng.IntN(benchRows)), ReadTS: readTS}})
		if err != nil || !resp.Get.Found {
			b.Fatalf("get: %v", err)
		}
	}
}

func BenchmarkScan100(b *testing.B) {
	e := openBenchEngine(b)
	loadBenchRows(b, e)
	desc := benchDesc()
	rng := rand.New(rand.NewPCG(1, 1))
	readTS := Timestamp(1 << 40)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := benchKey(rng.IntN(benchRows - 100))
		resp, err := EvaluateReadOnly(e.DB(), desc, &Request{Scan: &ScanRequest{Start: start, End: KeyMax, ReadTS: readTS, Limit: 100}})
		if err != nil || len(resp.Scan.Rows) != 100 {
			b.Fatalf("scan: %v", err)
		}
	}
}

func BenchmarkPrewriteCommit(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			e := openBenchEngine(b)
			desc := benchDesc()
			value := make([]byte, 100)
			keys := make([][]byte, n)
			muts := make([]Mutation, n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := range keys {
					keys[j] = benchKey(i*n + j)
					muts[j] = Mutation{Op: OpPut, Key: keys[j], Value: value}
				}
				start := Timestamp(10 + 2*i)
				batch := e.NewBatch()
				if _, err := Evaluate(batch, desc, &Request{Prewrite: &PrewriteRequest{Mutations: muts, Primary: keys[0], StartTS: start, LockTTL: 3000}}); err != nil {
					b.Fatal(err)
				}
				if err := e.Commit(batch, false); err != nil {
					b.Fatal(err)
				}
				_ = batch.Close()
				batch = e.NewBatch()
				if _, err := Evaluate(batch, desc, &Request{Commit: &CommitRequest{Keys: keys, StartTS: start, CommitTS: start + 1}}); err != nil {
					b.Fatal(err)
				}
				if err := e.Commit(batch, false); err != nil {
					b.Fatal(err)
				}
				_ = batch.Close()
			}
		})
	}
}

// BenchmarkPrewriteCommitReusedKeys prewrites and commits 2 keys per
// transaction cycling over 1000 keys, as txn's BenchmarkCommit2PCTwoRanges
// does: every commit deletes a lock, so the lock family fills with deletion
// tombstones around the keys being looked up. A lock lookup must stay
// independent of how many there are.
func BenchmarkPrewriteCommitReusedKeys(b *testing.B) {
	e := openBenchEngine(b)
	desc := benchDesc()
	value := make([]byte, 100)
	const distinct = 1000
	keys := make([][]byte, 2)
	muts := make([]Mutation, 2)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range keys {
			keys[j] = benchKey(j*distinct + i%distinct)
			muts[j] = Mutation{Op: OpPut, Key: keys[j], Value: value}
		}
		start := Timestamp(10 + 2*i)
		for _, req := range []*Request{
			{Prewrite: &PrewriteRequest{Mutations: muts, Primary: keys[0], StartTS: start, LockTTL: 3000}},
			{Commit: &CommitRequest{Keys: keys, StartTS: start, CommitTS: start + 1}},
		} {
			batch := e.NewBatch()
			if _, err := Evaluate(batch, desc, req); err != nil {
				b.Fatal(err)
			}
			if err := e.Commit(batch, false); err != nil {
				b.Fatal(err)
			}
			_ = batch.Close()
		}
	}
}
