package cluster

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestSchemaVersionBumpWatchWait(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	c := connectTest(t)
	if v, err := c.SchemaVersion(ctx); err != nil || v != 0 {
		t.Fatalf("initial version %d, %v", v, err)
	}
	watch := c.WatchSchemaVersion(ctx)
	waited := make(chan uint64, 1)
	go func() {
		v, err := c.WaitSchemaVersion(ctx, 5)
		if err != nil {
			t.Error(err)
		}
		waited <- v
	}()
	// Concurrent bumps each get their own version.
	var mu sync.Mutex
	var got []uint64
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			v, err := c.BumpSchemaVersion(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			got = append(got, v)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(got)
	if !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("bumped versions %v", got)
	}
	select {
	case v := <-waited:
		if v < 5 {
			t.Fatalf("WaitSchemaVersion(5) returned %d", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitSchemaVersion(5) did not return")
	}
	// The watch delivers increasing versions and ends at 5.
	var last uint64
	for last < 5 {
		select {
		case v := <-watch:
			if v <= last {
				t.Fatalf("watch went from %d to %d", last, v)
			}
			last = v
		case <-time.After(10 * time.Second):
			t.Fatalf("watch stuck at %d", last)
		}
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := c.WaitSchemaVersion(short, 99); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting for a version never reached: %v", err)
	}
}

func TestWaitForSchemaAcks(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	c := connectTest(t)
	n1, err := c.Register(ctx, NodeInfo{RPCAddr: "127.0.0.1:7301"})
	if err != nil {
		t.Fatal(err)
	}
	n2, err := c.Register(ctx, NodeInfo{RPCAddr: "127.0.0.1:7302"})
	if err != nil {
		t.Fatal(err)
	}
	n3, err := c.Register(ctx, NodeInfo{RPCAddr: "127.0.0.1:7303"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = n1.Deregister(ctx); _ = n2.Deregister(ctx) }()
	v, err := c.BumpSchemaVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := n1.AckSchemaVersion(ctx, v); err != nil {
		t.Fatal(err)
	}
	// n2 and n3 lag: a bounded wait names them.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err = c.WaitForSchemaAcks(short, v, nil)
	cancel()
	var lag *SchemaAckTimeoutError
	if !errors.As(err, &lag) || !slices.Equal(lag.Pending, []uint64{n2.ID(), n3.ID()}) {
		t.Fatalf("wait with lagging nodes: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.WaitForSchemaAcks(ctx, v, []uint64{n1.ID(), n2.ID(), n3.ID()}) }()
	if err := n2.AckSchemaVersion(ctx, v); err != nil {
		t.Fatal(err)
	}
	// n3 dies instead of acknowledging: it no longer blocks the DDL.
	if err := n3.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitForSchemaAcks did not return after every live node acknowledged")
	}
	// An ack never goes backwards.
	if err := n1.AckSchemaVersion(ctx, v-1); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitForSchemaAcks(ctx, v, nil); err != nil {
		t.Fatal(err)
	}
}
