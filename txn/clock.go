package txn

import (
	"context"
	"sync"
	"time"

	"github.com/quorumdb/quorumdb/kv"
)

// LocalClock is a TimestampSource for a single process without a timestamp
// oracle (single-node embedded use and tests): hybrid timestamps from the
// wall clock, strictly increasing within the process. It is not a cluster
// clock: two processes with their own LocalClock do not order their
// timestamps.
type LocalClock struct {
	mu   sync.Mutex
	last kv.Timestamp
	now  func() time.Time
}

// NewLocalClock returns a clock whose timestamps are above floor (pass the
// highest timestamp persisted by a previous run, or 0).
func NewLocalClock(floor kv.Timestamp) *LocalClock {
	return &LocalClock{last: floor, now: time.Now}
}

// GetTimestamp returns the next timestamp.
func (c *LocalClock) GetTimestamp(ctx context.Context) (kv.Timestamp, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := kv.MakeTimestamp(uint64(c.now().UnixMilli()), 0)
	if ts <= c.last {
		ts = c.last + 1
	}
	c.last = ts
	return ts, nil
}
