package kv

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

var (
	modelSeed = flag.Uint64("seed", 1, "seed of TestModel's random operations")
	modelOps  = flag.Int("ops", 10000, "number of random operations TestModel runs")
)

// refModel is the reference the engine is compared with: the semantics of
// api.go written as plainly as possible over Go maps, with no encoding and
// no iterators. It shares only checkRequest (shape and range checks) with
// the engine.
type refModel struct {
	// overlaps counts overlapped rollbacks created (coverage only).
	overlaps int
	locks    map[string]refLock
	data     map[string]map[Timestamp][]byte
	writes   map[string]map[Timestamp]refWrite
}

type refLock struct {
	primary []byte
	startTS Timestamp
	ttl     uint64
	kind    MutationOp
}

type refWrite struct {
	startTS    Timestamp
	rollback   bool       // a rollback marker
	kind       MutationOp // for commits
	overlapped bool       // a commit record that also marks txn ts as rolled back
}

func newRefModel() *refModel {
	return &refModel{locks: map[string]refLock{}, data: map[string]map[Timestamp][]byte{}, writes: map[string]map[Timestamp]refWrite{}}
}

func (m *refModel) setWrite(k string, ts Timestamp, w refWrite) {
	if m.writes[k] == nil {
		m.writes[k] = map[Timestamp]refWrite{}
	}
	m.writes[k][ts] = w
}

func (m *refModel) setData(k string, ts Timestamp, v []byte) {
	if m.data[k] == nil {
		m.data[k] = map[Timestamp][]byte{}
	}
	m.data[k][ts] = v
}

func (m *refModel) delData(k string, ts Timestamp) {
	delete(m.data[k], ts)
	if len(m.data[k]) == 0 {
		delete(m.data, k)
	}
}

func (m *refModel) delWrite(k string, ts Timestamp) {
	delete(m.writes[k], ts)
	if len(m.writes[k]) == 0 {
		delete(m.writes, k)
	}
}

// versionsDesc returns the write-record timestamps of k, newest first.
func (m *refModel) versionsDesc(k string) []Timestamp {
	var ts []Timestamp
	for t := range m.writes[k] {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i] > ts[j] })
	return ts
}

func (m *refModel) committedAt(k string, start Timestamp) Timestamp {
	for ts, w := range m.writes[k] {
		if !w.rollback && w.startTS == start && ts > start {
			return ts
		}
	}
	return 0
}

func (m *refModel) rolledBack(k string, start Timestamp) bool {
	w, ok := m.writes[k][start]
	return ok && ((w.rollback && w.startTS == start) || w.overlapped)
}

// conflict returns the newest commit of another transaction after start.
func (m *refModel) conflict(k string, start Timestamp) (refWrite, Timestamp, bool) {
	for _, ts := range m.versionsDesc(k) {
		w := m.writes[k][ts]
		if ts > start && !w.rollback && w.startTS != start {
			return w, ts, true
		}
	}
	return refWrite{}, 0, false
}

func (m *refModel) lockedErr(k string, l refLock) error {
	return &LockedError{Key: []byte(k), Primary: l.primary, StartTS: l.startTS, TTL: l.ttl}
}

func (m *refModel) visible(k string, readTS Timestamp) ([]byte, bool) {
	for _, ts := range m.versionsDesc(k) {
		if ts > readTS {
			continue
		}
		w := m.writes[k][ts]
		if w.rollback {
			continue
		}
		switch w.kind {
		case OpPut:
			return m.data[k][w.startTS], true
		case OpDelete:
			return nil, false
		}
	}
	return nil, false
}

// keysIn returns the keys of [start, end) with a lock or a write record, in
// order.
func (m *refModel) keysIn(start, end []byte) []string {
	set := map[string]bool{}
	for k := range m.locks {
		set[k] = true
	}
	for k := range m.writes {
		set[k] = true
	}
	var out []string
	for k := range set {
		if k >= string(start) && k < string(end) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func (m *refModel) readConflict(k string, self, from, to Timestamp) bool {
	// A lock that starts after to commits after to: not a conflict.
	if l, ok := m.locks[k]; ok && l.startTS != self && l.startTS <= to {
		return true
	}
	for ts, w := range m.writes[k] {
		if ts > from && ts <= to && !w.rollback && w.startTS != self {
			return true
		}
	}
	return false
}

func (m *refModel) firstReadConflict(spans []Span, self, from, to Timestamp) []byte {
	for _, s := range spans {
		if len(s.EndKey) == 0 {
			if m.readConflict(string(s.Key), self, from, to) {
				return s.Key
			}
			continue
		}
		for _, k := range m.keysIn(s.Key, s.EndKey) {
			if m.readConflict(k, self, from, to) {
				return []byte(k)
			}
		}
	}
	return nil
}

// commitKey commits the lock of k at commitTS (the lock exists); it reports
// a conflict when another commit record sits there.
func (m *refModel) checkCommitKey(k string, l refLock, commitTS Timestamp) error {
	if w, ok := m.writes[k][commitTS]; ok && !w.rollback {
		return &WriteConflictError{Key: []byte(k), StartTS: l.startTS, ConflictStartTS: w.startTS, ConflictCommitTS: commitTS}
	}
	return nil
}

func (m *refModel) applyCommitKey(k string, l refLock, commitTS Timestamp) {
	_, marker := m.writes[k][commitTS]
	if marker {
		m.overlaps++
	}
	m.setWrite(k, commitTS, refWrite{startTS: l.startTS, kind: l.kind, overlapped: marker})
	delete(m.locks, k)
}

func (m *refModel) applyRollbackKey(k string, start Timestamp) {
	if l, ok := m.locks[k]; ok && l.startTS == start {
		delete(m.locks, k)
		if l.kind == OpPut {
			m.delData(k, start)
		}
	}
	w, ok := m.writes[k][start]
	switch {
	case !ok:
		m.setWrite(k, start, refWrite{startTS: start, rollback: true})
	case !w.rollback && !w.overlapped:
		m.overlaps++
		w.overlapped = true
		m.setWrite(k, start, w)
	}
}

func aborted(k []byte, start Timestamp) error {
	return &TxnAbortedError{Key: k, StartTS: start}
}

// eval answers req; on a request error the model is unchanged.
func (m *refModel) eval(desc *RangeDescriptor, req *Request) (*Response, error) {
	if err := checkRequest(desc, req); err != nil {
		return nil, err
	}
	switch {
	case req.Get != nil:
		k := string(req.Get.Key)
		if l, ok := m.locks[k]; ok && l.startTS <= req.Get.ReadTS {
			return nil, m.lockedErr(k, l)
		}
		v, found := m.visible(k, req.Get.ReadTS)
		return &Response{Get: &GetResponse{Value: v, Found: found}}, nil

	case req.Scan != nil:
		s := req.Scan
		keys := m.keysIn(s.Start, s.End)
		if s.Reverse {
			for i, j := 0, len(keys)-1; i < j; i, j = i+1, j-1 {
				keys[i], keys[j] = keys[j], keys[i]
			}
		}
		resp := &ScanResponse{}
		for i, k := range keys {
			if l, ok := m.locks[k]; ok && l.startTS <= s.ReadTS {
				return nil, m.lockedErr(k, l)
			}
			v, found := m.visible(k, s.ReadTS)
			if !found {
				continue
			}
			resp.Rows = append(resp.Rows, KeyValue{Key: []byte(k), Value: v})
			if s.Limit > 0 && len(resp.Rows) == s.Limit {
				if i+1 < len(keys) {
					if s.Reverse {
						resp.ResumeKey = []byte(k)
					} else {
						resp.ResumeKey = []byte(k + "\x00")
					}
				}
				break
			}
		}
		return &Response{Scan: resp}, nil

	case req.ValidateReads != nil:
		v := req.ValidateReads
		k := m.firstReadConflict(v.Spans, v.TxnStartTS, v.From, v.To)
		return &Response{ValidateReads: &ValidateReadsResponse{Conflict: k != nil, ConflictKey: k}}, nil

	case req.Prewrite != nil:
		p := req.Prewrite
		var todo []Mutation
		for _, mu := range p.Mutations {
			k := string(mu.Key)
			if l, ok := m.locks[k]; ok {
				if l.startTS == p.StartTS {
					continue
				}
				return nil, m.lockedErr(k, l)
			}
			if m.committedAt(k, p.StartTS) != 0 {
				continue
			}
			if m.rolledBack(k, p.StartTS) {
				return nil, aborted(mu.Key, p.StartTS)
			}
			if w, ts, ok := m.conflict(k, p.StartTS); ok {
				return nil, &WriteConflictError{Key: mu.Key, StartTS: p.StartTS, ConflictStartTS: w.startTS, ConflictCommitTS: ts}
			}
			todo = append(todo, mu)
		}
		for _, mu := range todo {
			k := string(mu.Key)
			m.locks[k] = refLock{primary: p.Primary, startTS: p.StartTS, ttl: p.LockTTL, kind: mu.Op}
			if mu.Op == OpPut {
				m.setData(k, p.StartTS, mu.Value)
			}
		}
		return &Response{Prewrite: &PrewriteResponse{}}, nil

	case req.Commit != nil:
		c := req.Commit
		for _, key := range c.Keys {
			k := string(key)
			if l, ok := m.locks[k]; ok && l.startTS == c.StartTS {
				if err := m.checkCommitKey(k, l, c.CommitTS); err != nil {
					return nil, err
				}
				continue
			}
			if m.committedAt(k, c.StartTS) == 0 {
				return nil, aborted(key, c.StartTS)
			}
		}
		for _, key := range c.Keys {
			if l, ok := m.locks[string(key)]; ok && l.startTS == c.StartTS {
				m.applyCommitKey(string(key), l, c.CommitTS)
			}
		}
		return &Response{Commit: &CommitResponse{}}, nil

	case req.Rollback != nil:
		r := req.Rollback
		for _, key := range r.Keys {
			k := string(key)
			if l, ok := m.locks[k]; ok && l.startTS == r.StartTS {
				continue
			}
			if ts := m.committedAt(k, r.StartTS); ts != 0 {
				return nil, &TxnCommittedError{Key: key, StartTS: r.StartTS, CommitTS: ts}
			}
		}
		for _, key := range r.Keys {
			m.applyRollbackKey(string(key), r.StartTS)
		}
		return &Response{Rollback: &RollbackResponse{}}, nil

	case req.CheckTxnStatus != nil:
		c := req.CheckTxnStatus
		k := string(c.PrimaryKey)
		if l, ok := m.locks[k]; ok && l.startTS == c.StartTS {
			expired := PhysicalMillis(l.startTS)+l.ttl < PhysicalMillis(c.CurrentTS)
			if c.RollbackIfExpired && expired {
				m.applyRollbackKey(k, c.StartTS)
				return &Response{CheckTxnStatus: &CheckTxnStatusResponse{Status: TxnRolledBack}}, nil
			}
			return &Response{CheckTxnStatus: &CheckTxnStatusResponse{Status: TxnPending, LockTTL: l.ttl}}, nil
		}
		if ts := m.committedAt(k, c.StartTS); ts != 0 {
			return &Response{CheckTxnStatus: &CheckTxnStatusResponse{Status: TxnCommitted, CommitTS: ts}}, nil
		}
		m.applyRollbackKey(k, c.StartTS)
		return &Response{CheckTxnStatus: &CheckTxnStatusResponse{Status: TxnRolledBack}}, nil

	case req.ResolveLock != nil:
		r := req.ResolveLock
		if r.CommitTS != 0 {
			for _, key := range r.Keys {
				if l, ok := m.locks[string(key)]; ok && l.startTS == r.StartTS {
					if err := m.checkCommitKey(string(key), l, r.CommitTS); err != nil {
						return nil, err
					}
				}
			}
		}
		for _, key := range r.Keys {
			k := string(key)
			l, ok := m.locks[k]
			if !ok || l.startTS != r.StartTS {
				continue
			}
			if r.CommitTS != 0 {
				m.applyCommitKey(k, l, r.CommitTS)
			} else {
				m.applyRollbackKey(k, r.StartTS)
			}
		}
		return &Response{ResolveLock: &ResolveLockResponse{}}, nil

	case req.TxnHeartbeat != nil:
		h := req.TxnHeartbeat
		k := string(h.PrimaryKey)
		if l, ok := m.locks[k]; ok && l.startTS == h.StartTS {
			l.ttl = max(l.ttl, h.NewTTL)
			m.locks[k] = l
			return &Response{TxnHeartbeat: &TxnHeartbeatResponse{LockTTL: l.ttl}}, nil
		}
		if ts := m.committedAt(k, h.StartTS); ts != 0 {
			return nil, &TxnCommittedError{Key: h.PrimaryKey, StartTS: h.StartTS, CommitTS: ts}
		}
		return nil, aborted(h.PrimaryKey, h.StartTS)

	case req.OnePhaseCommit != nil:
		o := req.OnePhaseCommit
		var todo []Mutation
		for _, mu := range o.Mutations {
			k := string(mu.Key)
			if ts := m.committedAt(k, o.StartTS); ts != 0 {
				// A replay: the transaction is already committed at ts.
				return &Response{OnePhaseCommit: &OnePhaseCommitResponse{CommitTS: ts}}, nil
			}
			if l, ok := m.locks[k]; ok {
				return nil, m.lockedErr(k, l)
			}
			if m.rolledBack(k, o.StartTS) {
				return nil, aborted(mu.Key, o.StartTS)
			}
			if w, ts, ok := m.conflict(k, o.StartTS); ok {
				return nil, &WriteConflictError{Key: mu.Key, StartTS: o.StartTS, ConflictStartTS: w.startTS, ConflictCommitTS: ts}
			}
			todo = append(todo, mu)
		}
		if k := m.firstReadConflict(o.ReadSpans, o.StartTS, o.StartTS, o.CommitTS); k != nil {
			return nil, &SerializationError{Key: k, StartTS: o.StartTS}
		}
		for _, mu := range todo {
			k := string(mu.Key)
			if mu.Op == OpPut {
				m.setData(k, o.StartTS, mu.Value)
			}
			_, marker := m.writes[k][o.CommitTS]
			if marker {
				m.overlaps++
			}
			m.setWrite(k, o.CommitTS, refWrite{startTS: o.StartTS, kind: mu.Op, overlapped: marker})
		}
		return &Response{OnePhaseCommit: &OnePhaseCommitResponse{CommitTS: o.CommitTS}}, nil

	default:
		g := req.GC
		removed := 0
		for _, k := range m.keysIn(g.Start, g.End) {
			decided := false
			for _, ts := range m.versionsDesc(k) {
				if ts > g.SafePoint {
					continue
				}
				w := m.writes[k][ts]
				isPut := !w.rollback && w.kind == OpPut
				if !decided && isPut {
					decided = true
					continue
				}
				if !decided && !w.rollback && w.kind == OpDelete {
					decided = true
				}
				m.delWrite(k, ts)
				if isPut {
					m.delData(k, w.startTS)
				}
				removed++
			}
		}
		return &Response{GC: &GCResponse{VersionsRemoved: removed}}, nil
	}
}

// dumpEngine decodes the engine's MVCC families into the model's shape.
func dumpEngine(t testing.TB, r Reader) *refModel {
	t.Helper()
	out := newRefModel()
	it, err := r.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = it.Close() }()
	for ok := it.First(); ok; ok = it.Next() {
		key := it.Key()
		fam := key[0]
		if fam != lockFamily && fam != dataFamily && fam != writeFamily {
			continue
		}
		userKey, rest, err := decodeEscaped(key[1:])
		if err != nil {
			t.Fatalf("bad key %x: %v", key, err)
		}
		k := string(userKey)
		if fam == lockFamily {
			l, err := decodeLock(it.Value())
			if err != nil {
				t.Fatal(err)
			}
			if l.minCommitTS != l.startTS+1 {
				t.Fatalf("lock of %q: min_commit_ts %d", k, l.minCommitTS)
			}
			out.locks[k] = refLock{primary: append([]byte(nil), l.primary...), startTS: l.startTS, ttl: l.ttl, kind: l.kind}
			continue
		}
		if len(rest) != timestampSize {
			t.Fatalf("bad versioned key %x", key)
		}
		ts := ^beUint64(rest)
		if fam == dataFamily {
			out.setData(k, ts, append([]byte(nil), it.Value()...))
			continue
		}
		w, err := decodeWriteRecord(it.Value())
		if err != nil {
			t.Fatal(err)
		}
		rw := refWrite{startTS: w.startTS, rollback: w.kind == writeRollback, overlapped: w.overlappedRollback}
		if !rw.rollback {
			rw.kind = MutationOp(w.kind)
		}
		out.setWrite(k, ts, rw)
	}
	return out
}

func beUint64(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

func (m *refModel) String() string {
	var sb strings.Builder
	var keys []string
	seen := map[string]bool{}
	for k := range m.locks {
		seen[k] = true
	}
	for k := range m.writes {
		seen[k] = true
	}
	for k := range m.data {
		seen[k] = true
	}
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&sb, "%q:", k)
		if l, ok := m.locks[k]; ok {
			fmt.Fprintf(&sb, " lock{%d %q ttl=%d kind=%d}", l.startTS, l.primary, l.ttl, l.kind)
		}
		for _, ts := range m.versionsDesc(k) {
			fmt.Fprintf(&sb, " w@%d%+v", ts, m.writes[k][ts])
		}
		var dts []Timestamp
		for ts := range m.data[k] {
			dts = append(dts, ts)
		}
		sort.Slice(dts, func(i, j int) bool { return dts[i] > dts[j] })
		for _, ts := range dts {
			fmt.Fprintf(&sb, " d@%d=%q", ts, m.data[k][ts])
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

// normalizeResponse maps empty byte strings to nil so that equal answers
// compare equal regardless of how each side built them.
func normalizeResponse(r *Response) *Response {
	if r == nil {
		return nil
	}
	nb := func(b []byte) []byte {
		if len(b) == 0 {
			return nil
		}
		return b
	}
	c := *r
	if c.Get != nil {
		g := *c.Get
		g.Value = nb(g.Value)
		c.Get = &g
	}
	if c.Scan != nil {
		s := ScanResponse{ResumeKey: nb(c.Scan.ResumeKey)}
		for _, kv := range c.Scan.Rows {
			s.Rows = append(s.Rows, KeyValue{Key: nb(kv.Key), Value: nb(kv.Value)})
		}
		c.Scan = &s
	}
	if c.ValidateReads != nil {
		v := *c.ValidateReads
		v.ConflictKey = nb(v.ConflictKey)
		c.ValidateReads = &v
	}
	return &c
}

// normalizeError drops the free-text reason of TxnAbortedError, which the
// model does not reproduce, and empty-vs-nil differences.
func normalizeError(err error) error {
	var a *TxnAbortedError
	if errors.As(err, &a) {
		return &TxnAbortedError{Key: a.Key, StartTS: a.StartTS}
	}
	var l *LockedError
	if errors.As(err, &l) {
		c := *l
		if len(c.Primary) == 0 {
			c.Primary = nil
		}
		return &c
	}
	return err
}

// modelTxn is a transaction of the random workload: its start_ts, planned
// mutations and primary.
type modelTxn struct {
	startTS   Timestamp
	primary   []byte
	mutations []Mutation
}

type workload struct {
	rng   *rand.Rand
	now   Timestamp
	keys  []string
	txns  []*modelTxn
	desc  *RangeDescriptor
	model *refModel
	queue []queuedOp  // scripted follow-ups, served before random operations
	used  []Timestamp // recent start and commit timestamps
	ops   map[string]int
	errs  map[string]int
	order []string
}

func (w *workload) tick() Timestamp {
	if w.rng.IntN(20) == 0 {
		w.now += Timestamp(1+w.rng.IntN(400)) << TimestampLogicalBits // time passes: TTLs expire
	} else {
		w.now += Timestamp(1 + w.rng.IntN(3))
	}
	return w.now
}

func (w *workload) key() []byte {
	if w.rng.IntN(60) == 0 {
		return []byte([]string{"a", "x", "zz", "\x00"}[w.rng.IntN(4)]) // outside the range
	}
	return []byte(w.keys[w.rng.IntN(len(w.keys))])
}

func (w *workload) span() Span {
	if w.rng.IntN(3) == 0 {
		return Span{Key: w.key()}
	}
	a, b := w.key(), w.key()
	if bytes.Compare(a, b) > 0 && w.rng.IntN(10) != 0 {
		a, b = b, a
	}
	if w.rng.IntN(8) == 0 {
		a = []byte("b")
	}
	if w.rng.IntN(8) == 0 {
		b = []byte("x")
	}
	return Span{Key: a, EndKey: b}
}

func (w *workload) spans() []Span {
	out := make([]Span, w.rng.IntN(3))
	for i := range out {
		out[i] = w.span()
	}
	return out
}

// pastTS picks a read timestamp, a validation bound or a safepoint: often
// exactly a timestamp some record or lock carries, to hit the boundaries.
func (w *workload) pastTS() Timestamp {
	if len(w.used) > 0 && w.rng.IntN(3) == 0 {
		return w.used[w.rng.IntN(len(w.used))]
	}
	if w.now < 10 || w.rng.IntN(3) == 0 {
		return w.now + Timestamp(w.rng.IntN(3))
	}
	return 1 + Timestamp(w.rng.Uint64N(uint64(w.now)))
}

func (w *workload) value() []byte {
	if w.rng.IntN(8) == 0 {
		return []byte{}
	}
	return fmt.Appendf(nil, "v%d", w.rng.IntN(1000))
}

func (w *workload) newTxn() *modelTxn {
	n := 1 + w.rng.IntN(4)
	used := map[string]bool{}
	t := &modelTxn{startTS: w.tick()}
	for len(t.mutations) < n {
		k := w.key()
		if used[string(k)] {
			if w.rng.IntN(2) == 0 {
				break
			}
			continue
		}
		used[string(k)] = true
		op := []MutationOp{OpPut, OpPut, OpPut, OpDelete, OpLock}[w.rng.IntN(5)]
		mu := Mutation{Op: op, Key: k}
		if op == OpPut {
			mu.Value = w.value()
		}
		t.mutations = append(t.mutations, mu)
	}
	t.primary = t.mutations[0].Key
	w.txns = append(w.txns, t)
	if len(w.txns) > 24 {
		w.txns = w.txns[1:]
	}
	return t
}

// pickLockedTxn prefers a transaction that holds a lock, so commits and
// resolves mostly find something to do.
func (w *workload) pickLockedTxn() *modelTxn {
	var locked []*modelTxn
	for _, t := range w.txns {
		if l, ok := w.model.locks[string(t.primary)]; ok && l.startTS == t.startTS {
			locked = append(locked, t)
		}
	}
	if len(locked) == 0 || w.rng.IntN(4) == 0 {
		return w.pickTxn()
	}
	return locked[w.rng.IntN(len(locked))]
}

// lockHolder returns a known transaction that holds the lock on its
// primary, or nil.
func (w *workload) lockHolder() *modelTxn {
	var locked []*modelTxn
	for _, t := range w.txns {
		if l, ok := w.model.locks[string(t.primary)]; ok && l.startTS == t.startTS {
			locked = append(locked, t)
		}
	}
	if len(locked) == 0 {
		return nil
	}
	return locked[w.rng.IntN(len(locked))]
}

func (w *workload) pickTxn() *modelTxn {
	if len(w.txns) == 0 || w.rng.IntN(10) == 0 {
		return w.newTxn()
	}
	return w.txns[w.rng.IntN(len(w.txns))]
}

// commitTS is usually fresh, sometimes the start_ts of another transaction
// (the overlapped-rollback case), sometimes invalid.
func (w *workload) commitTS(t *modelTxn) Timestamp {
	switch r := w.rng.IntN(20); {
	case r < 3:
		var cands []Timestamp
		for _, o := range w.txns {
			if o.startTS > t.startTS {
				cands = append(cands, o.startTS)
			}
		}
		if len(cands) > 0 {
			return cands[w.rng.IntN(len(cands))]
		}
	case r == 3:
		return t.startTS // invalid: not after start
	}
	return w.tick()
}

func (w *workload) txnKeys(t *modelTxn) [][]byte {
	var keys [][]byte
	for _, mu := range t.mutations {
		if w.rng.IntN(3) != 0 {
			keys = append(keys, mu.Key)
		}
	}
	if w.rng.IntN(8) == 0 {
		keys = append(keys, w.key())
	}
	return keys
}

type queuedOp struct {
	name string
	req  *Request
}

// collide scripts the overlapped-rollback case: transaction a commits at
// exactly the start_ts of a new transaction b on a key b rolls back, in
// either order, with random operations in between.
func (w *workload) collide() {
	a := w.pickLockedTxn()
	b := w.newTxn()
	key := a.primary
	rb := queuedOp{"rollback", &Request{Rollback: &RollbackRequest{Keys: [][]byte{key}, StartTS: b.startTS}}}
	cm := queuedOp{"commit", &Request{Commit: &CommitRequest{Keys: [][]byte{key}, StartTS: a.startTS, CommitTS: b.startTS}}}
	if w.rng.IntN(3) == 0 {
		cm = queuedOp{"1pc", &Request{OnePhaseCommit: &OnePhaseCommitRequest{
			Mutations: []Mutation{{Op: OpPut, Key: key, Value: w.value()}}, StartTS: a.startTS, CommitTS: b.startTS}}}
	}
	if w.rng.IntN(2) == 0 {
		w.queue = append(w.queue, rb, cm)
	} else {
		w.queue = append(w.queue, cm, rb)
	}
}

func (w *workload) remember(ts Timestamp) {
	w.used = append(w.used, ts)
	if len(w.used) > 32 {
		w.used = w.used[1:]
	}
}

func (w *workload) next() (string, *Request) {
	name, req := w.generate()
	switch {
	case req.Prewrite != nil:
		w.remember(req.Prewrite.StartTS)
	case req.Commit != nil:
		w.remember(req.Commit.CommitTS)
	case req.OnePhaseCommit != nil:
		w.remember(req.OnePhaseCommit.CommitTS)
	}
	return name, req
}

func (w *workload) generate() (string, *Request) {
	if len(w.queue) > 0 && w.rng.IntN(2) == 0 {
		op := w.queue[0]
		w.queue = w.queue[1:]
		return op.name, op.req
	}
	if len(w.queue) == 0 && w.rng.IntN(50) == 0 {
		w.collide()
	}
	switch r := w.rng.IntN(100); {
	case r < 14:
		t := w.pickTxn()
		muts := t.mutations
		if w.rng.IntN(4) == 0 {
			muts = muts[:1+w.rng.IntN(len(muts))]
		}
		return "prewrite", &Request{Prewrite: &PrewriteRequest{Mutations: muts, Primary: t.primary, StartTS: t.startTS, LockTTL: uint64(w.rng.IntN(800))}}
	case r < 28:
		t := w.pickLockedTxn()
		keys := w.txnKeys(t)
		if w.rng.IntN(2) == 0 {
			keys = append([][]byte{t.primary}, keys...)
		}
		return "commit", &Request{Commit: &CommitRequest{Keys: keys, StartTS: t.startTS, CommitTS: w.commitTS(t)}}
	case r < 35:
		t := w.pickTxn()
		return "rollback", &Request{Rollback: &RollbackRequest{Keys: w.txnKeys(t), StartTS: t.startTS}}
	case r < 41:
		t := w.pickLockedTxn()
		cur := w.now + Timestamp(w.rng.IntN(1000))<<TimestampLogicalBits
		if l, ok := w.model.locks[string(t.primary)]; ok && l.startTS == t.startTS && w.rng.IntN(2) == 0 {
			// Right at the expiry boundary.
			cur = MakeTimestamp(PhysicalMillis(t.startTS)+l.ttl+uint64(w.rng.IntN(2)), uint64(w.rng.IntN(5)))
		}
		return "check-txn-status", &Request{CheckTxnStatus: &CheckTxnStatusRequest{PrimaryKey: t.primary, StartTS: t.startTS, CurrentTS: cur, RollbackIfExpired: w.rng.IntN(3) != 0}}
	case r < 46:
		t := w.pickLockedTxn()
		var commitTS Timestamp
		if w.rng.IntN(2) == 0 {
			commitTS = w.commitTS(t)
		}
		return "resolve", &Request{ResolveLock: &ResolveLockRequest{Keys: w.txnKeys(t), StartTS: t.startTS, CommitTS: commitTS}}
	case r < 49:
		t := w.pickLockedTxn()
		return "heartbeat", &Request{TxnHeartbeat: &TxnHeartbeatRequest{PrimaryKey: t.primary, StartTS: t.startTS, NewTTL: uint64(w.rng.IntN(2000))}}
	case r < 60:
		t := w.pickTxn()
		return "1pc", &Request{OnePhaseCommit: &OnePhaseCommitRequest{Mutations: t.mutations, ReadSpans: w.spans(), StartTS: t.startTS, CommitTS: w.commitTS(t)}}
	case r < 75:
		return "get", &Request{Get: &GetRequest{Key: w.key(), ReadTS: w.pastTS()}}
	case r < 90:
		s := w.span()
		if len(s.EndKey) == 0 {
			s.EndKey = []byte("x")
		}
		return "scan", &Request{Scan: &ScanRequest{Start: s.Key, End: s.EndKey, ReadTS: w.pastTS(), Limit: w.rng.IntN(5), Reverse: w.rng.IntN(2) == 0}}
	case r < 98:
		from := w.pastTS()
		to := from + Timestamp(w.rng.IntN(40))
		spans := w.spans()
		if o := w.lockHolder(); o != nil && w.rng.IntN(2) == 0 {
			// Often at or just below the start_ts of a transaction holding
			// a lock, reading its primary first: the lock conflicts with
			// to == start_ts but not with to below it.
			to = o.startTS - Timestamp(w.rng.IntN(2))
			from = min(from, to)
			spans = append([]Span{{Key: o.primary}}, spans...)
		}
		var self Timestamp
		if len(w.txns) > 0 {
			self = w.txns[w.rng.IntN(len(w.txns))].startTS
		}
		return "validate-reads", &Request{ValidateReads: &ValidateReadsRequest{Spans: spans, TxnStartTS: self, From: from, To: to}}
	default:
		s := w.span()
		if len(s.EndKey) == 0 {
			s.EndKey = []byte("x")
		}
		return "gc", &Request{GC: &GCRequest{Start: s.Key, End: s.EndKey, SafePoint: w.pastTS()}}
	}
}

// TestModel drives random interleaved transactional operations against the
// engine and the reference model and compares every answer and, every few
// hundred operations, the whole MVCC state. A second engine, the replica,
// applies the same requests after a trip through the wire codec, several
// commands per batch as the Raft layer applies them (each must see the
// writes of the ones before it); its answers and its state checksum must
// match. Explore with -seed=N -ops=N.
func TestModel(t *testing.T) {
	seed := *modelSeed
	w := &workload{
		rng:  rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		now:  MakeTimestamp(1_000_000, 0),
		keys: []string{"b", "b\x00", "b\x00\x00", "b\x01", "c", "c\x00\xff", "d", "e", "f\x00", "m", "w\xff"},
		desc: testRange(),
		ops:  map[string]int{},
		errs: map[string]int{},
	}
	engine := newHarness(t)
	replica := &batchedReplica{t: t, e: openTestEngine(t), desc: testRange()}
	model := newRefModel()
	w.model = model
	var history []string
	for i := 0; i < *modelOps; i++ {
		name, req := w.next()
		history = append(history, fmt.Sprintf("%d %s %+v", i, name, describe(req)))
		if len(history) > 12 {
			history = history[1:]
		}
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %d op %d (%s): %s\nrecent ops:\n%s\nmodel:\n%v", seed, i, name, fmt.Sprintf(format, args...),
				strings.Join(history, "\n"), model)
		}
		wantResp, wantErr := model.eval(w.desc, req)
		gotResp, gotErr := engine.eval(req)
		decoded, err := UnmarshalRequest(req.Marshal())
		if err != nil {
			fail("codec: %v", err)
		}
		repResp, repErr := replica.eval(decoded, w.rng.IntN(4) == 0)

		w.ops[name]++
		if wantErr != nil {
			w.errs[fmt.Sprintf("%s:%T", name, wantErr)]++
		}
		if !reflect.DeepEqual(normalizeError(gotErr), normalizeError(wantErr)) {
			fail("error: engine %v, model %v", gotErr, wantErr)
		}
		if !reflect.DeepEqual(normalizeResponse(gotResp), normalizeResponse(wantResp)) {
			fail("response: engine %+v, model %+v", describeResp(gotResp), describeResp(wantResp))
		}
		if (repErr == nil) != (gotErr == nil) || !reflect.DeepEqual(normalizeResponse(repResp), normalizeResponse(gotResp)) {
			fail("replica answered differently: %v %+v", repErr, describeResp(repResp))
		}
		if i%250 == 249 || i == *modelOps-1 {
			replica.flush()
			if got := dumpEngine(t, engine.e.DB()); got.String() != model.String() {
				fail("state differs:\nengine:\n%v", got)
			}
			a, err := ChecksumRange(engine.e.DB(), w.desc)
			if err != nil {
				t.Fatal(err)
			}
			b, err := ChecksumRange(replica.e.DB(), w.desc)
			if err != nil {
				t.Fatal(err)
			}
			if a != b {
				fail("replica checksum %x != %x", b, a)
			}
		}
	}
	// The workload must actually reach the interesting cases.
	for _, want := range []string{"prewrite:*kv.LockedError", "prewrite:*kv.WriteConflictError", "prewrite:*kv.TxnAbortedError",
		"commit:*kv.TxnAbortedError", "rollback:*kv.TxnCommittedError", "1pc:*kv.SerializationError",
		"get:*kv.LockedError", "scan:*kv.LockedError", "get:*kv.KeyOutOfRangeError"} {
		if *modelOps >= 6000 && w.errs[want] == 0 {
			t.Errorf("workload never produced %s; counts %v", want, w.errs)
		}
	}
	if *modelOps >= 6000 && model.overlaps == 0 {
		t.Errorf("workload never produced an overlapped rollback")
	}
	t.Logf("seed %d: ops %v", seed, w.ops)
	t.Logf("errors %v; overlapped rollbacks %d", w.errs, model.overlaps)
}

// batchedReplica evaluates several requests into one indexed batch before
// committing it, like a Raft apply loop.
type batchedReplica struct {
	t     testing.TB
	e     *Engine
	desc  *RangeDescriptor
	batch *pebble.Batch
}

func (r *batchedReplica) eval(req *Request, commitAfter bool) (*Response, error) {
	r.t.Helper()
	if r.batch == nil {
		r.batch = r.e.NewBatch()
	}
	before := r.batch.Count()
	resp, err := Evaluate(r.batch, r.desc, req)
	if err != nil {
		if !IsRequestError(err) {
			r.t.Fatalf("replica storage failure: %v", err)
		}
		if r.batch.Count() != before {
			r.t.Fatalf("request error %v wrote into the shared batch", err)
		}
	}
	if commitAfter {
		r.flush()
	}
	return resp, err
}

func (r *batchedReplica) flush() {
	if r.batch == nil {
		return
	}
	if err := r.e.Commit(r.batch, false); err != nil {
		r.t.Fatal(err)
	}
	_ = r.batch.Close()
	r.batch = nil
}

func describe(req *Request) string {
	b, _ := UnmarshalRequest(req.Marshal())
	if b == nil {
		return "<invalid>"
	}
	switch {
	case req.Get != nil:
		return fmt.Sprintf("%+v", *req.Get)
	case req.Scan != nil:
		return fmt.Sprintf("%+v", *req.Scan)
	case req.ValidateReads != nil:
		return fmt.Sprintf("%+v", *req.ValidateReads)
	case req.Prewrite != nil:
		return fmt.Sprintf("%+v", *req.Prewrite)
	case req.Commit != nil:
		return fmt.Sprintf("%+v", *req.Commit)
	case req.Rollback != nil:
		return fmt.Sprintf("%+v", *req.Rollback)
	case req.CheckTxnStatus != nil:
		return fmt.Sprintf("%+v", *req.CheckTxnStatus)
	case req.ResolveLock != nil:
		return fmt.Sprintf("%+v", *req.ResolveLock)
	case req.TxnHeartbeat != nil:
		return fmt.Sprintf("%+v", *req.TxnHeartbeat)
	case req.OnePhaseCommit != nil:
		return fmt.Sprintf("%+v", *req.OnePhaseCommit)
	case req.GC != nil:
		return fmt.Sprintf("%+v", *req.GC)
	}
	return "?"
}

func describeResp(r *Response) string {
	if r == nil {
		return "<nil>"
	}
	switch {
	case r.Get != nil:
		return fmt.Sprintf("%+v", *r.Get)
	case r.Scan != nil:
		return fmt.Sprintf("%+v", *r.Scan)
	case r.ValidateReads != nil:
		return fmt.Sprintf("%+v", *r.ValidateReads)
	case r.CheckTxnStatus != nil:
		return fmt.Sprintf("%+v", *r.CheckTxnStatus)
	case r.TxnHeartbeat != nil:
		return fmt.Sprintf("%+v", *r.TxnHeartbeat)
	case r.OnePhaseCommit != nil:
		return fmt.Sprintf("%+v", *r.OnePhaseCommit)
	case r.GC != nil:
		return fmt.Sprintf("%+v", *r.GC)
	}
	return fmt.Sprintf("%+v", *r)
}
