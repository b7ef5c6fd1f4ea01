package cluster

import (
	"errors"
	"testing"
	"time"
)

func TestGCSafePointOnlyMovesForward(t *testing.T) {
	ctx := testCtx(t, 10*time.Second)
	c := connectTest(t)
	if sp, err := c.GCSafePoint(ctx); err != nil || sp != 0 {
		t.Fatalf("initial safepoint %d, %v", sp, err)
	}
	if err := c.SetGCSafePoint(ctx, 100); err != nil {
		t.Fatal(err)
	}
	if err := c.SetGCSafePoint(ctx, 100); err != nil {
		t.Fatalf("same safepoint again: %v", err)
	}
	var regression *SafePointRegressionError
	if err := c.SetGCSafePoint(ctx, 99); !errors.As(err, &regression) || regression.Current != 100 {
		t.Fatalf("lower safepoint: %v", err)
	}
	if err := c.SetGCSafePoint(ctx, 250); err != nil {
		t.Fatal(err)
	}
	if sp, err := c.GCSafePoint(ctx); err != nil || sp != 250 {
		t.Fatalf("safepoint %d, %v; want 250", sp, err)
	}
}

func TestClaimBootstrapHasOneWinner(t *testing.T) {
	ctx := testCtx(t, 10*time.Second)
	c := connectTest(t)
	won, owner, err := c.ClaimBootstrap(ctx, 3)
	if err != nil || !won || owner != 3 {
		t.Fatalf("first claim: won=%v owner=%d err=%v", won, owner, err)
	}
	won, owner, err = c.ClaimBootstrap(ctx, 5)
	if err != nil || won || owner != 3 {
		t.Fatalf("second claim: won=%v owner=%d err=%v", won, owner, err)
	}
	// The winner asking again (after a restart) learns it owns it.
	if won, _, err := c.ClaimBootstrap(ctx, 3); err != nil || !won {
		t.Fatalf("winner again: won=%v err=%v", won, err)
	}
}

func TestGCFloorsFollowLiveNodes(t *testing.T) {
	ctx := testCtx(t, 10*time.Second)
	c := connectTest(t)
	if _, n, err := c.MinGCFloor(ctx); err != nil || n != 0 {
		t.Fatalf("floors before any report: %d, %v", n, err)
	}
	r1, err := c.Register(ctx, NodeInfo{RPCAddr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := c.Register(ctx, NodeInfo{RPCAddr: "127.0.0.1:2"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r1.ReportGCFloor(ctx, 500); err != nil {
		t.Fatal(err)
	}
	if err := r2.ReportGCFloor(ctx, 300); err != nil {
		t.Fatal(err)
	}
	if floor, n, err := c.MinGCFloor(ctx); err != nil || n != 2 || floor != 300 {
		t.Fatalf("min floor %d over %d reports (%v); want 300 over 2", floor, n, err)
	}
	// A node that leaves takes its floor with it.
	if err := r2.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	if floor, n, err := c.MinGCFloor(ctx); err != nil || n != 1 || floor != 500 {
		t.Fatalf("after node 2 left: min floor %d over %d reports (%v); want 500 over 1", floor, n, err)
	}
	if err := r2.ReportGCFloor(ctx, 1); err == nil {
		t.Fatal("a deregistered node reported a floor")
	}
	_ = r1.Deregister(ctx)
}
