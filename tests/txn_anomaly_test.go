package tests

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/quorumdb/quorumdb/kv"
	"github.com/quorumdb/quorumdb/txn"
)

// Named anomalies. Each scenario would go wrong under snapshot isolation or
// weaker; the transactions run on different coordinators ("nodes") over
// several ranges, with barriers forcing the dangerous interleaving.

const anomalyTimeout = 30 * time.Second

func putAll(t testing.TB, db *txn.DB, kvs ...string) {
	t.Helper()
	err := db.Run(context.Background(), txn.TxnOptions{}, func(ctx context.Context, tx *txn.Txn) error {
		for i := 0; i+1 < len(kvs); i += 2 {
			if err := tx.Put(ctx, []byte(kvs[i]), []byte(kvs[i+1])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("setup put: %v", err)
	}
}

func getCommitted(t *testing.T, db *txn.DB, key string) (string, bool) {
	t.Helper()
	tx, err := db.Begin(context.Background(), txn.TxnOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	v, ok, err := tx.Get(context.Background(), []byte(key))
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	return string(v), ok
}

func getInt(ctx context.Context, tx *txn.Txn, key string) (int, error) {
	v, ok, err := tx.Get(ctx, []byte(key))
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, nil
	}
	return strconv.Atoi(string(v))
}

// runPair runs body(i, tx) for i = 0, 1 concurrently on dbs[i], each in its
// own transaction, and commits both. It returns the commit errors.
func runPair(t *testing.T, dbs []*txn.DB, body func(ctx context.Context, i int, tx *txn.Txn) error) [2]error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), anomalyTimeout)
	defer cancel()
	var errs [2]error
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tx, err := dbs[i].Begin(ctx, txn.TxnOptions{})
			if err != nil {
				errs[i] = err
				return
			}
			if err := body(ctx, i, tx); err != nil {
				_ = tx.Rollback(ctx)
				errs[i] = fmt.Errorf("body: %w", err)
				return
			}
			errs[i] = tx.Commit(ctx)
		}()
	}
	wg.Wait()
	return errs
}

// exactlyOneCommits checks one commit succeeded and the other failed with a
// retryable serialization error.
func exactlyOneCommits(t *testing.T, errs [2]error) int {
	t.Helper()
	ok := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if ok >= 0 {
				t.Fatalf("both transactions committed")
			}
			ok = i
		case !txn.IsRetryable(err):
			t.Fatalf("transaction %d failed with a non-retryable error: %v", i, err)
		default:
			t.Logf("transaction %d aborted as expected: %v", i, err)
		}
	}
	if ok < 0 {
		t.Fatalf("neither transaction committed: %v / %v", errs[0], errs[1])
	}
	return ok
}

var anomalyCfg = txn.DBConfig{ValidationWait: 5 * time.Second}

func TestTxnLostUpdate(t *testing.T) {
	for _, multiRange := range []bool{false, true} {
		t.Run(fmt.Sprintf("multiRange=%v", multiRange), func(t *testing.T) {
			s := newLocalKV(t, "m")
			dbs := s.coordinators(t, 2, anomalyCfg)
			putAll(t, dbs[0], "counter", "0")
			b := newBarrier(2)
			errs := runPair(t, dbs, func(ctx context.Context, i int, tx *txn.Txn) error {
				n, err := getInt(ctx, tx, "counter")
				if err != nil {
					return err
				}
				if err := b.wait(ctx); err != nil {
					return err
				}
				if multiRange {
					if err := tx.Put(ctx, []byte(fmt.Sprintf("x/log%d", i)), []byte("inc")); err != nil {
						return err
					}
				}
				return tx.Put(ctx, []byte("counter"), []byte(strconv.Itoa(n+1)))
			})
			exactlyOneCommits(t, errs)
			if v, _ := getCommitted(t, dbs[1], "counter"); v != "1" {
				t.Fatalf("counter = %s, want 1", v)
			}
			// With Run's retries, concurrent increments all count.
			var wg sync.WaitGroup
			const n = 8
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := dbs[i%2].Run(context.Background(), txn.TxnOptions{}, func(ctx context.Context, tx *txn.Txn) error {
						c, err := getInt(ctx, tx, "counter")
						if err != nil {
							return err
						}
						if multiRange {
							if err := tx.Put(ctx, []byte(fmt.Sprintf("x/run%d", i)), []byte("inc")); err != nil {
								return err
							}
						}
						return tx.Put(ctx, []byte("counter"), []byte(strconv.Itoa(c+1)))
					})
					if err != nil {
						t.Errorf("increment %d: %v", i, err)
					}
				}()
			}
			wg.Wait()
			if v, _ := getCommitted(t, dbs[0], "counter"); v != strconv.Itoa(1+n) {
				t.Fatalf("counter = %s after %d more increments, want %d", v, n, 1+n)
			}
		})
	}
}

func TestTxnWriteSkewDoctorsOnCall(t *testing.T) {
	s := newLocalKV(t, "doc/bob")
	if !distinct(keyRangeIDs(s, "doc/alice", "doc/bob")) {
		t.Fatal("setup: doctors in one range")
	}
	dbs := s.coordinators(t, 2, anomalyCfg)
	putAll(t, dbs[0], "doc/alice", "on", "doc/bob", "on")
	doctors := []string{"doc/alice", "doc/bob"}
	b := newBarrier(2)
	errs := runPair(t, dbs, func(ctx context.Context, i int, tx *txn.Txn) error {
		onCall := 0
		for _, d := range doctors {
			v, _, err := tx.Get(ctx, []byte(d))
			if err != nil {
				return err
			}
			if string(v) == "on" {
				onCall++
			}
		}
		if err := b.wait(ctx); err != nil {
			return err
		}
		if onCall >= 2 {
			return tx.Put(ctx, []byte(doctors[i]), []byte("off"))
		}
		return nil
	})
	exactlyOneCommits(t, errs)
	on := 0
	for _, d := range doctors {
		if v, _ := getCommitted(t, dbs[0], d); v == "on" {
			on++
		}
	}
	if on != 1 {
		t.Fatalf("%d doctors on call, want exactly 1", on)
	}
}

func TestTxnReadSkew(t *testing.T) {
	s := newLocalKV(t, "acct/y")
	dbs := s.coordinators(t, 2, anomalyCfg)
	putAll(t, dbs[0], "acct/x", "50", "acct/y", "50")
	ctx := context.Background()
	reader, _ := dbs[0].Begin(ctx, txn.TxnOptions{})
	x, err := getInt(ctx, reader, "acct/x")
	if err != nil {
		t.Fatal(err)
	}
	// A transfer commits through the other coordinator between the reads.
	err = dbs[1].Run(ctx, txn.TxnOptions{}, func(ctx context.Context, tx *txn.Txn) error {
		a, err := getInt(ctx, tx, "acct/x")
		if err != nil {
			return err
		}
		b, err := getInt(ctx, tx, "acct/y")
		if err != nil {
			return err
		}
		if err := tx.Put(ctx, []byte("acct/x"), []byte(strconv.Itoa(a-30))); err != nil {
			return err
		}
		return tx.Put(ctx, []byte("acct/y"), []byte(strconv.Itoa(b+30)))
	})
	if err != nil {
		t.Fatal(err)
	}
	y, err := getInt(ctx, reader, "acct/y")
	if err != nil {
		t.Fatal(err)
	}
	if x+y != 100 {
		t.Fatalf("read skew: x=%d y=%d, sum %d", x, y, x+y)
	}
	// Writing on the basis of those reads cannot commit: they are stale.
	_ = reader.Put(ctx, []byte("acct/sum"), []byte(strconv.Itoa(x+y)))
	if err := reader.Commit(ctx); !txn.IsRetryable(err) {
		t.Fatalf("commit on stale reads: %v, want a serialization failure", err)
	}
}

func TestTxnPhantomCountThenInsert(t *testing.T) {
	s := newLocalKV(t, "p/5", "q")
	dbs := s.coordinators(t, 2, anomalyCfg)
	putAll(t, dbs[0], "other", "x")
	b := newBarrier(2)
	errs := runPair(t, dbs, func(ctx context.Context, i int, tx *txn.Txn) error {
		rows, err := tx.Scan(ctx, []byte("p/"), []byte("p0"), 0, false)
		if err != nil {
			return err
		}
		if err := b.wait(ctx); err != nil {
			return err
		}
		if len(rows) == 0 {
			// The two inserts are different keys in different ranges: no
			// write-write conflict, only the scanned span can tell.
			return tx.Put(ctx, []byte(fmt.Sprintf("p/%d", 3+3*i)), []byte("row"))
		}
		return nil
	})
	exactlyOneCommits(t, errs)
	tx, _ := dbs[0].Begin(context.Background(), txn.TxnOptions{ReadOnly: true})
	rows, err := tx.Scan(context.Background(), []byte("p/"), []byte("p0"), 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("%d rows after count-then-insert, want 1", len(rows))
	}
}

var errInsufficientFunds = errors.New("insufficient funds")

// The seed's example: 15 EUR, two 10 EUR withdrawals through two different
// coordinators at once. Exactly one succeeds.
func TestTxnTwoWithdrawalsFrom15EUR(t *testing.T) {
	s := newLocalKV(t, "withdrawal/")
	runTwoWithdrawals(t, s.coordinators(t, 2, anomalyCfg), "")
}

// runTwoWithdrawals is the body of the withdrawal test over two
// coordinators, on keys under prefix.
func runTwoWithdrawals(t *testing.T, dbs []*txn.DB, prefix string) {
	account := prefix + "acct/alice"
	putAll(t, dbs[0], account, "15")
	b := newBarrier(2)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			ctx, cancel := context.WithTimeout(context.Background(), anomalyTimeout)
			defer cancel()
			errs[i] = dbs[i].Run(ctx, txn.TxnOptions{}, func(ctx context.Context, tx *txn.Txn) error {
				bal, err := getInt(ctx, tx, account)
				if err != nil {
					return err
				}
				if first {
					first = false
					if err := b.wait(ctx); err != nil {
						return err
					}
				}
				if bal < 10 {
					return errInsufficientFunds
				}
				if err := tx.Put(ctx, []byte(account), []byte(strconv.Itoa(bal-10))); err != nil {
					return err
				}
				return tx.Put(ctx, []byte(fmt.Sprintf("%swithdrawal/%d", prefix, i)), []byte("10"))
			})
		}()
	}
	wg.Wait()
	succeeded := 0
	for i, err := range errs {
		switch {
		case err == nil:
			succeeded++
		case errors.Is(err, errInsufficientFunds):
		default:
			t.Fatalf("withdrawal %d: %v", i, err)
		}
	}
	if succeeded != 1 {
		t.Fatalf("%d withdrawals succeeded, want exactly 1", succeeded)
	}
	if v, _ := getCommitted(t, dbs[0], account); v != "5" {
		t.Fatalf("balance %s, want 5", v)
	}
	tx, _ := dbs[1].Begin(context.Background(), txn.TxnOptions{ReadOnly: true})
	rows, err := tx.Scan(context.Background(), []byte(prefix+"withdrawal/"), []byte(prefix+"withdrawal0"), 0, false)
	if err != nil || len(rows) != 1 {
		t.Fatalf("withdrawal rows: %d, %v", len(rows), err)
	}
}

// The 1PC hazard: a 1PC whose proposal timestamp was taken before another
// coordinator's read at a higher timestamp must not commit below that read
// (the reader's snapshot would change under it). And a read that starts after
// the commit returned, on another coordinator, sees it.
func TestTxnStaleReadAfter1PC(t *testing.T) {
	s := newLocalKV(t, "m")
	dbs := s.coordinators(t, 2, anomalyCfg)
	putAll(t, dbs[0], "k", "old")
	ctx := context.Background()
	reader, _ := dbs[1].Begin(ctx, txn.TxnOptions{})
	var once sync.Once
	var firstRead string
	var hookErr error
	s.mu.Lock()
	s.before1PC = func(*kv.OnePhaseCommitRequest) {
		once.Do(func() {
			// The writer's command is in flight with its proposal taken;
			// the reader takes a later snapshot and reads first.
			v, _, err := reader.Get(ctx, []byte("k"))
			firstRead, hookErr = string(v), err
		})
	}
	s.mu.Unlock()
	writer, _ := dbs[0].Begin(ctx, txn.TxnOptions{})
	if err := writer.Put(ctx, []byte("k"), []byte("new")); err != nil {
		t.Fatal(err)
	}
	if err := writer.Commit(ctx); err != nil {
		t.Fatalf("1PC commit: %v", err)
	}
	if hookErr != nil || firstRead != "old" {
		t.Fatalf("reader's first read = %q, %v", firstRead, hookErr)
	}
	if writer.CommitTS() <= reader.StartTS() {
		t.Fatalf("1PC committed at %d, not above the read at %d it raced with", writer.CommitTS(), reader.StartTS())
	}
	if v, _, err := reader.Get(ctx, []byte("k")); err != nil || string(v) != "old" {
		t.Fatalf("reader's snapshot changed: %q, %v", v, err)
	}
	if v, _ := getCommitted(t, dbs[1], "k"); v != "new" {
		t.Fatalf("a read after the commit returned, on another coordinator, saw %q", v)
	}
}
