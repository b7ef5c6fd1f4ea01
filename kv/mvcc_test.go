package kv

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// testRange covers ["b", "x"): keys outside it exercise KeyOutOfRangeError.
func testRange() *RangeDescriptor {
	return &RangeDescriptor{RangeID: 1, StartKey: []byte("b"), EndKey: []byte("x"),
		Replicas: []ReplicaDescriptor{{NodeID: 1, ReplicaID: 1}}, Generation: 1, NextReplicaID: 2}
}

func openTestEngine(t testing.TB) *Engine {
	t.Helper()
	e, err := Open("", EngineOptions{InMemory: true, CacheSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// mvccHarness evaluates requests on one engine, one batch per request, and
// checks that a request error leaves its batch empty.
type mvccHarness struct {
	t    testing.TB
	e    *Engine
	desc *RangeDescriptor
}

func newHarness(t testing.TB) *mvccHarness {
	return &mvccHarness{t: t, e: openTestEngine(t), desc: testRange()}
}

func (h *mvccHarness) eval(req *Request) (*Response, error) {
	h.t.Helper()
	b := h.e.NewBatch()
	defer func() { _ = b.Close() }()
	resp, err := Evaluate(b, h.desc, req)
	if err != nil {
		if !IsRequestError(err) {
			h.t.Fatalf("storage failure on %+v: %v", req, err)
		}
		if !b.Empty() {
			h.t.Fatalf("request error %v left %d writes in the batch", err, b.Count())
		}
		return nil, err
	}
	if err := h.e.Commit(b, false); err != nil {
		h.t.Fatal(err)
	}
	return resp, nil
}

func (h *mvccHarness) mustEval(req *Request) *Response {
	h.t.Helper()
	resp, err := h.eval(req)
	if err != nil {
		h.t.Fatalf("%+v: %v", req, err)
	}
	return resp
}

func (h *mvccHarness) prewrite(startTS Timestamp, primary string, muts ...Mutation) error {
	_, err := h.eval(&Request{Prewrite: &PrewriteRequest{Mutations: muts, Primary: []byte(primary), StartTS: startTS, LockTTL: 1000}})
	return err
}

func (h *mvccHarness) commit(startTS, commitTS Timestamp, keys ...string) error {
	_, err := h.eval(&Request{Commit: &CommitRequest{Keys: byteKeys(keys), StartTS: startTS, CommitTS: commitTS}})
	return err
}

func (h *mvccHarness) rollback(startTS Timestamp, keys ...string) error {
	_, err := h.eval(&Request{Rollback: &RollbackRequest{Keys: byteKeys(keys), StartTS: startTS}})
	return err
}

func (h *mvccHarness) get(key string, ts Timestamp) (string, bool, error) {
	resp, err := h.eval(&Request{Get: &GetRequest{Key: []byte(key), ReadTS: ts}})
	if err != nil {
		return "", false, err
	}
	return string(resp.Get.Value), resp.Get.Found, nil
}

func (h *mvccHarness) put(key, value string, startTS, commitTS Timestamp) {
	h.t.Helper()
	if err := h.prewrite(startTS, key, put(key, value)); err != nil {
		h.t.Fatal(err)
	}
	if err := h.commit(startTS, commitTS, key); err != nil {
		h.t.Fatal(err)
	}
}

func put(k, v string) Mutation { return Mutation{Op: OpPut, Key: []byte(k), Value: []byte(v)} }
func del(k string) Mutation    { return Mutation{Op: OpDelete, Key: []byte(k)} }
func lockOp(k string) Mutation { return Mutation{Op: OpLock, Key: []byte(k)} }

func byteKeys(keys []string) [][]byte {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = []byte(k)
	}
	return out
}

func wantErr[T error](t *testing.T, err error) T {
	t.Helper()
	var target T
	if !errors.As(err, &target) {
		t.Fatalf("got error %v, want %T", err, target)
	}
	return target
}

func TestGetSeesNewestCommittedVersion(t *testing.T) {
	h := newHarness(t)
	h.put("c", "v1", 10, 20)
	h.put("c", "v2", 30, 40)
	for _, tc := range []struct {
		ts    Timestamp
		want  string
		found bool
	}{{5, "", false}, {19, "", false}, {20, "v1", true}, {39, "v1", true}, {40, "v2", true}, {1000, "v2", true}} {
		v, found, err := h.get("c", tc.ts)
		if err != nil || v != tc.want || found != tc.found {
			t.Errorf("get@%d = %q,%v,%v want %q,%v", tc.ts, v, found, err, tc.want, tc.found)
		}
	}
	// A delete hides, a lock record does not.
	if err := h.prewrite(50, "c", del("c")); err != nil {
		t.Fatal(err)
	}
	if err := h.commit(50, 60, "c"); err != nil {
		t.Fatal(err)
	}
	if err := h.prewrite(70, "c", lockOp("c")); err != nil {
		t.Fatal(err)
	}
	if err := h.commit(70, 80, "c"); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := h.get("c", 65); found {
		t.Error("deleted key visible")
	}
	if _, found, _ := h.get("c", 90); found {
		t.Error("lock record resurrected a deleted key")
	}
	if v, _, _ := h.get("c", 55); v != "v2" {
		t.Errorf("get@55 = %q", v)
	}
}

func TestLockedErrorOnReadAndPrewrite(t *testing.T) {
	h := newHarness(t)
	if err := h.prewrite(10, "p", put("c", "x"), put("p", "y")); err != nil {
		t.Fatal(err)
	}
	_, _, err := h.get("c", 9)
	if err != nil {
		t.Fatalf("a lock above the read timestamp must not block: %v", err)
	}
	_, _, err = h.get("c", 10)
	le := wantErr[*LockedError](t, err)
	if string(le.Key) != "c" || string(le.Primary) != "p" || le.StartTS != 10 || le.TTL != 1000 {
		t.Errorf("locked error fields: %+v", le)
	}
	err = h.prewrite(11, "c", put("c", "z"))
	le = wantErr[*LockedError](t, err)
	if le.StartTS != 10 {
		t.Errorf("lock owner %d", le.StartTS)
	}
	_, err = h.eval(&Request{Scan: &ScanRequest{Start: []byte("b"), End: []byte("x"), ReadTS: 20, Reverse: true}})
	if le := wantErr[*LockedError](t, err); string(le.Key) != "p" {
		t.Errorf("reverse scan must report the first lock in scan order, got %q", le.Key)
	}
}

func TestWriteConflict(t *testing.T) {
	h := newHarness(t)
	h.put("c", "v", 20, 30)
	err := h.prewrite(25, "c", put("c", "w"))
	wc := wantErr[*WriteConflictError](t, err)
	if string(wc.Key) != "c" || wc.StartTS != 25 || wc.ConflictStartTS != 20 || wc.ConflictCommitTS != 30 {
		t.Errorf("fields: %+v", wc)
	}
	if err := h.prewrite(30, "c", put("c", "w")); err != nil {
		t.Errorf("a commit at exactly start_ts is in the snapshot, not a conflict: %v", err)
	}
}

func TestPrewriteIdempotentAndAtomic(t *testing.T) {
	h := newHarness(t)
	if err := h.prewrite(10, "c", put("c", "1"), put("d", "2")); err != nil {
		t.Fatal(err)
	}
	if err := h.prewrite(10, "c", put("c", "1"), put("d", "2")); err != nil {
		t.Fatalf("repeated prewrite: %v", err)
	}
	// A prewrite touching a free key and a locked key writes nothing.
	err := h.prewrite(20, "e", put("e", "3"), put("d", "4"))
	wantErr[*LockedError](t, err)
	if err := h.commit(10, 15, "c", "d"); err != nil {
		t.Fatal(err)
	}
	if _, found, err := h.get("e", 100); err != nil || found {
		t.Errorf("half-applied prewrite: found=%v err=%v", found, err)
	}
	// After the commit, a replayed prewrite is still fine and changes nothing.
	if err := h.prewrite(10, "c", put("c", "1")); err != nil {
		t.Fatalf("prewrite replay after commit: %v", err)
	}
	if _, _, err := h.get("c", 100); err != nil {
		t.Fatalf("replayed prewrite left a lock: %v", err)
	}
	_, err = h.eval(&Request{Prewrite: &PrewriteRequest{Mutations: []Mutation{put("c", "1"), put("c", "2")}, Primary: []byte("c"), StartTS: 50}})
	wantErr[*InvalidRequestError](t, err)
}

func TestCommitAndRollbackErrors(t *testing.T) {
	h := newHarness(t)
	// Commit without prewrite: aborted.
	wantErr[*TxnAbortedError](t, h.commit(10, 20, "c"))
	if err := h.prewrite(30, "c", put("c", "v")); err != nil {
		t.Fatal(err)
	}
	if err := h.commit(30, 40, "c"); err != nil {
		t.Fatal(err)
	}
	if err := h.commit(30, 40, "c"); err != nil {
		t.Fatalf("commit is idempotent: %v", err)
	}
	tc := wantErr[*TxnCommittedError](t, h.rollback(30, "c"))
	if tc.CommitTS != 40 || tc.StartTS != 30 {
		t.Errorf("fields: %+v", tc)
	}
	// Rollback leaves a marker: the late prewrite and commit fail.
	if err := h.rollback(50, "d"); err != nil {
		t.Fatal(err)
	}
	wantErr[*TxnAbortedError](t, h.prewrite(50, "d", put("d", "late")))
	wantErr[*TxnAbortedError](t, h.commit(50, 60, "d"))
	// Rollback of a prewritten key removes lock and data.
	if err := h.prewrite(70, "e", put("e", "v")); err != nil {
		t.Fatal(err)
	}
	if err := h.rollback(70, "e"); err != nil {
		t.Fatal(err)
	}
	if err := h.rollback(70, "e"); err != nil {
		t.Fatalf("rollback is idempotent: %v", err)
	}
	if _, found, err := h.get("e", 100); err != nil || found {
		t.Errorf("rolled back key: found=%v err=%v", found, err)
	}
	wantErr[*InvalidRequestError](t, h.commit(80, 80, "e"))
}

func TestKeyOutOfRange(t *testing.T) {
	h := newHarness(t)
	for _, req := range []*Request{
		{Get: &GetRequest{Key: []byte("a"), ReadTS: 1}},
		{Get: &GetRequest{Key: []byte("x"), ReadTS: 1}},
		{Scan: &ScanRequest{Start: []byte("a"), End: []byte("c"), ReadTS: 1}},
		{Scan: &ScanRequest{Start: []byte("c"), End: []byte("y"), ReadTS: 1}},
		{Prewrite: &PrewriteRequest{Mutations: []Mutation{put("c", ""), put("zz", "")}, Primary: []byte("c"), StartTS: 1}},
		{Commit: &CommitRequest{Keys: [][]byte{[]byte("a")}, StartTS: 1, CommitTS: 2}},
		{ValidateReads: &ValidateReadsRequest{Spans: []Span{{Key: []byte("c"), EndKey: []byte("z")}}, To: 5}},
		{CheckTxnStatus: &CheckTxnStatusRequest{PrimaryKey: []byte("y"), StartTS: 1}},
	} {
		_, err := h.eval(req)
		e := wantErr[*KeyOutOfRangeError](t, err)
		if e.RangeID != 1 || h.desc.ContainsKey(e.Key) && !bytes.Equal(e.Key, h.desc.EndKey) {
			t.Errorf("%+v", e)
		}
	}
}

func TestCheckTxnStatus(t *testing.T) {
	h := newHarness(t)
	start := MakeTimestamp(1000, 0)
	if err := h.prewrite(start, "p", put("p", "v"), put("s", "v")); err != nil {
		t.Fatal(err)
	}
	status := func(now Timestamp, rollbackIfExpired bool) *CheckTxnStatusResponse {
		resp := h.mustEval(&Request{CheckTxnStatus: &CheckTxnStatusRequest{PrimaryKey: []byte("p"), StartTS: start, CurrentTS: now, RollbackIfExpired: rollbackIfExpired}})
		return resp.CheckTxnStatus
	}
	if s := status(MakeTimestamp(2000, 0), true); s.Status != TxnPending || s.LockTTL != 1000 {
		t.Fatalf("at the TTL boundary the lock is live: %+v", s)
	}
	if s := status(MakeTimestamp(5000, 0), false); s.Status != TxnPending {
		t.Fatalf("expired but not asked to roll back: %+v", s)
	}
	hb := h.mustEval(&Request{TxnHeartbeat: &TxnHeartbeatRequest{PrimaryKey: []byte("p"), StartTS: start, NewTTL: 10000}})
	if hb.TxnHeartbeat.LockTTL != 10000 {
		t.Fatalf("heartbeat: %+v", hb.TxnHeartbeat)
	}
	hb = h.mustEval(&Request{TxnHeartbeat: &TxnHeartbeatRequest{PrimaryKey: []byte("p"), StartTS: start, NewTTL: 5}})
	if hb.TxnHeartbeat.LockTTL != 10000 {
		t.Fatalf("heartbeat shortened the TTL: %+v", hb.TxnHeartbeat)
	}
	if s := status(MakeTimestamp(11001, 0), true); s.Status != TxnRolledBack {
		t.Fatalf("expired lock not rolled back: %+v", s)
	}
	wantErr[*TxnAbortedError](t, h.commit(start, start+10, "p"))
	_, err := h.eval(&Request{TxnHeartbeat: &TxnHeartbeatRequest{PrimaryKey: []byte("p"), StartTS: start, NewTTL: 5}})
	wantErr[*TxnAbortedError](t, err)
	// The secondary is resolved through the primary's decision.
	h.mustEval(&Request{ResolveLock: &ResolveLockRequest{Keys: [][]byte{[]byte("s")}, StartTS: start}})
	if _, found, err := h.get("s", MakeTimestamp(20000, 0)); err != nil || found {
		t.Fatalf("secondary after resolve: %v %v", found, err)
	}
	// A primary never prewritten gets a marker, so its prewrite fails later.
	late := MakeTimestamp(3000, 0)
	resp := h.mustEval(&Request{CheckTxnStatus: &CheckTxnStatusRequest{PrimaryKey: []byte("p"), StartTS: late, CurrentTS: late + 1}})
	if resp.CheckTxnStatus.Status != TxnRolledBack {
		t.Fatalf("missing primary: %+v", resp.CheckTxnStatus)
	}
	wantErr[*TxnAbortedError](t, h.prewrite(late, "p", put("p", "x")))
	// Committed primary reports its commit_ts.
	h.put("q", "v", 100, 200)
	resp = h.mustEval(&Request{CheckTxnStatus: &CheckTxnStatusRequest{PrimaryKey: []byte("q"), StartTS: 100, CurrentTS: 1 << 40}})
	if resp.CheckTxnStatus.Status != TxnCommitted || resp.CheckTxnStatus.CommitTS != 200 {
		t.Fatalf("committed: %+v", resp.CheckTxnStatus)
	}
}

// TestOverlappedRollback: the rollback marker of txn T sits at T's start_ts,
// which a 1PC leader may also pick as another transaction's commit_ts.
func TestOverlappedRollback(t *testing.T) {
	t.Run("rollback onto a commit record", func(t *testing.T) {
		h := newHarness(t)
		h.mustEval(&Request{OnePhaseCommit: &OnePhaseCommitRequest{Mutations: []Mutation{put("c", "u")}, StartTS: 10, CommitTS: 50}})
		// Txn 50 (start_ts equal to the commit_ts above) rolls back on c.
		if err := h.rollback(50, "c"); err != nil {
			t.Fatal(err)
		}
		if v, found, err := h.get("c", 60); err != nil || !found || v != "u" {
			t.Fatalf("the commit record must survive the marker: %q %v %v", v, found, err)
		}
		wantErr[*TxnAbortedError](t, h.prewrite(50, "c", put("c", "late")))
		resp := h.mustEval(&Request{CheckTxnStatus: &CheckTxnStatusRequest{PrimaryKey: []byte("c"), StartTS: 50, CurrentTS: 100}})
		if resp.CheckTxnStatus.Status != TxnRolledBack {
			t.Fatalf("status of txn 50: %+v", resp.CheckTxnStatus)
		}
		resp = h.mustEval(&Request{CheckTxnStatus: &CheckTxnStatusRequest{PrimaryKey: []byte("c"), StartTS: 10, CurrentTS: 100}})
		if resp.CheckTxnStatus.Status != TxnCommitted || resp.CheckTxnStatus.CommitTS != 50 {
			t.Fatalf("status of txn 10: %+v", resp.CheckTxnStatus)
		}
	})
	t.Run("commit onto a rollback marker", func(t *testing.T) {
		h := newHarness(t)
		if err := h.rollback(50, "c"); err != nil {
			t.Fatal(err)
		}
		if err := h.prewrite(10, "c", put("c", "u")); err != nil {
			t.Fatal(err)
		}
		if err := h.commit(10, 50, "c"); err != nil {
			t.Fatal(err)
		}
		if v, found, err := h.get("c", 50); err != nil || !found || v != "u" {
			t.Fatalf("commit over a marker: %q %v %v", v, found, err)
		}
		wantErr[*TxnAbortedError](t, h.prewrite(50, "c", put("c", "late")))
		wantErr[*TxnAbortedError](t, h.commit(50, 70, "c"))
	})
}

func TestOnePhaseCommitValidation(t *testing.T) {
	h := newHarness(t)
	h.put("c", "1", 10, 20)
	// A read of c at start 15 is invalidated by the commit at 20.
	_, err := h.eval(&Request{OnePhaseCommit: &OnePhaseCommitRequest{
		Mutations: []Mutation{put("d", "x")}, ReadSpans: []Span{{Key: []byte("c")}}, StartTS: 15, CommitTS: 30}})
	se := wantErr[*SerializationError](t, err)
	if string(se.Key) != "c" {
		t.Errorf("key %q", se.Key)
	}
	_, err = h.eval(&Request{OnePhaseCommit: &OnePhaseCommitRequest{
		Mutations: []Mutation{put("d", "x")}, ReadSpans: []Span{{Key: []byte("b"), EndKey: []byte("e")}}, StartTS: 15, CommitTS: 30}})
	wantErr[*SerializationError](t, err)
	req := &Request{OnePhaseCommit: &OnePhaseCommitRequest{
		Mutations: []Mutation{put("c", "2"), del("d")}, ReadSpans: []Span{{Key: []byte("b"), EndKey: []byte("e")}}, StartTS: 20, CommitTS: 30}}
	if resp := h.mustEval(req); resp.OnePhaseCommit.CommitTS != 30 {
		t.Fatalf("%+v", resp.OnePhaseCommit)
	}
	if resp := h.mustEval(req); resp.OnePhaseCommit.CommitTS != 30 {
		t.Fatalf("a replayed 1PC must succeed: %+v", resp.OnePhaseCommit)
	}
	if v, _, _ := h.get("c", 30); v != "2" {
		t.Errorf("get = %q", v)
	}
	// Write-write conflict on a 1PC key.
	_, err = h.eval(&Request{OnePhaseCommit: &OnePhaseCommitRequest{Mutations: []Mutation{put("c", "3")}, StartTS: 25, CommitTS: 40}})
	wantErr[*WriteConflictError](t, err)
	// A foreign lock in a read span is a serialization failure too.
	if err := h.prewrite(35, "e", put("e", "1")); err != nil {
		t.Fatal(err)
	}
	_, err = h.eval(&Request{OnePhaseCommit: &OnePhaseCommitRequest{Mutations: []Mutation{put("f", "3")},
		ReadSpans: []Span{{Key: []byte("e"), EndKey: []byte("f")}}, StartTS: 40, CommitTS: 45}})
	wantErr[*SerializationError](t, err)
}

func TestValidateReads(t *testing.T) {
	h := newHarness(t)
	h.put("c", "1", 10, 20)
	h.put("d", "1", 30, 40)
	if err := h.rollback(60, "e"); err != nil {
		t.Fatal(err)
	}
	validate := func(from, to Timestamp, spans ...Span) *ValidateReadsResponse {
		return h.mustEval(&Request{ValidateReads: &ValidateReadsRequest{Spans: spans, TxnStartTS: 99, From: from, To: to}}).ValidateReads
	}
	all := Span{Key: []byte("b"), EndKey: []byte("x")}
	if r := validate(40, 100, all); r.Conflict {
		t.Errorf("rollback markers are not writes: %+v", r)
	}
	if r := validate(20, 40, all); !r.Conflict || string(r.ConflictKey) != "d" {
		t.Errorf("(20,40]: %+v", r)
	}
	if r := validate(5, 40, all); !r.Conflict || string(r.ConflictKey) != "c" {
		t.Errorf("first key in order: %+v", r)
	}
	if r := validate(20, 39, Span{Key: []byte("d")}); r.Conflict {
		t.Errorf("(20,39] point: %+v", r)
	}
	if err := h.prewrite(99, "f", put("f", "own")); err != nil {
		t.Fatal(err)
	}
	if r := validate(40, 100, all); r.Conflict {
		t.Errorf("own lock is no conflict: %+v", r)
	}
	if err := h.prewrite(100, "g", put("g", "other")); err != nil {
		t.Fatal(err)
	}
	if r := validate(40, 100, all); !r.Conflict || string(r.ConflictKey) != "g" {
		t.Errorf("foreign lock with start_ts == To: %+v", r)
	}
	if r := validate(40, 100, Span{Key: []byte("g")}); !r.Conflict || string(r.ConflictKey) != "g" {
		t.Errorf("foreign lock with start_ts == To, point read: %+v", r)
	}
}

// TestValidateReadsIgnoresLaterLocks: a lock whose start_ts is after To
// commits after To, so it cannot be a write in (From, To]; one at or below
// To may still commit inside it; the transaction's own lock never counts.
func TestValidateReadsIgnoresLaterLocks(t *testing.T) {
	h := newHarness(t)
	if err := h.prewrite(50, "b", put("b", "early")); err != nil { // start_ts < From
		t.Fatal(err)
	}
	if err := h.prewrite(101, "d", put("d", "later")); err != nil { // start_ts == To+1
		t.Fatal(err)
	}
	if err := h.prewrite(60, "f", put("f", "own")); err != nil { // the validator's own
		t.Fatal(err)
	}
	validate := func(to Timestamp, spans ...Span) *ValidateReadsResponse {
		return h.mustEval(&Request{ValidateReads: &ValidateReadsRequest{Spans: spans, TxnStartTS: 60, From: 60, To: to}}).ValidateReads
	}
	span := func(start, end string) Span { return Span{Key: []byte(start), EndKey: []byte(end)} }
	point := func(k string) Span { return Span{Key: []byte(k)} }
	for _, tc := range []struct {
		name  string
		to    Timestamp
		spans []Span
		want  string // conflicting key, "" for none
	}{
		{"later lock in a span", 100, []Span{span("c", "e")}, ""},
		{"later lock at a point", 100, []Span{point("d")}, ""},
		{"own lock", 100, []Span{span("e", "g"), point("f")}, ""},
		{"later and own locks", 100, []Span{span("c", "x")}, ""},
		{"lock at To", 101, []Span{span("c", "e")}, "d"},
		{"lock at To, point", 101, []Span{point("d")}, "d"},
		{"lock below From", 100, []Span{span("b", "x")}, "b"},
		{"lock below From, point", 100, []Span{point("b")}, "b"},
	} {
		r := validate(tc.to, tc.spans...)
		if got := string(r.ConflictKey); r.Conflict != (tc.want != "") || got != tc.want {
			t.Errorf("%s: got %+v, want conflict on %q", tc.name, r, tc.want)
		}
	}
	// A later write record is still found behind an ignored lock.
	h.put("e", "w", 70, 80)
	if r := validate(100, span("c", "x")); !r.Conflict || string(r.ConflictKey) != "e" {
		t.Errorf("record behind an ignored lock: %+v", r)
	}
}

// TestOnePhaseCommitIgnoresLaterLocks: a 1PC validates its reads the same
// way over (StartTS, CommitTS].
func TestOnePhaseCommitIgnoresLaterLocks(t *testing.T) {
	h := newHarness(t)
	if err := h.prewrite(50, "e", put("e", "1")); err != nil {
		t.Fatal(err)
	}
	onePC := func(key string, startTS, commitTS Timestamp) error {
		_, err := h.eval(&Request{OnePhaseCommit: &OnePhaseCommitRequest{Mutations: []Mutation{put(key, "v")},
			ReadSpans: []Span{{Key: []byte("b"), EndKey: []byte("f")}, {Key: []byte("e")}}, StartTS: startTS, CommitTS: commitTS}})
		return err
	}
	if err := onePC("k", 40, 49); err != nil {
		t.Fatalf("lock starting after CommitTS: %v", err)
	}
	if v, found, err := h.get("k", 49); err != nil || !found || v != "v" {
		t.Fatalf("1PC write: %q %v %v", v, found, err)
	}
	se := wantErr[*SerializationError](t, onePC("m", 45, 50))
	if string(se.Key) != "e" {
		t.Errorf("lock at CommitTS: key %q", se.Key)
	}
}

func TestScanLimitReverseResume(t *testing.T) {
	h := newHarness(t)
	keys := []string{"b", "b\x00", "c", "c\x00\x01", "d", "e"}
	for i, k := range keys {
		h.put(k, fmt.Sprintf("v%d", i), Timestamp(10+2*i), Timestamp(11+2*i))
	}
	if err := h.rollback(5, "f"); err != nil { // a key with only a marker
		t.Fatal(err)
	}
	scanAll := func(reverse bool, limit int) []string {
		var got []string
		start, end := []byte("b"), []byte("x")
		for i := 0; i < 20; i++ {
			resp := h.mustEval(&Request{Scan: &ScanRequest{Start: start, End: end, ReadTS: 100, Limit: limit, Reverse: reverse}})
			for _, kv := range resp.Scan.Rows {
				got = append(got, string(kv.Key))
			}
			if resp.Scan.ResumeKey == nil {
				return got
			}
			if reverse {
				end = resp.Scan.ResumeKey
			} else {
				start = resp.Scan.ResumeKey
			}
		}
		t.Fatal("scan did not finish")
		return nil
	}
	for _, limit := range []int{0, 1, 2, 5, 6, 7} {
		if got := scanAll(false, limit); !reflect.DeepEqual(got, keys) {
			t.Errorf("forward limit %d: %q", limit, got)
		}
		var rev []string
		for i := len(keys) - 1; i >= 0; i-- {
			rev = append(rev, keys[i])
		}
		if got := scanAll(true, limit); !reflect.DeepEqual(got, rev) {
			t.Errorf("reverse limit %d: %q", limit, got)
		}
	}
	resp := h.mustEval(&Request{Scan: &ScanRequest{Start: []byte("b"), End: []byte("x"), ReadTS: 14}})
	if len(resp.Scan.Rows) != 2 || string(resp.Scan.Rows[1].Value) != "v1" {
		t.Errorf("scan at 14: %+v", resp.Scan.Rows)
	}
}

func TestGC(t *testing.T) {
	h := newHarness(t)
	h.put("c", "1", 10, 11)
	h.put("c", "2", 20, 21)
	h.put("c", "3", 30, 31)
	h.put("d", "1", 10, 11)
	if err := h.prewrite(22, "d", del("d")); err != nil {
		t.Fatal(err)
	}
	if err := h.commit(22, 23, "d"); err != nil {
		t.Fatal(err)
	}
	if err := h.rollback(24, "e"); err != nil {
		t.Fatal(err)
	}
	resp := h.mustEval(&Request{GC: &GCRequest{Start: []byte("b"), End: []byte("x"), SafePoint: 25}})
	// c@11 (older than the kept c@21), d@23 (a delete) and d@11, the marker e@24.
	if resp.GC.VersionsRemoved != 4 {
		t.Errorf("removed %d", resp.GC.VersionsRemoved)
	}
	for _, tc := range []struct {
		key   string
		ts    Timestamp
		want  string
		found bool
	}{{"c", 25, "2", true}, {"c", 40, "3", true}, {"d", 25, "", false}} {
		v, found, err := h.get(tc.key, tc.ts)
		if err != nil || v != tc.want || found != tc.found {
			t.Errorf("get %s@%d = %q %v %v", tc.key, tc.ts, v, found, err)
		}
	}
	// Data versions of dropped records are gone: only c@20 and c@30 remain.
	it, err := h.e.DB().NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = it.Close() }()
	data := 0
	for ok := it.SeekGE([]byte{dataFamily}); ok && it.Key()[0] == dataFamily; ok = it.Next() {
		data++
	}
	if data != 2 {
		t.Errorf("%d data versions left, want 2", data)
	}
}

func TestHugeTTLNeverExpires(t *testing.T) {
	h := newHarness(t)
	start := MakeTimestamp(1000, 0)
	_, err := h.eval(&Request{Prewrite: &PrewriteRequest{Mutations: []Mutation{put("p", "v")}, Primary: []byte("p"), StartTS: start, LockTTL: ^uint64(0)}})
	if err != nil {
		t.Fatal(err)
	}
	resp := h.mustEval(&Request{CheckTxnStatus: &CheckTxnStatusRequest{PrimaryKey: []byte("p"), StartTS: start, CurrentTS: ^uint64(0), RollbackIfExpired: true}})
	if resp.CheckTxnStatus.Status != TxnPending {
		t.Fatalf("a TTL that overflows must not wrap into an expired lock: %+v", resp.CheckTxnStatus)
	}
}

func TestEvaluateReadOnlyOnSnapshot(t *testing.T) {
	h := newHarness(t)
	h.put("c", "old", 10, 11)
	snap := h.e.NewSnapshot()
	defer func() { _ = snap.Close() }()
	h.put("c", "new", 20, 21)
	resp, err := EvaluateReadOnly(snap, h.desc, &Request{Get: &GetRequest{Key: []byte("c"), ReadTS: 100}})
	if err != nil || string(resp.Get.Value) != "old" {
		t.Fatalf("snapshot read: %+v %v", resp, err)
	}
	_, err = EvaluateReadOnly(snap, h.desc, &Request{Rollback: &RollbackRequest{Keys: [][]byte{[]byte("c")}, StartTS: 5}})
	wantErr[*InvalidRequestError](t, err)
	if IsReadOnly(&Request{Prewrite: &PrewriteRequest{}}) || !IsReadOnly(&Request{ValidateReads: &ValidateReadsRequest{}}) {
		t.Error("IsReadOnly")
	}
	batch := h.e.NewBatch()
	defer func() { _ = batch.Close() }()
	_, err = Evaluate(batch, h.desc, &Request{Get: &GetRequest{}, Scan: &ScanRequest{}})
	wantErr[*InvalidRequestError](t, err)
}

func TestChecksumRange(t *testing.T) {
	a, b := newHarness(t), newHarness(t)
	sum := func(h *mvccHarness, desc *RangeDescriptor) uint64 {
		s, err := ChecksumRange(h.e.DB(), desc)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	left := &RangeDescriptor{RangeID: 1, StartKey: []byte("b"), EndKey: []byte("m")}
	right := &RangeDescriptor{RangeID: 2, StartKey: []byte("m"), EndKey: []byte("x")}
	for _, h := range []*mvccHarness{a, b} {
		h.put("c", "1", 10, 11)
	}
	if sum(a, left) != sum(b, left) {
		t.Fatal("equal replicas, different checksums")
	}
	a.put("n", "2", 20, 21) // only in the right range
	if sum(a, left) != sum(b, left) {
		t.Fatal("a write in another range changed the checksum")
	}
	if sum(a, right) == sum(b, right) {
		t.Fatal("different right ranges, same checksum")
	}
	if err := a.prewrite(30, "d", put("d", "x")); err != nil { // a lock counts too
		t.Fatal(err)
	}
	if sum(a, left) == sum(b, left) {
		t.Fatal("a lock did not change the checksum")
	}
}

func TestEmptyValueIsNotAbsent(t *testing.T) {
	h := newHarness(t)
	h.put("c", "", 10, 11)
	v, found, err := h.get("c", 20)
	if err != nil || !found || v != "" {
		t.Fatalf("empty value: %q %v %v", v, found, err)
	}
	resp := h.mustEval(&Request{Scan: &ScanRequest{Start: []byte("b"), End: []byte("x"), ReadTS: 20}})
	if len(resp.Scan.Rows) != 1 || resp.Scan.Rows[0].Value == nil {
		t.Fatalf("scan of an empty value: %+v", resp.Scan.Rows)
	}
	b := h.e.NewWriteBatch()
	if err := b.Set([]byte("raw-empty"), nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := h.e.Commit(b, false); err != nil {
		t.Fatal(err)
	}
	got, err := h.e.Get([]byte("raw-empty"))
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("GetRaw of a present empty value: %v %v", got, err)
	}
	if got, err := h.e.Get([]byte("raw-absent")); err != nil || got != nil {
		t.Fatalf("GetRaw of an absent key: %v %v", got, err)
	}
}

// TestLockLookupSkipsOtherKeysTombstones: every commit deletes a lock, so
// the lock family holds a deletion tombstone per committed key until
// compaction. Looking up one key's lock must not step through the
// tombstones of the keys after it (it did, with a plain SeekGE, and that
// made each prewrite linear in the number of recent commits). Counted in
// iterator steps, not time.
func TestLockLookupSkipsOtherKeysTombstones(t *testing.T) {
	h := newHarness(t)
	const n = 500
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%04d", i)
		h.put(keys[i], "v", Timestamp(10+2*i), Timestamp(11+2*i))
	}
	m := newMVCCReader(h.e.DB())
	defer func() { _ = m.close() }()
	for _, k := range []string{keys[0], keys[n/2], "k"} {
		before := m.stepsTaken()
		l, err := m.getLock([]byte(k))
		if err != nil || l != nil {
			t.Fatalf("lock of %q: %+v %v", k, l, err)
		}
		if steps := m.stepsTaken() - before; steps > 8 {
			t.Errorf("lock lookup of %q stepped over %d internal entries (%d deleted locks in the family)", k, steps, n)
		}
	}
	if err := h.prewrite(9999, keys[n/2], put(keys[n/2], "w")); err != nil {
		t.Fatal(err)
	}
	m2 := newMVCCReader(h.e.DB())
	defer func() { _ = m2.close() }()
	l, err := m2.getLock([]byte(keys[n/2]))
	if err != nil || l == nil || l.startTS != 9999 {
		t.Fatalf("live lock after tombstones: %+v %v", l, err)
	}
}

// stepsTaken is how many internal entries the shared iterator has stepped
// over so far (0 before its first use).
func (m *mvccReader) stepsTaken() int {
	if m.it == nil {
		return 0
	}
	s := m.it.Stats()
	return s.ForwardStepCount[pebble.InternalIterCall]
}

// TestOnePhaseCommitReplayAfterLaterWrite: a 1PC applies at 20; its answer
// is lost; another transaction then writes a key the 1PC read; the router
// resends the 1PC (a new leader fixes commit_ts 40). The replay must report
// the commit at 20, not validate again over (10, 40] and fail with a
// serialization error for a transaction that committed.
func TestOnePhaseCommitReplayAfterLaterWrite(t *testing.T) {
	h := newHarness(t)
	req := func(commitTS Timestamp) *Request {
		return &Request{OnePhaseCommit: &OnePhaseCommitRequest{Mutations: []Mutation{put("c", "1")},
			ReadSpans: []Span{{Key: []byte("r")}}, StartTS: 10, CommitTS: commitTS}}
	}
	if _, err := h.eval(req(20)); err != nil {
		t.Fatal(err)
	}
	h.put("r", "later", 25, 30)
	resp, err := h.eval(req(40))
	if err != nil {
		t.Fatalf("replay of a committed 1PC: %v", err)
	}
	if resp.OnePhaseCommit.CommitTS != 20 {
		t.Fatalf("replay reported commit_ts %d, want the original 20", resp.OnePhaseCommit.CommitTS)
	}
	if v, found, err := h.get("c", 35); err != nil || !found || v != "1" {
		t.Fatalf("c at 35: %q %v %v", v, found, err)
	}
}
