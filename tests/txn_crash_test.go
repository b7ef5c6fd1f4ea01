package tests

import (
	"context"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/kv"
	"github.com/quorumdb/quorumdb/txn"
)

// Coordinator crashes at each step of two-phase commit. The crashing
// coordinator stops through a testing knob (no rollback, no heartbeat, no
// secondary commit); readers on another coordinator must see all of the
// transaction or nothing, and once they have read, no lock remains.

const crashTTL = 300 * time.Millisecond

// crashKeys lie in three ranges; the primary is the first in key order.
var crashKeys = []string{"c/a", "c/m", "c/x"}

func crashScenario(t *testing.T, knobs *txn.TestingKnobs, wantCommitErr bool) (*localKV, *txn.DB) {
	t.Helper()
	s := newLocalKV(t, "c/m", "c/x")
	if !distinct(keyRangeIDs(s, crashKeys...)) {
		t.Fatal("setup: keys share a range")
	}
	crashing := s.coordinators(t, 1, txn.DBConfig{LockTTL: crashTTL, Knobs: knobs})[0]
	reader := s.coordinators(t, 1, txn.DBConfig{})[0]
	var setup []string
	for _, k := range crashKeys {
		setup = append(setup, k, "before")
	}
	putAll(t, reader, setup...)
	ctx := context.Background()
	tx, _ := crashing.Begin(ctx, txn.TxnOptions{})
	for _, k := range crashKeys {
		if err := tx.Put(ctx, []byte(k), []byte("after")); err != nil {
			t.Fatal(err)
		}
	}
	err := tx.Commit(ctx)
	if wantCommitErr != (err != nil) {
		t.Fatalf("commit of the crashing coordinator: %v", err)
	}
	return s, reader
}

// readAllOrNothing reads the keys one by one (secondaries first, so the
// reader has to go through the primary's status) and then by a scan, and
// requires them to agree on one state.
func readAllOrNothing(t *testing.T, reader *txn.DB) string {
	t.Helper()
	ctx := context.Background()
	tx, _ := reader.Begin(ctx, txn.TxnOptions{ReadOnly: true})
	seen := map[string]bool{}
	for i := len(crashKeys) - 1; i >= 0; i-- {
		v, ok, err := tx.Get(ctx, []byte(crashKeys[i]))
		if err != nil || !ok {
			t.Fatalf("get %s: %v %v", crashKeys[i], ok, err)
		}
		seen[string(v)] = true
	}
	rows, err := tx.Scan(ctx, []byte("c/"), []byte("c0"), 0, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		seen[string(r.Value)] = true
	}
	if len(seen) != 1 || len(rows) != len(crashKeys) {
		t.Fatalf("half-visible transaction: values %v over %d rows", seen, len(rows))
	}
	for v := range seen {
		return v
	}
	return ""
}

// requireNoLocks asks every range whether any lock is left (ValidateReads
// over the whole range with an empty timestamp window at a fresh oracle
// timestamp reports only locks, every lock starting at or below To: every
// transaction begun before the call).
func requireNoLocks(t *testing.T, s *localKV) {
	t.Helper()
	ctx := context.Background()
	for _, d := range s.descriptors() {
		now := s.now(t)
		resp, err := s.store.Execute(ctx, d.RangeID, &kv.Request{ValidateReads: &kv.ValidateReadsRequest{
			Spans: []kv.Span{{Key: d.StartKey, EndKey: d.EndKey}}, TxnStartTS: 1, From: now, To: now,
		}})
		if err != nil {
			t.Fatalf("lock check of r%d: %v", d.RangeID, err)
		}
		if resp.ValidateReads.Conflict {
			t.Fatalf("a lock lingers on %q in r%d", resp.ValidateReads.ConflictKey, d.RangeID)
		}
	}
}

func TestTxnCoordinatorCrashAfterPrewrite(t *testing.T) {
	knobs := &txn.TestingKnobs{AfterPrewrite: func(*txn.Txn) error { return txn.ErrCoordinatorStopped() }}
	s, reader := crashScenario(t, knobs, true)
	start := time.Now()
	if v := readAllOrNothing(t, reader); v != "before" {
		t.Fatalf("readers see %q of a transaction that never reached its commit point", v)
	}
	if waited := time.Since(start); waited < crashTTL/2 {
		t.Fatalf("readers rolled back live-looking locks after %v (TTL %v)", waited, crashTTL)
	}
	requireNoLocks(t, s)
}

func TestTxnCoordinatorCrashAfterPrimaryCommit(t *testing.T) {
	knobs := &txn.TestingKnobs{AfterPrimaryCommit: func(*txn.Txn) error { return txn.ErrCoordinatorStopped() }}
	s, reader := crashScenario(t, knobs, false)
	if v := readAllOrNothing(t, reader); v != "after" {
		t.Fatalf("readers see %q of a committed transaction", v)
	}
	requireNoLocks(t, s)
}

func TestTxnCoordinatorCrashDuringSecondaryCommit(t *testing.T) {
	knobs := &txn.TestingKnobs{FilterSecondaries: func(_ *txn.Txn, keys [][]byte) [][]byte {
		return keys[:1] // commits c/m, "crashes" before c/x
	}}
	s, reader := crashScenario(t, knobs, false)
	if v := readAllOrNothing(t, reader); v != "after" {
		t.Fatalf("readers see %q of a committed transaction", v)
	}
	requireNoLocks(t, s)
}

// A live coordinator that stalls after prewrite for several lock TTLs is
// kept alive by its heartbeat: readers wait for it instead of rolling it
// back, and it commits.
func TestTxnHeartbeatKeepsStalledCommitAlive(t *testing.T) {
	stall := 4 * crashTTL
	knobs := &txn.TestingKnobs{AfterPrewrite: func(*txn.Txn) error {
		time.Sleep(stall) // the coordinator is slow, not dead
		return nil
	}}
	s := newLocalKV(t, "c/m", "c/x")
	slow := s.coordinators(t, 1, txn.DBConfig{LockTTL: crashTTL, Knobs: knobs})[0]
	reader := s.coordinators(t, 1, txn.DBConfig{})[0]
	var setup []string
	for _, k := range crashKeys {
		setup = append(setup, k, "before")
	}
	putAll(t, reader, setup...)
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		tx, _ := slow.Begin(ctx, txn.TxnOptions{})
		for _, k := range crashKeys {
			_ = tx.Put(ctx, []byte(k), []byte("slow"))
		}
		done <- tx.Commit(ctx)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !s.locked(crashKeys[0]) {
		if time.Now().After(deadline) {
			t.Fatal("the slow transaction never locked its primary")
		}
		time.Sleep(time.Millisecond)
	}
	// This reader's snapshot is older than the slow transaction's commit:
	// it meets the locks, waits through the stall (it must not roll a live
	// transaction back), and then sees the state before.
	start := time.Now()
	if v := readAllOrNothing(t, reader); v != "before" {
		t.Fatalf("reader with an older snapshot saw %q", v)
	}
	if waited := time.Since(start); waited < crashTTL {
		t.Fatalf("reader got past live locks after %v (TTL %v)", waited, crashTTL)
	}
	if err := <-done; err != nil {
		t.Fatalf("stalled transaction was not kept alive by its heartbeat: %v", err)
	}
	if v := readAllOrNothing(t, reader); v != "slow" {
		t.Fatalf("a read after the commit saw %q", v)
	}
	requireNoLocks(t, s)
}

// locked reports whether key holds a lock right now.
func (s *localKV) locked(key string) bool {
	ctx := context.Background()
	d, err := s.LookupRange(ctx, []byte(key))
	if err != nil {
		return false
	}
	now, err := s.clock.GetTimestamp(ctx)
	if err != nil {
		return false
	}
	resp, err := s.store.Execute(ctx, d.RangeID, &kv.Request{ValidateReads: &kv.ValidateReadsRequest{
		Spans: []kv.Span{{Key: []byte(key)}}, TxnStartTS: 1, From: now, To: now,
	}})
	return err == nil && resp.ValidateReads.Conflict
}

// now is a fresh timestamp of the harness's oracle.
func (s *localKV) now(t *testing.T) kv.Timestamp {
	t.Helper()
	ts, err := s.clock.GetTimestamp(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return ts
}
