package txn

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"

	"github.com/quorumdb/quorumdb/kv"
)

// maxBatchGetConcurrency bounds the point reads BatchGet has in flight.
const maxBatchGetConcurrency = 16

// beginRead checks the transaction is open and returns its read timestamp.
func (t *Txn) beginRead(ctx context.Context) (kv.Timestamp, error) {
	t.mu.Lock()
	err := t.checkOpenLocked()
	t.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return t.ensureStartTS(ctx)
}

// bufferedEntry looks key up in the write buffer.
func (t *Txn) bufferedEntry(key []byte) (bufEntry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.buf == nil {
		return bufEntry{}, false
	}
	return t.buf.get(key)
}

// Get reads key: the transaction's own buffered write if any, else the
// newest version visible at the start timestamp.
func (t *Txn) Get(ctx context.Context, key []byte) (value []byte, found bool, err error) {
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	if e, ok := t.bufferedEntry(key); ok && e.op != kv.OpLock {
		t.mu.Lock()
		err := t.checkOpenLocked()
		t.mu.Unlock()
		if err != nil {
			return nil, false, err
		}
		return append([]byte(nil), e.value...), e.op == kv.OpPut, nil
	}
	ts, err := t.beginRead(ctx)
	if err != nil {
		return nil, false, err
	}
	resp, err := t.db.storeGet(ctx, key, ts, t.followerReads())
	if err != nil {
		return nil, false, err
	}
	t.recordRead(kv.Span{Key: append([]byte(nil), key...)})
	return resp.Value, resp.Found, nil
}

// BatchGet reads keys (in parallel); results are in the order of keys.
func (t *Txn) BatchGet(ctx context.Context, keys [][]byte) ([]GetResult, error) {
	out := make([]GetResult, len(keys))
	var fromStore []int
	for i, k := range keys {
		if err := checkKey(k); err != nil {
			return nil, err
		}
		if e, ok := t.bufferedEntry(k); ok && e.op != kv.OpLock {
			out[i] = GetResult{Value: append([]byte(nil), e.value...), Found: e.op == kv.OpPut}
			continue
		}
		fromStore = append(fromStore, i)
	}
	ts, err := t.beginRead(ctx)
	if err != nil {
		return nil, err
	}
	if len(fromStore) == 0 {
		return out, nil
	}
	// A bounded pool of workers pulls the keys: a large BatchGet must not
	// start one goroutine per key.
	var next atomic.Int64
	workers := min(len(fromStore), maxBatchGetConcurrency)
	err = parallel(ctx, workers, func(ctx context.Context, _ int) error {
		for {
			j := int(next.Add(1)) - 1
			if j >= len(fromStore) {
				return nil
			}
			i := fromStore[j]
			resp, err := t.db.storeGet(ctx, keys[i], ts, t.followerReads())
			if err != nil {
				return err
			}
			out[i] = GetResult{Value: resp.Value, Found: resp.Found}
		}
	})
	if err != nil {
		return nil, err
	}
	for _, i := range fromStore {
		t.recordRead(kv.Span{Key: append([]byte(nil), keys[i]...)})
	}
	return out, nil
}

// Scan returns the rows of [start, end) (end nil: to the end of the key
// space) visible to the transaction, at most limit (0: all), in descending
// order when reverse. Only the part of the span the answer depends on is
// recorded for validation: a scan stopped by its limit records up to the last
// row returned.
func (t *Txn) Scan(ctx context.Context, start, end []byte, limit int, reverse bool) ([]kv.KeyValue, error) {
	batch := limit
	if batch <= 0 || batch > defaultIteratorBatch {
		batch = defaultIteratorBatch
	}
	it := t.NewIterator(ctx, start, end, reverse, batch)
	defer it.Close()
	var rows []kv.KeyValue
	for limit <= 0 || len(rows) < limit {
		kvp, ok, err := it.Next(ctx)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		rows = append(rows, kvp)
	}
	return rows, nil
}

// readSender returns how a read at a past timestamp is sent: to the nearest
// replica when nearest is set and the sender can (follower reads),
// otherwise to the leader.
func (db *DB) readSender(nearest bool) sendFunc {
	if nearest {
		return db.sendNearest
	}
	return db.sendLeader
}

// storeGet reads key at ts, resolving or waiting for locks; nearest sends
// it to the nearest replica (an AS OF read). After a lock, the read goes to
// the leader: a follower may not have applied the resolution yet.
func (db *DB) storeGet(ctx context.Context, key []byte, ts kv.Timestamp, nearest bool) (*kv.GetResponse, error) {
	var w lockWait
	for {
		resp, err := sendToKeyVia(ctx, db.sender, key, &kv.Request{Get: &kv.GetRequest{Key: key, ReadTS: ts}}, db.readSender(nearest))
		if err == nil {
			if resp.Get == nil {
				return nil, fmt.Errorf("txn: get %q: empty response", key)
			}
			return resp.Get, nil
		}
		lock, ok := asLocked(err)
		if !ok {
			return nil, fmt.Errorf("txn: get %q: %w", key, err)
		}
		if err := db.handleReadLock(ctx, lock, &w); err != nil {
			return nil, err
		}
		nearest = false
	}
}

// storeScan reads at most limit rows (limit > 0) of [start, end) at ts in
// key order (descending when reverse), crossing ranges as needed and
// resolving locks. resume is where the next page starts ([resume, end)
// forward, [start, resume) reverse), nil when the span is exhausted.
func (db *DB) storeScan(ctx context.Context, start, end []byte, ts kv.Timestamp, limit int, reverse, nearest bool) (rows []kv.KeyValue, resume []byte, err error) {
	var w lockWait
	stale := 0
	lo, hi := start, end
	for bytes.Compare(lo, hi) < 0 && len(rows) < limit {
		var desc *kv.RangeDescriptor
		if reverse {
			desc, err = db.sender.RangeBeforeKey(ctx, lo, hi)
		} else {
			desc, err = db.sender.RangeForKey(ctx, lo)
		}
		if err != nil {
			return nil, nil, err
		}
		subLo, subHi := lo, hi
		if reverse {
			if bytes.Compare(desc.StartKey, subLo) > 0 {
				subLo = desc.StartKey
			}
		} else if bytes.Compare(desc.EndKey, subHi) < 0 {
			subHi = desc.EndKey
		}
		resp, err := db.readSender(nearest)(ctx, desc, &kv.Request{Scan: &kv.ScanRequest{
			Start: subLo, End: subHi, ReadTS: ts, Limit: limit - len(rows), Reverse: reverse,
		}})
		if err != nil {
			if isStaleRouting(err) && stale < maxRegroups {
				stale++
				continue // the sender corrected its cache; look the range up again
			}
			if lock, ok := asLocked(err); ok {
				if err := db.handleReadLock(ctx, lock, &w); err != nil {
					return nil, nil, err
				}
				nearest = false
				continue
			}
			return nil, nil, fmt.Errorf("txn: scan [%q, %q) in r%d: %w", subLo, subHi, desc.RangeID, err)
		}
		if resp.Scan == nil {
			return nil, nil, fmt.Errorf("txn: scan in r%d: empty response", desc.RangeID)
		}
		rows = append(rows, resp.Scan.Rows...)
		if resp.Scan.ResumeKey != nil {
			return rows, resp.Scan.ResumeKey, nil
		}
		if reverse {
			hi = subLo
		} else {
			lo = subHi
		}
	}
	if bytes.Compare(lo, hi) >= 0 {
		return rows, nil, nil
	}
	if reverse {
		return rows, hi, nil
	}
	return rows, lo, nil
}
