package txn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/quorumdb/quorumdb/kv"
)

// Splitting requests per range. A request that touches several ranges is cut
// into one request per range, sent in parallel; when a range answers that our
// descriptor was stale (it split, moved or merged) the sender has already
// corrected its cache, and the affected part is regrouped and sent again.

// maxRegroups bounds how often one operation regroups after stale routing.
const maxRegroups = 16

// isStaleRouting reports whether err means "the descriptor used was stale;
// regroup by fresh descriptors and send again".
func isStaleRouting(err error) bool {
	var (
		mismatch *kv.EpochMismatchError
		outside  *kv.KeyOutOfRangeError
		missing  *kv.RangeNotFoundError
	)
	return errors.As(err, &mismatch) || errors.As(err, &outside) || errors.As(err, &missing)
}

type itemGroup[T any] struct {
	desc  *kv.RangeDescriptor
	items []T
}

// groupByRange groups items by the range holding keyOf(item), keeping the
// items' order inside each group and the groups in order of first appearance.
func groupByRange[T any](ctx context.Context, s RangeSender, items []T, keyOf func(T) []byte) ([]itemGroup[T], error) {
	var groups []itemGroup[T]
	index := make(map[uint64]int)
	var last *kv.RangeDescriptor
	lastIdx := -1
	for _, it := range items {
		k := keyOf(it)
		if last == nil || !last.ContainsKey(k) {
			d, err := s.RangeForKey(ctx, k)
			if err != nil {
				return nil, err
			}
			last = d
			i, ok := index[d.RangeID]
			if !ok {
				i = len(groups)
				index[d.RangeID] = i
				groups = append(groups, itemGroup[T]{desc: d})
			}
			lastIdx = i
		}
		groups[lastIdx].items = append(groups[lastIdx].items, it)
	}
	return groups, nil
}

// forEachRange runs fn once per range over the items grouped by keyOf, in
// parallel, regrouping the items of ranges whose descriptor was stale.
func forEachRange[T any](ctx context.Context, s RangeSender, items []T, keyOf func(T) []byte,
	fn func(ctx context.Context, desc *kv.RangeDescriptor, items []T) error) error {
	pending := items
	for attempt := 0; len(pending) > 0; attempt++ {
		groups, err := groupByRange(ctx, s, pending, keyOf)
		if err != nil {
			return err
		}
		var mu sync.Mutex
		var stale []T
		var lastStale error
		err = parallel(ctx, len(groups), func(ctx context.Context, i int) error {
			err := fn(ctx, groups[i].desc, groups[i].items)
			if err != nil && isStaleRouting(err) {
				mu.Lock()
				stale = append(stale, groups[i].items...)
				lastStale = err
				mu.Unlock()
				return nil
			}
			return err
		})
		if err != nil {
			return err
		}
		if len(stale) > 0 && attempt+1 >= maxRegroups {
			return fmt.Errorf("txn: routing did not settle after %d regroups: %w", maxRegroups, lastStale)
		}
		pending = stale
	}
	return nil
}

// clipSpans cuts spans at range boundaries: every returned span lies in one
// range. Point spans (empty EndKey) stay as they are.
func clipSpans(ctx context.Context, s RangeSender, spans []kv.Span) ([]kv.Span, error) {
	var out []kv.Span
	for _, sp := range spans {
		if len(sp.EndKey) == 0 {
			out = append(out, sp)
			continue
		}
		cur := sp.Key
		for bytes.Compare(cur, sp.EndKey) < 0 {
			d, err := s.RangeForKey(ctx, cur)
			if err != nil {
				return nil, err
			}
			end := sp.EndKey
			if bytes.Compare(d.EndKey, end) < 0 {
				end = d.EndKey
			}
			out = append(out, kv.Span{Key: cur, EndKey: end})
			cur = end
		}
	}
	return out, nil
}

// forEachRangeOfSpans runs fn per range over spans cut at range boundaries.
func forEachRangeOfSpans(ctx context.Context, s RangeSender, spans []kv.Span,
	fn func(ctx context.Context, desc *kv.RangeDescriptor, spans []kv.Span) error) error {
	pending := spans
	for attempt := 0; len(pending) > 0; attempt++ {
		clipped, err := clipSpans(ctx, s, pending)
		if err != nil {
			return err
		}
		groups, err := groupByRange(ctx, s, clipped, func(sp kv.Span) []byte { return sp.Key })
		if err != nil {
			return err
		}
		var mu sync.Mutex
		var stale []kv.Span
		var lastStale error
		err = parallel(ctx, len(groups), func(ctx context.Context, i int) error {
			err := fn(ctx, groups[i].desc, groups[i].items)
			if err != nil && isStaleRouting(err) {
				mu.Lock()
				stale = append(stale, groups[i].items...)
				lastStale = err
				mu.Unlock()
				return nil
			}
			return err
		})
		if err != nil {
			return err
		}
		if len(stale) > 0 && attempt+1 >= maxRegroups {
			return fmt.Errorf("txn: routing did not settle after %d regroups: %w", maxRegroups, lastStale)
		}
		pending = stale
	}
	return nil
}

// sendToKey sends a single-key request to the range holding key, retrying
// after stale routing.
func sendToKey(ctx context.Context, s RangeSender, key []byte, req *kv.Request) (*kv.Response, error) {
	return sendToKeyVia(ctx, s, key, req, s.SendToRange)
}

// sendFunc sends one request to one range (RangeSender.SendToRange,
// NearestSender.SendToNearest).
type sendFunc func(context.Context, *kv.RangeDescriptor, *kv.Request) (*kv.Response, error)

// sendToKeyVia is sendToKey with the sending of one attempt given.
func sendToKeyVia(ctx context.Context, s RangeSender, key []byte, req *kv.Request, send sendFunc) (*kv.Response, error) {
	var lastErr error
	for attempt := 0; attempt < maxRegroups; attempt++ {
		d, err := s.RangeForKey(ctx, key)
		if err != nil {
			return nil, err
		}
		resp, err := send(ctx, d, req)
		if err == nil || !isStaleRouting(err) {
			return resp, err
		}
		lastErr = err
	}
	return nil, fmt.Errorf("txn: routing of key %q did not settle after %d attempts: %w", key, maxRegroups, lastErr)
}

// parallel runs fn(0..n-1) concurrently (inline when n == 1) and returns the
// first error; the first error cancels the context the others run with.
func parallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	switch n {
	case 0:
		return nil
	case 1:
		return fn(ctx, 0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx, i); err != nil {
				errs[i] = err
				cancel()
			}
		}()
	}
	wg.Wait()
	// Prefer a real error over the cancellations it caused.
	var first error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if !errors.Is(err, context.Canceled) {
			return err
		}
		if first == nil {
			first = err
		}
	}
	return first
}
