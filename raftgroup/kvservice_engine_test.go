package raftgroup

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/quorumdb/quorumdb/kv"
)

// kvsvcEngineExecutor evaluates requests with kv.Evaluate on a real
// in-memory pebble engine: one range, writes applied one at a time as Raft
// would apply them, each in its own batch.
type kvsvcEngineExecutor struct {
	mu     sync.Mutex
	engine *kv.Engine
	desc   *kv.RangeDescriptor
}

func (e *kvsvcEngineExecutor) Execute(_ context.Context, rangeID uint64, req *kv.Request) (*kv.Response, error) {
	if rangeID != e.desc.RangeID {
		return nil, &kv.RangeNotFoundError{RangeID: rangeID}
	}
	if kv.IsReadOnly(req) {
		return kv.EvaluateReadOnly(e.engine.DB(), e.desc, req)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	b := e.engine.NewBatch()
	defer b.Close()
	resp, err := kv.Evaluate(b, e.desc, req)
	if err != nil {
		return nil, err
	}
	if err := e.engine.Commit(b, false); err != nil {
		return nil, err
	}
	return resp, nil
}

func TestKVServiceEndToEndOnARealEngine(t *testing.T) {
	engine, err := kv.Open("", kv.EngineOptions{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = engine.Close() })
	desc := &kv.RangeDescriptor{RangeID: 1, StartKey: []byte("a"), EndKey: []byte("m")}
	addr, _ := startKVTestServer(t, "127.0.0.1:0", &kvsvcEngineExecutor{engine: engine, desc: desc})
	book := &transportTestAddrs{}
	book.set(1, addr)
	c := newKVTestClient(t, book, nil)
	ctx, cancel := context.WithTimeout(context.Background(), transportTestWait)
	defer cancel()
	acct := []byte("acct")
	call := func(req *kv.Request) (*kv.Response, error) { return c.Execute(ctx, 1, 1, req) }

	// Txn 10 takes the account: a reader at 20 meets its lock, typed.
	if _, err := call(&kv.Request{Prewrite: &kv.PrewriteRequest{
		Mutations: []kv.Mutation{{Op: kv.OpPut, Key: acct, Value: []byte("5")}},
		Primary:   acct, StartTS: 10, LockTTL: 3000,
	}}); err != nil {
		t.Fatalf("prewrite txn 10: %v", err)
	}
	_, err = call(&kv.Request{Get: &kv.GetRequest{Key: acct, ReadTS: 20}})
	var locked *kv.LockedError
	if !errors.As(err, &locked) || string(locked.Primary) != "acct" || locked.StartTS != 10 {
		t.Fatalf("read through a lock: got %v, want LockedError of txn 10", err)
	}
	// A competing withdrawal cannot prewrite over the lock.
	_, err = call(&kv.Request{Prewrite: &kv.PrewriteRequest{
		Mutations: []kv.Mutation{{Op: kv.OpPut, Key: acct, Value: []byte("5")}},
		Primary:   acct, StartTS: 12, LockTTL: 3000,
	}})
	if !errors.As(err, &locked) {
		t.Fatalf("competing prewrite: got %v, want LockedError", err)
	}

	if _, err := call(&kv.Request{Commit: &kv.CommitRequest{Keys: [][]byte{acct}, StartTS: 10, CommitTS: 15}}); err != nil {
		t.Fatalf("commit txn 10: %v", err)
	}
	resp, err := call(&kv.Request{Get: &kv.GetRequest{Key: acct, ReadTS: 20}})
	if err != nil || !resp.Get.Found || string(resp.Get.Value) != "5" {
		t.Fatalf("read after commit: %+v, %v", resp, err)
	}
	// The competitor started before that commit: a write conflict, typed.
	_, err = call(&kv.Request{Prewrite: &kv.PrewriteRequest{
		Mutations: []kv.Mutation{{Op: kv.OpPut, Key: acct, Value: []byte("5")}},
		Primary:   acct, StartTS: 12, LockTTL: 3000,
	}})
	var conflict *kv.WriteConflictError
	if !errors.As(err, &conflict) || conflict.ConflictCommitTS != 15 {
		t.Fatalf("late prewrite: got %v, want WriteConflictError at commit 15", err)
	}
	resp, err = call(&kv.Request{CheckTxnStatus: &kv.CheckTxnStatusRequest{PrimaryKey: acct, StartTS: 10, CurrentTS: 30}})
	if err != nil || resp.CheckTxnStatus.Status != kv.TxnCommitted || resp.CheckTxnStatus.CommitTS != 15 {
		t.Fatalf("status of txn 10: %+v, %v", resp, err)
	}
	_, err = call(&kv.Request{Get: &kv.GetRequest{Key: []byte("zebra"), ReadTS: 20}})
	var outside *kv.KeyOutOfRangeError
	if !errors.As(err, &outside) || outside.RangeID != 1 {
		t.Fatalf("key outside the range: got %v, want KeyOutOfRangeError", err)
	}
}
