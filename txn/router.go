package txn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/quorumdb/quorumdb/cluster"
	"github.com/quorumdb/quorumdb/kv"
)

// Router defaults.
const (
	DefaultRouterMaxWait        = 10 * time.Second
	DefaultRouterAttemptTimeout = 2 * time.Second
	DefaultRouterInitialBackoff = 5 * time.Millisecond
	DefaultRouterMaxBackoff     = 250 * time.Millisecond
)

// RouterConfig configures a Router.
type RouterConfig struct {
	// Directory finds descriptors the cache does not know (cluster's etcd
	// range directory).
	Directory RangeDirectory
	// Nodes sends a request to a range's replica on a node
	// (raftgroup.KVClient).
	Nodes NodeSender
	// Logger (nil: slog.Default()).
	Logger *slog.Logger
	// MaxWait bounds how long one request to one range may keep retrying
	// (leader elections, unreachable nodes) before it fails with
	// *RangeUnavailableError (0: DefaultRouterMaxWait).
	MaxWait time.Duration
	// AttemptTimeout bounds one attempt on one node (0:
	// DefaultRouterAttemptTimeout). A leader cut off by a silent partition
	// never answers; without this bound the request would wait on it for
	// all of MaxWait instead of trying the replicas that elected a new
	// leader. Retrying elsewhere is safe: every request is idempotent.
	AttemptTimeout time.Duration
	// InitialBackoff and MaxBackoff shape the wait between retry rounds.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// LocalNodeID is the node this router runs on: SendToNearest tries its
	// replica first (0: none).
	LocalNodeID uint64
}

// Router is the client side of a cluster's stores: a cache of range
// descriptors ordered by key (filled from the range directory, corrected by
// the typed errors replicas return), the last known leader of each range,
// and sending with retries. It is safe for concurrent use.
type Router struct {
	cfg    RouterConfig
	cache  *rangeCache
	logger *slog.Logger
	// anyNode is tried when a descriptor lists no voter (LocalStoreSender).
	anyNode uint64
	// Follower reads: served by this node's replica, or sent on to the
	// leader because the local replica could not serve them.
	nearestServed, nearestForwarded atomic.Uint64
}

// RouterStats counts the router's follower-read attempts.
type RouterStats struct {
	// NearestServed reads were answered by this node's own replica;
	// NearestForwarded ones went on to the leader (timestamp not closed
	// there yet, or the local replica unavailable).
	NearestServed, NearestForwarded uint64
}

// Stats returns the router's counters.
func (r *Router) Stats() RouterStats {
	return RouterStats{NearestServed: r.nearestServed.Load(), NearestForwarded: r.nearestForwarded.Load()}
}

// SendToNearest sends a read at a past timestamp to this node's own replica
// of desc's range when it holds one: any replica serves reads at or below
// the range's closed timestamp from its own state, without the leader
// (follower reads; a node cut off from the leader still serves them). When
// the local replica cannot serve the read (its timestamp is not closed
// there, or the replica is unavailable), the read goes to the leader as
// SendToRange sends it.
func (r *Router) SendToNearest(ctx context.Context, desc *kv.RangeDescriptor, req *kv.Request) (*kv.Response, error) {
	local := r.cfg.LocalNodeID
	if _, ok := desc.Replica(local); local == 0 || !ok {
		return r.SendToRange(ctx, desc, req)
	}
	actx, cancel := context.WithTimeout(ctx, r.cfg.AttemptTimeout)
	resp, err := r.cfg.Nodes.Execute(actx, local, desc.RangeID, req)
	cancel()
	switch {
	case err == nil:
		r.nearestServed.Add(1)
		return resp, nil
	case r.staleDescriptor(desc, err):
		return nil, err
	case kv.IsRequestError(err):
		// The replica's answer (a lock to resolve): as good as the leader's.
		return nil, err
	case ctx.Err() != nil:
		return nil, fmt.Errorf("txn: send to r%d: %w", desc.RangeID, ctx.Err())
	}
	r.nearestForwarded.Add(1)
	return r.SendToRange(ctx, desc, req)
}

// staleDescriptor handles an answer saying desc is out of date (a split
// moved keys, or the span runs past the range): the cache learns the
// current descriptors and the caller must regroup its request.
func (r *Router) staleDescriptor(desc *kv.RangeDescriptor, err error) bool {
	var (
		mismatch *kv.EpochMismatchError
		outside  *kv.KeyOutOfRangeError
	)
	switch {
	case errors.As(err, &mismatch):
		r.cache.evict(desc)
		for _, d := range mismatch.Descriptors {
			r.cache.insert(d)
		}
		return true
	case errors.As(err, &outside):
		r.cache.evict(desc)
		return true
	}
	return false
}

// NewRouter returns a Router.
func NewRouter(cfg RouterConfig) *Router {
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = DefaultRouterMaxWait
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = DefaultRouterAttemptTimeout
	}
	if cfg.InitialBackoff <= 0 {
		cfg.InitialBackoff = DefaultRouterInitialBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultRouterMaxBackoff
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Router{cfg: cfg, cache: newRangeCache(), logger: cfg.Logger.With("component", "router")}
}

// UpdateRange feeds a descriptor learned elsewhere (a range-directory watch)
// into the cache; older generations of the same range never replace newer.
func (r *Router) UpdateRange(d *kv.RangeDescriptor) {
	if d != nil {
		r.cache.insert(d.Clone())
	}
}

// EvictRange drops a descriptor from the cache.
func (r *Router) EvictRange(d *kv.RangeDescriptor) {
	if d != nil {
		r.cache.evict(d)
	}
}

// CachedRanges returns how many descriptors the cache holds.
func (r *Router) CachedRanges() int { return r.cache.len() }

// RangeForKey returns the descriptor of the range holding key, from the
// cache or the directory.
func (r *Router) RangeForKey(ctx context.Context, key []byte) (*kv.RangeDescriptor, error) {
	if d := r.cache.lookup(key); d != nil {
		return d, nil
	}
	return r.lookupDirectory(ctx, key)
}

// lookupDirectory asks the directory, retrying transient failures within
// MaxWait.
func (r *Router) lookupDirectory(ctx context.Context, key []byte) (*kv.RangeDescriptor, error) {
	if bytes.Compare(key, kv.KeyMax) >= 0 {
		return nil, &InvalidArgumentError{Reason: fmt.Sprintf("key %q is at or above KeyMax", key)}
	}
	start := time.Now()
	backoff := r.cfg.InitialBackoff
	for {
		d, err := r.cfg.Directory.LookupRange(ctx, key)
		if err == nil {
			if d == nil || !d.ContainsKey(key) {
				err = fmt.Errorf("directory answered %v for key %q", d, key)
			} else {
				r.cache.insert(d)
				return d, nil
			}
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("txn: look up range of key %q: %w", key, ctx.Err())
		}
		waited := time.Since(start)
		if waited >= r.cfg.MaxWait {
			return nil, &RangeUnavailableError{StartKey: key, Waited: waited, LastErr: fmt.Errorf("range directory lookup: %w", err)}
		}
		if err := sleepCtx(ctx, jitter(backoff)); err != nil {
			return nil, fmt.Errorf("txn: look up range of key %q: %w", key, err)
		}
		backoff = min(backoff*2, r.cfg.MaxBackoff)
	}
}

// RangeBeforeKey returns the range with StartKey < key <= EndKey.
func (r *Router) RangeBeforeKey(ctx context.Context, floor, key []byte) (*kv.RangeDescriptor, error) {
	return rangeBeforeKey(ctx, r.cache, r.RangeForKey, floor, key)
}

func rangeBeforeKey(ctx context.Context, cache *rangeCache, forKey func(context.Context, []byte) (*kv.RangeDescriptor, error), floor, key []byte) (*kv.RangeDescriptor, error) {
	if bytes.Compare(floor, key) >= 0 {
		return nil, &InvalidArgumentError{Reason: fmt.Sprintf("empty span [%q, %q)", floor, key)}
	}
	if d := cache.lookupBefore(key); d != nil {
		return d, nil
	}
	if bytes.Compare(key, kv.KeyMax) < 0 {
		d, err := forKey(ctx, key)
		if err != nil {
			return nil, err
		}
		if bytes.Compare(d.StartKey, key) < 0 {
			return d, nil
		}
	}
	// key is a range boundary we have not cached: walk forward from floor
	// (this fills the cache, so the next reverse scan finds it there).
	cur := floor
	for {
		d, err := forKey(ctx, cur)
		if err != nil {
			return nil, err
		}
		if bytes.Compare(d.EndKey, key) >= 0 {
			return d, nil
		}
		cur = d.EndKey
	}
}

// SendToRange sends req to the leader of desc's range, following leader
// hints, trying other replicas when a node is unreachable, and backing off
// between rounds, for at most MaxWait.
func (r *Router) SendToRange(ctx context.Context, desc *kv.RangeDescriptor, req *kv.Request) (*kv.Response, error) {
	start := time.Now()
	backoff := r.cfg.InitialBackoff
	var lastErr error
	tried := make(map[uint64]bool, len(desc.Replicas))
	notFound := 0
	hops := 0
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("txn: send to r%d: %w", desc.RangeID, err)
		}
		node := r.pickReplica(desc, tried)
		if node == 0 || hops > 2*len(desc.Replicas)+2 {
			// A round over every replica failed.
			if notFound > 0 && notFound >= max(1, len(voters(desc))) {
				// No replica has the range any more: it moved or merged.
				r.cache.evict(desc)
				return nil, &kv.RangeNotFoundError{RangeID: desc.RangeID}
			}
			waited := time.Since(start)
			if waited >= r.cfg.MaxWait {
				return nil, &RangeUnavailableError{RangeID: desc.RangeID, StartKey: desc.StartKey, EndKey: desc.EndKey, Waited: waited, LastErr: lastErr}
			}
			if err := sleepCtx(ctx, min(jitter(backoff), r.cfg.MaxWait-waited)); err != nil {
				return nil, fmt.Errorf("txn: send to r%d: %w", desc.RangeID, err)
			}
			backoff = min(backoff*2, r.cfg.MaxBackoff)
			clear(tried)
			notFound, hops = 0, 0
			// The descriptor may have changed membership: refresh it.
			if fresh, ok := r.refresh(ctx, desc); ok {
				desc = fresh
			}
			continue
		}
		hops++
		actx, cancel := context.WithTimeout(ctx, r.cfg.AttemptTimeout)
		resp, err := r.cfg.Nodes.Execute(actx, node, desc.RangeID, req)
		cancel()
		if err == nil {
			r.cache.setLeader(desc.RangeID, node)
			return resp, nil
		}
		lastErr = err
		var (
			notLeader   *kv.NotLeaderError
			missing     *kv.RangeNotFoundError
			dropped     *kv.ProposalDroppedError
			unavailable *kv.RangeUnavailableError
			remote      *kv.RemoteError
		)
		switch {
		case errors.As(err, &notLeader):
			tried[node] = true
			hint := notLeader.LeaderNodeID
			if hint != 0 && !tried[hint] {
				if _, ok := desc.Replica(hint); ok {
					r.cache.setLeader(desc.RangeID, hint)
					continue
				}
				// The hinted leader is not in our descriptor: it is stale.
				if fresh, ok := r.refresh(ctx, desc); ok {
					desc = fresh
					r.cache.setLeader(desc.RangeID, hint)
					continue
				}
			}
			r.cache.setLeader(desc.RangeID, 0)
		case r.staleDescriptor(desc, err):
			return nil, err
		case errors.As(err, &missing):
			tried[node] = true
			notFound++
		case errors.As(err, &dropped), errors.As(err, &unavailable):
			// Leadership moving or no quorum right now: a later round may work.
			tried[node] = true
		case kv.IsRequestError(err), errors.As(err, &remote):
			return nil, err
		case ctx.Err() != nil:
			return nil, fmt.Errorf("txn: send to r%d: %w", desc.RangeID, ctx.Err())
		default:
			// Transport failure (node down, connection refused): try another replica.
			tried[node] = true
			if r.cache.leader(desc.RangeID) == node {
				r.cache.setLeader(desc.RangeID, 0)
			}
			r.logger.Debug("replica unreachable", "range", desc.RangeID, "node", node, "err", err)
		}
	}
}

// refresh re-reads desc's range from the directory; ok when the answer is a
// newer descriptor of the same range.
func (r *Router) refresh(ctx context.Context, desc *kv.RangeDescriptor) (*kv.RangeDescriptor, bool) {
	d, err := r.cfg.Directory.LookupRange(ctx, desc.StartKey)
	if err != nil || d == nil || d.RangeID != desc.RangeID || d.Generation <= desc.Generation {
		return nil, false
	}
	if !bytes.Equal(d.StartKey, desc.StartKey) || !bytes.Equal(d.EndKey, desc.EndKey) {
		// The range's bounds changed: the caller must regroup, not us.
		return nil, false
	}
	r.cache.insert(d)
	return d, true
}

// pickReplica returns the node to try next: the cached leader, then the
// voters in descriptor order; 0 when every voter was tried this round.
func (r *Router) pickReplica(desc *kv.RangeDescriptor, tried map[uint64]bool) uint64 {
	if l := r.cache.leader(desc.RangeID); l != 0 && !tried[l] {
		if _, ok := desc.Replica(l); ok {
			return l
		}
	}
	for _, rep := range voters(desc) {
		if !tried[rep.NodeID] {
			return rep.NodeID
		}
	}
	if len(desc.Replicas) == 0 && r.anyNode != 0 && !tried[r.anyNode] {
		return r.anyNode
	}
	return 0
}

func voters(desc *kv.RangeDescriptor) []kv.ReplicaDescriptor {
	out := make([]kv.ReplicaDescriptor, 0, len(desc.Replicas))
	for _, r := range desc.Replicas {
		if r.Type == kv.Voter {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return desc.Replicas
	}
	return out
}

// jitter returns a random duration in [d/2, d].
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// FollowDirectory feeds the range directory's watch (cluster.Client's
// WatchRanges) into the cache until events closes: published descriptors
// are cached (never replacing a newer generation), superseded ones evicted.
// Run it in its own goroutine; the router works without it, looking up
// ranges on demand and correcting itself through the replicas' errors.
func (r *Router) FollowDirectory(events <-chan cluster.RangeEvent) {
	for ev := range events {
		if ev.Desc == nil {
			continue
		}
		if ev.Removed {
			r.cache.evict(ev.Desc)
			continue
		}
		r.cache.insert(ev.Desc.Clone())
	}
}
