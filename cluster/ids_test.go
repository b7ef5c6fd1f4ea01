package cluster

import (
	"errors"
	"sync"
	"testing"
	"time"
)

func TestIDAllocatorsOnManyClientsNeverOverlap(t *testing.T) {
	const clients, workers, perWorker = 4, 4, 60
	ctx := testCtx(t, 30*time.Second)
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, clients*workers)
	for i := range clients {
		c := connectTest(t)
		// Different block sizes on different clients interleave blocks.
		alloc, err := NewIDAllocator(c, IDKindRange, uint64(1+i*3))
		if err != nil {
			t.Fatal(err)
		}
		for range workers {
			wg.Go(func() {
				for range perWorker {
					id, err := alloc.Allocate(ctx)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					dup := seen[id]
					seen[id] = true
					mu.Unlock()
					if dup || id == 0 {
						errs <- errors.New("duplicate or zero ID")
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(seen) != clients*workers*perWorker {
		t.Fatalf("%d unique IDs, want %d", len(seen), clients*workers*perWorker)
	}
}

func TestIDAllocatorReserveThroughAndKinds(t *testing.T) {
	ctx := testCtx(t, 10*time.Second)
	c := connectTest(t)
	tables, err := NewIDAllocator(c, IDKindTable, 10)
	if err != nil {
		t.Fatal(err)
	}
	indexes, err := NewIDAllocator(c, IDKindIndex, 10)
	if err != nil {
		t.Fatal(err)
	}
	first, err := tables.Allocate(ctx)
	if err != nil || first != 1 {
		t.Fatalf("first table ID %d, %v; want 1", first, err)
	}
	if id, err := indexes.Allocate(ctx); err != nil || id != 1 {
		t.Fatalf("kinds share a counter: index ID %d, %v", id, err)
	}
	// IDs up to 100 are fixed elsewhere: the local block 2..10 is dropped.
	if err := tables.ReserveThrough(ctx, 100); err != nil {
		t.Fatal(err)
	}
	if id, err := tables.Allocate(ctx); err != nil || id <= 100 {
		t.Fatalf("after ReserveThrough(100) got %d, %v", id, err)
	}
	// Reserving below the counter changes nothing.
	if err := tables.ReserveThrough(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := NewIDAllocator(c, "a/b", 1); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("kind with '/': %v", err)
	}
	if _, err := NewIDAllocator(c, IDKindTable, 0); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("block size 0: %v", err)
	}
}
