package raftgroup

import (
	"slices"
	"testing"
	"time"
)

func TestSchedulerOwnsEachRangeOnceAndKeepsSignals(t *testing.T) {
	s := newScheduler()
	s.enqueue(1)
	s.enqueue(2)
	s.enqueue(1) // already queued: no duplicate
	got := s.next(10, nil)
	if !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("first batch %v", got)
	}
	// Signalled while owned: queued again on release, not handed out twice.
	s.enqueue(2)
	s.enqueueMany([]uint64{2, 3})
	if b := s.next(10, nil); !slices.Equal(b, []uint64{3}) {
		t.Fatalf("while 1 and 2 are owned: %v", b)
	}
	s.done([]uint64{3})
	s.done(got)
	if b := s.next(10, nil); !slices.Equal(b, []uint64{2}) {
		t.Fatalf("after release: %v", b)
	}
	s.done([]uint64{2})
	// Batches are bounded.
	s.enqueueMany([]uint64{4, 5, 6})
	if b := s.next(2, nil); len(b) != 2 {
		t.Fatalf("bounded batch %v", b)
	}
	// stop wakes a waiting worker with nil.
	s2 := newScheduler()
	done := make(chan []uint64)
	go func() { done <- s2.next(1, nil) }()
	s2.stop()
	select {
	case b := <-done:
		if b != nil {
			t.Fatalf("after stop: %v", b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("next did not return after stop")
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var m storeMetrics
	for i := 0; i < 90; i++ {
		m.observeFsync(100 * time.Microsecond)
	}
	for i := 0; i < 10; i++ {
		m.observeFsync(10 * time.Millisecond)
	}
	h := m.fsync
	if h.Count != 100 || m.fsyncs.Load() != 100 {
		t.Fatalf("count %d", h.Count)
	}
	if p50 := h.Quantile(0.5); p50 < 100*time.Microsecond || p50 > 256*time.Microsecond {
		t.Fatalf("p50 %v", p50)
	}
	if p99 := h.Quantile(0.99); p99 < 10*time.Millisecond || p99 > 20*time.Millisecond {
		t.Fatalf("p99 %v", p99)
	}
}
