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
