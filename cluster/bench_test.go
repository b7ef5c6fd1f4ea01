package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/kv"
)

// BenchmarkTSOClientParallel measures GetTimestamp through the batching
// client and the gRPC service under parallel callers.
func BenchmarkTSOClientParallel(b *testing.B) {
	n := startTSONodeB(b)
	tc := NewTSOClient(connectTest(b), TSOClientConfig{})
	defer tc.Close()
	ctx := testCtx(b, 10*time.Minute)
	_ = n
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := tc.GetTimestamp(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	s := tc.Stats()
	b.ReportMetric(float64(s.Requests)/float64(max(s.RPCs, 1)), "calls/rpc")
}

// BenchmarkTSOServerLocal measures the leader's in-memory allocation.
func BenchmarkTSOServerLocal(b *testing.B) {
	n := startTSONodeB(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := n.srv.GetTimestamps(1); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLookupRange(b *testing.B) {
	c := connectTest(b)
	ctx := testCtx(b, time.Minute)
	var descs []*kv.RangeDescriptor
	prev := []byte{}
	for i := range 100 {
		end := fmt.Appendf(nil, "k%04d", (i+1)*100)
		if i == 99 {
			end = kv.KeyMax
		}
		descs = append(descs, &kv.RangeDescriptor{RangeID: uint64(i + 1), StartKey: prev, EndKey: end, Generation: 1})
		prev = end
	}
	if err := c.PublishRanges(ctx, descs...); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := c.LookupRange(ctx, fmt.Appendf(nil, "k%04d", i%10000)); err != nil {
			b.Fatal(err)
		}
		i += 37
	}
}

func BenchmarkIDAllocatorBlock100(b *testing.B) {
	c := connectTest(b)
	alloc, err := NewIDAllocator(c, IDKindTable, 100)
	if err != nil {
		b.Fatal(err)
	}
	ctx := testCtx(b, time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := alloc.Allocate(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
