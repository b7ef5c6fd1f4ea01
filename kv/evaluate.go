package kv

import (
	"bytes"
	"fmt"
)

// IsReadOnly reports whether req only reads (Get, Scan, ValidateReads): the
// Raft layer serves those on the leader after a ReadIndex instead of
// proposing them.
func IsReadOnly(req *Request) bool {
	return req.Get != nil || req.Scan != nil || req.ValidateReads != nil
}

// Evaluate executes req against the range desc on rw, an indexed batch. It is
// deterministic: the same state and the same request produce the same writes
// and the same result on every replica (no clocks, no randomness, no map
// order). A request error (IsRequestError: *LockedError, *WriteConflictError,
// *TxnAbortedError, *TxnCommittedError, *SerializationError,
// *KeyOutOfRangeError, *InvalidRequestError) is the command's answer and
// leaves rw unchanged; any other error is a storage failure.
func Evaluate(rw ReadWriter, desc *RangeDescriptor, req *Request) (*Response, error) {
	if err := checkRequest(desc, req); err != nil {
		return nil, err
	}
	if IsReadOnly(req) {
		return evaluateRead(rw, req)
	}
	m := newMVCCReader(rw)
	ws := &writeSet{}
	resp, err := evaluateWrite(m, ws, req)
	if cerr := m.close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := ws.apply(rw); err != nil {
		return nil, err
	}
	return resp, nil
}

// EvaluateReadOnly executes a read-only request (IsReadOnly) on r, which may
// be a snapshot or the DB itself. Other requests fail with
// *InvalidRequestError.
func EvaluateReadOnly(r Reader, desc *RangeDescriptor, req *Request) (*Response, error) {
	if err := checkRequest(desc, req); err != nil {
		return nil, err
	}
	if !IsReadOnly(req) {
		return nil, &InvalidRequestError{Reason: "a write request cannot be evaluated read-only"}
	}
	return evaluateRead(r, req)
}

func evaluateRead(r Reader, req *Request) (resp *Response, err error) {
	m := newMVCCReader(r)
	defer func() {
		if cerr := m.close(); err == nil && cerr != nil {
			resp, err = nil, cerr
		}
	}()
	switch {
	case req.Get != nil:
		g, err := m.get(req.Get.Key, req.Get.ReadTS)
		if err != nil {
			return nil, err
		}
		return &Response{Get: g}, nil
	case req.Scan != nil:
		s, err := m.scan(req.Scan)
		if err != nil {
			return nil, err
		}
		return &Response{Scan: s}, nil
	default:
		v := req.ValidateReads
		key, err := m.firstReadConflict(v.Spans, v.TxnStartTS, v.From, v.To)
		if err != nil {
			return nil, err
		}
		return &Response{ValidateReads: &ValidateReadsResponse{Conflict: key != nil, ConflictKey: key}}, nil
	}
}

func evaluateWrite(m *mvccReader, ws *writeSet, req *Request) (*Response, error) {
	switch {
	case req.Prewrite != nil:
		if err := prewrite(m, ws, req.Prewrite); err != nil {
			return nil, err
		}
		return &Response{Prewrite: &PrewriteResponse{}}, nil
	case req.Commit != nil:
		if err := commit(m, ws, req.Commit); err != nil {
			return nil, err
		}
		return &Response{Commit: &CommitResponse{}}, nil
	case req.Rollback != nil:
		if err := rollback(m, ws, req.Rollback); err != nil {
			return nil, err
		}
		return &Response{Rollback: &RollbackResponse{}}, nil
	case req.CheckTxnStatus != nil:
		r, err := checkTxnStatus(m, ws, req.CheckTxnStatus)
		if err != nil {
			return nil, err
		}
		return &Response{CheckTxnStatus: r}, nil
	case req.ResolveLock != nil:
		if err := resolveLock(m, ws, req.ResolveLock); err != nil {
			return nil, err
		}
		return &Response{ResolveLock: &ResolveLockResponse{}}, nil
	case req.TxnHeartbeat != nil:
		r, err := txnHeartbeat(m, ws, req.TxnHeartbeat)
		if err != nil {
			return nil, err
		}
		return &Response{TxnHeartbeat: r}, nil
	case req.OnePhaseCommit != nil:
		r, err := onePhaseCommit(m, ws, req.OnePhaseCommit)
		if err != nil {
			return nil, err
		}
		return &Response{OnePhaseCommit: r}, nil
	default:
		r, err := gc(m.r, ws, req.GC)
		if err != nil {
			return nil, err
		}
		return &Response{GC: r}, nil
	}
}

// checkRequest validates the shape of req and that every key it addresses
// lies in desc. It reads no state, so its answer is the same everywhere.
func checkRequest(desc *RangeDescriptor, req *Request) error {
	if req == nil {
		return &InvalidRequestError{Reason: "nil request"}
	}
	set := 0
	for _, p := range []bool{req.Get != nil, req.Scan != nil, req.ValidateReads != nil, req.Prewrite != nil,
		req.Commit != nil, req.Rollback != nil, req.CheckTxnStatus != nil, req.ResolveLock != nil,
		req.TxnHeartbeat != nil, req.OnePhaseCommit != nil, req.GC != nil} {
		if p {
			set++
		}
	}
	if set != 1 {
		return &InvalidRequestError{Reason: fmt.Sprintf("%d operations set, want exactly 1", set)}
	}
	c := rangeChecker{desc: desc}
	switch {
	case req.Get != nil:
		c.key(req.Get.Key)
	case req.Scan != nil:
		c.span(req.Scan.Start, req.Scan.End)
	case req.ValidateReads != nil:
		c.spans(req.ValidateReads.Spans)
	case req.Prewrite != nil:
		p := req.Prewrite
		c.startTS(p.StartTS)
		c.mutations(p.Mutations)
		if len(p.Primary) == 0 && len(p.Mutations) > 0 {
			c.invalid("prewrite without a primary key")
		}
	case req.Commit != nil:
		c.startTS(req.Commit.StartTS)
		c.commitTS(req.Commit.StartTS, req.Commit.CommitTS)
		c.keys(req.Commit.Keys)
	case req.Rollback != nil:
		c.startTS(req.Rollback.StartTS)
		c.keys(req.Rollback.Keys)
	case req.CheckTxnStatus != nil:
		c.startTS(req.CheckTxnStatus.StartTS)
		c.key(req.CheckTxnStatus.PrimaryKey)
	case req.ResolveLock != nil:
		c.startTS(req.ResolveLock.StartTS)
		if req.ResolveLock.CommitTS != 0 {
			c.commitTS(req.ResolveLock.StartTS, req.ResolveLock.CommitTS)
		}
		c.keys(req.ResolveLock.Keys)
	case req.TxnHeartbeat != nil:
		c.startTS(req.TxnHeartbeat.StartTS)
		c.key(req.TxnHeartbeat.PrimaryKey)
	case req.OnePhaseCommit != nil:
		o := req.OnePhaseCommit
		c.startTS(o.StartTS)
		c.commitTS(o.StartTS, o.CommitTS)
		c.mutations(o.Mutations)
		c.spans(o.ReadSpans)
	case req.GC != nil:
		c.span(req.GC.Start, req.GC.End)
	}
	return c.err
}

// rangeChecker accumulates the first problem found in a request.
type rangeChecker struct {
	desc *RangeDescriptor
	err  error
}

func (c *rangeChecker) invalid(format string, args ...any) {
	if c.err == nil {
		c.err = &InvalidRequestError{Reason: fmt.Sprintf(format, args...)}
	}
}

func (c *rangeChecker) outside(key []byte) {
	if c.err == nil {
		c.err = &KeyOutOfRangeError{Key: key, RangeID: c.desc.RangeID, StartKey: c.desc.StartKey, EndKey: c.desc.EndKey}
	}
}

func (c *rangeChecker) key(k []byte) {
	if !c.desc.ContainsKey(k) {
		c.outside(k)
	}
}

func (c *rangeChecker) keys(ks [][]byte) {
	for _, k := range ks {
		c.key(k)
	}
}

// span checks a non-empty [start, end) bound to lie in the range.
func (c *rangeChecker) span(start, end []byte) {
	switch {
	case len(end) == 0:
		c.invalid("span [%q, %q) has no end key", start, end)
	case bytes.Compare(start, end) > 0:
		c.invalid("inverted span [%q, %q)", start, end)
	case bytes.Compare(start, c.desc.StartKey) < 0:
		c.outside(start)
	case bytes.Compare(end, c.desc.EndKey) > 0:
		c.outside(end)
	}
}

func (c *rangeChecker) spans(spans []Span) {
	for _, s := range spans {
		if len(s.EndKey) == 0 {
			c.key(s.Key)
		} else {
			c.span(s.Key, s.EndKey)
		}
	}
}

func (c *rangeChecker) startTS(ts Timestamp) {
	if ts == 0 {
		c.invalid("start_ts 0")
	}
}

func (c *rangeChecker) commitTS(startTS, commitTS Timestamp) {
	if commitTS <= startTS {
		c.invalid("commit_ts %d not after start_ts %d", commitTS, startTS)
	}
}

// mutations checks ops, range and that no key repeats (a repeated key would
// make the outcome depend on which of its mutations is meant).
func (c *rangeChecker) mutations(ms []Mutation) {
	for i, m := range ms {
		if m.Op < OpPut || m.Op > OpLock {
			c.invalid("mutation %d of key %q: unknown op %d", i, m.Key, m.Op)
		}
		c.key(m.Key)
	}
	if c.err != nil || len(ms) < 2 {
		return
	}
	if len(ms) <= 16 {
		for i := range ms {
			for j := i + 1; j < len(ms); j++ {
				if bytes.Equal(ms[i].Key, ms[j].Key) {
					c.invalid("key %q mutated twice", ms[i].Key)
					return
				}
			}
		}
		return
	}
	seen := make(map[string]struct{}, len(ms))
	for _, m := range ms {
		if _, dup := seen[string(m.Key)]; dup {
			c.invalid("key %q mutated twice", m.Key)
			return
		}
		seen[string(m.Key)] = struct{}{}
	}
}
