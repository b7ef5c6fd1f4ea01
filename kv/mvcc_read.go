package kv

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// mvccReader reads the three MVCC families through one Reader. Point
// lookups (a lock, a record, a key's history, a data version) share one
// lazily created iterator over all three families: a request touching many
// keys pays for one iterator, and seeks in key order reuse its position.
// Exact-key lookups (getExact) seek in prefix mode so that deletion
// tombstones of other keys are never stepped over.
type mvccReader struct {
	r      Reader
	it     *pebble.Iterator
	keyBuf []byte // scratch for building pebble keys
}

func newMVCCReader(r Reader) *mvccReader { return &mvccReader{r: r} }

func (m *mvccReader) close() error {
	if m.it == nil {
		return nil
	}
	err := m.it.Close()
	m.it = nil
	if err != nil {
		return fmt.Errorf("kv: close MVCC iterator: %w", err)
	}
	return nil
}

func (m *mvccReader) iter() (*pebble.Iterator, error) {
	if m.it != nil {
		return m.it, nil
	}
	it, err := m.r.NewIter(&pebble.IterOptions{LowerBound: []byte{lockFamily}, UpperBound: []byte{writeFamily + 1}})
	if err != nil {
		return nil, fmt.Errorf("kv: new MVCC iterator: %w", err)
	}
	m.it = it
	return it, nil
}

// getExact returns the value of the pebble key, valid until the next use of
// the iterator. found tells absence apart from an empty value.
//
// It seeks in prefix mode: with pebble's default comparer the prefix of a key
// is the whole key, so the seek looks at the versions of that key only. A
// plain SeekGE on an absent (deleted) key walks on to the next live key,
// through every deletion tombstone in between: every committed or rolled
// back lock leaves one in the lock family until compaction drops it, and
// under write load the memtable holds thousands, which made each prewrite's
// lock lookup linear in them. The equality check keeps this correct for any
// comparer. The next positioning call (SeekGE, First, …) leaves prefix mode.
func (m *mvccReader) getExact(key []byte) (value []byte, found bool, err error) {
	it, err := m.iter()
	if err != nil {
		return nil, false, err
	}
	if it.SeekPrefixGE(key) && bytes.Equal(it.Key(), key) {
		v, err := it.ValueAndErr()
		if err != nil {
			return nil, false, fmt.Errorf("kv: read %x: %w", key, err)
		}
		return v, true, nil
	}
	if err := it.Error(); err != nil {
		return nil, false, fmt.Errorf("kv: read %x: %w", key, err)
	}
	return nil, false, nil
}

// getLock returns the lock on userKey, or nil.
func (m *mvccReader) getLock(userKey []byte) (*mvccLock, error) {
	v, found, err := m.getExact(familyPrefixKey(lockFamily, userKey))
	if err != nil || !found {
		return nil, err
	}
	l, err := decodeLock(v)
	if err != nil {
		return nil, err
	}
	l.primary = append([]byte(nil), l.primary...)
	return &l, nil
}

// getRecord returns the write-family record of userKey at exactly ts, or nil.
func (m *mvccReader) getRecord(userKey []byte, ts Timestamp) (*writeRecord, error) {
	v, found, err := m.getExact(versionedKey(writeFamily, userKey, ts))
	if err != nil || !found {
		return nil, err
	}
	w, err := decodeWriteRecord(v)
	if err != nil {
		return nil, err
	}
	return &w, nil
}

// readData returns a copy of the data version of userKey written at startTS.
func (m *mvccReader) readData(userKey []byte, startTS Timestamp) ([]byte, error) {
	if need := 1 + 2*len(userKey) + 2 + timestampSize; cap(m.keyBuf) < need {
		m.keyBuf = make([]byte, 0, need)
	}
	m.keyBuf = binary.BigEndian.AppendUint64(appendEscaped(append(m.keyBuf[:0], dataFamily), userKey), ^startTS)
	v, found, err := m.getExact(m.keyBuf)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("kv: corrupt MVCC state: write record of %q points at missing data version %d", userKey, startTS)
	}
	return append(make([]byte, 0, len(v)), v...), nil
}

// versionTS splits a versioned pebble key of the given escaped prefix. ok is
// false when key is not a version of that prefix.
func versionTS(key, prefix []byte) (ts Timestamp, ok bool) {
	if len(key) != len(prefix)+timestampSize || !bytes.HasPrefix(key, prefix) {
		return 0, false
	}
	return ^binary.BigEndian.Uint64(key[len(prefix):]), true
}

// keyHistory is what the write records of one key at or after a
// transaction's start_ts say about that transaction.
type keyHistory struct {
	// committedAt is the commit_ts of the transaction's own commit record
	// (0: none).
	committedAt Timestamp
	// rolledBack: a rollback marker (or an overlapped-rollback flag) for the
	// transaction sits at its start_ts.
	rolledBack bool
	// conflict is the newest commit record of another transaction with
	// commit_ts > start_ts; conflictTS is its commit_ts.
	conflict   *writeRecord
	conflictTS Timestamp
}

// history walks userKey's write records from the newest down to startTS.
func (m *mvccReader) history(userKey []byte, startTS Timestamp) (keyHistory, error) {
	var h keyHistory
	it, err := m.iter()
	if err != nil {
		return h, err
	}
	prefix := familyPrefixKey(writeFamily, userKey)
	for ok := it.SeekGE(prefix); ok; ok = it.Next() {
		ts, isVersion := versionTS(it.Key(), prefix)
		if !isVersion || ts < startTS {
			break
		}
		w, err := decodeWriteRecord(it.Value())
		if err != nil {
			return h, err
		}
		switch {
		case w.rollsBack(ts, startTS):
			// An overlapped commit record at ts == startTS belongs to another
			// transaction, but a commit at exactly startTS is inside the
			// snapshot of startTS: not a conflict.
			h.rolledBack = true
		case w.isCommit() && w.startTS == startTS:
			h.committedAt = ts
		case w.isCommit() && ts > startTS && h.conflict == nil:
			wc := w
			h.conflict, h.conflictTS = &wc, ts
		}
	}
	if err := it.Error(); err != nil {
		return h, fmt.Errorf("kv: read history of %q: %w", userKey, err)
	}
	return h, nil
}

// visibleAt positions it on the newest record of the key with the escaped
// write-family prefix at or below readTS and walks down to the first put or
// delete. It returns the data version's start_ts when the key is visible.
// atNewest says that it already sits on the key's newest record, which saves
// the seek when that record is at or below readTS.
func visibleAt(it *pebble.Iterator, prefix []byte, readTS Timestamp, atNewest bool) (startTS Timestamp, found bool, err error) {
	ok := false
	if atNewest && it.Valid() {
		ts, isVersion := versionTS(it.Key(), prefix)
		ok = isVersion && ts <= readTS
	}
	if !ok {
		var seek [64]byte
		ok = it.SeekGE(binary.BigEndian.AppendUint64(append(seek[:0], prefix...), ^readTS))
	}
	for ; ok; ok = it.Next() {
		if _, isVersion := versionTS(it.Key(), prefix); !isVersion {
			break
		}
		w, err := decodeWriteRecord(it.Value())
		if err != nil {
			return 0, false, err
		}
		switch w.kind {
		case writePut:
			return w.startTS, true, nil
		case writeDelete:
			return 0, false, nil
		}
	}
	if err := it.Error(); err != nil {
		return 0, false, fmt.Errorf("kv: read versions: %w", err)
	}
	return 0, false, nil
}

// lockedError builds the error a reader or writer reports for l on userKey.
func lockedError(userKey []byte, l *mvccLock) *LockedError {
	return &LockedError{Key: userKey, Primary: append([]byte(nil), l.primary...), StartTS: l.startTS, TTL: l.ttl}
}

// get reads userKey at readTS.
func (m *mvccReader) get(userKey []byte, readTS Timestamp) (*GetResponse, error) {
	l, err := m.getLock(userKey)
	if err != nil {
		return nil, err
	}
	if l != nil && l.startTS <= readTS {
		return nil, lockedError(userKey, l)
	}
	it, err := m.iter()
	if err != nil {
		return nil, err
	}
	startTS, found, err := visibleAt(it, familyPrefixKey(writeFamily, userKey), readTS, false)
	if err != nil || !found {
		return &GetResponse{}, err
	}
	v, err := m.readData(userKey, startTS)
	if err != nil {
		return nil, err
	}
	return &GetResponse{Value: v, Found: true}, nil
}

// keyWalker visits, in key order (or reverse), every user key of [start, end)
// that has a lock or at least one write record. It owns a lock iterator and a
// write iterator bounded to the span; callers may reposition writeIt while
// handling a key, the walker finds its way from the key's prefix.
type keyWalker struct {
	lockIt, writeIt *pebble.Iterator
	reverse         bool
	lockOK, writeOK bool
	started         bool
	prevHadLock     bool
	prevWritePrefix []byte
	curLock         []byte // raw lock value of the current key (nil: none)
	curWritePrefix  []byte // escaped write-family prefix of the current key (nil: no records)
	curKey          []byte
	withLocks       bool
	prefixBufs      [2][]byte // curWritePrefix alternates between them
	seekBuf         []byte
}

func newKeyWalker(r Reader, start, end []byte, reverse, withLocks bool) (*keyWalker, error) {
	w := &keyWalker{reverse: reverse, withLocks: withLocks}
	var err error
	if withLocks {
		w.lockIt, err = r.NewIter(&pebble.IterOptions{
			LowerBound: familySpanBound(lockFamily, start), UpperBound: familySpanBound(lockFamily, end)})
		if err != nil {
			return nil, fmt.Errorf("kv: new lock iterator: %w", err)
		}
	}
	w.writeIt, err = r.NewIter(&pebble.IterOptions{
		LowerBound: familySpanBound(writeFamily, start), UpperBound: familySpanBound(writeFamily, end)})
	if err != nil {
		_ = w.close()
		return nil, fmt.Errorf("kv: new write iterator: %w", err)
	}
	return w, nil
}

func (w *keyWalker) close() error {
	var first error
	for _, it := range []*pebble.Iterator{w.lockIt, w.writeIt} {
		if it == nil {
			continue
		}
		if err := it.Close(); err != nil && first == nil {
			first = fmt.Errorf("kv: close iterator: %w", err)
		}
	}
	w.lockIt, w.writeIt = nil, nil
	return first
}

// next moves to the next key with a lock or write records. ok is false at
// the end of the span.
func (w *keyWalker) next() (ok bool, err error) {
	if !w.started {
		w.started = true
		if w.reverse {
			w.writeOK = w.writeIt.Last()
			if w.withLocks {
				w.lockOK = w.lockIt.Last()
			}
		} else {
			w.writeOK = w.writeIt.First()
			if w.withLocks {
				w.lockOK = w.lockIt.First()
			}
		}
	} else {
		if w.prevHadLock {
			if w.reverse {
				w.lockOK = w.lockIt.Prev()
			} else {
				w.lockOK = w.lockIt.Next()
			}
		}
		if w.prevWritePrefix != nil {
			w.writeOK = w.skipKey(w.prevWritePrefix)
		}
	}
	w.prevHadLock, w.prevWritePrefix, w.curLock, w.curWritePrefix, w.curKey = false, nil, nil, nil, nil
	if !w.lockOK && !w.writeOK {
		if w.withLocks {
			if err := w.lockIt.Error(); err != nil {
				return false, fmt.Errorf("kv: iterate locks: %w", err)
			}
		}
		if err := w.writeIt.Error(); err != nil {
			return false, fmt.Errorf("kv: iterate write records: %w", err)
		}
		return false, nil
	}
	var lockEsc, writeEsc []byte // escaped user keys, terminator included
	if w.lockOK {
		lockEsc = w.lockIt.Key()[1:]
	}
	if w.writeOK {
		k := w.writeIt.Key()
		if len(k) < 1+2+timestampSize {
			return false, fmt.Errorf("kv: corrupt write-family key %x", k)
		}
		writeEsc = k[1 : len(k)-timestampSize]
	}
	useLock, useWrite := w.lockOK, w.writeOK
	if useLock && useWrite {
		c := bytes.Compare(lockEsc, writeEsc)
		if w.reverse {
			c = -c
		}
		useLock, useWrite = c <= 0, c >= 0
	}
	esc := writeEsc
	if useLock {
		esc = lockEsc
		w.prevHadLock = true
		w.curLock = append([]byte(nil), w.lockIt.Value()...)
	}
	key, rest, err := decodeEscaped(esc)
	if err != nil {
		return false, err
	}
	if len(rest) != 0 {
		return false, fmt.Errorf("kv: corrupt MVCC key %x", esc)
	}
	w.curKey = key
	if useWrite {
		// The previous prefix is dead by now; reuse its buffer for the next
		// key after this one.
		buf := append(w.prefixBufs[0][:0], writeFamily)
		buf = append(buf, esc...)
		w.prefixBufs[0], w.prefixBufs[1] = w.prefixBufs[1], buf
		w.curWritePrefix = buf
		w.prevWritePrefix = buf
	}
	return true, nil
}

// skipKey moves the write iterator to the first record of the key after
// (before, in reverse) the key with the given prefix. Going forward it steps
// a few times first: keys usually have one or two versions, and a Next is
// cheaper than a seek.
func (w *keyWalker) skipKey(prefix []byte) bool {
	it := w.writeIt
	if w.reverse {
		return it.SeekLT(prefix)
	}
	for i := 0; i < 4 && it.Valid(); i++ {
		if !bytes.HasPrefix(it.Key(), prefix) {
			if bytes.Compare(it.Key(), prefix) > 0 {
				return true // already on the next key's newest record
			}
			break
		}
		if !it.Next() {
			return it.Valid()
		}
	}
	// Seek past every version: prefix ends with the escape terminator 0x00
	// 0x01, and 0x00 0x02 sorts after all its versions and before any
	// longer key.
	w.seekBuf = append(w.seekBuf[:0], prefix...)
	w.seekBuf[len(w.seekBuf)-1]++
	return it.SeekGE(w.seekBuf)
}

// scan serves a ScanRequest whose span has been checked.
func (m *mvccReader) scan(req *ScanRequest) (*ScanResponse, error) {
	resp := &ScanResponse{}
	if bytes.Compare(req.Start, req.End) >= 0 {
		return resp, nil
	}
	w, err := newKeyWalker(m.r, req.Start, req.End, req.Reverse, true)
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.close() }()
	for {
		ok, err := w.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		if w.curLock != nil {
			l, err := decodeLock(w.curLock)
			if err != nil {
				return nil, err
			}
			if l.startTS <= req.ReadTS {
				return nil, lockedError(w.curKey, &l)
			}
		}
		if w.curWritePrefix == nil {
			continue
		}
		startTS, found, err := visibleAt(w.writeIt, w.curWritePrefix, req.ReadTS, !req.Reverse)
		if err != nil {
			return nil, err
		}
		if !found {
			continue
		}
		v, err := m.readData(w.curKey, startTS)
		if err != nil {
			return nil, err
		}
		resp.Rows = append(resp.Rows, KeyValue{Key: w.curKey, Value: v})
		if req.Limit > 0 && len(resp.Rows) >= req.Limit {
			last := w.curKey
			more, err := w.next()
			if err != nil {
				return nil, err
			}
			if more {
				if req.Reverse {
					resp.ResumeKey = last
				} else {
					resp.ResumeKey = append(append(make([]byte, 0, len(last)+1), last...), 0)
				}
			}
			break
		}
	}
	if err := w.close(); err != nil {
		return nil, err
	}
	return resp, nil
}

// firstReadConflict returns the first key in spans (in span order, then key
// order) with a lock of a transaction other than self whose start_ts is at
// most to, or a commit record of a transaction other than self with
// commit_ts in (from, to]. nil: none.
//
// A lock with start_ts > to cannot become a record in (from, to]: every
// commit_ts is after its start_ts (Commit and ResolveLock refuse anything
// below the lock's min_commit_ts = start_ts+1), so that writer serializes
// after the validating transaction and is not a conflict.
func (m *mvccReader) firstReadConflict(spans []Span, self, from, to Timestamp) ([]byte, error) {
	for _, s := range spans {
		if len(s.EndKey) == 0 {
			bad, err := m.keyReadConflict(s.Key, self, from, to)
			if err != nil || bad {
				return s.Key, err
			}
			continue
		}
		if bytes.Compare(s.Key, s.EndKey) >= 0 {
			continue
		}
		key, err := m.spanReadConflict(s, self, from, to)
		if err != nil || key != nil {
			return key, err
		}
	}
	return nil, nil
}

func (m *mvccReader) keyReadConflict(userKey []byte, self, from, to Timestamp) (bool, error) {
	l, err := m.getLock(userKey)
	if err != nil {
		return false, err
	}
	if l != nil && lockConflicts(l, self, to) {
		return true, nil
	}
	it, err := m.iter()
	if err != nil {
		return false, err
	}
	return recordsConflict(it, familyPrefixKey(writeFamily, userKey), self, from, to)
}

func (m *mvccReader) spanReadConflict(s Span, self, from, to Timestamp) ([]byte, error) {
	w, err := newKeyWalker(m.r, s.Key, s.EndKey, false, true)
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.close() }()
	for {
		ok, err := w.next()
		if err != nil || !ok {
			return nil, err
		}
		if w.curLock != nil {
			l, err := decodeLock(w.curLock)
			if err != nil {
				return nil, err
			}
			if lockConflicts(&l, self, to) {
				return w.curKey, nil
			}
		}
		if w.curWritePrefix != nil {
			bad, err := recordsConflict(w.writeIt, w.curWritePrefix, self, from, to)
			if err != nil {
				return nil, err
			}
			if bad {
				return w.curKey, nil
			}
		}
	}
}

// lockConflicts reports whether l, found in a read span of the transaction
// self validating up to to, may still produce a commit record in (from, to]:
// it belongs to another transaction and its start_ts is at most to (its
// commit_ts will exceed its start_ts).
func lockConflicts(l *mvccLock, self, to Timestamp) bool {
	return l.startTS != self && l.startTS <= to
}

// recordsConflict reports whether the key with the given write-family prefix
// has a commit record of a transaction other than self in (from, to].
func recordsConflict(it *pebble.Iterator, prefix []byte, self, from, to Timestamp) (bool, error) {
	if to <= from {
		return false, nil
	}
	seek := binary.BigEndian.AppendUint64(append(make([]byte, 0, len(prefix)+timestampSize), prefix...), ^to)
	for ok := it.SeekGE(seek); ok; ok = it.Next() {
		ts, isVersion := versionTS(it.Key(), prefix)
		if !isVersion || ts <= from {
			break
		}
		w, err := decodeWriteRecord(it.Value())
		if err != nil {
			return false, err
		}
		if w.isCommit() && w.startTS != self {
			return true, nil
		}
	}
	if err := it.Error(); err != nil {
		return false, fmt.Errorf("kv: read versions: %w", err)
	}
	return false, nil
}
