package kv

import "fmt"

// Binary encoding of Request and Response: one tag byte naming the operation,
// then its fields in declaration order (integers as uvarints, byte strings
// length-prefixed with nil kept distinct from empty). No field names, no
// versions: both sides of a proposal or an RPC run the same code, and a new
// field or operation gets a new tag. Decoding never panics; anything it cannot
// read is an error.

// Operation tags. Never renumber: encoded requests live in Raft logs.
const (
	opTagGet byte = iota + 1
	opTagScan
	opTagValidateReads
	opTagPrewrite
	opTagCommit
	opTagRollback
	opTagCheckTxnStatus
	opTagResolveLock
	opTagTxnHeartbeat
	opTagOnePhaseCommit
	opTagGC
)

// Marshal encodes the request. A request with no operation set encodes as a
// single zero byte, which UnmarshalRequest rejects.
func (r *Request) Marshal() []byte {
	b := make([]byte, 0, r.sizeHint())
	switch {
	case r.Get != nil:
		b = append(b, opTagGet)
		b = appendBytes(b, r.Get.Key)
		b = appendUvarint(b, r.Get.ReadTS)
	case r.Scan != nil:
		s := r.Scan
		b = append(b, opTagScan)
		b = appendBytes(b, s.Start)
		b = appendBytes(b, s.End)
		b = appendUvarint(b, s.ReadTS)
		b = appendUvarint(b, uint64(max(s.Limit, 0)))
		b = appendBool(b, s.Reverse)
	case r.ValidateReads != nil:
		v := r.ValidateReads
		b = append(b, opTagValidateReads)
		b = appendSpans(b, v.Spans)
		b = appendUvarint(b, v.TxnStartTS)
		b = appendUvarint(b, v.From)
		b = appendUvarint(b, v.To)
	case r.Prewrite != nil:
		p := r.Prewrite
		b = append(b, opTagPrewrite)
		b = appendMutations(b, p.Mutations)
		b = appendBytes(b, p.Primary)
		b = appendUvarint(b, p.StartTS)
		b = appendUvarint(b, p.LockTTL)
	case r.Commit != nil:
		c := r.Commit
		b = append(b, opTagCommit)
		b = appendKeys(b, c.Keys)
		b = appendUvarint(b, c.StartTS)
		b = appendUvarint(b, c.CommitTS)
	case r.Rollback != nil:
		b = append(b, opTagRollback)
		b = appendKeys(b, r.Rollback.Keys)
		b = appendUvarint(b, r.Rollback.StartTS)
	case r.CheckTxnStatus != nil:
		c := r.CheckTxnStatus
		b = append(b, opTagCheckTxnStatus)
		b = appendBytes(b, c.PrimaryKey)
		b = appendUvarint(b, c.StartTS)
		b = appendUvarint(b, c.CurrentTS)
		b = appendBool(b, c.RollbackIfExpired)
	case r.ResolveLock != nil:
		c := r.ResolveLock
		b = append(b, opTagResolveLock)
		b = appendKeys(b, c.Keys)
		b = appendUvarint(b, c.StartTS)
		b = appendUvarint(b, c.CommitTS)
	case r.TxnHeartbeat != nil:
		h := r.TxnHeartbeat
		b = append(b, opTagTxnHeartbeat)
		b = appendBytes(b, h.PrimaryKey)
		b = appendUvarint(b, h.StartTS)
		b = appendUvarint(b, h.NewTTL)
	case r.OnePhaseCommit != nil:
		o := r.OnePhaseCommit
		b = append(b, opTagOnePhaseCommit)
		b = appendMutations(b, o.Mutations)
		b = appendSpans(b, o.ReadSpans)
		b = appendUvarint(b, o.StartTS)
		b = appendUvarint(b, o.CommitTS)
	case r.GC != nil:
		g := r.GC
		b = append(b, opTagGC)
		b = appendBytes(b, g.Start)
		b = appendBytes(b, g.End)
		b = appendUvarint(b, g.SafePoint)
	default:
		b = append(b, 0)
	}
	return b
}

// sizeHint estimates the encoded size so Marshal allocates once.
func (r *Request) sizeHint() int {
	n := 32
	switch {
	case r.Prewrite != nil:
		n += len(r.Prewrite.Primary)
		for _, m := range r.Prewrite.Mutations {
			n += len(m.Key) + len(m.Value) + 8
		}
	case r.OnePhaseCommit != nil:
		for _, m := range r.OnePhaseCommit.Mutations {
			n += len(m.Key) + len(m.Value) + 8
		}
		for _, s := range r.OnePhaseCommit.ReadSpans {
			n += len(s.Key) + len(s.EndKey) + 4
		}
	case r.Commit != nil:
		for _, k := range r.Commit.Keys {
			n += len(k) + 2
		}
	}
	return n
}

func appendKeys(b []byte, keys [][]byte) []byte {
	b = appendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendBytes(b, k)
	}
	return b
}

func appendSpans(b []byte, spans []Span) []byte {
	b = appendUvarint(b, uint64(len(spans)))
	for _, s := range spans {
		b = appendBytes(b, s.Key)
		b = appendBytes(b, s.EndKey)
	}
	return b
}

func appendMutations(b []byte, ms []Mutation) []byte {
	b = appendUvarint(b, uint64(len(ms)))
	for _, m := range ms {
		b = append(b, byte(m.Op))
		b = appendBytes(b, m.Key)
		b = appendBytes(b, m.Value)
	}
	return b
}

func (d *decoder) keys() [][]byte {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = d.bytes()
	}
	return out
}

func (d *decoder) spans() []Span {
	n := d.count(2)
	if n == 0 {
		return nil
	}
	out := make([]Span, n)
	for i := range out {
		out[i] = Span{Key: d.bytes(), EndKey: d.bytes()}
	}
	return out
}

func (d *decoder) mutations() []Mutation {
	n := d.count(3)
	if n == 0 {
		return nil
	}
	out := make([]Mutation, n)
	for i := range out {
		op := MutationOp(d.byte())
		if d.err == nil && (op < OpPut || op > OpLock) {
			d.fail("mutation %d: unknown op %d", i, op)
		}
		out[i] = Mutation{Op: op, Key: d.bytes(), Value: d.bytes()}
	}
	return out
}

// UnmarshalRequest decodes what (*Request).Marshal produced. The request's
// byte strings share one private copy of b, so the caller may reuse b.
func UnmarshalRequest(b []byte) (*Request, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("kv: decode request: empty input")
	}
	d := decoder{b: append([]byte(nil), b[1:]...)}
	r := &Request{}
	switch tag := b[0]; tag {
	case opTagGet:
		r.Get = &GetRequest{Key: d.bytes(), ReadTS: d.uvarint()}
	case opTagScan:
		r.Scan = &ScanRequest{Start: d.bytes(), End: d.bytes(), ReadTS: d.uvarint(), Limit: d.int(), Reverse: d.bool()}
	case opTagValidateReads:
		r.ValidateReads = &ValidateReadsRequest{Spans: d.spans(), TxnStartTS: d.uvarint(), From: d.uvarint(), To: d.uvarint()}
	case opTagPrewrite:
		r.Prewrite = &PrewriteRequest{Mutations: d.mutations(), Primary: d.bytes(), StartTS: d.uvarint(), LockTTL: d.uvarint()}
	case opTagCommit:
		r.Commit = &CommitRequest{Keys: d.keys(), StartTS: d.uvarint(), CommitTS: d.uvarint()}
	case opTagRollback:
		r.Rollback = &RollbackRequest{Keys: d.keys(), StartTS: d.uvarint()}
	case opTagCheckTxnStatus:
		r.CheckTxnStatus = &CheckTxnStatusRequest{PrimaryKey: d.bytes(), StartTS: d.uvarint(), CurrentTS: d.uvarint(), RollbackIfExpired: d.bool()}
	case opTagResolveLock:
		r.ResolveLock = &ResolveLockRequest{Keys: d.keys(), StartTS: d.uvarint(), CommitTS: d.uvarint()}
	case opTagTxnHeartbeat:
		r.TxnHeartbeat = &TxnHeartbeatRequest{PrimaryKey: d.bytes(), StartTS: d.uvarint(), NewTTL: d.uvarint()}
	case opTagOnePhaseCommit:
		r.OnePhaseCommit = &OnePhaseCommitRequest{Mutations: d.mutations(), ReadSpans: d.spans(), StartTS: d.uvarint(), CommitTS: d.uvarint()}
	case opTagGC:
		r.GC = &GCRequest{Start: d.bytes(), End: d.bytes(), SafePoint: d.uvarint()}
	default:
		return nil, fmt.Errorf("kv: decode request: unknown operation tag %d", tag)
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("kv: decode request (tag %d): %w", b[0], err)
	}
	return r, nil
}

// Marshal encodes the response. A response with nothing set encodes as a
// single zero byte, which UnmarshalResponse rejects.
func (r *Response) Marshal() []byte {
	var b []byte
	switch {
	case r.Get != nil:
		b = make([]byte, 0, len(r.Get.Value)+8)
		b = append(b, opTagGet)
		b = appendBytes(b, r.Get.Value)
		b = appendBool(b, r.Get.Found)
	case r.Scan != nil:
		n := 8 + len(r.Scan.ResumeKey)
		for _, kv := range r.Scan.Rows {
			n += len(kv.Key) + len(kv.Value) + 4
		}
		b = make([]byte, 0, n)
		b = append(b, opTagScan)
		b = appendUvarint(b, uint64(len(r.Scan.Rows)))
		for _, kv := range r.Scan.Rows {
			b = appendBytes(b, kv.Key)
			b = appendBytes(b, kv.Value)
		}
		b = appendBytes(b, r.Scan.ResumeKey)
	case r.ValidateReads != nil:
		b = append(b, opTagValidateReads)
		b = appendBool(b, r.ValidateReads.Conflict)
		b = appendBytes(b, r.ValidateReads.ConflictKey)
	case r.Prewrite != nil:
		b = append(b, opTagPrewrite)
	case r.Commit != nil:
		b = append(b, opTagCommit)
	case r.Rollback != nil:
		b = append(b, opTagRollback)
	case r.CheckTxnStatus != nil:
		c := r.CheckTxnStatus
		b = append(b, opTagCheckTxnStatus, byte(c.Status))
		b = appendUvarint(b, c.CommitTS)
		b = appendUvarint(b, c.LockTTL)
	case r.ResolveLock != nil:
		b = append(b, opTagResolveLock)
	case r.TxnHeartbeat != nil:
		b = append(b, opTagTxnHeartbeat)
		b = appendUvarint(b, r.TxnHeartbeat.LockTTL)
	case r.OnePhaseCommit != nil:
		b = append(b, opTagOnePhaseCommit)
		b = appendUvarint(b, r.OnePhaseCommit.CommitTS)
	case r.GC != nil:
		b = append(b, opTagGC)
		b = appendUvarint(b, uint64(r.GC.VersionsRemoved))
	default:
		b = append(b, 0)
	}
	return b
}

// UnmarshalResponse decodes what (*Response).Marshal produced, copying b.
func UnmarshalResponse(b []byte) (*Response, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("kv: decode response: empty input")
	}
	d := decoder{b: append([]byte(nil), b[1:]...)}
	r := &Response{}
	switch tag := b[0]; tag {
	case opTagGet:
		r.Get = &GetResponse{Value: d.bytes(), Found: d.bool()}
	case opTagScan:
		s := &ScanResponse{}
		if n := d.count(2); n > 0 {
			s.Rows = make([]KeyValue, n)
			for i := range s.Rows {
				s.Rows[i] = KeyValue{Key: d.bytes(), Value: d.bytes()}
			}
		}
		s.ResumeKey = d.bytes()
		r.Scan = s
	case opTagValidateReads:
		r.ValidateReads = &ValidateReadsResponse{Conflict: d.bool(), ConflictKey: d.bytes()}
	case opTagPrewrite:
		r.Prewrite = &PrewriteResponse{}
	case opTagCommit:
		r.Commit = &CommitResponse{}
	case opTagRollback:
		r.Rollback = &RollbackResponse{}
	case opTagCheckTxnStatus:
		st := TxnStatus(d.byte())
		if d.err == nil && (st < TxnPending || st > TxnRolledBack) {
			d.fail("unknown txn status %d", st)
		}
		r.CheckTxnStatus = &CheckTxnStatusResponse{Status: st, CommitTS: d.uvarint(), LockTTL: d.uvarint()}
	case opTagResolveLock:
		r.ResolveLock = &ResolveLockResponse{}
	case opTagTxnHeartbeat:
		r.TxnHeartbeat = &TxnHeartbeatResponse{LockTTL: d.uvarint()}
	case opTagOnePhaseCommit:
		r.OnePhaseCommit = &OnePhaseCommitResponse{CommitTS: d.uvarint()}
	case opTagGC:
		r.GC = &GCResponse{VersionsRemoved: d.int()}
	default:
		return nil, fmt.Errorf("kv: decode response: unknown operation tag %d", tag)
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("kv: decode response (tag %d): %w", b[0], err)
	}
	return r, nil
}
