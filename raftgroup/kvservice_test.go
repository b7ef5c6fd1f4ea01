package raftgroup

import (
	"bytes"
	"context"
	"errors"
	"net"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/quorumdb/quorumdb/kv"
)

// kvsvcTestExecutor answers each range with the function registered for it:
// the node-side behaviour the wire must carry faithfully.
type kvsvcTestExecutor struct {
	mu     sync.Mutex
	ranges map[uint64]func(ctx context.Context, req *kv.Request) (*kv.Response, error)
}

func (e *kvsvcTestExecutor) Execute(ctx context.Context, rangeID uint64, req *kv.Request) (*kv.Response, error) {
	e.mu.Lock()
	f := e.ranges[rangeID]
	e.mu.Unlock()
	if f == nil {
		return nil, &kv.RangeNotFoundError{RangeID: rangeID}
	}
	return f(ctx, req)
}

// startKVTestServer serves exec on addr ("127.0.0.1:0" for a fresh port).
func startKVTestServer(t testing.TB, addr string, exec Executor) (string, *grpc.Server) {
	t.Helper()
	var lis net.Listener
	var err error
	deadline := time.Now().Add(transportTestWait)
	for {
		lis, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	srv := grpc.NewServer(GRPCServerOptions()...)
	RegisterKVService(srv, exec)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), srv
}

func newKVTestClient(t testing.TB, book *transportTestAddrs, faults *FaultInjector) *KVClient {
	c := NewKVClient(KVClientConfig{NodeID: 9, Resolver: book.resolve, Faults: faults, DialTimeout: time.Second, MaxBackoff: 100 * time.Millisecond})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestKVServiceRoundTripsResponsesAndTypedErrors(t *testing.T) {
	desc := &kv.RangeDescriptor{RangeID: 3, StartKey: []byte("a"), EndKey: []byte("m")}
	exec := &kvsvcTestExecutor{ranges: map[uint64]func(context.Context, *kv.Request) (*kv.Response, error){
		1: func(_ context.Context, req *kv.Request) (*kv.Response, error) {
			return &kv.Response{Get: &kv.GetResponse{Value: append([]byte("value of "), req.Get.Key...), Found: true}}, nil
		},
		2: func(context.Context, *kv.Request) (*kv.Response, error) {
			return nil, &kv.NotLeaderError{RangeID: 2, LeaderNodeID: 3}
		},
		3: func(_ context.Context, req *kv.Request) (*kv.Response, error) {
			// Wrapped on the node: the client still gets the typed value.
			return nil, errors.Join(errors.New("prewrite"), &kv.LockedError{Key: req.Prewrite.Mutations[0].Key, Primary: []byte("p"), StartTS: 17, TTL: 3000})
		},
		4: func(context.Context, *kv.Request) (*kv.Response, error) {
			return nil, &kv.EpochMismatchError{RangeID: 4, Descriptors: []*kv.RangeDescriptor{desc}}
		},
		5: func(context.Context, *kv.Request) (*kv.Response, error) {
			return nil, errors.New("pebble: disk stalled")
		},
		6: func(_ context.Context, req *kv.Request) (*kv.Response, error) {
			rows := make([]kv.KeyValue, 0, req.Scan.Limit)
			for i := range req.Scan.Limit {
				rows = append(rows, kv.KeyValue{Key: []byte{'k', byte(i)}, Value: bytes.Repeat([]byte{byte(i)}, 100)})
			}
			return &kv.Response{Scan: &kv.ScanResponse{Rows: rows, ResumeKey: []byte("k\xff")}}, nil
		},
	}}
	addr, _ := startKVTestServer(t, "127.0.0.1:0", exec)
	book := &transportTestAddrs{}
	book.set(1, addr)
	c := newKVTestClient(t, book, nil)
	ctx, cancel := context.WithTimeout(context.Background(), transportTestWait)
	defer cancel()

	resp, err := c.Execute(ctx, 1, 1, &kv.Request{Get: &kv.GetRequest{Key: []byte("k1"), ReadTS: 5}})
	if err != nil || !resp.Get.Found || string(resp.Get.Value) != "value of k1" {
		t.Fatalf("get: %+v, %v", resp, err)
	}
	resp, err = c.Execute(ctx, 1, 6, &kv.Request{Scan: &kv.ScanRequest{Start: []byte("k"), End: []byte("l"), Limit: 200}})
	if err != nil || len(resp.Scan.Rows) != 200 || !bytes.Equal(resp.Scan.Rows[199].Value, bytes.Repeat([]byte{199}, 100)) {
		t.Fatalf("scan: %v rows, %v", len(resp.Scan.Rows), err)
	}

	_, err = c.Execute(ctx, 1, 2, &kv.Request{Get: &kv.GetRequest{Key: []byte("x")}})
	var notLeader *kv.NotLeaderError
	if !errors.As(err, &notLeader) || *notLeader != (kv.NotLeaderError{RangeID: 2, LeaderNodeID: 3}) {
		t.Fatalf("got %v, want NotLeaderError{2, 3}", err)
	}
	_, err = c.Execute(ctx, 1, 3, &kv.Request{Prewrite: &kv.PrewriteRequest{Mutations: []kv.Mutation{{Op: kv.OpPut, Key: []byte("acct"), Value: []byte("10")}}, Primary: []byte("acct"), StartTS: 20}})
	locked, ok := err.(*kv.LockedError)
	if !ok || string(locked.Key) != "acct" || locked.StartTS != 17 || locked.TTL != 3000 {
		t.Fatalf("got %#v, want the typed *kv.LockedError itself", err)
	}
	_, err = c.Execute(ctx, 1, 4, &kv.Request{Get: &kv.GetRequest{Key: []byte("b")}})
	var mismatch *kv.EpochMismatchError
	if !errors.As(err, &mismatch) || len(mismatch.Descriptors) != 1 || !reflect.DeepEqual(mismatch.Descriptors[0], desc) {
		t.Fatalf("got %v, want EpochMismatchError carrying the descriptor", err)
	}
	_, err = c.Execute(ctx, 1, 5, &kv.Request{Get: &kv.GetRequest{Key: []byte("b")}})
	var remote *kv.RemoteError
	if !errors.As(err, &remote) || remote.Message != "pebble: disk stalled" {
		t.Fatalf("got %v, want RemoteError with the node's message", err)
	}
	_, err = c.Execute(ctx, 1, 99, &kv.Request{Get: &kv.GetRequest{Key: []byte("b")}})
	var notFound *kv.RangeNotFoundError
	if !errors.As(err, &notFound) || notFound.RangeID != 99 {
		t.Fatalf("got %v, want RangeNotFoundError", err)
	}
	_, err = c.Execute(ctx, 1, 1, &kv.Request{})
	var invalid *kv.InvalidRequestError
	if !errors.As(err, &invalid) {
		t.Fatalf("empty request: got %v, want InvalidRequestError from the node's decoder", err)
	}

	results, err := c.Batch(ctx, 1, []KVBatchItem{
		{RangeID: 1, Request: &kv.Request{Get: &kv.GetRequest{Key: []byte("a")}}},
		{RangeID: 2, Request: &kv.Request{Get: &kv.GetRequest{Key: []byte("b")}}},
		{RangeID: 1, Request: &kv.Request{Get: &kv.GetRequest{Key: []byte("c")}}},
	})
	if err != nil || len(results) != 3 {
		t.Fatalf("batch: %v, %v", results, err)
	}
	if string(results[0].Response.Get.Value) != "value of a" || string(results[2].Response.Get.Value) != "value of c" || !errors.As(results[1].Err, &notLeader) {
		t.Fatalf("batch results out of place: %+v", results)
	}
	if results, err := c.Batch(ctx, 1, nil); err != nil || len(results) != 0 {
		t.Fatalf("empty batch: %v, %v", results, err)
	}
}

func TestKVClientUnreachableNodeFailsTyped(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := lis.Addr().String()
	_ = lis.Close()
	book := &transportTestAddrs{}
	book.set(1, deadAddr)
	c := newKVTestClient(t, book, nil)
	ctx, cancel := context.WithTimeout(context.Background(), transportTestWait)
	defer cancel()
	req := &kv.Request{Get: &kv.GetRequest{Key: []byte("k")}}
	for _, node := range []uint64{1, 1, 2} { // a dead port twice (fresh and in backoff), then an unknown node
		_, err := c.Execute(ctx, node, 1, req)
		var unavailable *NodeUnavailableError
		if !errors.As(err, &unavailable) || unavailable.NodeID != node || unavailable.Sent {
			t.Fatalf("node %d: got %v, want NodeUnavailableError (not sent)", node, err)
		}
	}
	if ctx.Err() != nil {
		t.Fatal("the unreachable node held the caller until the test's own deadline")
	}
}

func TestKVClientHonoursDeadlineAndCancelsTheNode(t *testing.T) {
	nodeSawCancel := make(chan error, 1)
	exec := &kvsvcTestExecutor{ranges: map[uint64]func(context.Context, *kv.Request) (*kv.Response, error){
		1: func(ctx context.Context, _ *kv.Request) (*kv.Response, error) {
			<-ctx.Done()
			nodeSawCancel <- ctx.Err()
			return nil, ctx.Err()
		},
	}}
	addr, _ := startKVTestServer(t, "127.0.0.1:0", exec)
	book := &transportTestAddrs{}
	book.set(1, addr)
	c := newKVTestClient(t, book, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Execute(ctx, 1, 1, &kv.Request{Get: &kv.GetRequest{Key: []byte("k")}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
	select {
	case <-nodeSawCancel:
	case <-time.After(transportTestWait):
		t.Fatal("the node's executor never saw the client's deadline")
	}
}

func TestKVClientFaultInjectionAndNodeRestart(t *testing.T) {
	served := func(context.Context, *kv.Request) (*kv.Response, error) {
		return &kv.Response{Commit: &kv.CommitResponse{}}, nil
	}
	exec := &kvsvcTestExecutor{ranges: map[uint64]func(context.Context, *kv.Request) (*kv.Response, error){1: served}}
	addr, srv := startKVTestServer(t, "127.0.0.1:0", exec)
	book := &transportTestAddrs{}
	book.set(1, addr)
	faults := NewFaultInjector(1)
	c := newKVTestClient(t, book, faults) // the client runs on node 9
	ctx, cancel := context.WithTimeout(context.Background(), transportTestWait)
	defer cancel()
	req := &kv.Request{Commit: &kv.CommitRequest{Keys: [][]byte{[]byte("k")}, StartTS: 1, CommitTS: 2}}
	if _, err := c.Execute(ctx, 1, 1, req); err != nil {
		t.Fatalf("before faults: %v", err)
	}
	faults.Partition([]uint64{9}, []uint64{1})
	_, err := c.Execute(ctx, 1, 1, req)
	var unavailable *NodeUnavailableError
	if !errors.As(err, &unavailable) || !errors.As(err, new(*FaultInjectedError)) {
		t.Fatalf("across a partition: got %v, want NodeUnavailableError from fault injection", err)
	}
	faults.Heal()
	if _, err := c.Execute(ctx, 1, 1, req); err != nil {
		t.Fatalf("after heal: %v", err)
	}

	// The node restarts on the same address: calls fail typed while it is
	// down, then succeed again once it is back.
	srv.Stop()
	_, err = c.Execute(ctx, 1, 1, req)
	if !errors.As(err, &unavailable) {
		t.Fatalf("node down: got %v, want NodeUnavailableError", err)
	}
	startKVTestServer(t, addr, exec)
	transportWaitFor(t, "call after the node restarted", func() bool {
		_, err := c.Execute(ctx, 1, 1, req)
		return err == nil
	})
}

func TestKVServiceNeedsTheRawCodec(t *testing.T) {
	// A server created without GRPCServerOptions must fail the call with a
	// clear error, not hang or misparse: gRPC falls back to its protobuf
	// codec, which names the frame type it cannot decode.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	RegisterKVService(srv, &kvsvcTestExecutor{})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	book := &transportTestAddrs{}
	book.set(1, lis.Addr().String())
	c := newKVTestClient(t, book, nil)
	ctx, cancel := context.WithTimeout(context.Background(), transportTestWait)
	defer cancel()
	_, err = c.Execute(ctx, 1, 1, &kv.Request{Get: &kv.GetRequest{Key: []byte("k")}})
	if err == nil || !strings.Contains(err.Error(), "grpcRawFrame") || errors.As(err, new(*NodeUnavailableError)) {
		t.Fatalf("got %v, want an error naming the undecodable raw frame", err)
	}
}

// BenchmarkKVClientExecute measures one small request round trip.
func BenchmarkKVClientExecute(b *testing.B) {
	exec := &kvsvcTestExecutor{ranges: map[uint64]func(context.Context, *kv.Request) (*kv.Response, error){
		1: func(_ context.Context, req *kv.Request) (*kv.Response, error) {
			return &kv.Response{Get: &kv.GetResponse{Value: req.Get.Key, Found: true}}, nil
		},
	}}
	addr, _ := startKVTestServer(b, "127.0.0.1:0", exec)
	book := &transportTestAddrs{}
	book.set(1, addr)
	c := newKVTestClient(b, book, nil)
	req := &kv.Request{Get: &kv.GetRequest{Key: []byte("some-key"), ReadTS: 1}}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Execute(ctx, 1, 1, req); err != nil {
			b.Fatal(err)
		}
	}
}

func TestKVClientCloseLeaksNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	exec := &kvsvcTestExecutor{ranges: map[uint64]func(context.Context, *kv.Request) (*kv.Response, error){
		1: func(context.Context, *kv.Request) (*kv.Response, error) {
			return &kv.Response{Rollback: &kv.RollbackResponse{}}, nil
		},
	}}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(GRPCServerOptions()...)
	RegisterKVService(srv, exec)
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(lis) }()
	book := &transportTestAddrs{}
	book.set(1, lis.Addr().String())
	c := NewKVClient(KVClientConfig{Resolver: book.resolve})
	ctx, cancel := context.WithTimeout(context.Background(), transportTestWait)
	defer cancel()
	if _, err := c.Execute(ctx, 1, 1, &kv.Request{Rollback: &kv.RollbackRequest{Keys: [][]byte{[]byte("k")}, StartTS: 3}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Execute(ctx, 1, 1, &kv.Request{Rollback: &kv.RollbackRequest{Keys: [][]byte{[]byte("k")}, StartTS: 3}}); !errors.As(err, new(*NodeUnavailableError)) {
		t.Fatalf("call after Close: %v, want NodeUnavailableError", err)
	}
	srv.Stop()
	<-served
	transportWaitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}
