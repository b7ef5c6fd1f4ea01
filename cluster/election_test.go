package cluster

import (
	"errors"
	"testing"
	"time"
)

func TestCampaignResignHandsOver(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 30*time.Second)
	c1 := connectTest(t)
	c2 := connectTest(t)
	l1, err := c1.Campaign(ctx, ElectionPlacementDriver, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	if !l1.Valid() {
		t.Fatal("fresh leadership not valid")
	}
	if who, err := c2.Leader(ctx, ElectionPlacementDriver); err != nil || who != "node-1" {
		t.Fatalf("leader %q, %v", who, err)
	}
	won := make(chan *Leadership, 1)
	go func() {
		l2, err := c2.Campaign(ctx, ElectionPlacementDriver, "node-2")
		if err != nil {
			t.Error(err)
			close(won)
			return
		}
		won <- l2
	}()
	select {
	case <-won:
		t.Fatal("second candidate won while the first leads")
	case <-time.After(200 * time.Millisecond):
	}
	if err := l1.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l1.Done():
	default:
		t.Fatal("Done not closed after Resign")
	}
	if l1.Valid() || !errors.Is(l1.Err(), ErrLeadershipLost) {
		t.Fatalf("resigned leadership valid=%v err=%v", l1.Valid(), l1.Err())
	}
	var l2 *Leadership
	select {
	case l2 = <-won:
	case <-time.After(10 * time.Second):
		t.Fatal("second candidate did not take over after resign")
	}
	if l2 == nil {
		t.FailNow()
	}
	if who, err := c1.Leader(ctx, ElectionPlacementDriver); err != nil || who != "node-2" {
		t.Fatalf("leader %q, %v", who, err)
	}

	// Losing the session (the leader's process dies) ends the leadership
	// for whoever observes it, and the next candidate wins.
	_ = c2.Close()
	select {
	case <-l2.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("leadership of a closed client did not end")
	}
	if l2.Valid() {
		t.Fatal("ended leadership still valid")
	}
	l3, err := c1.Campaign(ctx, ElectionPlacementDriver, "node-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := l3.Resign(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestLeadershipEndsWhenElectionKeyDeleted(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	c := connectTest(t)
	l, err := c.Campaign(ctx, "custom", "me")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.etcd.Delete(ctx, l.key); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("leadership survived the deletion of its key")
	}
	if l.Valid() {
		t.Fatal("valid after its key was deleted")
	}
	if _, err := c.Campaign(ctx, "bad/name", "x"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("election name with '/': %v", err)
	}
}
