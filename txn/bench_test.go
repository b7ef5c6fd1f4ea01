package txn

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// Benchmarks on a real single-node store (in-memory engine, single-voter
// ranges): the coordinator's cost plus one Raft round per write command.

func BenchmarkCommit1PC(b *testing.B) {
	db, _ := newTestDB(b, DBConfig{}, "m")
	ctx := context.Background()
	val := make([]byte, 100)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		key := []byte(fmt.Sprintf("a%08d", i%1000))
		if err := db.Run(ctx, TxnOptions{}, func(ctx context.Context, tx *Txn) error {
			return tx.Put(ctx, key, val)
		}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCommit1PCParallel(b *testing.B) {
	db, _ := newTestDB(b, DBConfig{}, "m")
	ctx := context.Background()
	val := make([]byte, 100)
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := []byte(fmt.Sprintf("a%08d", seq.Add(1)))
			if err := db.Run(ctx, TxnOptions{}, func(ctx context.Context, tx *Txn) error {
				return tx.Put(ctx, key, val)
			}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkCommit2PCTwoRanges(b *testing.B) {
	db, _ := newTestDB(b, DBConfig{}, "m")
	ctx := context.Background()
	val := make([]byte, 100)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k1 := []byte(fmt.Sprintf("a%08d", i%1000))
		k2 := []byte(fmt.Sprintf("x%08d", i%1000))
		if err := db.Run(ctx, TxnOptions{}, func(ctx context.Context, tx *Txn) error {
			if err := tx.Put(ctx, k1, val); err != nil {
				return err
			}
			return tx.Put(ctx, k2, val)
		}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadOnlyTxnGet(b *testing.B) {
	db, _ := newTestDB(b, DBConfig{}, "m")
	ctx := context.Background()
	for i := 0; i < 1000; i++ {
		k := []byte(fmt.Sprintf("a%08d", i))
		if err := db.Run(ctx, TxnOptions{}, func(ctx context.Context, tx *Txn) error {
			return tx.Put(ctx, k, make([]byte, 100))
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tx, err := db.Begin(ctx, TxnOptions{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		if _, ok, err := tx.Get(ctx, []byte(fmt.Sprintf("a%08d", i%1000))); err != nil || !ok {
			b.Fatalf("get: %v %v", ok, err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadOnlyTxnScan100(b *testing.B) {
	db, _ := newTestDB(b, DBConfig{}, "m")
	ctx := context.Background()
	if err := db.Run(ctx, TxnOptions{}, func(ctx context.Context, tx *Txn) error {
		for i := 0; i < 1000; i++ {
			if err := tx.Put(ctx, []byte(fmt.Sprintf("a%08d", i)), make([]byte, 100)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tx, _ := db.Begin(ctx, TxnOptions{ReadOnly: true})
		start := []byte(fmt.Sprintf("a%08d", (i*100)%900))
		rows, err := tx.Scan(ctx, start, nil, 100, false)
		if err != nil || len(rows) != 100 {
			b.Fatalf("scan: %d rows, %v", len(rows), err)
		}
		_ = tx.Commit(ctx)
	}
}
