// Package raftgrouptest starts real single-node raftgroup stores for the
// tests of the layers above (txn, sql, tests): an in-memory pebble engine, a
// Store whose ranges each have one voter (so every write still goes through
// Raft and every read through ReadIndex), and no peers. Production code must
// not import it.
package raftgrouptest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/kv"
	"github.com/quorumdb/quorumdb/raftgroup"
)

// NoPeers is the transport of a store whose ranges all have a single voter:
// there is never anyone to send to.
type NoPeers struct{}

// Send drops the message: a single voter sends none that matter.
func (NoPeers) Send(*raftgroup.RaftMessage) bool { return false }

// SendSnapshot fails: there is no peer to receive it.
func (NoPeers) SendSnapshot(context.Context, *raftgroup.RaftMessage, raftgroup.SnapshotSource) error {
	return errors.New("single-node test store has no peers")
}

// StartStore starts node 1's store on a fresh in-memory engine with 10 ms
// ticks and the given clock, and stops it (and closes the engine) when t
// ends. tune, when not nil, adjusts the config before the store is built.
// The store holds no range yet: bootstrap with BootstrapRange(s).
func StartStore(t testing.TB, clock func() uint64, tune func(*raftgroup.Config)) *raftgroup.Store {
	t.Helper()
	eng, err := kv.Open("", kv.EngineOptions{InMemory: true, CacheSize: 8 << 20})
	if err != nil {
		t.Fatalf("open engine: %v", err)
	}
	cfg := raftgroup.Config{
		NodeID: 1, Engine: eng, Transport: NoPeers{}, Clock: clock,
		TickInterval: 10 * time.Millisecond,
	}
	if tune != nil {
		tune(&cfg)
	}
	st, err := raftgroup.NewStore(cfg)
	if err != nil {
		_ = eng.Close()
		t.Fatalf("new store: %v", err)
	}
	st.Start()
	t.Cleanup(func() {
		st.Stop()
		_ = eng.Close()
	})
	return st
}

// Clock adapts a timestamp source (txn.LocalClock) to the store's clock: 0,
// which the store treats as "no timestamp", when it fails.
func Clock(src interface {
	GetTimestamp(context.Context) (kv.Timestamp, error)
}) func() uint64 {
	return func() uint64 {
		ts, err := src.GetTimestamp(context.Background())
		if err != nil {
			return 0
		}
		return ts
	}
}
