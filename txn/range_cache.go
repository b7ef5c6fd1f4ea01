package txn

import (
	"bytes"
	"sort"
	"sync"

	"github.com/quorumdb/quorumdb/kv"
)

// rangeCache holds known range descriptors ordered by key, non-overlapping,
// and the last known leader node of each range.
type rangeCache struct {
	mu      sync.RWMutex
	ranges  []*kv.RangeDescriptor // sorted by StartKey, disjoint
	leaders map[uint64]uint64     // rangeID -> node believed to lead
}

func newRangeCache() *rangeCache {
	return &rangeCache{leaders: make(map[uint64]uint64)}
}

// endAfter reports whether d's end is after key (KeyMax counts as infinite).
func endAfter(d *kv.RangeDescriptor, key []byte) bool {
	return bytes.Compare(d.EndKey, key) > 0
}

// lookup returns the cached range holding key.
func (c *rangeCache) lookup(key []byte) *kv.RangeDescriptor {
	c.mu.RLock()
	defer c.mu.RUnlock()
	i := sort.Search(len(c.ranges), func(i int) bool { return endAfter(c.ranges[i], key) })
	if i < len(c.ranges) && bytes.Compare(c.ranges[i].StartKey, key) <= 0 {
		return c.ranges[i]
	}
	return nil
}

// lookupBefore returns the cached range with StartKey < key <= EndKey.
func (c *rangeCache) lookupBefore(key []byte) *kv.RangeDescriptor {
	c.mu.RLock()
	defer c.mu.RUnlock()
	i := sort.Search(len(c.ranges), func(i int) bool { return bytes.Compare(c.ranges[i].EndKey, key) >= 0 })
	if i < len(c.ranges) && bytes.Compare(c.ranges[i].StartKey, key) < 0 {
		return c.ranges[i]
	}
	return nil
}

// insert adds d, evicting every cached range that overlaps it, unless a
// cached overlapping range has a newer generation for the same range ID (a
// late, stale answer must not replace a fresh one).
func (c *rangeCache) insert(d *kv.RangeDescriptor) {
	if d == nil || bytes.Compare(d.StartKey, d.EndKey) >= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	lo := sort.Search(len(c.ranges), func(i int) bool { return endAfter(c.ranges[i], d.StartKey) })
	hi := lo
	for hi < len(c.ranges) && bytes.Compare(c.ranges[hi].StartKey, d.EndKey) < 0 {
		if o := c.ranges[hi]; o.RangeID == d.RangeID && o.Generation > d.Generation {
			return
		}
		hi++
	}
	for i := lo; i < hi; i++ {
		if c.ranges[i].RangeID != d.RangeID {
			delete(c.leaders, c.ranges[i].RangeID)
		}
	}
	out := make([]*kv.RangeDescriptor, 0, len(c.ranges)-(hi-lo)+1)
	out = append(out, c.ranges[:lo]...)
	out = append(out, d)
	out = append(out, c.ranges[hi:]...)
	c.ranges = out
}

// evict removes d (matched by range ID and generation) from the cache.
func (c *rangeCache) evict(d *kv.RangeDescriptor) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, o := range c.ranges {
		if o.RangeID == d.RangeID && o.Generation <= d.Generation {
			c.ranges = append(c.ranges[:i:i], c.ranges[i+1:]...)
			delete(c.leaders, d.RangeID)
			return
		}
	}
}

func (c *rangeCache) leader(rangeID uint64) uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.leaders[rangeID]
}

func (c *rangeCache) setLeader(rangeID, nodeID uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if nodeID == 0 {
		delete(c.leaders, rangeID)
		return
	}
	c.leaders[rangeID] = nodeID
}

func (c *rangeCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.ranges)
}
