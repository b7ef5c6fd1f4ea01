package txn

import (
	"bytes"
	"context"

	"github.com/quorumdb/quorumdb/kv"
)

// defaultIteratorBatch is the page size when the caller gives none.
const defaultIteratorBatch = 256

// Iterator pages through [start, end) of a transaction's view: rows read at
// the start timestamp in pages of batchSize, merged with the transaction's
// buffered writes (a buffered put shows its value, a buffered delete hides the
// row). The span it has covered so far is recorded for validation and grows
// as Next returns rows, so stopping early records only what was looked at.
type Iterator struct {
	t          *Txn
	start, end []byte
	reverse    bool
	batch      int
	err        error
	done       bool

	// store page
	page      []kv.KeyValue
	pageIdx   int
	storeNext []byte // forward: next page starts here; reverse: next page ends here
	storeDone bool

	// last is the last key returned (nil before the first).
	last []byte
	// readIdx is the index of this iterator's span in t.reads (-1: none yet).
	readIdx int
}

// NewIterator returns an iterator over [start, end) (end nil: to the end of
// the key space), descending when reverse, fetching batchSize rows per page
// (0: a default). Errors are reported by Next.
func (t *Txn) NewIterator(ctx context.Context, start, end []byte, reverse bool, batchSize int) *Iterator {
	if end == nil {
		end = kv.KeyMax
	}
	if batchSize <= 0 {
		batchSize = defaultIteratorBatch
	}
	it := &Iterator{
		t: t, start: append([]byte(nil), start...), end: append([]byte(nil), end...),
		reverse: reverse, batch: batchSize, readIdx: -1,
	}
	switch {
	case bytes.Compare(it.start, it.end) > 0:
		it.err = &InvalidArgumentError{Reason: "scan start after end"}
	case bytes.Compare(it.end, kv.KeyMax) > 0:
		it.err = &InvalidArgumentError{Reason: "scan end above KeyMax"}
	}
	if reverse {
		it.storeNext = it.end
	} else {
		it.storeNext = it.start
	}
	if bytes.Equal(it.start, it.end) {
		it.storeDone = true
	}
	return it
}

// Next returns the next row; ok is false when the iterator is exhausted.
func (it *Iterator) Next(ctx context.Context) (row kv.KeyValue, ok bool, err error) {
	if it.err != nil {
		return kv.KeyValue{}, false, it.err
	}
	if it.done {
		return kv.KeyValue{}, false, nil
	}
	t := it.t
	if _, err := t.beginRead(ctx); err != nil {
		it.err = err
		return kv.KeyValue{}, false, err
	}
	for {
		if it.pageIdx >= len(it.page) && !it.storeDone {
			if err := it.fetch(ctx); err != nil {
				it.err = err
				return kv.KeyValue{}, false, err
			}
			continue
		}
		var s *kv.KeyValue
		if it.pageIdx < len(it.page) {
			s = &it.page[it.pageIdx]
		}
		bkey, bent, hasBuf := it.nextBuffered()
		useBuf := hasBuf && (s == nil || (!it.reverse && bytes.Compare(bkey, s.Key) <= 0) ||
			(it.reverse && bytes.Compare(bkey, s.Key) >= 0))
		if !useBuf {
			if s == nil {
				it.finish()
				return kv.KeyValue{}, false, nil
			}
			it.pageIdx++
			it.advance(s.Key)
			return *s, true, nil
		}
		sameAsStore := s != nil && bytes.Equal(bkey, s.Key)
		if sameAsStore {
			it.pageIdx++
		}
		it.advance(bkey)
		switch bent.op {
		case kv.OpPut:
			// Copies: the caller may keep or change the row, the buffer must not.
			return kv.KeyValue{Key: append([]byte(nil), bkey...), Value: append([]byte(nil), bent.value...)}, true, nil
		case kv.OpLock:
			if sameAsStore {
				return *s, true, nil
			}
		}
		// A buffered delete, or a lock on a key the store does not have: skip.
	}
}

// nextBuffered returns the next buffered entry after the last returned key,
// inside the span.
func (it *Iterator) nextBuffered() ([]byte, bufEntry, bool) {
	t := it.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.buf == nil || t.buf.len == 0 {
		return nil, bufEntry{}, false
	}
	if !it.reverse {
		lo := it.start
		if it.last != nil {
			lo = append(append(make([]byte, 0, len(it.last)+1), it.last...), 0)
		}
		n := t.buf.seekGE(lo)
		if n == nil || bytes.Compare(n.key, it.end) >= 0 {
			return nil, bufEntry{}, false
		}
		return n.key, n.entry, true
	}
	hi := it.end
	if it.last != nil {
		hi = it.last
	}
	n := t.buf.seekLT(hi)
	if n == nil || bytes.Compare(n.key, it.start) < 0 {
		return nil, bufEntry{}, false
	}
	return n.key, n.entry, true
}

// fetch reads the next page from the store.
func (it *Iterator) fetch(ctx context.Context) error {
	t := it.t
	ts, err := t.beginRead(ctx)
	if err != nil {
		return err
	}
	lo, hi := it.storeNext, it.end
	if it.reverse {
		lo, hi = it.start, it.storeNext
	}
	rows, resume, err := t.db.storeScan(ctx, lo, hi, ts, it.batch, it.reverse, t.followerReads())
	if err != nil {
		return err
	}
	it.page, it.pageIdx = rows, 0
	if resume == nil {
		it.storeDone = true
	} else {
		it.storeNext = resume
	}
	return nil
}

// advance notes that key was consumed and grows the recorded span to it.
func (it *Iterator) advance(key []byte) {
	it.last = key
	if it.t.readOnly {
		return // nothing to validate
	}
	if it.reverse {
		it.record(kv.Span{Key: key, EndKey: it.end})
	} else {
		it.record(kv.Span{Key: it.start, EndKey: append(append(make([]byte, 0, len(key)+1), key...), 0)})
	}
}

// finish records the whole span: the iterator saw all of it.
func (it *Iterator) finish() {
	it.done = true
	if !bytes.Equal(it.start, it.end) {
		it.record(kv.Span{Key: it.start, EndKey: it.end})
	}
}

func (it *Iterator) record(sp kv.Span) {
	t := it.t
	if t.readOnly {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if it.readIdx < 0 {
		t.reads = append(t.reads, sp)
		it.readIdx = len(t.reads) - 1
		return
	}
	t.reads[it.readIdx] = sp
}

// Close releases the iterator. The span covered so far stays recorded.
func (it *Iterator) Close() {
	it.done = true
	it.page = nil
}
