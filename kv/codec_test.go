package kv

import (
	"math/rand/v2"
	"reflect"
	"testing"
)

// sampleRequests covers every operation, with nil and empty byte strings,
// zero bytes inside keys and large timestamps.
func sampleRequests() []*Request {
	muts := []Mutation{
		{Op: OpPut, Key: []byte("a\x00b"), Value: []byte("v")},
		{Op: OpDelete, Key: []byte("b")},
		{Op: OpLock, Key: []byte("c"), Value: []byte{}},
	}
	spans := []Span{{Key: []byte("a"), EndKey: []byte("c")}, {Key: []byte("x")}}
	return []*Request{
		{Get: &GetRequest{Key: []byte("k"), ReadTS: 1<<63 + 5}},
		{Get: &GetRequest{}},
		{Scan: &ScanRequest{Start: []byte("a"), End: []byte{0xff, 0xff}, ReadTS: 9, Limit: 100, Reverse: true}},
		{Scan: &ScanRequest{Start: []byte{}, End: []byte("z"), ReadTS: 9}},
		{ValidateReads: &ValidateReadsRequest{Spans: spans, TxnStartTS: 3, From: 3, To: 10}},
		{Prewrite: &PrewriteRequest{Mutations: muts, Primary: []byte("a\x00b"), StartTS: 77, LockTTL: 3000}},
		{Commit: &CommitRequest{Keys: [][]byte{[]byte("a"), {}, nil}, StartTS: 4, CommitTS: 8}},
		{Rollback: &RollbackRequest{Keys: [][]byte{[]byte("a")}, StartTS: 4}},
		{CheckTxnStatus: &CheckTxnStatusRequest{PrimaryKey: []byte("p"), StartTS: 4, CurrentTS: 99, RollbackIfExpired: true}},
		{ResolveLock: &ResolveLockRequest{Keys: [][]byte{[]byte("a"), []byte("b")}, StartTS: 4}},
		{TxnHeartbeat: &TxnHeartbeatRequest{PrimaryKey: []byte("p"), StartTS: 4, NewTTL: 10000}},
		{OnePhaseCommit: &OnePhaseCommitRequest{Mutations: muts, ReadSpans: spans, StartTS: 5, CommitTS: 6}},
		{GC: &GCRequest{Start: []byte("a"), End: []byte("b"), SafePoint: 1000}},
	}
}

func sampleResponses() []*Response {
	return []*Response{
		{Get: &GetResponse{Value: []byte("v"), Found: true}},
		{Get: &GetResponse{}},
		{Scan: &ScanResponse{Rows: []KeyValue{{Key: []byte("a"), Value: []byte("1")}, {Key: []byte("b"), Value: []byte{}}}, ResumeKey: []byte("c")}},
		{Scan: &ScanResponse{}},
		{ValidateReads: &ValidateReadsResponse{Conflict: true, ConflictKey: []byte("k")}},
		{Prewrite: &PrewriteResponse{}},
		{Commit: &CommitResponse{}},
		{Rollback: &RollbackResponse{}},
		{CheckTxnStatus: &CheckTxnStatusResponse{Status: TxnCommitted, CommitTS: 12}},
		{CheckTxnStatus: &CheckTxnStatusResponse{Status: TxnPending, LockTTL: 3000}},
		{ResolveLock: &ResolveLockResponse{}},
		{TxnHeartbeat: &TxnHeartbeatResponse{LockTTL: 5}},
		{OnePhaseCommit: &OnePhaseCommitResponse{CommitTS: 1 << 60}},
		{GC: &GCResponse{VersionsRemoved: 17}},
	}
}

func TestRequestRoundTrip(t *testing.T) {
	for _, want := range sampleRequests() {
		enc := want.Marshal()
		got, err := UnmarshalRequest(enc)
		if err != nil {
			t.Fatalf("decode %x: %v", enc, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
		}
		// Decoded byte strings must not alias the caller's buffer.
		for i := range enc {
			enc[i] = 0xee
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("decoded request aliases its input")
		}
	}
}

func TestResponseRoundTrip(t *testing.T) {
	for _, want := range sampleResponses() {
		got, err := UnmarshalResponse(want.Marshal())
		if err != nil {
			t.Fatalf("decode %+v: %v", want, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
		}
	}
}

func TestCodecRejectsBadInput(t *testing.T) {
	if _, err := UnmarshalRequest((&Request{}).Marshal()); err == nil {
		t.Error("empty request must not decode")
	}
	if _, err := UnmarshalResponse((&Response{}).Marshal()); err == nil {
		t.Error("empty response must not decode")
	}
	for _, req := range sampleRequests() {
		enc := req.Marshal()
		for n := 0; n < len(enc); n++ {
			if _, err := UnmarshalRequest(enc[:n]); err == nil {
				t.Errorf("truncated %x (of %x) decoded without error", enc[:n], enc)
			}
		}
		if _, err := UnmarshalRequest(append(enc, 0)); err == nil {
			t.Errorf("trailing byte after %x accepted", enc)
		}
	}
	bad := [][]byte{
		{opTagPrewrite, 1, 9, 2, 'k', 0, 0, 0, 0},            // unknown mutation op
		{opTagCommit, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0},    // absurd key count
		{opTagGet, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, // absurd key length
		{opTagScan, 0, 0, 0, 0, 7},                           // bad bool
	}
	for _, b := range bad {
		if _, err := UnmarshalRequest(b); err == nil {
			t.Errorf("UnmarshalRequest(%x) accepted bad input", b)
		}
	}
}

// TestCodecRandomRoundTrip round-trips randomly shaped requests and checks
// that random corruptions of them never panic.
func TestCodecRandomRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	samples := sampleRequests()
	for i := 0; i < 2000; i++ {
		req := samples[rng.IntN(len(samples))]
		enc := req.Marshal()
		got, err := UnmarshalRequest(enc)
		if err != nil || !reflect.DeepEqual(got, req) {
			t.Fatalf("round trip failed: %v", err)
		}
		corrupt := append([]byte(nil), enc...)
		corrupt[rng.IntN(len(corrupt))] ^= byte(1 + rng.IntN(255))
		if r, err := UnmarshalRequest(corrupt); err == nil {
			if _, err := UnmarshalRequest(r.Marshal()); err != nil {
				t.Fatalf("re-encoding a decoded request failed: %v", err)
			}
		}
	}
}

func FuzzUnmarshalRequest(f *testing.F) {
	for _, r := range sampleRequests() {
		f.Add(r.Marshal())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalRequest(b)
		if err != nil {
			return
		}
		again, err := UnmarshalRequest(r.Marshal())
		if err != nil {
			t.Fatalf("re-encoded request does not decode: %v", err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("re-encoding changed the request:\n%+v\n%+v", r, again)
		}
	})
}

func FuzzUnmarshalResponse(f *testing.F) {
	for _, r := range sampleResponses() {
		f.Add(r.Marshal())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalResponse(b)
		if err != nil {
			return
		}
		again, err := UnmarshalResponse(r.Marshal())
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("re-encoding changed the response: %v\n%+v\n%+v", err, r, again)
		}
	})
}

func FuzzUnmarshalError(f *testing.F) {
	f.Add(MarshalError(&LockedError{Key: []byte("k"), Primary: []byte("p"), StartTS: 1, TTL: 2}))
	f.Add(MarshalError(&EpochMismatchError{RangeID: 1, Descriptors: []*RangeDescriptor{{RangeID: 1, EndKey: KeyMax}}}))
	f.Add(MarshalError(&RangeUnavailableError{RangeID: 1, Reason: "no quorum"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := UnmarshalError(b)
		if len(b) == 0 {
			if err != nil {
				t.Fatal("empty input must decode to nil")
			}
			return
		}
		if err == nil {
			t.Fatal("non-empty input must decode to an error")
		}
		_ = err.Error()
	})
}
