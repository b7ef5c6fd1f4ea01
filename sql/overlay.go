package qsql

import (
	"bytes"
	"context"
	"sort"

	"github.com/quorumdb/quorumdb/kv"
	"github.com/quorumdb/quorumdb/txn"
)

// stmtOverlay holds the writes of the running statement until it completes.
// MySQL statements read the state as of their start: an UPDATE that moves
// a row forward in the primary key, or INSERT … SELECT from the same table,
// must not see its own new rows while it scans. So table scans read the
// transaction (earlier statements' writes included) without the overlay,
// while the editors' own checks (unique keys, locating a row, foreign key
// lookups through the foreign key editor) read through it. The overlay is
// flushed into the transaction when the statement completes and dropped when
// it is discarded.
type stmtOverlay struct {
	entries map[string]overlayEntry
	sorted  []string // keys in order; nil when stale
}

type overlayEntry struct {
	value   []byte
	deleted bool
}

func newOverlay() *stmtOverlay { return &stmtOverlay{entries: map[string]overlayEntry{}} }

func (o *stmtOverlay) set(key, value []byte, deleted bool) {
	k := string(key)
	if _, ok := o.entries[k]; !ok {
		o.sorted = nil
	}
	o.entries[k] = overlayEntry{value: cloneBytes(value), deleted: deleted}
}

func (o *stmtOverlay) keys() []string {
	if o.sorted == nil {
		o.sorted = make([]string, 0, len(o.entries))
		for k := range o.entries {
			o.sorted = append(o.sorted, k)
		}
		sort.Strings(o.sorted)
	}
	return o.sorted
}

// span returns the overlay keys in [start, end) in order (reversed if asked).
func (o *stmtOverlay) span(start, end []byte, reverse bool) []string {
	ks := o.keys()
	lo := sort.SearchStrings(ks, string(start))
	hi := len(ks)
	if end != nil {
		hi = sort.SearchStrings(ks, string(end))
	}
	if lo >= hi {
		return nil
	}
	out := append([]string(nil), ks[lo:hi]...)
	if reverse {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out
}

// flush writes the overlay into the transaction.
func (o *stmtOverlay) flush(ctx context.Context, kvt KVTxn) error {
	for _, k := range o.keys() {
		e := o.entries[k]
		var err error
		if e.deleted {
			err = kvt.Delete(ctx, []byte(k))
		} else {
			err = kvt.Put(ctx, []byte(k), e.value)
		}
		if err != nil {
			return convertTxnError("write statement changes", err)
		}
	}
	return nil
}

// stmtWriter is the write/read path of editors: through the statement
// overlay when a statement is running, straight to the transaction
// otherwise (DDL backfills, rewrites).
type stmtWriter struct {
	kvt KVTxn
	ov  *stmtOverlay
}

func (w stmtWriter) put(ctx context.Context, key, value []byte) error {
	if w.ov != nil {
		w.ov.set(key, value, false)
		return nil
	}
	return convertTxnError("write", w.kvt.Put(ctx, key, value))
}

func (w stmtWriter) del(ctx context.Context, key []byte) error {
	if w.ov != nil {
		w.ov.set(key, nil, true)
		return nil
	}
	return convertTxnError("delete", w.kvt.Delete(ctx, key))
}

func (w stmtWriter) get(ctx context.Context, key []byte) ([]byte, bool, error) {
	if w.ov != nil {
		if e, ok := w.ov.entries[string(key)]; ok {
			return e.value, !e.deleted, nil
		}
	}
	v, found, err := w.kvt.Get(ctx, key)
	return v, found, convertTxnError("read", err)
}

func (w stmtWriter) batchGet(ctx context.Context, keys [][]byte) ([]txn.GetResult, error) {
	res, err := w.kvt.BatchGet(ctx, keys)
	if err != nil {
		return nil, convertTxnError("read", err)
	}
	if w.ov != nil {
		for i, k := range keys {
			if e, ok := w.ov.entries[string(k)]; ok {
				res[i] = txn.GetResult{Value: e.value, Found: !e.deleted}
			}
		}
	}
	return res, nil
}

func (w stmtWriter) scan(ctx context.Context, start, end []byte) ([]kv.KeyValue, error) {
	base, err := w.kvt.Scan(ctx, start, end, 0, false)
	if err != nil {
		return nil, convertTxnError("scan", err)
	}
	if w.ov == nil {
		return base, nil
	}
	m := &mergeIter{base: &sliceIter{kvs: base}, ov: w.ov, ovKeys: w.ov.span(start, end, false)}
	var out []kv.KeyValue
	for {
		e, ok, err := m.next(ctx)
		if err != nil || !ok {
			return out, err
		}
		out = append(out, e)
	}
}

// kvIterator is what mergeIter merges the overlay into.
type kvIterator interface {
	Next(ctx context.Context) (kv.KeyValue, bool, error)
}

type sliceIter struct{ kvs []kv.KeyValue }

func (s *sliceIter) Next(context.Context) (kv.KeyValue, bool, error) {
	if len(s.kvs) == 0 {
		return kv.KeyValue{}, false, nil
	}
	e := s.kvs[0]
	s.kvs = s.kvs[1:]
	return e, true, nil
}

// mergeIter merges a span's overlay keys into a transaction iterator; the
// overlay wins on equal keys and its deletions hide rows.
type mergeIter struct {
	base    kvIterator
	ov      *stmtOverlay
	ovKeys  []string
	reverse bool

	peeked  bool
	peek    kv.KeyValue
	baseEnd bool
}

func (m *mergeIter) next(ctx context.Context) (kv.KeyValue, bool, error) {
	for {
		if !m.peeked && !m.baseEnd {
			e, ok, err := m.base.Next(ctx)
			if err != nil {
				return kv.KeyValue{}, false, err
			}
			if ok {
				m.peek, m.peeked = e, true
			} else {
				m.baseEnd = true
			}
		}
		if len(m.ovKeys) == 0 {
			if !m.peeked {
				return kv.KeyValue{}, false, nil
			}
			m.peeked = false
			return m.peek, true, nil
		}
		ok := m.ovKeys[0]
		useOverlay := !m.peeked
		if m.peeked {
			c := bytes.Compare([]byte(ok), m.peek.Key)
			if m.reverse {
				c = -c
			}
			if c == 0 {
				m.peeked = false // shadowed by the overlay
			}
			useOverlay = c <= 0
		}
		if !useOverlay {
			m.peeked = false
			return m.peek, true, nil
		}
		m.ovKeys = m.ovKeys[1:]
		e := m.ov.entries[ok]
		if e.deleted {
			continue
		}
		return kv.KeyValue{Key: []byte(ok), Value: e.value}, true, nil
	}
}
