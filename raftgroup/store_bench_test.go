package raftgroup

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/kv"
)

// BenchmarkProposals measures replicated 1PC writes on a 3-node in-process
// cluster (real pebble on disk, synced log, the in-process network):
// proposals/s, p50/p99 commit latency as seen by Execute, and the fsync
// batching ratio of the leader's node (commits per fsync).
func BenchmarkProposals(b *testing.B) {
	for _, bc := range []struct{ ranges, clients int }{
		{1, 1}, {1, 64}, {1000, 64}, {1000, 256},
	} {
		b.Run(fmt.Sprintf("ranges=%d/clients=%d", bc.ranges, bc.clients), func(b *testing.B) {
			benchProposals(b, bc.ranges, bc.clients)
		})
	}
}

func benchCluster(b *testing.B, ranges int) *testCluster {
	c := newTestCluster(b, 3, func(cfg *Config) {
		// The production defaults, not the tests' fast ticks.
		cfg.TickInterval = 100 * time.Millisecond
		cfg.ElectionTicks, cfg.HeartbeatTicks = 15, 3
		cfg.RequestTimeout = 10 * time.Second
	})
	benchBootstrap(b, c, ranges)
	if ranges <= 1000 {
		for i := 1; i <= ranges; i++ {
			c.waitLeader(uint64(i), 60*time.Second)
		}
	}
	return c
}

func benchBootstrap(b testing.TB, c *testCluster, ranges int) {
	var wg sync.WaitGroup
	for _, node := range []uint64{1, 2, 3} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var descs []*kv.RangeDescriptor
			for i := 1; i <= ranges; i++ {
				d := testDescriptor(uint64(i), 1, 2, 3)
				d.StartKey, d.EndKey = []byte(fmt.Sprintf("r%05d", i)), []byte(fmt.Sprintf("r%05d", i+1))
				descs = append(descs, d)
			}
			if err := c.store(node).BootstrapRanges(context.Background(), descs); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
}

func benchProposals(b *testing.B, ranges, clients int) {
	c := benchCluster(b, ranges)
	value := make([]byte, 256)
	latencies := make([]time.Duration, b.N)
	var next atomic.Int64
	before := map[uint64]Metrics{}
	for _, id := range c.liveIDs() {
		before[id] = c.store(id).Metrics()
	}
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				rangeID := uint64(i%int64(ranges)) + 1
				key := []byte(fmt.Sprintf("r%05d/%d", rangeID, i))
				t0 := time.Now()
				if _, err := c.put(ctx, rangeID, key, value); err != nil {
					b.Error(err)
					return
				}
				latencies[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(latencies)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "proposals/s")
	b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds()), "p99-µs")
	var commits, fsyncs uint64
	for _, id := range c.liveIDs() {
		m := c.store(id).Metrics()
		commits += m.Commits - before[id].Commits
		fsyncs += m.Fsyncs - before[id].Fsyncs
	}
	b.ReportMetric(float64(fsyncs)/elapsed.Seconds()/3, "fsyncs/s/node")
	b.ReportMetric(float64(commits)/elapsed.Seconds()/3, "commits/s/node")
	if fsyncs > 0 {
		b.ReportMetric(float64(commits)/float64(fsyncs), "commits/fsync")
	}
}

// BenchmarkQuiescedRangesCPU reports the CPU a 3-node cluster spends per
// second of wall time hosting idle ranges once they have quiesced.
func BenchmarkQuiescedRangesCPU(b *testing.B) {
	for _, ranges := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("ranges=%d", ranges), func(b *testing.B) {
			c := benchCluster(b, ranges)
			waitFor(b, 5*time.Minute, "ranges to quiesce", func() bool {
				for _, id := range c.liveIDs() {
					if m := c.store(id).Metrics(); m.Quiesced != m.Replicas {
						return false
					}
				}
				return true
			})
			b.ResetTimer()
			cpu0 := processCPU()
			t0 := time.Now()
			for i := 0; i < b.N; i++ {
				// One idle tick interval per iteration.
				time.Sleep(100 * time.Millisecond)
			}
			wall := time.Since(t0)
			b.StopTimer()
			b.ReportMetric(float64(processCPU()-cpu0)/float64(wall)*100, "cpu-%")
		})
	}
}

// processCPU is the user+system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPointRead compares one Get served three ways on a 3-node
// cluster in one process: by the leader after a ReadIndex round (a current
// read), and at a closed timestamp by a follower or by the leader from its
// own state (AS OF reads).
func BenchmarkPointRead(b *testing.B) {
	c := benchCluster(b, 1)
	ctx := context.Background()
	if _, err := c.put(ctx, 1, []byte("r00001/k"), []byte("v")); err != nil {
		b.Fatal(err)
	}
	leader := c.waitLeader(1, 10*time.Second)
	follower := leader%3 + 1
	closedAt := c.now()
	for _, id := range []uint64{leader, follower} {
		if err := c.store(id).WaitClosed(ctx, 1, closedAt); err != nil {
			b.Fatal(err)
		}
	}
	for _, bc := range []struct {
		name string
		node uint64
		ts   func() uint64
	}{
		{"leader-readindex", leader, c.now},
		{"follower-closed", follower, func() uint64 { return closedAt }},
		{"leader-closed", leader, func() uint64 { return closedAt }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := c.store(bc.node)
			for i := 0; i < b.N; i++ {
				resp, err := s.Execute(ctx, 1, &kv.Request{Get: &kv.GetRequest{Key: []byte("r00001/k"), ReadTS: bc.ts()}})
				if err != nil || !resp.Get.Found {
					b.Fatalf("read: %+v %v", resp, err)
				}
			}
		})
	}
}
