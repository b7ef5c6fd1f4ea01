package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/kv"
)

func desc(id uint64, start, end string, gen uint64) *kv.RangeDescriptor {
	e := []byte(end)
	if end == "max" {
		e = kv.KeyMax
	}
	return &kv.RangeDescriptor{
		RangeID: id, StartKey: []byte(start), EndKey: e, Generation: gen,
		Replicas: []kv.ReplicaDescriptor{{NodeID: 1, ReplicaID: 1}},
	}
}

func lookupID(t *testing.T, c *Client, key string) uint64 {
	t.Helper()
	d, err := c.LookupRange(testCtx(t, 5*time.Second), []byte(key))
	if err != nil {
		t.Fatalf("lookup %q: %v", key, err)
	}
	return d.RangeID
}

func TestRangeDirectoryPublishSplitLookup(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	c := connectTest(t)
	var nf *RangeNotFoundError
	if _, err := c.LookupRange(ctx, []byte("a")); !errors.As(err, &nf) {
		t.Fatalf("lookup in an empty directory: %v", err)
	}
	if err := c.PublishRange(ctx, desc(1, "", "max", 1)); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"", "a", "t\x00\x00", "\xff\xfe\xff"} {
		if id := lookupID(t, c, k); id != 1 {
			t.Fatalf("key %q in range %d, want 1", k, id)
		}
	}
	// Split r1 at "m": both halves at generation 2, in one transaction.
	if err := c.PublishRanges(ctx, desc(1, "", "m", 2), desc(2, "m", "max", 2)); err != nil {
		t.Fatal(err)
	}
	// End keys that are prefixes of one another order correctly.
	if err := c.PublishRanges(ctx, desc(1, "", "a", 3), desc(3, "a", "a\x00", 3), desc(4, "a\x00", "m", 3)); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]uint64{"": 1, "\x00": 1, "a": 3, "a\x00": 4, "a\x00\x00": 4, "b": 4, "l\xff": 4, "m": 2, "zzz": 2} {
		if id := lookupID(t, c, k); id != want {
			t.Fatalf("key %q in range %d, want %d", k, id, want)
		}
	}
	all, err := c.ListRanges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, d := range all {
		ids = append(ids, d.RangeID)
	}
	if !slices.Equal(ids, []uint64{1, 3, 4, 2}) {
		t.Fatalf("directory in key order: %v, want [1 3 4 2]", ids)
	}
	// A stale copy of r1 (the pre-split descriptor) is refused, typed.
	var stale *StaleDescriptorError
	err = c.PublishRange(ctx, desc(1, "", "max", 1))
	if !errors.As(err, &stale) || stale.Published.Generation < 2 {
		t.Fatalf("stale publish: %v", err)
	}
	// Same generation but different content is a conflict too.
	if err := c.PublishRange(ctx, desc(9, "m", "max", 2)); !errors.As(err, &stale) {
		t.Fatalf("conflicting same-generation publish: %v", err)
	}
	// Re-publishing what is there is a no-op.
	if err := c.PublishRange(ctx, desc(2, "m", "max", 2)); err != nil {
		t.Fatalf("identical re-publish: %v", err)
	}
	// A membership change of r2 (generation 3) replaces it in place.
	moved := desc(2, "m", "max", 3)
	moved.Replicas = append(moved.Replicas, kv.ReplicaDescriptor{NodeID: 2, ReplicaID: 2})
	if err := c.PublishRange(ctx, moved); err != nil {
		t.Fatal(err)
	}
	if d, err := c.LookupRange(ctx, []byte("x")); err != nil || len(d.Replicas) != 2 {
		t.Fatalf("after membership change: %v, %v", d, err)
	}
	for _, bad := range []*kv.RangeDescriptor{desc(5, "b", "a", 9), desc(5, "a", "", 9), desc(0, "a", "b", 9)} {
		if err := c.PublishRange(ctx, bad); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("invalid descriptor %v: %v", bad, err)
		}
	}
	if err := c.PublishRanges(ctx, desc(5, "a", "c", 9), desc(6, "b", "d", 9)); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("overlapping batch: %v", err)
	}
}

func TestRangeDirectoryLeftHalfAloneLeavesGapNotWrongRange(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	c := connectTest(t)
	if err := c.PublishRanges(ctx, desc(1, "", "k", 1), desc(2, "k", "max", 1)); err != nil {
		t.Fatal(err)
	}
	// r1 splits at "f" but only its new left side is published so far: the
	// superseded r1 entry goes, and keys of the unpublished right side are
	// "not found" rather than routed to r2.
	if err := c.PublishRange(ctx, desc(1, "", "f", 2)); err != nil {
		t.Fatal(err)
	}
	var nf *RangeNotFoundError
	if _, err := c.LookupRange(ctx, []byte("g")); !errors.As(err, &nf) {
		t.Fatalf("key of the unpublished right side: %v", err)
	}
	if id := lookupID(t, c, "k"); id != 2 {
		t.Fatalf("key k in range %d", id)
	}
	if err := c.PublishRange(ctx, desc(3, "f", "k", 2)); err != nil {
		t.Fatal(err)
	}
	if id := lookupID(t, c, "g"); id != 3 {
		t.Fatalf("key g in range %d, want 3", id)
	}
}

func TestRangeDirectoryWatch(t *testing.T) {
	ctx := testCtx(t, 20*time.Second)
	c := connectTest(t)
	if err := c.PublishRange(ctx, desc(1, "", "max", 1)); err != nil {
		t.Fatal(err)
	}
	events := c.WatchRanges(ctx)
	next := func() RangeEvent {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no range event")
		}
		return RangeEvent{}
	}
	if ev := next(); ev.Removed || ev.Desc.RangeID != 1 {
		t.Fatalf("initial event %+v", ev)
	}
	if err := c.PublishRanges(ctx, desc(1, "", "m", 2), desc(2, "m", "max", 2)); err != nil {
		t.Fatal(err)
	}
	got := map[uint64]uint64{}
	for range 2 {
		ev := next()
		if ev.Removed {
			t.Fatalf("unexpected removal %+v", ev)
		}
		got[ev.Desc.RangeID] = ev.Desc.Generation
	}
	if got[1] != 2 || got[2] != 2 {
		t.Fatalf("split events %v", got)
	}
	// r2 splits again but publishes only the left half: the old r2 entry is
	// removed.
	if err := c.PublishRange(ctx, desc(2, "m", "t", 3)); err != nil {
		t.Fatal(err)
	}
	seenRemoval, seenPublish := false, false
	for range 2 {
		ev := next()
		switch {
		case ev.Removed && ev.Desc.RangeID == 2 && ev.Desc.Generation == 2:
			seenRemoval = true
		case !ev.Removed && ev.Desc.RangeID == 2 && ev.Desc.Generation == 3:
			seenPublish = true
		}
	}
	if !seenRemoval || !seenPublish {
		t.Fatalf("removal %v publish %v", seenRemoval, seenPublish)
	}
}

// TestRangeDirectoryConcurrentSplitsModel races publishers that split ranges
// from their own (possibly stale) view; afterwards the directory must be a
// non-overlapping set where every entry is the newest its publisher knew.
func TestRangeDirectoryConcurrentSplitsModel(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	c := connectTest(t)
	if err := c.PublishRange(ctx, desc(1, "", "max", 1)); err != nil {
		t.Fatal(err)
	}
	alloc, err := NewIDAllocator(c, IDKindRange, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := alloc.ReserveThrough(ctx, 1); err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		rng := rand.New(rand.NewPCG(uint64(w), 42))
		wg.Go(func() {
			for range rounds {
				key := fmt.Appendf(nil, "k%03d", rng.IntN(1000))
				d, err := c.LookupRange(ctx, key)
				if err != nil {
					var nf *RangeNotFoundError
					if errors.As(err, &nf) {
						continue
					}
					errs <- err
					return
				}
				if bytes.Equal(d.StartKey, key) {
					continue
				}
				id, err := alloc.Allocate(ctx)
				if err != nil {
					errs <- err
					return
				}
				left := d.Clone()
				left.EndKey, left.Generation = key, d.Generation+1
				right := d.Clone()
				right.RangeID, right.StartKey, right.Generation = id, key, d.Generation+1
				err = c.PublishRanges(ctx, left, right)
				var stale *StaleDescriptorError
				if err != nil && !errors.As(err, &stale) {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all, err := c.ListRanges(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Publishing both halves together keeps the key space covered.
	prevEnd := []byte{}
	for _, d := range all {
		if !bytes.Equal(d.StartKey, prevEnd) {
			t.Fatalf("directory has a gap or overlap before %s (previous end %q)", d, prevEnd)
		}
		prevEnd = d.EndKey
	}
	if !bytes.Equal(prevEnd, kv.KeyMax) {
		t.Fatalf("directory ends at %q", prevEnd)
	}
	t.Logf("%d ranges after concurrent splits", len(all))
}
