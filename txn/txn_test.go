package txn

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/kv"
)

func mustPut(t *testing.T, db *DB, kvs ...string) {
	t.Helper()
	err := db.Run(context.Background(), TxnOptions{}, func(ctx context.Context, tx *Txn) error {
		for i := 0; i+1 < len(kvs); i += 2 {
			if err := tx.Put(ctx, []byte(kvs[i]), []byte(kvs[i+1])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("put %v: %v", kvs, err)
	}
}

func mustGet(t *testing.T, tx *Txn, key string) (string, bool) {
	t.Helper()
	v, ok, err := tx.Get(context.Background(), []byte(key))
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	return string(v), ok
}

func readCommitted(t *testing.T, db *DB, key string) (string, bool) {
	t.Helper()
	tx, err := db.Begin(context.Background(), TxnOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	return mustGet(t, tx, key)
}

func rowsString(rows []kv.KeyValue) string {
	s := ""
	for _, r := range rows {
		s += fmt.Sprintf("%s=%s ", r.Key, r.Value)
	}
	return s
}

func TestEmptyTxnCostsNothing(t *testing.T) {
	db, s := newTestDB(t, DBConfig{})
	ctx := context.Background()
	tx, err := db.Begin(ctx, TxnOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if tx.StartTS() != 0 {
		t.Fatalf("start_ts taken for an empty transaction: %d", tx.StartTS())
	}
	for _, k := range []string{"get", "scan", "1pc", "prewrite"} {
		if n := s.count(k); n != 0 {
			t.Fatalf("%d %s requests for an empty transaction", n, k)
		}
	}
}

func TestReadYourWritesAndSnapshot(t *testing.T) {
	db, _ := newTestDB(t, DBConfig{}, "m")
	ctx := context.Background()
	mustPut(t, db, "a", "1", "b", "2", "z", "26")

	tx, _ := db.Begin(ctx, TxnOptions{})
	if v, ok := mustGet(t, tx, "a"); !ok || v != "1" {
		t.Fatalf("a = %q %v", v, ok)
	}
	// A commit after our snapshot is invisible to us.
	mustPut(t, db, "b", "changed")
	if v, _ := mustGet(t, tx, "b"); v != "2" {
		t.Fatalf("snapshot read b = %q, want 2", v)
	}
	if err := tx.Put(ctx, []byte("c"), []byte("3")); err != nil {
		t.Fatal(err)
	}
	if err := tx.Delete(ctx, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if v, ok := mustGet(t, tx, "c"); !ok || v != "3" {
		t.Fatalf("own write c = %q %v", v, ok)
	}
	if _, ok := mustGet(t, tx, "a"); ok {
		t.Fatal("own delete of a not seen")
	}
	res, err := tx.BatchGet(ctx, [][]byte{[]byte("z"), []byte("a"), []byte("c"), []byte("nope")})
	if err != nil {
		t.Fatal(err)
	}
	want := []GetResult{{Value: []byte("26"), Found: true}, {}, {Value: []byte("3"), Found: true}, {}}
	for i := range want {
		if res[i].Found != want[i].Found || string(res[i].Value) != string(want[i].Value) {
			t.Fatalf("BatchGet[%d] = %+v, want %+v", i, res[i], want[i])
		}
	}
	rows, err := tx.Scan(ctx, []byte("a"), nil, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := rowsString(rows); got != "b=2 c=3 z=26 " {
		t.Fatalf("scan = %s", got)
	}
	rows, err = tx.Scan(ctx, []byte("a"), []byte("zz"), 2, true)
	if err != nil {
		t.Fatal(err)
	}
	if got := rowsString(rows); got != "z=26 c=3 " {
		t.Fatalf("reverse scan = %s", got)
	}
	// It read b, which changed after its snapshot: it must not commit.
	err = tx.Commit(ctx)
	var se *SerializationError
	if !errors.As(err, &se) || !IsRetryable(err) {
		t.Fatalf("commit after a read changed: %v, want SerializationError", err)
	}
	if _, ok := readCommitted(t, db, "c"); ok {
		t.Fatal("aborted transaction's write is visible")
	}
}

func TestScanAcrossRangesAndPaging(t *testing.T) {
	db, _ := newTestDB(t, DBConfig{}, "k03", "k07", "k10")
	ctx := context.Background()
	var kvs []string
	for i := 0; i < 14; i++ {
		kvs = append(kvs, fmt.Sprintf("k%02d", i), fmt.Sprint(i))
	}
	mustPut(t, db, kvs...)
	tx, _ := db.Begin(ctx, TxnOptions{})
	// Buffered changes merged into pages of 2 rows.
	_ = tx.Delete(ctx, []byte("k04"))
	_ = tx.Put(ctx, []byte("k05"), []byte("five"))
	_ = tx.Put(ctx, []byte("k065"), []byte("new"))
	_ = tx.Lock(ctx, []byte("k08"))
	_ = tx.Lock(ctx, []byte("k085")) // lock on an absent key shows nothing
	for _, reverse := range []bool{false, true} {
		it := tx.NewIterator(ctx, []byte("k02"), []byte("k12"), reverse, 2)
		var got []kv.KeyValue
		for {
			r, ok, err := it.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			got = append(got, r)
		}
		it.Close()
		want := "k02=2 k03=3 k05=five k06=6 k065=new k07=7 k08=8 k09=9 k10=10 k11=11 "
		if reverse {
			want = "k11=11 k10=10 k09=9 k08=8 k07=7 k065=new k06=6 k05=five k03=3 k02=2 "
		}
		if s := rowsString(got); s != want {
			t.Fatalf("reverse=%v: %s\nwant %s", reverse, s, want)
		}
	}
}

func TestScanLimitRecordsOnlyCoveredSpan(t *testing.T) {
	db, _ := newTestDB(t, DBConfig{}, "m")
	ctx := context.Background()
	mustPut(t, db, "a", "1", "b", "2", "c", "3", "x", "9")
	tx, _ := db.Begin(ctx, TxnOptions{})
	rows, err := tx.Scan(ctx, []byte("a"), []byte("z"), 2, false)
	if err != nil || len(rows) != 2 {
		t.Fatalf("scan: %v %d", err, len(rows))
	}
	// A write beyond what the limited scan covered does not conflict.
	mustPut(t, db, "d", "new", "x", "10")
	_ = tx.Put(ctx, []byte("result"), []byte("ok"))
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit: %v (a write outside the covered span must not conflict)", err)
	}
	// But inside it does (b changed).
	tx, _ = db.Begin(ctx, TxnOptions{})
	if _, err := tx.Scan(ctx, []byte("a"), []byte("z"), 2, false); err != nil {
		t.Fatal(err)
	}
	mustPut(t, db, "b", "changed")
	_ = tx.Put(ctx, []byte("result"), []byte("again"))
	if err := tx.Commit(ctx); !IsRetryable(err) {
		t.Fatalf("commit after a scanned row changed: %v", err)
	}
}

func TestOnePhaseAndTwoPhasePaths(t *testing.T) {
	db, s := newTestDB(t, DBConfig{}, "m")
	ctx := context.Background()
	s.resetCounts()
	mustPut(t, db, "a", "1", "b", "2")
	if s.count("1pc") != 1 || s.count("prewrite") != 0 {
		t.Fatalf("single-range txn: %d 1pc, %d prewrites", s.count("1pc"), s.count("prewrite"))
	}
	s.resetCounts()
	mustPut(t, db, "a", "3", "x", "4")
	if s.count("1pc") != 0 || s.count("prewrite") != 2 {
		t.Fatalf("two-range txn: %d 1pc, %d prewrites", s.count("1pc"), s.count("prewrite"))
	}
	// A single-range write with a read in another range goes through 2PC
	// and validates its read.
	s.resetCounts()
	err := db.Run(ctx, TxnOptions{}, func(ctx context.Context, tx *Txn) error {
		if _, _, err := tx.Get(ctx, []byte("x")); err != nil {
			return err
		}
		return tx.Put(ctx, []byte("a"), []byte("5"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.count("1pc") != 0 || s.count("validate") != 1 {
		t.Fatalf("read elsewhere: %d 1pc, %d validations", s.count("1pc"), s.count("validate"))
	}
	for k, want := range map[string]string{"a": "5", "b": "2", "x": "4"} {
		if v, _ := readCommitted(t, db, k); v != want {
			t.Fatalf("%s = %q, want %q", k, v, want)
		}
	}
}

func TestReadOnlyAndAsOf(t *testing.T) {
	db, s := newTestDB(t, DBConfig{})
	ctx := context.Background()
	mustPut(t, db, "k", "old")
	tx, _ := db.Begin(ctx, TxnOptions{})
	_, _, _ = tx.Get(ctx, []byte("k"))
	past := tx.StartTS()
	_ = tx.Rollback(ctx)
	mustPut(t, db, "k", "new")

	ro, _ := db.Begin(ctx, TxnOptions{AsOf: past})
	if v, _ := mustGet(t, ro, "k"); v != "old" {
		t.Fatalf("AS OF read = %q, want old", v)
	}
	var rerr *ReadOnlyTxnError
	if err := ro.Put(ctx, []byte("k"), []byte("x")); !errors.As(err, &rerr) {
		t.Fatalf("write in AS OF txn: %v", err)
	}
	s.resetCounts()
	if err := ro.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if s.count("validate") != 0 {
		t.Fatal("a read-only transaction validated")
	}
}

func TestSavepoints(t *testing.T) {
	db, _ := newTestDB(t, DBConfig{})
	ctx := context.Background()
	tx, _ := db.Begin(ctx, TxnOptions{})
	_ = tx.Put(ctx, []byte("a"), []byte("1"))
	sp := tx.Savepoint()
	_ = tx.Put(ctx, []byte("a"), []byte("2"))
	_ = tx.Put(ctx, []byte("b"), []byte("2"))
	_ = tx.Delete(ctx, []byte("a"))
	sp2 := tx.Savepoint()
	_ = tx.Put(ctx, []byte("c"), []byte("3"))
	if err := tx.RollbackTo(sp); err != nil {
		t.Fatal(err)
	}
	if v, ok := mustGet(t, tx, "a"); !ok || v != "1" {
		t.Fatalf("after rollback to savepoint a = %q %v", v, ok)
	}
	if _, ok := mustGet(t, tx, "b"); ok {
		t.Fatal("b survived the rollback to savepoint")
	}
	var ia *InvalidArgumentError
	if err := tx.RollbackTo(sp2); !errors.As(err, &ia) {
		t.Fatalf("rollback to a released savepoint: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := readCommitted(t, db, "c"); ok {
		t.Fatal("c committed")
	}
	var closed *TxnClosedError
	if err := tx.Put(ctx, []byte("x"), nil); !errors.As(err, &closed) {
		t.Fatalf("put after commit: %v", err)
	}
}

func TestTxnTooLargeAndBadKeys(t *testing.T) {
	db, _ := newTestDB(t, DBConfig{MaxTxnBytes: 1000})
	ctx := context.Background()
	tx, _ := db.Begin(ctx, TxnOptions{})
	if err := tx.Put(ctx, []byte("a"), make([]byte, 500)); err != nil {
		t.Fatal(err)
	}
	var tl *TxnTooLargeError
	if err := tx.Put(ctx, []byte("b"), make([]byte, 600)); !errors.As(err, &tl) {
		t.Fatalf("oversized txn: %v", err)
	}
	if _, ok := mustGet(t, tx, "b"); ok {
		t.Fatal("the write that was refused is buffered")
	}
	var ia *InvalidArgumentError
	if err := tx.Put(ctx, nil, []byte("x")); !errors.As(err, &ia) {
		t.Fatalf("empty key: %v", err)
	}
	if err := tx.Put(ctx, []byte{0xff, 0xff, 1}, []byte("x")); !errors.As(err, &ia) {
		t.Fatalf("reserved key: %v", err)
	}
	if _, err := tx.Scan(ctx, []byte("z"), []byte("a"), 0, false); !errors.As(err, &ia) {
		t.Fatalf("inverted scan: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// A coordinator that dies after prewriting leaves locks: a reader waits for
// their TTL, rolls the transaction back, and sees none of it.
func TestCrashAfterPrewriteRolledBackByReader(t *testing.T) {
	crash := &TestingKnobs{Disable1PC: true, AfterPrewrite: func(*Txn) error { return ErrCoordinatorStopped() }}
	db, s := newTestDB(t, DBConfig{LockTTL: 300 * time.Millisecond, Knobs: crash}, "m")
	reader := NewDB(DBConfig{Sender: db.sender, Clock: db.clock})
	defer reader.Close()
	ctx := context.Background()
	mustPutDB(t, reader, "a", "0", "x", "0")
	tx, _ := db.Begin(ctx, TxnOptions{})
	_ = tx.Put(ctx, []byte("a"), []byte("1"))
	_ = tx.Put(ctx, []byte("x"), []byte("1"))
	if err := tx.Commit(ctx); !errors.Is(err, ErrCoordinatorStopped()) {
		t.Fatalf("commit with crash knob: %v", err)
	}
	start := time.Now()
	rtx, _ := reader.Begin(ctx, TxnOptions{ReadOnly: true})
	rows, err := rtx.Scan(ctx, []byte("a"), nil, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := rowsString(rows); got != "a=0 x=0 " {
		t.Fatalf("after crash: %s", got)
	}
	if time.Since(start) < 100*time.Millisecond {
		t.Fatalf("reader did not wait for the lock TTL (%v)", time.Since(start))
	}
	if s.count("status") == 0 {
		t.Fatal("no CheckTxnStatus")
	}
}

// A coordinator that dies after the commit point: readers roll the
// secondaries forward and see all of it.
func TestCrashAfterPrimaryCommitRolledForward(t *testing.T) {
	crash := &TestingKnobs{AfterPrimaryCommit: func(*Txn) error { return ErrCoordinatorStopped() }}
	db, _ := newTestDB(t, DBConfig{Knobs: crash}, "m")
	ctx := context.Background()
	tx, _ := db.Begin(ctx, TxnOptions{})
	_ = tx.Put(ctx, []byte("a"), []byte("1"))
	_ = tx.Put(ctx, []byte("x"), []byte("1"))
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
	rtx, _ := db.Begin(ctx, TxnOptions{})
	rows, err := rtx.Scan(ctx, []byte("a"), nil, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := rowsString(rows); got != "a=1 x=1 " {
		t.Fatalf("after crash past the commit point: %s", got)
	}
}

func mustPutDB(t *testing.T, db *DB, kvs ...string) { t.Helper(); mustPut(t, db, kvs...) }

// A live but slow transaction's locks: a reader waits up to the lock-wait
// timeout and fails with 1205; the heartbeat keeps the lock from expiring.
func TestLockWaitTimeoutAndHeartbeat(t *testing.T) {
	release := make(chan struct{})
	knobs := &TestingKnobs{Disable1PC: true, AfterPrewrite: func(*Txn) error { <-release; return nil }}
	db, _ := newTestDB(t, DBConfig{LockTTL: 150 * time.Millisecond, Knobs: knobs}, "m")
	reader := NewDB(DBConfig{Sender: db.sender, Clock: db.clock, LockWaitTimeout: 600 * time.Millisecond})
	defer reader.Close()
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		tx, _ := db.Begin(ctx, TxnOptions{})
		_ = tx.Put(ctx, []byte("a"), []byte("1"))
		_ = tx.Put(ctx, []byte("x"), []byte("1"))
		done <- tx.Commit(ctx)
	}()
	// Wait until the lock is there: a reader meets it.
	var lw *LockWaitTimeoutError
	deadline := time.Now().Add(5 * time.Second)
	for {
		rtx, _ := reader.Begin(ctx, TxnOptions{})
		_, _, err := rtx.Get(ctx, []byte("x"))
		if errors.As(err, &lw) {
			break // waited 600ms, 4 TTLs: the heartbeat kept the lock alive
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the lock never appeared")
		}
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("slow transaction failed: %v", err)
	}
	if v, _ := readCommitted(t, reader, "x"); v != "1" {
		t.Fatalf("x = %q", v)
	}
}

func TestGCAfterUpdates(t *testing.T) {
	db, _ := newTestDB(t, DBConfig{}, "m")
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		mustPut(t, db, "a", fmt.Sprint(i), "x", fmt.Sprint(i))
	}
	sp, _ := db.clock.GetTimestamp(ctx)
	st, err := db.RunGC(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ranges != 2 || st.VersionsRemoved == 0 {
		t.Fatalf("gc stats %+v", st)
	}
	if v, _ := readCommitted(t, db, "x"); v != "4" {
		t.Fatalf("x after gc = %q", v)
	}
}

type fixedSafePoint kv.Timestamp

func (f fixedSafePoint) GCSafePoint(context.Context) (kv.Timestamp, error) {
	return kv.Timestamp(f), nil
}

func TestAsOfBelowSafePointRefused(t *testing.T) {
	db, _ := newTestDB(t, DBConfig{SafePoints: fixedSafePoint(1000)})
	var old *SnapshotTooOldError
	if _, err := db.Begin(context.Background(), TxnOptions{AsOf: 999}); !errors.As(err, &old) {
		t.Fatalf("AS OF below the safepoint: %v", err)
	}
	if _, err := db.Begin(context.Background(), TxnOptions{AsOf: 1001}); err != nil {
		t.Fatalf("AS OF above the safepoint: %v", err)
	}
}

type countingSafePoint struct{ calls atomic.Int64 }

func (c *countingSafePoint) GCSafePoint(context.Context) (kv.Timestamp, error) {
	c.calls.Add(1)
	return 1, nil
}

// TestAsOfSkipsSafePointWhenYoung: a snapshot newer than half the GC
// lifetime cannot be at or below the safepoint, so Begin does not ask etcd.
func TestAsOfSkipsSafePointWhenYoung(t *testing.T) {
	sp := &countingSafePoint{}
	db, _ := newTestDB(t, DBConfig{SafePoints: sp, GCLifetime: 10 * time.Minute})
	ctx := context.Background()
	now, err := db.Clock().GetTimestamp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	young := now - kv.MakeTimestamp(2000, 0)
	old := now - kv.MakeTimestamp(uint64(time.Hour.Milliseconds()), 0)
	for _, c := range []struct {
		asOf  kv.Timestamp
		calls int64
	}{{young, 0}, {old, 1}} {
		tx, err := db.Begin(ctx, TxnOptions{AsOf: c.asOf})
		if err != nil {
			t.Fatal(err)
		}
		_ = tx.Rollback(ctx)
		if got := sp.calls.Load(); got != c.calls {
			t.Fatalf("AS OF %d ms ago: %d safepoint lookups, want %d", kv.PhysicalMillis(now)-kv.PhysicalMillis(c.asOf), got, c.calls)
		}
	}
}

func TestAsOfInTheFutureRefused(t *testing.T) {
	db, _ := newTestDB(t, DBConfig{})
	ctx := context.Background()
	now, err := db.Clock().GetTimestamp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var bad *InvalidArgumentError
	if _, err := db.Begin(ctx, TxnOptions{AsOf: now + kv.MakeTimestamp(60_000, 0)}); !errors.As(err, &bad) {
		t.Fatalf("AS OF a minute ahead: %v, want InvalidArgumentError", err)
	}
	tx, err := db.Begin(ctx, TxnOptions{AsOf: now})
	if err != nil {
		t.Fatalf("AS OF now: %v", err)
	}
	_ = tx.Rollback(ctx)
	frt, err := db.FollowerReadTimestamp(ctx)
	if err != nil || frt >= now || kv.PhysicalMillis(now)-kv.PhysicalMillis(frt) < uint64(DefaultFollowerReadStaleness.Milliseconds()) {
		t.Fatalf("FollowerReadTimestamp %d (now %d): %v", frt, now, err)
	}
}

func TestBatchGetManyKeys(t *testing.T) {
	db, _ := newTestDB(t, DBConfig{}, "k050")
	ctx := context.Background()
	var kvs []string
	for i := 0; i < 100; i += 2 {
		kvs = append(kvs, fmt.Sprintf("k%03d", i), fmt.Sprint(i))
	}
	mustPut(t, db, kvs...)
	tx, _ := db.Begin(ctx, TxnOptions{})
	var keys [][]byte
	for i := 99; i >= 0; i-- {
		keys = append(keys, []byte(fmt.Sprintf("k%03d", i)))
	}
	res, err := tx.BatchGet(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	for j, r := range res {
		i := 99 - j
		if r.Found != (i%2 == 0) || (r.Found && string(r.Value) != fmt.Sprint(i)) {
			t.Fatalf("key k%03d: %+v", i, r)
		}
	}
}

func TestRunGCOnceUsesSafePoint(t *testing.T) {
	db, _ := newTestDB(t, DBConfig{}, "m")
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		mustPut(t, db, "a", fmt.Sprint(i))
	}
	sp, _ := db.clock.GetTimestamp(ctx)
	st, err := db.RunGCOnce(ctx, fixedSafePoint(sp))
	if err != nil || st.VersionsRemoved != 2 {
		t.Fatalf("gc: %+v, %v (want the 2 older versions of a removed)", st, err)
	}
	st, err = db.RunGCOnce(ctx, fixedSafePoint(0))
	if err != nil || st.Ranges != 0 {
		t.Fatalf("gc without a safepoint ran: %+v, %v", st, err)
	}
}

// Reverse scans whose end is a range boundary (or KeyMax) with a cold range
// cache: the range just below the end must be found.
func TestReverseScanEndingAtRangeBoundary(t *testing.T) {
	db, s := newTestDB(t, DBConfig{}, "k03", "k07")
	ctx := context.Background()
	mustPut(t, db, "k01", "1", "k05", "5", "k06", "6", "k08", "8")
	for _, tc := range []struct {
		end  []byte
		want string
	}{
		{[]byte("k07"), "k06=6 k05=5 k01=1 "},
		{[]byte("k03"), "k01=1 "},
		{nil, "k08=8 k06=6 k05=5 k01=1 "},
	} {
		cold := NewDB(DBConfig{Sender: NewLocalStoreSender(LocalStoreSenderConfig{Store: s, Directory: s}), Clock: db.clock})
		tx, _ := cold.Begin(ctx, TxnOptions{ReadOnly: true})
		rows, err := tx.Scan(ctx, []byte("k00"), tc.end, 0, true)
		cold.Close()
		if err != nil {
			t.Fatalf("end %q: %v", tc.end, err)
		}
		if got := rowsString(rows); got != tc.want {
			t.Fatalf("end %q: %s, want %s", tc.end, got, tc.want)
		}
	}
}

// TestFollowerReadTimestampBoundedStaleness: a closed floor older than the
// usual snapshot pulls the follower-read timestamp back to it, by at most
// FollowerReadMaxStaleness; a younger floor changes nothing.
func TestFollowerReadTimestampBoundedStaleness(t *testing.T) {
	var floor atomic.Uint64
	db, _ := newTestDB(t, DBConfig{ClosedFloor: func() kv.Timestamp { return floor.Load() },
		FollowerReadStaleness: 2 * time.Second, FollowerReadMaxStaleness: 10 * time.Second})
	ctx := context.Background()
	now, err := db.Clock().GetTimestamp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ago := func(ms uint64) kv.Timestamp { return now - kv.MakeTimestamp(ms, 0) }
	ms := func(ts kv.Timestamp) int64 { return int64(kv.PhysicalMillis(now)) - int64(kv.PhysicalMillis(ts)) }
	for _, c := range []struct {
		floor      kv.Timestamp
		minMs, max int64 // how far back the answer is, in ms
	}{
		{0, 1900, 2100},           // no floor: the usual staleness
		{ago(1000), 1900, 2100},   // a younger floor: unchanged
		{ago(5000), 4900, 5100},   // an older floor: back to it
		{ago(60000), 9900, 10100}, // older than the bound: clamped
	} {
		floor.Store(c.floor)
		ts, err := db.FollowerReadTimestamp(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if back := ms(ts); back < c.minMs || back > c.max {
			t.Fatalf("floor %d ms back: follower read timestamp %d ms back, want %d..%d", ms(c.floor), back, c.minMs, c.max)
		}
	}
}
